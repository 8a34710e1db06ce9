//! Where log lines go: one JSON object per line on stdout (CloudWatch Logs reads them there),
//! none longer than [`MAX_LOG_LINE_BYTES`].
//!
//! Every line is built from bounded parts (reasons are cut, quoted server text is shortened), so
//! the bound here is a last guard: a line that still comes out longer is replaced by a short
//! line that says so and keeps its beginning, rather than filling the log group (CloudWatch
//! itself cuts events at 256 KB, mid-JSON).

use std::io::{self, Write};

use tracing_subscriber::fmt::MakeWriter;

/// Longest log line written, newline included.
pub const MAX_LOG_LINE_BYTES: usize = 16 * 1024;
/// How much of an over-long line is kept, before JSON escaping (which at most sextuples it).
const KEPT_BYTES: usize = 2 * 1024;

/// A [`MakeWriter`] for `tracing_subscriber::fmt` that bounds every line it writes.
#[derive(Clone, Copy, Debug, Default)]
pub struct BoundedStdout;

impl<'a> MakeWriter<'a> for BoundedStdout {
    type Writer = BoundedLine<io::Stdout>;

    fn make_writer(&'a self) -> Self::Writer {
        BoundedLine(io::stdout())
    }
}

/// Writes what it is given, unless it is longer than [`MAX_LOG_LINE_BYTES`]: then
/// [`bounded_line`]'s replacement. The formatter hands over one whole line per write.
pub struct BoundedLine<W: Write>(pub W);

impl<W: Write> Write for BoundedLine<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match bounded_line(buf) {
            Some(replacement) => self.0.write_all(replacement.as_bytes())?,
            None => self.0.write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// `None` when `line` fits; otherwise a JSON line that names the cut and keeps the beginning.
pub fn bounded_line(line: &[u8]) -> Option<String> {
    if line.len() <= MAX_LOG_LINE_BYTES {
        return None;
    }
    let mut end = KEPT_BYTES.min(line.len());
    // Cut on a character boundary when the text is UTF-8 (it always is from the formatter).
    while end > 0 && (line[end] & 0b1100_0000) == 0b1000_0000 {
        end -= 1;
    }
    let kept = String::from_utf8_lossy(&line[..end]);
    let replacement = serde_json::json!({
        "level": "WARN",
        "fields": {
            "message": format!(
                "a log line of {} bytes was cut to its first {end} bytes (lines are at most {MAX_LOG_LINE_BYTES} bytes)",
                line.len()
            ),
            "line_start": kept,
        },
    });
    Some(format!("{replacement}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_lines_pass_and_long_ones_are_replaced_by_a_bounded_json_line() {
        assert_eq!(bounded_line(b"{\"level\":\"INFO\"}\n"), None);
        let exactly = vec![b'x'; MAX_LOG_LINE_BYTES];
        assert_eq!(bounded_line(&exactly), None);

        for filler in ["x", "\"", "é", "\u{1}"] {
            let long = format!(
                "{{\"fields\":{{\"message\":\"{}\"}}}}\n",
                filler.repeat(48 * 1024 * 1024 / filler.len() / 8)
            );
            let line = bounded_line(long.as_bytes()).unwrap();
            assert!(line.len() <= MAX_LOG_LINE_BYTES, "{}", line.len());
            assert!(line.ends_with('\n'));
            assert_eq!(line.matches('\n').count(), 1);
            let doc: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert_eq!(doc["level"], "WARN");
            let message = doc["fields"]["message"].as_str().unwrap();
            assert!(message.contains(&format!("a log line of {} bytes", long.len())));
            assert!(
                doc["fields"]["line_start"]
                    .as_str()
                    .unwrap()
                    .starts_with("{\"fields\"")
            );
        }
    }

    #[test]
    fn the_writer_reports_the_whole_buffer_written() {
        let mut sink = BoundedLine(Vec::new());
        let long = vec![b'a'; MAX_LOG_LINE_BYTES + 1];
        assert_eq!(sink.write(&long).unwrap(), long.len());
        assert!(sink.0.len() < MAX_LOG_LINE_BYTES);
        assert_eq!(sink.write(b"ok\n").unwrap(), 3);
        assert!(sink.0.ends_with(b"ok\n"));
    }
}
