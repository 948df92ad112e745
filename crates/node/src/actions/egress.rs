//! Where actions may connect (`[actions.egress]`): the policy `fetch` checks on the resolved IP of
//! every connection and every redirect, before a byte is sent.
//!
//! By default an action reaches only public addresses: not loopback, private (RFC 1918, ULA),
//! link-local (so not the cloud metadata service at 169.254.169.254), carrier-grade NAT,
//! unspecified, multicast or broadcast addresses, IPv4-mapped forms of those, nor the node's own
//! listener. `allow` lists networks (`127.0.0.0/8`, `10.0.0.7`, `[::1]:8545`, with an optional
//! port) an operator opens anyway; `sigil dev` allows loopback. The RPC URLs the node hands to
//! actions (`getRpcUrl`) are always reachable at their host and port. Uses nothing else of the
//! crate.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[actions.egress]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EgressConfig {
    /// Networks actions may reach although the default policy blocks them: `"10.1.0.0/16"`,
    /// `"127.0.0.1:8443"`, `"[::1]:8545"`, `"::1"`.
    pub allow: Vec<String>,
    /// PEM file of extra root certificates `fetch` trusts for HTTPS, besides the webpki roots
    /// (a private CA). Relative paths are relative to the config file.
    pub extra_ca_file: Option<PathBuf>,
    /// Redirects one `fetch` follows (default 5); each target is checked like the first.
    pub max_redirects: usize,
    /// Fetches the whole node runs at once, for every action (default 32); more wait for a
    /// free one within their deadline.
    pub max_in_flight: usize,
    /// Response bytes the node holds at once for every fetch in flight (default 64 MiB): a body
    /// that finds no room within its deadline fails (`FETCH_FAILED`, the node is busy).
    pub max_buffered_bytes: usize,
    /// DNS lookups at once (default 8): a resolver that never answers holds a thread each.
    pub max_lookups: usize,
}

impl Default for EgressConfig {
    fn default() -> Self {
        Self {
            allow: Vec::new(),
            extra_ca_file: None,
            max_redirects: 5,
            max_in_flight: 32,
            max_buffered_bytes: 64 << 20,
            max_lookups: 8,
        }
    }
}

/// One `allow` entry: a network and, optionally, one port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allowed {
    network: IpAddr,
    prefix: u8,
    port: Option<u16>,
}

impl std::str::FromStr for Allowed {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("actions.egress.allow {text:?}: {why}");
        let text = text.trim();
        // "[v6]:port", "v4:port", or a bare address / network.
        let (addr, port) = if let Some(rest) = text.strip_prefix('[') {
            let (inside, after) = rest.split_once(']').ok_or_else(|| bad("unclosed ["))?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p.parse::<u16>().map_err(|_| bad("not a port"))?),
                None if after.is_empty() => None,
                None => return Err(bad("expected :port after ]")),
            };
            (inside, port)
        } else if text.matches(':').count() == 1 {
            let (a, p) = text.split_once(':').ok_or_else(|| bad("not an address"))?;
            (a, Some(p.parse::<u16>().map_err(|_| bad("not a port"))?))
        } else {
            (text, None)
        };
        let (ip, prefix) = match addr.split_once('/') {
            Some((ip, prefix)) => (ip, Some(prefix.parse::<u8>().map_err(|_| bad("not a prefix length"))?)),
            None => (addr, None),
        };
        let network: IpAddr = ip.parse().map_err(|_| bad("not an IP address or network"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(bad("prefix length too long"));
        }
        Ok(Self { network, prefix, port })
    }
}

impl Allowed {
    fn contains(&self, addr: SocketAddr) -> bool {
        if self.port.is_some_and(|p| p != addr.port()) {
            return false;
        }
        match (self.network, canonical(addr.ip())) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Why the default policy blocks `ip`, if it does.
pub fn blocked_class(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => v4_class(v4),
        IpAddr::V6(v6) => v6_class(v6),
    }
}

fn v4_class(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if a == 100 && (64..128).contains(&b) {
        Some("carrier-grade NAT")
    } else if ip.is_unspecified() || a == 0 {
        Some("unspecified")
    } else if ip.is_multicast() || ip.is_broadcast() || a >= 240 {
        Some("multicast or reserved")
    } else if (a, b) == (192, 0) && c == 0 || (a == 198 && (18..20).contains(&b)) {
        // IETF protocol assignments (192.0.0.0/24) and benchmarking (198.18.0.0/15).
        Some("special-purpose")
    } else if (a, b, c) == (192, 0, 2) || (a, b, c) == (198, 51, 100) || (a, b, c) == (203, 0, 113) {
        Some("documentation")
    } else {
        None
    }
}

/// The IPv4 address an IPv6 address stands for, where one is embedded in it: IPv4-compatible
/// (`::a.b.c.d`), IPv4-translated (`::ffff:0:a.b.c.d`), NAT64 (`64:ff9b::/96`) and 6to4
/// (`2002:AABB:CCDD::/48`).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0, _, _] | [0, 0, 0, 0, 0xffff, 0, _, _] | [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(low),
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8)),
        _ => None,
    }
}

fn v6_class(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() {
        Some("unspecified")
    } else if s[0] & 0xfe00 == 0xfc00 {
        Some("private (unique local)")
    } else if s[0] & 0xffc0 == 0xfe80 {
        Some("link-local")
    } else if s[0] & 0xffc0 == 0xfec0 {
        Some("site-local")
    } else if ip.is_multicast() {
        Some("multicast or reserved")
    } else if s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1 {
        // Local-use NAT64 (64:ff9b:1::/48): whatever it translates to is someone's network.
        Some("private (local NAT64)")
    } else if s[0] == 0x2001 && s[1] == 0 {
        // Teredo (2001::/32) tunnels to an address it only obfuscates.
        Some("tunnelled (Teredo)")
    } else if s[0] == 0x2001 && s[1] == 0xdb8 {
        Some("documentation")
    } else if let Some(v4) = embedded_v4(ip) {
        v4_class(v4)
    } else {
        None
    }
}

/// The checked policy of one node.
#[derive(Clone, Debug)]
pub struct Policy {
    allow: Vec<Allowed>,
    own: SocketAddr,
    /// Host and port of every RPC URL the node hands to actions.
    rpc: Vec<(String, u16)>,
}

/// A connection the policy refuses, with the reason the action sees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blocked(pub String);

impl Policy {
    /// The policy of a node listening on `own`, allowing `allow` and the hosts of `rpc_urls`.
    pub fn new(config: &EgressConfig, own: SocketAddr, rpc_urls: &[String]) -> Result<Self, String> {
        let allow = config
            .allow
            .iter()
            .map(|a| a.parse::<Allowed>())
            .collect::<Result<Vec<_>, _>>()?;
        let rpc = rpc_urls.iter().filter_map(|u| url_host_port(u)).collect();
        Ok(Self { allow, own, rpc })
    }

    /// Whether a connection to `addr`, resolved from `host` (the URL's host, lower-case), may be
    /// made.
    pub fn check(&self, host: &str, addr: SocketAddr) -> Result<(), Blocked> {
        let ip = canonical(addr.ip());
        let own_ip = canonical(self.own.ip());
        // A node listening on every interface is reachable on any of its addresses; those that
        // are internal are all the policy can tell apart.
        let own = ip == own_ip || (own_ip.is_unspecified() && blocked_class(ip).is_some());
        if addr.port() == self.own.port() && own {
            return Err(Blocked(format!(
                "{host} is (or resolves to) this node's own address, which actions may not reach"
            )));
        }
        if self.rpc.iter().any(|(h, p)| h == host && *p == addr.port()) {
            return Ok(());
        }
        if self.allow.iter().any(|a| a.contains(addr)) {
            return Ok(());
        }
        match blocked_class(ip) {
            // The message names the class, not the address: an action must not map internal names.
            Some(class) => Err(Blocked(format!(
                "{host} is (or resolves to) a {class} address, which actions may not reach (an operator can open it with [actions.egress] allow)"
            ))),
            None => Ok(()),
        }
    }
}

/// The lower-case host and the port (default by scheme) of an http(s) URL.
pub fn url_host_port(url: &str) -> Option<(String, u16)> {
    let uri: http::Uri = url.parse().ok()?;
    let host = uri
        .host()?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let port = uri.port_u16().or(match uri.scheme_str() {
        Some("https") => Some(443),
        Some("http") => Some(80),
        _ => None,
    })?;
    Some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    fn policy(allow: &[&str]) -> Policy {
        let config = EgressConfig {
            allow: allow.iter().map(|s| s.to_string()).collect(),
            ..EgressConfig::default()
        };
        Policy::new(&config, addr("127.0.0.1:7470"), &["http://rpc.internal:8545".into()]).unwrap_or_else(|e| {
            panic!("{e}");
        })
    }

    #[test]
    fn the_default_policy_blocks_every_internal_class() {
        let p = policy(&[]);
        for blocked in [
            "127.0.0.1:80",
            "127.1.2.3:443",
            "10.0.0.1:80",
            "172.16.5.4:80",
            "192.168.1.1:80",
            "169.254.169.254:80",
            "100.64.0.1:80",
            "0.0.0.0:80",
            "255.255.255.255:80",
            "224.0.0.1:80",
            "[::1]:80",
            "[::]:80",
            "[fd00::1]:80",
            "[fe80::1]:80",
            "[::ffff:127.0.0.1]:80",
            "[::ffff:169.254.169.254]:80",
            "[64:ff9b::a00:1]:80",
            "[64:ff9b::a9fe:a9fe]:80",
            "[64:ff9b:1::1]:80",
            "[2002:7f00:1::1]:80",
            "[2002:a9fe:a9fe::]:80",
            "[2001:0:4136:e378::1]:80",
            "[::ffff:0:a00:1]:80",
            "[fec0::1]:80",
            "192.0.0.8:80",
            "198.18.0.1:80",
            "[::a00:1]:80",
        ] {
            assert!(p.check("x", addr(blocked)).is_err(), "{blocked}");
        }
        for open in [
            "93.184.216.34:443",
            "[2606:2800:220:1::1]:443",
            "8.8.8.8:53",
            "[64:ff9b::808:808]:53",
            "[2002:808:808::1]:53",
        ] {
            assert_eq!(p.check("x", addr(open)), Ok(()), "{open}");
        }
    }

    #[test]
    fn allow_entries_open_networks_and_ports_but_never_the_node_itself() {
        let p = policy(&["127.0.0.1:8443", "10.1.0.0/16", "[::1]"]);
        assert_eq!(p.check("x", addr("127.0.0.1:8443")), Ok(()));
        assert!(p.check("x", addr("127.0.0.1:8444")).is_err());
        assert_eq!(p.check("x", addr("10.1.200.3:80")), Ok(()));
        assert!(p.check("x", addr("10.2.0.1:80")).is_err());
        assert_eq!(p.check("x", addr("[::1]:9")), Ok(()));
        // The RPC URL the node hands out is reachable by its host and port only.
        assert_eq!(p.check("rpc.internal", addr("10.9.9.9:8545")), Ok(()));
        assert!(p.check("other.internal", addr("10.9.9.9:8545")).is_err());
        let everything = policy(&["127.0.0.0/8", "0.0.0.0/0"]);
        assert!(everything.check("x", addr("127.0.0.1:7470")).is_err());
    }

    #[test]
    fn bad_allow_entries_are_named() {
        for bad in ["nonsense", "10.0.0.0/33", "[::1", "1.2.3.4:http"] {
            let e = bad.parse::<Allowed>().unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }
}
