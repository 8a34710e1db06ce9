//! `make local-world` followed by `sam local invoke`, without Docker: the script
//! (`scripts/local_world.py`) starts and seeds moto and the emulator and writes an env.json and
//! events; the binary then runs as SAM runs it, with `AWS_SAM_LOCAL=true` and exactly the
//! generated env.json's variables, on the generated events.
//!
//! It owns what the generated files must do; the script's own output is read only through them
//! and `world.json`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::scenario::TIMEOUT;
use crate::support::lambda::{BINARY, Lambda, LambdaProcess};
use crate::support::moto;
use crate::support::runtime::{InvocationResult, RuntimeApi};

/// What the script prints once everything is up and written.
const READY: &str = "LOCAL WORLD READY";
const STARTUP: Duration = Duration::from_secs(90);

/// The script, stopped with Ctrl-C's signal when the test ends, however it ends.
struct LocalWorld {
    child: Child,
    out: PathBuf,
    /// The folder of the script's own log (it prints where), removed with `out`.
    log_dir: Option<PathBuf>,
}

impl LocalWorld {
    fn start(out: &Path, emulator_bin: &Path) -> LocalWorld {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/local_world.py");
        let mut child = Command::new(moto::python())
            .arg(&script)
            .arg("--out")
            .arg(out)
            .args(["--host", "127.0.0.1", "--emulator-bin"])
            .arg(emulator_bin)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|error| panic!("could not run scripts/local_world.py: {error}"));
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut world = LocalWorld {
            child,
            out: out.to_owned(),
            log_dir: None,
        };
        let (lines, received) = mpsc::channel();
        std::thread::spawn(move || {
            // Read to the end even when nobody listens any more: a closed pipe would make the
            // script's last words on the way out fail.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        let deadline = Instant::now() + STARTUP;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match received.recv_timeout(left) {
                Ok(line) if line.starts_with(READY) => break,
                Ok(line) => {
                    if let Some(log) = line.strip_prefix("moto and emulator log: ") {
                        world.log_dir = Path::new(log).parent().map(Path::to_owned);
                    }
                    seen.push(line);
                }
                Err(_) => panic!(
                    "scripts/local_world.py did not get ready within {STARTUP:?}:\n{}",
                    seen.join("\n")
                ),
            }
        }
        world
    }

    fn file(&self, name: &str) -> Value {
        let text = std::fs::read_to_string(self.out.join(name))
            .unwrap_or_else(|error| panic!("the local world wrote no {name}: {error}"));
        serde_json::from_str(&text).unwrap_or_else(|error| panic!("{name}: {error}"))
    }

    /// Ctrl-C, as a developer stops it; true when it exited by itself within `within`.
    fn interrupt(&mut self, within: Duration) -> bool {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

impl Drop for LocalWorld {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) && !self.interrupt(Duration::from_secs(10)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        for dir in [Some(&self.out), self.log_dir.as_ref()]
            .into_iter()
            .flatten()
        {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The emulator binary next to the function's, built if it is not there yet (the integration
/// tests use the emulator as a library, so `cargo test` does not build its binary).
fn emulator_binary() -> PathBuf {
    let built = Path::new(BINARY)
        .parent()
        .expect("the binary lies in a directory")
        .join("databricks-account-emulator");
    if !built.exists() {
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "-p",
                "emulator",
                "--bin",
                "databricks-account-emulator",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the emulator failed");
    }
    built
}

fn refused(url: &str) -> bool {
    let address = url.trim_start_matches("http://").trim_end_matches('/');
    std::net::TcpStream::connect(address).is_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_world_lets_sam_local_invoke_switch_the_workspace() {
    let out = std::env::temp_dir().join(crate::support::unique_name("local-world"));
    let mut world = LocalWorld::start(&out, &emulator_binary());
    let seeded = world.file("world.json");
    let env = world.file("env.json");
    let variables = env["Function"]
        .as_object()
        .expect("env.json is keyed by the template's function");

    // As SAM runs it: the generated variables, and AWS_SAM_LOCAL.
    let runtime = RuntimeApi::start().await;
    let mut builder = LambdaProcess::builder(&runtime).env("AWS_SAM_LOCAL", "true");
    for (name, value) in variables {
        builder = builder.env(name, value.as_str().expect("env.json values are strings"));
    }
    let lambda = Lambda {
        process: builder.spawn(),
        runtime,
    };

    let workspace = seeded["workspace_id"].to_string();
    let created = lambda.invoke(world.file("create.json"), TIMEOUT).await;
    let InvocationResult::Response(created) = created else {
        panic!("{created:?}\n{}", lambda.logs());
    };
    assert_eq!(
        created["Status"],
        "SUCCESS",
        "{created:#}\n{}",
        lambda.logs()
    );
    assert_eq!(created["Data"]["AttachedWorkspaceIds"], workspace.as_str());
    assert!(
        lambda
            .wait_for_log(
                "CloudFormation response (AWS_SAM_LOCAL, not sent)",
                Duration::from_secs(5)
            )
            .await,
        "the response is printed, as sam local invoke shows it"
    );
    let state: Value = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("an HTTP client")
        .get(format!(
            "{}/_emulator/state?account_id={}",
            seeded["emulator"].as_str().unwrap_or_default(),
            seeded["account_id"].as_str().unwrap_or_default()
        ))
        .send()
        .await
        .expect("the emulator answers")
        .json()
        .await
        .expect("the emulator's state is JSON");
    let switched = state["workspaces"]
        .as_array()
        .and_then(|all| {
            all.iter()
                .find(|w| w["workspace_id"] == seeded["workspace_id"])
        })
        .unwrap_or_else(|| panic!("the seeded workspace is in the emulator: {state:#}"));
    assert_eq!(
        switched["private_access_settings_id"], created["Data"]["PrivateAccessSettingsId"],
        "the workspace is switched to the new private access settings: {state:#}"
    );

    let updated = lambda.invoke(world.file("update.json"), TIMEOUT).await;
    let InvocationResult::Response(updated) = updated else {
        panic!("{updated:?}\n{}", lambda.logs());
    };
    assert_eq!(updated["Status"], "SUCCESS", "{updated:#}");
    assert_eq!(updated["PhysicalResourceId"], created["PhysicalResourceId"]);
    let deleted = lambda.invoke(world.file("delete.json"), TIMEOUT).await;
    let InvocationResult::Response(deleted) = deleted else {
        panic!("{deleted:?}\n{}", lambda.logs());
    };
    assert_eq!(deleted["Status"], "SUCCESS", "{deleted:#}");

    // Ctrl-C stops everything it started.
    assert!(
        world.interrupt(Duration::from_secs(15)),
        "Ctrl-C ends it with status 0"
    );
    for server in ["moto", "emulator"] {
        let url = seeded[server].as_str().unwrap_or_default();
        assert!(refused(url), "{server} still answers on {url} after Ctrl-C");
    }
}
