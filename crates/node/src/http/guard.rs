//! Per-IP bounds on the public listener (`[limits]`): TCP connections one address may hold
//! ([`GuardedListener`], which closes the ones over the bound as soon as they are accepted), and
//! for every endpoint but the mesh, requests in flight (503 `BUSY`) and a request rate (a token
//! bucket: 429 `RATE_LIMITED`), both answered with `Retry-After`. HTTP/1 serves one request at a
//! time per connection, so a connection's concurrency is 1 by construction. The addresses
//! tracked are bounded too ([`crate::config::LimitsConfig::tracked_ips`]): the idlest are
//! forgotten, and while every tracked address is busy a new one is turned away.
//!
//! A connection that moves no byte for `idle_timeout_secs` is closed ([`Counted`]): a request
//! stalled in its headers or body holds its connection, and its address's place, only that long.
//!
//! The addresses of the node list get `peer_connections` more connections, which only the mesh can
//! use: a connection from such an address that carries a request of the public API counts as a
//! client's, and those stay within `connections_per_ip`. A client behind the same address as a
//! node (one NAT) therefore cannot take the node's mesh connections, and the node list's addresses
//! are always tracked.
//!
//! Behind a reverse proxy every client has the proxy's address; list the proxy in
//! `trusted_proxies` and the client's address is taken from the last `X-Forwarded-For` entry.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::error::ApiError;
use crate::config::LimitsConfig;
use crate::error::{Error, Kind};
use crate::mesh::frames::subnet;
use crate::metrics::{Metrics, Refusal};

/// What one address holds and may still do.
#[derive(Clone, Copy, Debug)]
struct Usage {
    connections: usize,
    /// At an address of the node list: its connections that carried a public API request.
    clients: usize,
    in_flight: usize,
    tokens: f64,
    last: Instant,
}

/// Why a request or connection was turned away.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Refused {
    /// The address holds its bound of connections.
    Connections,
    /// The address has its bound of requests in flight.
    Busy,
    /// The address spent its rate; a token is back after this many seconds.
    Rate(f64),
    /// Every tracked address is busy; a new one is not tracked.
    Untracked,
    /// The node holds `max_connections` connections from addresses outside the node list.
    Full,
}

impl Refused {
    fn reason(self) -> &'static str {
        match self {
            Self::Connections => "connections",
            Self::Busy => "in_flight",
            Self::Rate(_) => "rate",
            Self::Untracked => "tracked_ips",
            Self::Full => "max_connections",
        }
    }
}

/// The per-address bookkeeping, sans-IO: the clock is passed in.
#[derive(Debug)]
pub struct PerIp {
    limits: LimitsConfig,
    usage: HashMap<IpAddr, Usage>,
    /// The node list's addresses (as [`subnet`] counts them).
    peers: HashSet<IpAddr>,
    /// At the node list's addresses: the connections counted as clients'.
    client_connections: HashSet<SocketAddr>,
    /// Connections open from addresses outside the node list.
    others: usize,
}

impl PerIp {
    /// Empty, with these bounds.
    pub fn new(limits: LimitsConfig) -> Self {
        Self {
            limits,
            usage: HashMap::new(),
            peers: HashSet::new(),
            client_connections: HashSet::new(),
            others: 0,
        }
    }

    /// The addresses of the node list: they get `peer_connections` more connections for the
    /// mesh, and are always tracked.
    pub fn set_peers(&mut self, peers: impl IntoIterator<Item = IpAddr>) {
        self.peers = peers.into_iter().map(subnet).collect();
    }

    /// Addresses tracked now.
    pub fn tracked(&self) -> usize {
        self.usage.len()
    }

    fn entry(&mut self, ip: IpAddr, now: Instant) -> Result<&mut Usage, Refused> {
        let ip = subnet(ip);
        if !self.usage.contains_key(&ip) && !self.peers.contains(&ip) && self.usage.len() >= self.limits.tracked_ips {
            // Forget the idlest: nothing held, the bucket (nearly) full again.
            let burst = f64::from(self.limits.burst_per_ip);
            let rate = f64::from(self.limits.rate_per_ip);
            let idle = self
                .usage
                .iter()
                .filter(|(ip, u)| u.connections == 0 && u.in_flight == 0 && !self.peers.contains(*ip))
                .map(|(ip, u)| {
                    (
                        *ip,
                        u.tokens + now.saturating_duration_since(u.last).as_secs_f64() * rate,
                    )
                })
                .filter(|(_, tokens)| *tokens >= burst - 1.0)
                .map(|(ip, _)| ip)
                .next();
            match idle {
                Some(old) => {
                    self.usage.remove(&old);
                }
                None => return Err(Refused::Untracked),
            }
        }
        let burst = f64::from(self.limits.burst_per_ip);
        Ok(self.usage.entry(ip).or_insert(Usage {
            connections: 0,
            clients: 0,
            in_flight: 0,
            tokens: burst,
            last: now,
        }))
    }

    /// A connection from `ip` opens.
    ///
    /// Connections from outside the node list are at most `max_connections` together, below
    /// the process's descriptors, so that addresses from many subnets cannot take every
    /// descriptor the node's peers and its own outgoing connections need.
    pub fn connect(&mut self, ip: IpAddr, now: Instant) -> Result<(), Refused> {
        let mut limit = self.limits.connections_per_ip;
        let peer = self.peers.contains(&subnet(ip));
        if peer {
            limit = limit.saturating_add(self.limits.peer_connections);
        } else if self.others >= self.limits.max_connections {
            return Err(Refused::Full);
        }
        let usage = self.entry(ip, now)?;
        if usage.connections >= limit {
            return Err(Refused::Connections);
        }
        usage.connections += 1;
        if !peer {
            self.others += 1;
        }
        Ok(())
    }

    /// Connection `addr` (opened, at an address of the node list or not) carries a public API
    /// request: at a node list address, it counts as a client's from now on, and is refused if
    /// the clients there hold `connections_per_ip` already.
    pub fn client_request(&mut self, addr: SocketAddr) -> Result<(), Refused> {
        let ip = subnet(addr.ip());
        if !self.peers.contains(&ip) || self.client_connections.contains(&addr) {
            return Ok(());
        }
        let limit = self.limits.connections_per_ip;
        let Some(usage) = self.usage.get_mut(&ip) else {
            return Ok(());
        };
        if usage.clients >= limit {
            return Err(Refused::Connections);
        }
        usage.clients += 1;
        self.client_connections.insert(addr);
        Ok(())
    }

    /// Connection `addr` closed.
    pub fn disconnect(&mut self, addr: SocketAddr) {
        let ip = subnet(addr.ip());
        let client = self.client_connections.remove(&addr);
        if !self.peers.contains(&ip) {
            self.others = self.others.saturating_sub(1);
        }
        if let Some(usage) = self.usage.get_mut(&ip) {
            usage.connections = usage.connections.saturating_sub(1);
            if client {
                usage.clients = usage.clients.saturating_sub(1);
            }
        }
    }

    /// A request from `ip` starts: it spends a token and holds a slot until [`PerIp::finish`].
    pub fn begin(&mut self, ip: IpAddr, now: Instant) -> Result<(), Refused> {
        let (rate, burst, limit) = (
            f64::from(self.limits.rate_per_ip),
            f64::from(self.limits.burst_per_ip),
            self.limits.requests_per_ip,
        );
        let usage = self.entry(ip, now)?;
        usage.tokens = (usage.tokens + now.saturating_duration_since(usage.last).as_secs_f64() * rate).min(burst);
        usage.last = now;
        if usage.in_flight >= limit {
            return Err(Refused::Busy);
        }
        if usage.tokens < 1.0 {
            return Err(Refused::Rate((1.0 - usage.tokens) / rate));
        }
        usage.tokens -= 1.0;
        usage.in_flight += 1;
        Ok(())
    }

    /// A request from `ip` ended.
    pub fn finish(&mut self, ip: IpAddr) {
        if let Some(usage) = self.usage.get_mut(&subnet(ip)) {
            usage.in_flight = usage.in_flight.saturating_sub(1);
        }
    }
}

/// The node's per-IP bounds, shared by the listener and the request layer.
pub struct Guard {
    per_ip: Mutex<PerIp>,
    trusted_proxies: Vec<IpAddr>,
    idle: std::time::Duration,
}

impl Guard {
    /// With the node's `[limits]`, and the addresses of the node list.
    pub fn new(limits: &LimitsConfig, peers: impl IntoIterator<Item = IpAddr>) -> Arc<Self> {
        let mut per_ip = PerIp::new(limits.clone());
        per_ip.set_peers(peers);
        Arc::new(Self {
            per_ip: Mutex::new(per_ip),
            trusted_proxies: limits.trusted_proxies.clone(),
            idle: std::time::Duration::from_secs(limits.idle_timeout_secs),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PerIp> {
        self.per_ip.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The client's address: the peer's, or behind a trusted proxy the last `X-Forwarded-For`.
    fn client(&self, peer: IpAddr, request: &Request) -> IpAddr {
        if !self.trusted_proxies.contains(&peer) {
            return peer;
        }
        // Only the entry the proxy itself appended, the last one, is the proxy's word; one that
        // does not parse leaves the proxy's own address (never an entry the client wrote).
        request
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|ip| ip.trim().parse().ok())
            .unwrap_or(peer)
    }
}

/// The IP addresses of the node list's URLs: an address as written, or what its host name
/// resolves to now (within 2 s; a name that does not resolve adds nothing), at most one IPv4 and
/// one IPv6 address per name: a member cannot list hundreds of addresses by its DNS.
pub async fn addresses_of(urls: &[String]) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for url in urls {
        let Ok(parsed) = reqwest::Url::parse(url) else { continue };
        let Some(host) = parsed.host_str() else { continue };
        if let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
            out.push(ip);
            continue;
        }
        let port = parsed.port_or_known_default().unwrap_or(80);
        let lookup = tokio::net::lookup_host((host.to_string(), port));
        if let Ok(Ok(found)) = tokio::time::timeout(std::time::Duration::from_secs(2), lookup).await {
            let found: Vec<IpAddr> = found.map(|a| a.ip()).collect();
            out.extend(found.iter().find(|ip| ip.is_ipv4()).copied());
            out.extend(found.iter().find(|ip| ip.is_ipv6()).copied());
        }
    }
    out
}

/// The address of a connection, as the request layer sees it.
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub SocketAddr);

/// A TCP listener that closes a connection at once when its address holds
/// `connections_per_ip` already.
pub struct GuardedListener {
    inner: tokio::net::TcpListener,
    guard: Arc<Guard>,
    metrics: Arc<Metrics>,
}

impl GuardedListener {
    /// Wraps `inner`.
    pub fn new(inner: tokio::net::TcpListener, guard: Arc<Guard>, metrics: Arc<Metrics>) -> Self {
        Self { inner, guard, metrics }
    }
}

impl axum::serve::Listener for GuardedListener {
    type Io = Counted;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, addr) = match self.inner.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors and the like: wait, as axum's own listener does.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let ip = addr.ip();
            match self.guard.lock().connect(ip, Instant::now()) {
                Ok(()) => {
                    let _ = stream.set_nodelay(true);
                    let idle = self.guard.idle;
                    let counted = Counted {
                        stream,
                        addr,
                        guard: Arc::clone(&self.guard),
                        idle,
                        deadline: Box::pin(tokio::time::sleep(idle)),
                    };
                    return (counted, addr);
                }
                Err(refused) => {
                    self.metrics.refused(Refusal::HttpRefused, refused.reason());
                    drop(stream);
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A connection counted against its address until it is dropped, and closed when it moves no
/// byte for the idle timeout.
pub struct Counted {
    stream: tokio::net::TcpStream,
    addr: SocketAddr,
    guard: Arc<Guard>,
    idle: std::time::Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl Counted {
    /// Bytes moved: the idle clock starts again.
    fn moved(&mut self) {
        let next = tokio::time::Instant::now() + self.idle;
        self.deadline.as_mut().reset(next);
    }

    /// Nothing moved: an error once the idle timeout passed.
    fn stalled<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "connection idle for longer than limits.idle_timeout_secs",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.guard.lock().disconnect(self.addr);
    }
}

impl AsyncRead for Counted {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    self.moved();
                }
                Poll::Ready(result)
            }
            Poll::Pending => self.stalled(cx),
        }
    }
}

impl AsyncWrite for Counted {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.stream).poll_write(cx, buf) {
            Poll::Ready(result) => {
                if matches!(result, Ok(n) if n > 0) {
                    self.moved();
                }
                Poll::Ready(result)
            }
            Poll::Pending => self.stalled(cx),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.stream).poll_write_vectored(cx, bufs) {
            Poll::Ready(result) => {
                if matches!(result, Ok(n) if n > 0) {
                    self.moved();
                }
                Poll::Ready(result)
            }
            Poll::Pending => self.stalled(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// A request slot, given back when the request ends (or is dropped).
struct Slot {
    guard: Arc<Guard>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.guard.lock().finish(self.ip);
    }
}

/// The request layer: rate and concurrency per client address.
pub(super) async fn limit(
    State((guard, metrics)): State<(Arc<Guard>, Arc<Metrics>)>,
    request: Request,
    next: Next,
) -> Response {
    let Some(ConnectInfo(PeerAddr(peer))) = request.extensions().get::<ConnectInfo<PeerAddr>>().copied() else {
        // Served without the guarded listener (an in-process test): nothing to count.
        return next.run(request).await;
    };
    let ip = guard.client(peer.ip(), &request);
    let began = {
        let mut per_ip = guard.lock();
        per_ip
            .client_request(peer)
            .and_then(|()| per_ip.begin(ip, Instant::now()))
    };
    match began {
        Ok(()) => {
            let _slot = Slot {
                guard: Arc::clone(&guard),
                ip,
            };
            crate::auth::caller::scope(subnet(ip), next.run(request)).await
        }
        Err(refused) => {
            metrics.refused(Refusal::HttpRefused, refused.reason());
            refusal(refused)
        }
    }
}

/// The answer to a refused request: 429 or 503 with `Retry-After`.
fn refusal(refused: Refused) -> Response {
    let (status, code, message, retry) = match refused {
        Refused::Rate(wait) => (
            StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMITED",
            "too many requests from this address; slow down".to_string(),
            wait.ceil().max(1.0) as u64,
        ),
        Refused::Busy => (
            StatusCode::SERVICE_UNAVAILABLE,
            "BUSY",
            "too many requests in flight from this address".to_string(),
            1,
        ),
        Refused::Connections => (
            StatusCode::SERVICE_UNAVAILABLE,
            "BUSY",
            "too many connections from this address".to_string(),
            1,
        ),
        Refused::Untracked => (
            StatusCode::SERVICE_UNAVAILABLE,
            "BUSY",
            "this node is tracking as many client addresses as it may".to_string(),
            1,
        ),
        Refused::Full => (
            StatusCode::SERVICE_UNAVAILABLE,
            "BUSY",
            "this node holds as many client connections as it may".to_string(),
            1,
        ),
    };
    let mut response = ApiError::from(Error::new(Kind::Unavailable, code, message)).into_response();
    *response.status_mut() = status;
    if let Ok(value) = HeaderValue::from_str(&retry.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn limits() -> LimitsConfig {
        LimitsConfig {
            connections_per_ip: 3,
            requests_per_ip: 2,
            rate_per_ip: 10,
            burst_per_ip: 5,
            tracked_ips: 2,
            ..LimitsConfig::default()
        }
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));
    const C: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 3));

    fn request(forwarded: &[&str]) -> Request {
        let mut builder = axum::http::Request::builder().uri("/health");
        for value in forwarded {
            builder = builder.header("x-forwarded-for", *value);
        }
        builder.body(axum::body::Body::empty()).unwrap()
    }

    #[test]
    fn only_a_trusted_proxy_names_the_client_and_only_by_its_own_last_entry() {
        let proxy = IpAddr::V4(std::net::Ipv4Addr::new(10, 9, 9, 9));
        let guard = Guard::new(
            &LimitsConfig {
                trusted_proxies: vec![proxy],
                ..LimitsConfig::default()
            },
            [],
        );
        // A stranger's header is ignored.
        assert_eq!(guard.client(A, &request(&["10.0.0.3"])), A);
        // Behind the proxy: the entry it appended, not what the client wrote before it.
        assert_eq!(guard.client(proxy, &request(&["10.0.0.3, 10.0.0.2"])), B);
        assert_eq!(guard.client(proxy, &request(&["10.0.0.3", "10.0.0.2"])), B);
        // An entry that does not parse leaves the proxy's address, not the client's forgery.
        assert_eq!(guard.client(proxy, &request(&["10.0.0.3, unknown"])), proxy);
        assert_eq!(guard.client(proxy, &request(&[])), proxy);
    }

    #[test]
    fn an_address_gets_its_connections_and_no_more_until_one_closes() {
        let mut per_ip = PerIp::new(limits());
        let now = Instant::now();
        for _ in 0..3 {
            per_ip.connect(A, now).unwrap();
        }
        assert_eq!(per_ip.connect(A, now), Err(Refused::Connections));
        per_ip.connect(B, now).unwrap();
        per_ip.disconnect(SocketAddr::new(A, 1));
        per_ip.connect(A, now).unwrap();
    }

    #[test]
    fn the_addresses_of_one_ipv6_64_share_one_count() {
        let mut per_ip = PerIp::new(limits());
        let now = Instant::now();
        for i in 0..3u128 {
            let ip = IpAddr::V6(std::net::Ipv6Addr::from((0x2001_0db8_0000_0001u128 << 64) | (i * 7919)));
            per_ip.connect(ip, now).unwrap();
        }
        let another = IpAddr::V6(std::net::Ipv6Addr::from((0x2001_0db8_0000_0001u128 << 64) | 0xffff));
        assert_eq!(per_ip.connect(another, now), Err(Refused::Connections));
        assert_eq!(per_ip.tracked(), 1);
    }

    #[test]
    fn requests_in_flight_and_the_rate_are_bounded_and_come_back() {
        let mut per_ip = PerIp::new(limits());
        let now = Instant::now();
        per_ip.begin(A, now).unwrap();
        per_ip.begin(A, now).unwrap();
        assert_eq!(per_ip.begin(A, now), Err(Refused::Busy));
        per_ip.finish(A);
        per_ip.finish(A);
        // A burst of 5, two spent: three more, then the rate (10/s) says wait 0.1 s.
        for _ in 0..3 {
            per_ip.begin(A, now).unwrap();
            per_ip.finish(A);
        }
        match per_ip.begin(A, now) {
            Err(Refused::Rate(wait)) => assert!((wait - 0.1).abs() < 1e-9, "{wait}"),
            other => panic!("{other:?}"),
        }
        per_ip.begin(A, now + Duration::from_millis(100)).unwrap();
        per_ip.finish(A);
        // Another address has its own bucket.
        per_ip.begin(B, now).unwrap();
    }

    #[test]
    fn a_flood_of_addresses_keeps_the_table_bounded_and_busy_addresses_tracked() {
        let mut per_ip = PerIp::new(limits());
        let now = Instant::now();
        per_ip.begin(A, now).unwrap();
        per_ip.connect(B, now).unwrap();
        // Both tracked addresses hold something: a third is turned away, not tracked.
        assert_eq!(per_ip.begin(C, now), Err(Refused::Untracked));
        assert_eq!(per_ip.tracked(), 2);
        // Once B is idle and its bucket refilled, it is forgotten for C.
        per_ip.disconnect(SocketAddr::new(B, 1));
        per_ip.begin(C, now + Duration::from_secs(1)).unwrap();
        assert_eq!(per_ip.tracked(), 2);
        for i in 0..1000u32 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0b00_0000 + i));
            let _ = per_ip.connect(ip, now + Duration::from_secs(2));
            per_ip.disconnect(SocketAddr::new(ip, 1));
        }
        assert!(per_ip.tracked() <= 2);
    }

    /// The adversary: a client behind the same address as a node (one NAT), opening connections
    /// and sending public API requests on them to take every connection the address may hold.
    #[test]
    fn a_client_at_a_nodes_address_keeps_to_its_connections_and_leaves_the_mesh_its_own() {
        let mut per_ip = PerIp::new(LimitsConfig {
            peer_connections: 2,
            ..limits()
        });
        per_ip.set_peers([A]);
        let now = Instant::now();
        let conn = |port: u16| SocketAddr::new(A, port);
        // The client's three connections (connections_per_ip) carry requests: allowed.
        for port in 1..=3 {
            per_ip.connect(A, now).unwrap();
            per_ip.client_request(conn(port)).unwrap();
            // A second request on the same connection counts it once.
            per_ip.client_request(conn(port)).unwrap();
        }
        // A fourth connection opens (the mesh's reserve) but may carry no request of the API.
        per_ip.connect(A, now).unwrap();
        assert_eq!(per_ip.client_request(conn(4)), Err(Refused::Connections));
        // The node's mesh connections still open, up to the reserve (2) on top of the three.
        per_ip.connect(A, now).unwrap();
        assert_eq!(per_ip.connect(A, now), Err(Refused::Connections));
        // A client connection closing frees a client place.
        per_ip.disconnect(conn(1));
        per_ip.disconnect(conn(4));
        per_ip.connect(A, now).unwrap();
        per_ip.client_request(conn(6)).unwrap();
        // Another address has no reserve: its fourth connection is refused.
        for _ in 0..3 {
            per_ip.connect(B, now).unwrap();
        }
        assert_eq!(per_ip.connect(B, now), Err(Refused::Connections));
        // The node's address stays tracked however full the table is.
        assert_eq!(per_ip.begin(C, now), Err(Refused::Untracked));
        per_ip.disconnect(conn(2));
        per_ip.connect(A, now).unwrap();
    }

    /// The adversary: stalled connections from many subnets, to take every descriptor.
    #[test]
    fn connections_from_many_addresses_stop_at_max_connections_and_the_node_lists_still_open() {
        let mut per_ip = PerIp::new(LimitsConfig {
            max_connections: 10,
            tracked_ips: 100,
            ..limits()
        });
        per_ip.set_peers([A]);
        let now = Instant::now();
        let others: Vec<IpAddr> = (0..5u8).map(|i| IpAddr::from([10, 9, i, 1])).collect();
        for ip in &others {
            per_ip.connect(*ip, now).unwrap();
            per_ip.connect(*ip, now).unwrap();
        }
        assert_eq!(per_ip.connect(IpAddr::from([10, 9, 9, 1]), now), Err(Refused::Full));
        // The node list's address still connects.
        per_ip.connect(A, now).unwrap();
        // One closing makes room for one more.
        per_ip.disconnect(SocketAddr::new(others[0], 1));
        per_ip.disconnect(SocketAddr::new(A, 1));
        per_ip.connect(IpAddr::from([10, 9, 9, 1]), now).unwrap();
        assert_eq!(per_ip.connect(IpAddr::from([10, 9, 9, 2]), now), Err(Refused::Full));
    }
}
