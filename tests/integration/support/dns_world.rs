//! The DNS world of one VPC (`tests/support/dns_world.py`): a DNS server and the endpoints' TCP
//! listeners on 127.0.0.0/8 whose answers follow from moto's VPC and the emulator's account, as
//! `docs/verification.md#the-dns-world` documents. Owns starting and stopping that process; it
//! must not know what a test expects the world to answer.
//!
//! Like moto, the process stops when its stdin reaches end of file; it is also killed when the
//! [`DnsWorld`] is dropped, so a failing test leaves nothing running.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::moto::{Moto, support_command};

/// Importing boto3 and dnslib on a busy two-core machine takes a few seconds.
const STARTUP_LIMIT: Duration = Duration::from_secs(30);

/// A running DNS world; stops when dropped.
pub struct DnsWorld {
    address: SocketAddr,
    output: Arc<Mutex<Vec<String>>>,
    child: Child,
    lifeline: ChildStdin,
    settled: mpsc::Receiver<()>,
}

impl DnsWorld {
    /// The world of `vpc_id` in `region`, reading the account at `emulator_url`.
    pub fn start(moto: &Moto, emulator_url: &str, region: &str, vpc_id: &str) -> DnsWorld {
        let mut child = support_command("dns_world.py")
            .args(["--aws-endpoint", &moto.endpoint()])
            .args(["--emulator", emulator_url])
            .args(["--region", region])
            .args(["--vpc-id", vpc_id])
            .spawn()
            .unwrap_or_else(|e| panic!("could not start the DNS world: {e}"));
        let output = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let (settled_tx, settled) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            drain(stdout, Arc::clone(&output), Some((tx, settled_tx)));
        }
        if let Some(stderr) = child.stderr.take() {
            drain(stderr, Arc::clone(&output), None);
        }
        let lifeline = child.stdin.take().expect("piped stdin");
        let Ok(address) = rx.recv_timeout(STARTUP_LIMIT) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the DNS world did not start within {STARTUP_LIMIT:?}:\n{}",
                output.lock().unwrap().join("\n")
            );
        };
        DnsWorld {
            address,
            output,
            child,
            lifeline,
            settled,
        }
    }

    /// Returns once the world has read moto and the emulator anew: a test that changed the VPC
    /// calls it before what must see the change.
    pub fn settle(&mut self) {
        writeln!(self.lifeline, "settle").expect("the DNS world takes a settle request");
        self.lifeline
            .flush()
            .expect("the DNS world takes a settle request");
        self.settled
            .recv_timeout(STARTUP_LIMIT)
            .unwrap_or_else(|_| panic!("the DNS world did not settle:\n{}", self.problems()));
    }

    /// `127.0.0.1:PORT`, the value for the verifier's `VERIFIER_DNS_SERVER`.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// What the world said it could not do (a port it could not listen on, a read that failed).
    pub fn problems(&self) -> String {
        self.output.lock().unwrap().join("\n")
    }
}

impl Drop for DnsWorld {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("----- DNS world -----\n{}", self.problems());
        }
    }
}

/// Reads one of the world's output streams for its whole life; on stdout, the address line
/// and each `SETTLED` go to their channels.
fn drain(
    stream: impl std::io::Read + Send + 'static,
    output: Arc<Mutex<Vec<String>>>,
    signals: Option<(mpsc::Sender<SocketAddr>, mpsc::Sender<()>)>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if let Some((address, settled)) = &signals {
                if let Some(found) = line.strip_prefix("DNS ").and_then(|a| a.parse().ok()) {
                    let _ = address.send(found);
                    continue;
                }
                if line == "SETTLED" {
                    let _ = settled.send(());
                    continue;
                }
            }
            output.lock().unwrap().push(line);
        }
    });
}
