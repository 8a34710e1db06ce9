//! A loopback HTTP server that runs on its own thread and runtime.
//! It must not know which routes it serves; the stand-ins that use it own those.
//!
//! A thread of its own keeps the stand-ins answering while a test blocks its own runtime
//! (for example in `Moto::shared()`), and stopping the runtime drops long-poll requests
//! that would otherwise hold a graceful shutdown open forever.

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::thread::JoinHandle;

use axum::Router;
use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use tokio::sync::oneshot;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("could not bind a test server to 127.0.0.1 on a free port: {0}")]
    Bind(#[source] std::io::Error),
    #[error("could not start the thread of a test server (is the machine out of threads?): {0}")]
    Thread(#[source] std::io::Error),
}

/// A running server; dropping it stops the server and every connection it holds.
pub struct BackgroundServer {
    address: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl BackgroundServer {
    pub fn start(name: &str, router: Router) -> Result<Self, ServerError> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(ServerError::Bind)?;
        listener.set_nonblocking(true).map_err(ServerError::Bind)?;
        let address = listener.local_addr().map_err(ServerError::Bind)?;
        let (shutdown, stop) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                    let service = router.into_make_service_with_connect_info::<ConnectionProbe>();
                    tokio::select! {
                        served = axum::serve(listener, service) => {
                            if let Err(error) = served {
                                eprintln!("test server stopped: {error}");
                            }
                        }
                        _ = stop => {}
                    }
                });
                // Dropping the runtime here cancels the connection tasks still running.
            })
            .map_err(ServerError::Thread)?;
        Ok(Self {
            address,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for BackgroundServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Tells a handler whether its client is still connected, available to handlers as
/// `ConnectInfo<ConnectionProbe>`.
///
/// hyper notices a client that went away only when it next reads from the connection, which
/// it may not do while a handler waits, so a long poll from a killed process could outlive
/// it and take an event meant for its successor.
#[derive(Clone)]
pub struct ConnectionProbe {
    // A duplicate of the connection's socket, only ever peeked at.
    socket: Option<Arc<TcpStream>>,
}

impl ConnectionProbe {
    /// `false` once the client closed or reset the connection.
    pub fn is_open(&self) -> bool {
        let Some(socket) = &self.socket else {
            return true;
        };
        // The duplicate shares the non-blocking mode tokio set on the socket.
        match socket.peek(&mut [0u8; 1]) {
            Ok(0) => false,
            Ok(_) => true,
            Err(error) => error.kind() == ErrorKind::WouldBlock,
        }
    }
}

impl Connected<IncomingStream<'_, tokio::net::TcpListener>> for ConnectionProbe {
    fn connect_info(stream: IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        let socket = stream
            .io()
            .as_fd()
            .try_clone_to_owned()
            .ok()
            .map(|fd| Arc::new(TcpStream::from(fd)));
        ConnectionProbe { socket }
    }
}
