//! The moto server (AWS API mock) shared by every test of this process.
//! It owns starting and stopping moto; it must not know which resources tests create.
//!
//! moto runs `tests/support/moto_runner.py`, which stops when its stdin reaches end of
//! file. This process holds the write end in a static and never closes it, so the kernel
//! closes it when the test process ends in any way (pass, panic, abort, SIGKILL) and moto
//! goes with it; no test has to remember to stop it.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Starting moto imports all of its service modules; on a busy two-core machine that
/// takes seconds, so the limit is generous.
const STARTUP_LIMIT: Duration = Duration::from_secs(60);
/// Lines of moto's output kept for error messages.
const DIAGNOSTIC_LINES: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum MotoError {
    #[error(
        "could not run the moto Python interpreter {python}: {source}. Create the venv \
         (`python3 -m venv .venv && .venv/bin/pip install -r tests/requirements.txt`) or \
         set MOTO_PYTHON to a Python that has moto[server] and boto3"
    )]
    Spawn {
        python: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "moto did not report its port within {seconds} s (is moto[server] installed for \
         {python}?). Its last output:\n{output}"
    )]
    NoPort {
        python: String,
        seconds: u64,
        output: String,
    },
}

/// A running moto server.
pub struct Moto {
    endpoint: String,
    output: Arc<Mutex<VecDeque<String>>>,
    // Never read or closed: see the module documentation.
    _lifeline: Mutex<ChildStdin>,
    _process: Mutex<Child>,
}

static SHARED: OnceLock<Result<Moto, String>> = OnceLock::new();

impl Moto {
    /// The moto server of this test process, started on first use.
    ///
    /// This blocks the calling thread while moto starts (seconds, once per process): call
    /// it before starting anything on the test's own runtime that must stay responsive.
    /// A failed start fails every test that asks, without retrying.
    pub fn shared() -> &'static Moto {
        match SHARED.get_or_init(|| Moto::start().map_err(|error| error.to_string())) {
            Ok(moto) => moto,
            Err(reason) => panic!("{reason}"),
        }
    }

    /// `http://127.0.0.1:PORT`, the value for `AWS_ENDPOINT_URL`.
    pub fn endpoint(&self) -> String {
        self.endpoint.clone()
    }

    /// moto's most recent output lines, to explain a fixture or request that failed.
    pub fn recent_output(&self) -> String {
        let output = self.output.lock().unwrap();
        output.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    fn start() -> Result<Moto, MotoError> {
        let python = python();
        let mut child = support_command("moto_runner.py")
            .envs(moto_settings())
            .spawn()
            .map_err(|source| MotoError::Spawn {
                python: python.display().to_string(),
                source,
            })?;

        let output = Arc::new(Mutex::new(VecDeque::new()));
        let (port_tx, port_rx) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            drain(stdout, Arc::clone(&output), Some(port_tx));
        }
        if let Some(stderr) = child.stderr.take() {
            drain(stderr, Arc::clone(&output), None);
        }
        let lifeline = child.stdin.take();

        let port = port_rx.recv_timeout(STARTUP_LIMIT).ok();
        let (Some(port), Some(lifeline)) = (port, lifeline) else {
            let _ = child.kill();
            let _ = child.wait();
            // Give the drain threads a moment to collect the last words of the crash.
            std::thread::sleep(Duration::from_millis(100));
            let output = output.lock().unwrap().iter().cloned().collect::<Vec<_>>();
            return Err(MotoError::NoPort {
                python: python.display().to_string(),
                seconds: STARTUP_LIMIT.as_secs(),
                output: output.join("\n"),
            });
        };
        Ok(Moto {
            endpoint: format!("http://127.0.0.1:{port}"),
            output,
            _lifeline: Mutex::new(lifeline),
            _process: Mutex::new(child),
        })
    }
}

/// The interpreter of the test venv: `MOTO_PYTHON`, else `.venv/bin/python` in the
/// package root.
pub fn python() -> PathBuf {
    std::env::var_os("MOTO_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            [env!("CARGO_MANIFEST_DIR"), ".venv", "bin", "python"]
                .iter()
                .collect()
        })
}

/// A helper script of `tests/support/` run by the venv's Python with a clean environment, its
/// three streams piped: the stdin pipe is the script's lifeline (end of file stops it).
pub fn support_command(script: &str) -> Command {
    let mut command = Command::new(python());
    command
        .arg(support_script(script))
        .env_clear()
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// A helper script in `tests/support/`.
pub fn support_script(name: &str) -> PathBuf {
    [env!("CARGO_MANIFEST_DIR"), "tests", "support", name]
        .iter()
        .collect()
}

/// moto's own settings (`MOTO_*`) pass through, so a developer can tune it; nothing else
/// of the test environment does, above all no real AWS credentials.
fn moto_settings() -> impl Iterator<Item = (String, String)> {
    std::env::vars().filter(|(key, _)| key.starts_with("MOTO_") && key != "MOTO_PYTHON")
}

fn drain(
    stream: impl Read + Send + 'static,
    output: Arc<Mutex<VecDeque<String>>>,
    port: Option<mpsc::Sender<u16>>,
) {
    std::thread::spawn(move || {
        let mut port = port;
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        // moto must never block on a full pipe, so its output is read for its whole life.
        while matches!(reader.read_until(b'\n', &mut line), Ok(read) if read > 0) {
            let text = String::from_utf8_lossy(&line).trim_end().to_owned();
            line.clear();
            if let Some(found) = text.strip_prefix("PORT ").and_then(|n| n.parse().ok())
                && let Some(port) = port.take()
            {
                let _ = port.send(found);
                continue;
            }
            let mut output = output.lock().unwrap();
            if output.len() == DIAGNOSTIC_LINES {
                output.pop_front();
            }
            output.push_back(text);
        }
    });
}
