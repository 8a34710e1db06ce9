//! `databricks-account-emulator`: runs the emulator as a process for tests in other languages and
//! local demos. Only parses arguments and waits for a stop signal.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use emulator::{Emulator, EmulatorConfig};

const USAGE: &str = "usage: databricks-account-emulator [--port N] [--accept-after-reads N] \
[--client ID:SECRET]... [--rate-limit N] [--latency-ms N]
  --port N                listen on 127.0.0.1:N (default 0: a free port)
  --accept-after-reads N  registration reads in pendingAcceptance before available (default 1)
  --client ID:SECRET      accepted service principal; repeatable; replaces the default
                          emulator-client:emulator-secret
  --rate-limit N          at most N account API and token requests per second (429 beyond)
  --latency-ms N          fixed latency added to every request";

#[derive(Debug, thiserror::Error)]
enum ArgsError {
    #[error("{0} needs a value")]
    MissingValue(String),
    #[error("{flag} must be a whole number, got '{value}'")]
    NotANumber { flag: String, value: String },
    #[error("--client must look like ID:SECRET")]
    BadClient,
    #[error("unknown argument '{0}'")]
    Unknown(String),
}

struct Args {
    port: u16,
    config: EmulatorConfig,
}

fn number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, ArgsError> {
    value.parse().map_err(|_| ArgsError::NotANumber {
        flag: flag.to_owned(),
        value: value.to_owned(),
    })
}

fn parse_args(mut raw: impl Iterator<Item = String>) -> Result<Option<Args>, ArgsError> {
    let mut port = 0;
    let mut config = EmulatorConfig::default();
    let mut clients = Vec::new();
    while let Some(flag) = raw.next() {
        if flag == "--help" || flag == "-h" {
            return Ok(None);
        }
        let mut value = || {
            raw.next()
                .ok_or_else(|| ArgsError::MissingValue(flag.clone()))
        };
        match flag.as_str() {
            "--port" => port = number(&flag, &value()?)?,
            "--accept-after-reads" => config.accept_after_reads = number(&flag, &value()?)?,
            "--rate-limit" => config.rate_limit_per_sec = Some(number(&flag, &value()?)?),
            "--latency-ms" => {
                config.latency_all = Some(Duration::from_millis(number(&flag, &value()?)?));
            }
            "--client" => {
                let pair = value()?;
                let (id, secret) = pair.split_once(':').ok_or(ArgsError::BadClient)?;
                if id.is_empty() || secret.is_empty() {
                    return Err(ArgsError::BadClient);
                }
                clients.push((id.to_owned(), secret.to_owned()));
            }
            _ => return Err(ArgsError::Unknown(flag)),
        }
    }
    if !clients.is_empty() {
        config.clients = clients;
    }
    Ok(Some(Args { port, config }))
}

async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("databricks-account-emulator: {error}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let address = SocketAddr::from(([127, 0, 0, 1], args.port));
    let emulator = match Emulator::start_on(address, args.config).await {
        Ok(emulator) => emulator,
        Err(error) => {
            eprintln!(
                "databricks-account-emulator: cannot listen on {address}: {error}; pick another --port or 0 for a free one"
            );
            return ExitCode::FAILURE;
        }
    };
    // Test harnesses read this line to learn the port, so it must reach them immediately.
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "listening on {}", emulator.base_url());
    let _ = stdout.flush();
    stop_signal().await;
    emulator.shutdown().await;
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Option<Args>, ArgsError> {
        parse_args(list.iter().map(|s| s.to_string()))
    }

    #[test]
    fn clients_replace_the_default_and_numbers_are_checked() {
        let parsed = args(&["--port", "8123", "--client", "a:b", "--client", "c:d:e"])
            .unwrap()
            .unwrap();
        assert_eq!(parsed.port, 8123);
        assert_eq!(
            parsed.config.clients,
            vec![("a".into(), "b".into()), ("c".into(), "d:e".into())]
        );
        assert!(matches!(
            args(&["--rate-limit", "many"]),
            Err(ArgsError::NotANumber { .. })
        ));
        assert!(matches!(
            args(&["--client", "nosecret"]),
            Err(ArgsError::BadClient)
        ));
        assert!(matches!(args(&["--port"]), Err(ArgsError::MissingValue(_))));
        assert!(args(&["--help"]).unwrap().is_none());
    }
}
