//! Links: userspace TCP proxies that stand for the network between a node and those who reach it.
//! Every byte arrives a fixed delay after it was sent, in order (a WAN's one-way latency), and a
//! link can be cut (its connections closed, new ones refused) and healed.
//!
//! `sigil bench --link-delay-ms` puts one in front of every node; NodeSet then lists the links, so
//! both node-to-node and client-to-node traffic cross them. Each link runs an accept task and two
//! tasks per connection, one per direction; all end when the link is dropped or cut.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// Chunks read but not yet delivered, per direction of a connection: the bound on what a link
/// holds (at most this many reads of [`CHUNK`] bytes); a full queue stops reading.
const CHUNKS_IN_FLIGHT: usize = 256;
/// The largest chunk one read takes.
const CHUNK: usize = 64 * 1024;

/// What a link lets through: nothing (`all`), or every source but `from`.
#[derive(Clone, Debug, Default)]
struct Cut {
    all: bool,
    from: BTreeSet<IpAddr>,
}

impl Cut {
    fn refuses(&self, source: IpAddr) -> bool {
        self.all || self.from.contains(&source)
    }
}

/// A delay proxy in front of one TCP address. Dropping it closes every connection through it.
pub struct Link {
    addr: SocketAddr,
    cut: Arc<watch::Sender<Cut>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Link {
    /// Listens on `listen` (port 0: any free port) and forwards each connection to `target`,
    /// every chunk delivered `delay` after it was read. The TCP handshake itself is not delayed:
    /// the nodes and the client keep their connections open, so it is paid once per connection.
    pub async fn start(listen: SocketAddr, target: SocketAddr, delay: Duration) -> std::io::Result<Self> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let cut = Arc::new(watch::channel(Cut::default()).0);
        let accept = tokio::spawn(accept(listener, target, delay, Arc::clone(&cut)));
        Ok(Self { addr, cut, accept })
    }

    /// The address the link listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The link's URL, for NodeSet.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Cuts the link: open connections are closed and new ones are closed as soon as accepted,
    /// until [`Link::heal`].
    pub fn cut(&self) {
        self.cut.send_modify(|cut| cut.all = true);
    }

    /// Cuts the link for connections from `source` only, until [`Link::heal_from`].
    pub fn cut_from(&self, source: IpAddr) {
        self.cut.send_modify(|cut| {
            cut.from.insert(source);
        });
    }

    /// Lets connections from `source` through again.
    pub fn heal_from(&self, source: IpAddr) {
        self.cut.send_modify(|cut| {
            cut.from.remove(&source);
        });
    }

    /// Lets connections through again.
    pub fn heal(&self) {
        self.cut.send_modify(|cut| cut.all = false);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.cut.send_modify(|cut| cut.all = true);
        self.accept.abort();
    }
}

async fn accept(listener: TcpListener, target: SocketAddr, delay: Duration, cut: Arc<watch::Sender<Cut>>) {
    while let Ok((inbound, source)) = listener.accept().await {
        let source = source.ip();
        if cut.borrow().refuses(source) {
            continue;
        }
        let mut cut = cut.subscribe();
        tokio::spawn(async move {
            let forward = async {
                let Ok(outbound) = TcpStream::connect(target).await else {
                    return;
                };
                let _ = (inbound.set_nodelay(true), outbound.set_nodelay(true));
                let (in_read, in_write) = inbound.into_split();
                let (out_read, out_write) = outbound.into_split();
                tokio::join!(pipe(in_read, out_write, delay), pipe(out_read, in_write, delay));
            };
            // Dropping `forward` closes both sockets.
            tokio::select! {
                () = forward => {}
                _ = cut.wait_for(|cut| cut.refuses(source)) => {}
            }
        });
    }
}

/// Copies `from` to `to`, each chunk written `delay` after it was read. Delivery times are
/// absolute, so the delay does not add up over chunks read back to back; a half-close is passed on
/// once everything before it has been delivered.
async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, delay: Duration) {
    let (queue, mut delivery) = mpsc::channel::<(Instant, Vec<u8>)>(CHUNKS_IN_FLIGHT);
    let read = async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let chunk = buf.get(..n).unwrap_or_default().to_vec();
                    if queue.send((Instant::now() + delay, chunk)).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    let write = async move {
        while let Some((at, chunk)) = delivery.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(read, write);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// An echo server on loopback; returns its address.
    async fn echo() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut read, mut write) = stream.into_split();
                    let _ = tokio::io::copy(&mut read, &mut write).await;
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_round_trip_through_a_link_takes_twice_its_delay_and_keeps_the_bytes_in_order() {
        let delay = Duration::from_millis(40);
        let link = Link::start("127.0.0.1:0".parse().unwrap(), echo().await, delay)
            .await
            .unwrap();
        let mut stream = TcpStream::connect(link.addr()).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let started = Instant::now();
        // Ten writes back to back: they arrive one delay after they were sent, not ten.
        let mut sent = Vec::new();
        for i in 0..10u8 {
            let chunk = vec![i; 1000];
            stream.write_all(&chunk).await.unwrap();
            sent.extend(chunk);
        }
        let mut got = vec![0u8; sent.len()];
        tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap();
        let elapsed = started.elapsed();
        assert_eq!(got, sent);
        assert!(elapsed >= delay * 2, "{elapsed:?}");
        assert!(elapsed < delay * 2 + Duration::from_secs(2), "{elapsed:?}");
    }

    #[tokio::test]
    async fn a_link_cut_from_one_source_closes_only_that_sources_connections() {
        let link = Link::start("127.0.0.1:0".parse().unwrap(), echo().await, Duration::ZERO)
            .await
            .unwrap();
        let connect_from = |source: &str| {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
            socket.connect(link.addr())
        };
        let mut cut_off = connect_from("127.0.0.7").await.unwrap();
        let mut other = connect_from("127.0.0.8").await.unwrap();
        let mut buf = [0u8; 4];
        for stream in [&mut cut_off, &mut other] {
            stream.write_all(b"ping").await.unwrap();
            stream.read_exact(&mut buf).await.unwrap();
        }
        link.cut_from("127.0.0.7".parse().unwrap());
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(10), cut_off.read_to_end(&mut rest)).await;
        assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
        let mut fresh = connect_from("127.0.0.7").await.unwrap();
        let _ = fresh.write_all(b"ping").await;
        let answer = tokio::time::timeout(Duration::from_secs(10), fresh.read(&mut buf)).await;
        assert!(matches!(answer, Ok(Ok(0)) | Ok(Err(_))), "{answer:?}");
        // The other source's connection stays up.
        other.write_all(b"pong").await.unwrap();
        other.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pong");
        link.heal_from("127.0.0.7".parse().unwrap());
        let mut healed = connect_from("127.0.0.7").await.unwrap();
        healed.write_all(b"ping").await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), healed.read_exact(&mut buf))
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn a_cut_link_closes_its_connections_and_refuses_new_ones_until_healed() {
        let link = Link::start("127.0.0.1:0".parse().unwrap(), echo().await, Duration::ZERO)
            .await
            .unwrap();
        let mut open = TcpStream::connect(link.addr()).await.unwrap();
        open.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        open.read_exact(&mut buf).await.unwrap();
        link.cut();
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(10), open.read_to_end(&mut rest)).await;
        assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
        let mut fresh = TcpStream::connect(link.addr()).await.unwrap();
        let _ = fresh.write_all(b"ping").await;
        let answer = tokio::time::timeout(Duration::from_secs(10), fresh.read(&mut buf)).await;
        assert!(matches!(answer, Ok(Ok(0)) | Ok(Err(_))), "{answer:?}");
        link.heal();
        let mut healed = TcpStream::connect(link.addr()).await.unwrap();
        healed.write_all(b"pong").await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), healed.read_exact(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf, b"pong");
    }
}
