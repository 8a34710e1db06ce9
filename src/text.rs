//! Text quoted from outside (property values, server messages) made safe to put into a
//! message meant for people: one line, bounded, cut on a character boundary. The two ways to do
//! it live here, and nowhere else.

/// Makes untrusted text safe to quote in a message meant for people (a stack event, a log line):
/// control characters are escaped so the message stays on one line, and the result is cut to
/// `max_chars` characters with an ellipsis so one bad value cannot flood the 4096-byte response.
pub fn shorten(text: &str, max_chars: usize) -> String {
    let mut out = String::new();
    for (taken, ch) in text.chars().enumerate() {
        if taken == max_chars {
            out.push('…');
            break;
        }
        if ch.is_control() {
            out.extend(ch.escape_default());
        } else {
            out.push(ch);
        }
    }
    out
}

/// One line of at most `max_chars` characters (whitespace runs collapsed), cut on a character
/// boundary, so a quoted message never becomes a whole body in a CloudFormation reason.
pub fn shorten_words(text: &str, max_chars: usize) -> String {
    let mut out = String::new();
    let mut count = 0;
    for word in text.split_whitespace() {
        if count > 0 {
            if count + 1 > max_chars {
                out.push('…');
                return out;
            }
            out.push(' ');
            count += 1;
        }
        for c in word.chars() {
            if count == max_chars {
                out.push('…');
                return out;
            }
            out.push(c);
            count += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorten_escapes_control_characters_and_cuts_long_text() {
        assert_eq!(shorten("a\nb\tc\u{1b}", 20), "a\\nb\\tc\\u{1b}");
        assert_eq!(shorten("ünïcødé text", 5), "ünïcø…");
        assert_eq!(shorten("exact", 5), "exact");
    }

    #[test]
    fn shorten_words_collapses_whitespace_and_cuts_on_a_character() {
        assert_eq!(shorten_words("a \n\t b  c", 20), "a b c");
        assert_eq!(shorten_words("ünïcødé text", 5), "ünïcø…");
        assert_eq!(shorten_words("one two", 3), "one…");
    }
}
