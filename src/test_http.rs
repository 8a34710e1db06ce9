//! Test support: the one HTTP/1.1 test server of the unit tests, on 127.0.0.1. It answers from a
//! handler or a script and records what it was asked, so the Databricks client's and the
//! response PUT's wire behaviour can be tested without the emulator or S3.
//!
//! Knows only raw HTTP, but for two conveniences of the account API's tests at the end (a token
//! answer, and a script that answers token requests by itself).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// The access token `token_reply` hands out.
pub(crate) const TEST_TOKEN: &str = "test-access-token-value";

/// One request as the server read it.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    /// Every value of header `name`, in order (a header sent twice shows twice).
    pub fn header_values(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.clone())
            .collect()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, query)| query)
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn body_json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    pub fn is_token_request(&self) -> bool {
        self.path().starts_with("/oidc/")
    }
}

/// What the server does with one request.
#[derive(Debug, Clone)]
pub(crate) enum Reply {
    Respond {
        status: u16,
        reason: String,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// Never answer (the connection stays open until the server stops).
    Hang,
    /// Close the connection without answering.
    Drop,
    /// Wait, then do the inner reply.
    Delayed(Duration, Box<Reply>),
}

impl Reply {
    pub fn status(status: u16, content_type: Option<&str>, body: &str) -> Self {
        let reason = reqwest::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Whatever")
            .to_string();
        let headers = content_type
            .map(|ct| vec![("Content-Type".to_string(), ct.to_string())])
            .unwrap_or_default();
        Reply::Respond {
            status,
            reason,
            headers,
            body: body.to_string(),
        }
    }

    pub fn json(status: u16, body: &str) -> Self {
        Self::status(status, Some("application/json"), body)
    }

    pub fn text(status: u16, body: &str) -> Self {
        Self::status(status, Some("text/plain"), body)
    }

    pub fn html(status: u16, body: &str) -> Self {
        Self::status(status, Some("text/html; charset=utf-8"), body)
    }

    pub fn empty(status: u16) -> Self {
        Self::status(status, None, "")
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        if let Reply::Respond { headers, .. } = &mut self {
            headers.push((name.to_string(), value.to_string()));
        }
        self
    }

    pub fn after(self, delay: Duration) -> Self {
        Reply::Delayed(delay, Box::new(self))
    }
}

pub(crate) fn token_reply() -> Reply {
    token_reply_with(TEST_TOKEN)
}

pub(crate) fn token_reply_with(token: &str) -> Reply {
    Reply::json(
        200,
        &format!(
            r#"{{"access_token":"{token}","token_type":"Bearer","expires_in":3600,"scope":"all-apis"}}"#
        ),
    )
}

type Handler = Box<dyn Fn(&Recorded) -> Reply + Send + Sync>;

struct State {
    requests: Mutex<Vec<Recorded>>,
    connections: AtomicUsize,
    handler: Handler,
}

/// Stops (and drops every open connection) when dropped.
pub(crate) struct TestServer {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl TestServer {
    pub async fn start(handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            requests: Mutex::new(Vec::new()),
            connections: AtomicUsize::new(0),
            handler: Box::new(handler),
        });
        let accept_state = state.clone();
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                accept_state.connections.fetch_add(1, Ordering::SeqCst);
                connections.spawn(serve_connection(stream, accept_state.clone()));
            }
        });
        Self { addr, state, task }
    }

    /// Token requests get a valid token; every other request gets the next of `api`
    /// (a 500 saying so once the script is used up).
    pub async fn scripted(api: Vec<Reply>) -> Self {
        let script = Mutex::new(api.into_iter());
        Self::start(move |request| {
            if request.is_token_request() {
                return token_reply();
            }
            script
                .lock()
                .unwrap()
                .next()
                .unwrap_or_else(|| Reply::text(500, "test script exhausted"))
        })
        .await
    }

    /// Answers the n-th request with `statuses[n]` and an empty body; requests past the end get
    /// the last one.
    pub async fn statuses(statuses: Vec<u16>) -> Self {
        let answered = AtomicUsize::new(0);
        Self::start(move |_| {
            let n = answered.fetch_add(1, Ordering::SeqCst);
            let status = statuses.get(n).or(statuses.last()).copied().unwrap_or(200);
            Reply::empty(status)
        })
        .await
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `url()` followed by `path_and_query`.
    pub fn url_for(&self, path_and_query: &str) -> String {
        format!("http://{}{path_and_query}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    pub fn api_requests(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| !r.is_token_request())
            .collect()
    }

    pub fn token_requests(&self) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.is_token_request())
            .count()
    }

    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_connection(mut stream: TcpStream, state: Arc<State>) {
    let mut buffer = Vec::new();
    while let Some(request) = read_request(&mut stream, &mut buffer).await {
        state.requests.lock().unwrap().push(request.clone());
        let mut reply = (state.handler)(&request);
        loop {
            match reply {
                Reply::Delayed(delay, inner) => {
                    tokio::time::sleep(delay).await;
                    reply = *inner;
                }
                Reply::Hang => std::future::pending::<()>().await,
                Reply::Drop => return,
                Reply::Respond {
                    status,
                    reason,
                    headers,
                    body,
                } => {
                    let mut head = format!(
                        "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\n",
                        body.len()
                    );
                    for (name, value) in headers {
                        head.push_str(&format!("{name}: {value}\r\n"));
                    }
                    head.push_str("\r\n");
                    let written = async {
                        stream.write_all(head.as_bytes()).await?;
                        stream.write_all(body.as_bytes()).await?;
                        stream.flush().await
                    };
                    if written.await.is_err() {
                        return;
                    }
                    break;
                }
            }
        }
    }
}

async fn read_request(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<Recorded> {
    let header_end = loop {
        if let Some(position) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break position;
        }
        let mut chunk = [0u8; 4096];
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&buffer[..header_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_string();
    let target = request_line.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0);
    let body_start = header_end + 4;
    while buffer.len() < body_start + length {
        let mut chunk = [0u8; 4096];
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
    let body = buffer[body_start..body_start + length].to_vec();
    buffer.drain(..body_start + length);
    Some(Recorded {
        method,
        target,
        headers,
        body,
    })
}
