//! The Lambda under test as a child process: the real compiled binary, started with the
//! environment Lambda gives a function, its output captured line by line.
//! It must not know what the binary logs or answers; scenarios own those expectations.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::watch;

use super::moto::Moto;
use super::runtime::{FUNCTION_NAME, InvocationResult, REGION, RuntimeApi};

/// The binary cargo built for this test run.
pub const BINARY: &str = env!("CARGO_BIN_EXE_databricks-backend-privatelink");
/// The verifier, the package's second binary.
pub const VERIFIER_BINARY: &str = env!("CARGO_BIN_EXE_verifier");

/// How long a dead process's last answer may take to reach the Runtime API stand-in.
const LAST_WORDS: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum LambdaError {
    #[error(
        "could not start {program:?} (run the tests through cargo so the binary is built): {source}"
    )]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
}

/// Configures the environment of one Lambda process; see [`LambdaProcess::builder`].
pub struct LambdaBuilder<'a> {
    runtime: &'a RuntimeApi,
    program: OsString,
    args: Vec<OsString>,
    // `None` removes a variable the harness would otherwise set.
    overrides: BTreeMap<String, Option<String>>,
}

impl LambdaBuilder<'_> {
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.overrides.insert(key.into(), Some(value.into()));
        self
    }

    pub fn env_remove(mut self, key: impl Into<String>) -> Self {
        self.overrides.insert(key.into(), None);
        self
    }

    /// Runs another binary of the package (such as [`VERIFIER_BINARY`]) in place of the
    /// function's, with the same environment.
    pub fn binary(mut self, path: impl Into<OsString>) -> Self {
        self.program = path.into();
        self.args = Vec::new();
        self
    }

    /// Runs another program in place of the Lambda binary, with the same environment; the
    /// harness's own tests use it while the binary cannot answer yet.
    pub fn command(
        mut self,
        program: impl Into<OsString>,
        args: impl IntoIterator<Item = impl Into<OsString>>,
    ) -> Self {
        self.program = program.into();
        self.args = args.into_iter().map(Into::into).collect();
        self
    }

    /// The environment the process gets: Lambda's own variables, test credentials, moto
    /// as the AWS endpoint, then the overrides. Nothing leaks in from the test process.
    pub fn environment(&self) -> BTreeMap<String, String> {
        let log_stream = format!("2025/01/01/[$LATEST]{}", super::random_hex(32));
        let mut env: BTreeMap<String, String> = [
            ("AWS_LAMBDA_RUNTIME_API", self.runtime.address()),
            ("AWS_LAMBDA_FUNCTION_NAME", FUNCTION_NAME.to_owned()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".to_owned()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
            ("AWS_LAMBDA_LOG_STREAM_NAME", log_stream),
            (
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{FUNCTION_NAME}"),
            ),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_owned()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_DEFAULT_REGION", REGION.to_owned()),
            ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
            // A test that removes the credentials must fail fast instead of waiting for
            // the instance metadata service, which does not exist here.
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
            ("ALLOW_INSECURE_ENDPOINTS", "true".to_owned()),
            ("RUST_LOG", "info".to_owned()),
            // The endpoints' addresses go to the verifier as their loopback stand-ins, the
            // ones the DNS world answers with and listens on: no test leaves 127.0.0.0/8.
            ("TEST_ONLY_LOOPBACK_ENDPOINTS", "1".to_owned()),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect();
        // Only start moto when the process will actually be pointed at it.
        if !self.overrides.contains_key("AWS_ENDPOINT_URL") {
            env.insert("AWS_ENDPOINT_URL".to_owned(), Moto::shared().endpoint());
        }
        for (key, value) in &self.overrides {
            match value {
                Some(value) => env.insert(key.clone(), value.clone()),
                None => env.remove(key),
            };
        }
        env
    }

    pub fn spawn(self) -> LambdaProcess {
        self.try_spawn().unwrap_or_else(|error| panic!("{error}"))
    }

    pub fn try_spawn(self) -> Result<LambdaProcess, LambdaError> {
        let environment = self.environment();
        let started_at = Instant::now();
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .env_clear()
            .envs(&environment)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| LambdaError::Spawn {
                program: self.program.to_string_lossy().into_owned(),
                source,
            })?;
        let output = Arc::new(Output::new());
        if let Some(stdout) = child.stdout.take() {
            output.capture(stdout);
        }
        if let Some(stderr) = child.stderr.take() {
            output.capture(stderr);
        }
        Ok(LambdaProcess {
            child: Mutex::new(child),
            output,
            started_at,
        })
    }
}

/// The captured output of a process, shared with the threads that read it.
struct Output {
    lines: Mutex<Vec<String>>,
    // Counts lines and closed streams, so waiters wake on every change.
    changes: watch::Sender<(usize, usize)>,
}

impl Output {
    fn new() -> Self {
        Output {
            lines: Mutex::new(Vec::new()),
            changes: watch::Sender::new((0, 0)),
        }
    }

    fn capture(self: &Arc<Self>, stream: impl Read + Send + 'static) {
        let output = Arc::clone(self);
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut line = Vec::new();
            // Bytes, not `lines()`: one invalid UTF-8 sequence must not end the capture.
            while matches!(reader.read_until(b'\n', &mut line), Ok(read) if read > 0) {
                let text = String::from_utf8_lossy(&line).trim_end().to_owned();
                output.lines.lock().unwrap().push(text);
                output.changes.send_modify(|(lines, _)| *lines += 1);
                line.clear();
            }
            output.changes.send_modify(|(_, closed)| *closed += 1);
        });
    }

    fn text(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    fn contains(&self, needle: &str) -> bool {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .any(|line| line.contains(needle))
    }
}

/// A running Lambda process; dropping it kills the process, and a test that is panicking
/// prints the process's output first.
pub struct LambdaProcess {
    child: Mutex<Child>,
    output: Arc<Output>,
    started_at: Instant,
}

impl LambdaProcess {
    pub fn builder(runtime: &RuntimeApi) -> LambdaBuilder<'_> {
        LambdaBuilder {
            runtime,
            program: BINARY.into(),
            args: Vec::new(),
            overrides: BTreeMap::new(),
        }
    }

    /// Everything the process wrote to stdout and stderr so far, one line per line.
    pub fn logs(&self) -> String {
        self.output.text()
    }

    /// Waits until a line containing `needle` appears; `false` on timeout or when the
    /// process closed its output without writing it.
    pub async fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let mut changes = self.output.changes.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.output.contains(needle) {
                return true;
            }
            if changes.borrow_and_update().1 == 2 {
                return false;
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => continue,
                _ => return self.output.contains(needle),
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.lock().unwrap().id()
    }

    /// When the process was spawned, for cold-start measurements against
    /// [`RuntimeApi::first_poll_at`].
    pub fn started_at(&self) -> Instant {
        self.started_at
    }

    /// The exit status if the process has ended.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.child.lock().unwrap().try_wait().ok().flatten()
    }

    /// Waits for the process to end by itself; `None` if it still runs after `timeout`.
    pub async fn wait_for_exit(&self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exit_status() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill(&self) {
        let mut child = self.child.lock().unwrap();
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for LambdaProcess {
    fn drop(&mut self) {
        let child = self
            .child
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = child.kill();
        let _ = child.wait();
        // The verifier's loopback guard ended the process rather than let a test leave the
        // machine: whatever the test asserted, it fails here.
        let output = self.output.text();
        if !std::thread::panicking()
            && output.contains(backend_privatelink::verify::LOOPBACK_GUARD_MARK)
        {
            panic!(
                "a Lambda process tried to connect outside 127.0.0.0/8:\n{}",
                output
                    .lines()
                    .filter(|l| l.contains(backend_privatelink::verify::LOOPBACK_GUARD_MARK))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        if std::thread::panicking() {
            eprintln!(
                "----- Lambda output (pid {}) -----\n{}\n----- end of Lambda output -----",
                child.id(),
                self.output.text()
            );
        }
    }
}

/// A Runtime API stand-in and the Lambda process polling it, started together.
pub struct Lambda {
    // Declared first so it is dropped first: the process dies before its Runtime API.
    pub process: LambdaProcess,
    pub runtime: RuntimeApi,
}

impl Lambda {
    /// Starts the Runtime API stand-in and the real binary with `env` on top of the
    /// default environment (see [`LambdaBuilder::environment`]).
    pub async fn start(env: &[(&str, &str)]) -> Lambda {
        let runtime = RuntimeApi::start().await;
        let mut builder = LambdaProcess::builder(&runtime);
        for (key, value) in env {
            builder = builder.env(*key, *value);
        }
        let process = builder.spawn();
        Lambda { process, runtime }
    }

    /// Like [`RuntimeApi::invoke`], but gives up early with `NoAnswer` when the process
    /// dies instead of waiting out the deadline.
    pub async fn invoke(&self, event: Value, timeout: Duration) -> InvocationResult {
        self.invoke_text(event.to_string(), timeout).await
    }

    /// Like [`invoke`](Self::invoke), with the event's JSON text given as is.
    pub async fn invoke_text(&self, event: String, timeout: Duration) -> InvocationResult {
        let mut invocation = self.runtime.enqueue_text(event, timeout);
        let patience = timeout + super::runtime::ANSWER_GRACE;
        tokio::select! {
            result = invocation.outcome_within(patience) => {
                return result.unwrap_or(InvocationResult::NoAnswer);
            }
            _ = self.process.wait_for_exit(patience) => {}
        }
        invocation
            .outcome_within(LAST_WORDS)
            .await
            .unwrap_or(InvocationResult::NoAnswer)
    }

    pub fn logs(&self) -> String {
        self.process.logs()
    }

    pub async fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        self.process.wait_for_log(needle, timeout).await
    }
}
