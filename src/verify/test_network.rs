//! Test-only network on loopback: an authoritative DNS server (hickory-server) answering from
//! records the test gives, and TCP listeners that accept, refuse, or never answer. Each stops
//! when dropped, so a failing test leaves nothing running.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use hickory_server::Server;
use hickory_server::proto::rr::rdata::{A, CNAME, SOA};
use hickory_server::proto::rr::{LowerName, Name, RData, Record};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};
use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};
use tokio::task::JoinHandle;

/// What a name answers in the test zone.
pub enum Answer {
    A(Ipv4Addr),
    Cname(&'static str),
}

/// A DNS server on 127.0.0.1 authoritative for one zone: names it has records for resolve,
/// every other name in the zone is NXDOMAIN.
pub struct TestDns {
    address: SocketAddr,
    _server: Server<Catalog>,
}

impl TestDns {
    pub async fn start(zone: &str, records: &[(&str, Answer)]) -> TestDns {
        let origin = Name::from_str(zone).unwrap();
        let mut handler: InMemoryZoneHandler =
            InMemoryZoneHandler::empty(origin.clone(), ZoneType::Primary, AxfrPolicy::Deny);
        let soa = SOA::new(
            Name::from_str(&format!("ns.{zone}")).unwrap(),
            Name::from_str(&format!("hostmaster.{zone}")).unwrap(),
            1,
            3600,
            600,
            86400,
            60,
        );
        assert!(handler.upsert_mut(Record::from_rdata(origin.clone(), 60, RData::SOA(soa)), 1));
        for (name, answer) in records {
            let data = match answer {
                Answer::A(address) => RData::A(A(*address)),
                Answer::Cname(target) => RData::CNAME(CNAME(fqdn(target))),
            };
            let name = fqdn(name);
            assert!(handler.upsert_mut(Record::from_rdata(name, 60, data), 1));
        }
        let mut catalog = Catalog::new();
        catalog.upsert(LowerName::new(&origin), vec![Arc::new(handler)]);
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let address = socket.local_addr().unwrap();
        let mut server = Server::new(catalog);
        server.register_socket(socket);
        TestDns {
            address,
            _server: server,
        }
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

fn fqdn(name: &str) -> Name {
    let mut name = Name::from_str(name).unwrap();
    name.set_fqdn(true);
    name
}

/// A UDP socket that takes DNS questions and never answers them.
pub struct SilentDns {
    socket: UdpSocket,
}

impl SilentDns {
    pub async fn start() -> SilentDns {
        SilentDns {
            socket: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        }
    }

    pub fn address(&self) -> SocketAddr {
        self.socket.local_addr().unwrap()
    }
}

/// A listener on `ip` that accepts every connection, on a free port.
pub struct Accepting {
    pub port: u16,
    task: JoinHandle<()>,
}

impl Accepting {
    pub async fn start(ip: Ipv4Addr) -> Accepting {
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                drop(stream);
            }
        });
        Accepting { port, task }
    }
}

impl Drop for Accepting {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A port on `ip` where nothing listens: the kernel refuses connections to it.
pub async fn refused_port(ip: Ipv4Addr) -> u16 {
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    listener.local_addr().unwrap().port()
}

/// A listener on `ip` whose accept queue is full and never drained: the kernel drops further
/// connection attempts, so they hang until their timeout, as behind a security group that drops
/// the traffic, without leaving 127.0.0.1.
pub struct BlackHole {
    pub port: u16,
    _listener: TcpListener,
    _queued: Vec<TcpStream>,
}

impl BlackHole {
    pub async fn start(ip: Ipv4Addr) -> BlackHole {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(IpAddr::V4(ip), 0)).unwrap();
        let listener = socket.listen(0).unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut queued = Vec::new();
        for _ in 0..16 {
            let attempt =
                tokio::time::timeout(Duration::from_millis(300), TcpStream::connect((ip, port)))
                    .await;
            match attempt {
                Ok(Ok(stream)) => queued.push(stream),
                Ok(Err(error)) => panic!("filling the accept queue of {ip}:{port}: {error}"),
                Err(_) => {
                    return BlackHole {
                        port,
                        _listener: listener,
                        _queued: queued,
                    };
                }
            }
        }
        panic!("the accept queue of {ip}:{port} never filled");
    }
}
