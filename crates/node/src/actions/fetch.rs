//! HTTP for actions: `fetch` from inside a run, and action code from the IPFS gateway.
//!
//! `fetch` resolves the host itself and connects only to an address the egress policy
//! ([`super::egress`]) allows, for the first request and for every redirect it follows, so a
//! hostname that resolves to an internal address or a redirect to one is refused
//! (`FETCH_BLOCKED`) before a byte is sent. HTTPS is rustls with the webpki roots (plus
//! `[actions.egress] extra_ca_file`). Each fetch has one deadline covering DNS, connect, TLS,
//! redirects and body, and a body size limit. Uses `actions::egress`, `error`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::json;
use sigil_actions::HostError;
use tokio::net::TcpStream;

use super::egress::{url_host_port, EgressConfig, Policy};
use crate::error::source_chain;

/// How long one `fetch` may take, redirects included.
const FETCH_TIMEOUT: Duration = Duration::from_secs(15);

/// Largest `fetch` response body.
const FETCH_MAX_BYTES: usize = 16 << 20;

/// The reqwest client for action code from the IPFS gateway (an operator-configured URL).
pub(crate) fn http() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .build()
            .unwrap_or_default()
    })
}

/// Reads at most `max` bytes of a response body.
pub(crate) async fn read_capped(mut response: reqwest::Response, max: usize, what: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| format!("{what}: {e}"))? {
        if out.len() + chunk.len() > max {
            return Err(format!("{what}: the body is over {max} bytes"));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// What actions may fetch on this node, and how.
pub struct Fetcher {
    policy: Policy,
    tls: tokio_rustls::TlsConnector,
    max_redirects: usize,
    /// Fetches in flight, node-wide.
    in_flight: Arc<tokio::sync::Semaphore>,
    /// Response bytes held, node-wide, in KiB.
    buffered: Arc<tokio::sync::Semaphore>,
    /// DNS lookups at once.
    lookups: Arc<tokio::sync::Semaphore>,
}

/// Headers that belong to one connection, not to the request: the node sets its own.
const HOP_BY_HOP: [&str; 10] = [
    "host",
    "content-length",
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

impl Fetcher {
    /// The fetcher of a node listening on `own` that hands `rpc_urls` to actions.
    pub fn new(config: &EgressConfig, own: SocketAddr, rpc_urls: &[String]) -> Result<Self, String> {
        let policy = Policy::new(config, own, rpc_urls)?;
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = &config.extra_ca_file {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("actions.egress.extra_ca_file {}: {e}", path.display()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("actions.egress.extra_ca_file {}: {e}", path.display()))?;
            if certs.is_empty() {
                return Err(format!(
                    "actions.egress.extra_ca_file {}: no certificate in the file",
                    path.display()
                ));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| format!("actions.egress.extra_ca_file {}: {e}", path.display()))?;
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        if config.max_in_flight == 0 || config.max_buffered_bytes < 1024 || config.max_lookups == 0 {
            return Err(
                "actions.egress: max_in_flight and max_lookups must be at least 1, max_buffered_bytes at least 1024"
                    .into(),
            );
        }
        Ok(Self {
            policy,
            tls: tokio_rustls::TlsConnector::from(Arc::new(tls)),
            max_redirects: config.max_redirects,
            in_flight: Arc::new(tokio::sync::Semaphore::new(config.max_in_flight)),
            buffered: Arc::new(tokio::sync::Semaphore::new(config.max_buffered_bytes / 1024)),
            lookups: Arc::new(tokio::sync::Semaphore::new(config.max_lookups)),
        })
    }

    /// Fetches `url` for an action: the answer is `{status, statusText, headers, url,
    /// redirected, body}` with the body in base64. `body` is base64 too.
    pub async fn fetch(
        &self,
        url: String,
        method: String,
        headers: BTreeMap<String, String>,
        body: Option<String>,
    ) -> Result<serde_json::Value, HostError> {
        let body = match body {
            Some(b) => Some(
                base64::engine::general_purpose::STANDARD
                    .decode(b)
                    .map_err(|e| bad(format!("fetch: the body is not base64 ({e})")))?,
            ),
            None => None,
        };
        let method =
            http::Method::from_bytes(method.as_bytes()).map_err(|_| bad(format!("fetch: method {method:?}")))?;
        let exchange = async {
            let _slot = self
                .in_flight
                .acquire()
                .await
                .map_err(|_| bad("fetch: shutting down"))?;
            self.follow(url.clone(), method, headers, body).await
        };
        match tokio::time::timeout(FETCH_TIMEOUT, exchange).await {
            Ok(result) => result,
            Err(_) => Err(HostError::new(
                "FETCH_FAILED",
                format!("fetch {url}: no complete answer within {} s", FETCH_TIMEOUT.as_secs()),
            )),
        }
    }

    async fn follow(
        &self,
        first: String,
        mut method: http::Method,
        mut headers: BTreeMap<String, String>,
        mut body: Option<Vec<u8>>,
    ) -> Result<serde_json::Value, HostError> {
        let mut url = first.clone();
        let mut redirects = 0;
        loop {
            let uri: http::Uri = url.parse().map_err(|_| bad(format!("fetch: {url:?} is not a URL")))?;
            let response = self.once(&url, &uri, &method, &headers, body.as_deref()).await?;
            let status = response.status();
            let location = response
                .headers()
                .get(http::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            if let (true, Some(location)) = (status.is_redirection(), location) {
                if redirects >= self.max_redirects {
                    return Err(HostError::new(
                        "FETCH_FAILED",
                        format!("fetch {first}: more than {} redirects", self.max_redirects),
                    ));
                }
                redirects += 1;
                let next = resolve_location(&url, &location).ok_or_else(|| {
                    HostError::new("FETCH_FAILED", format!("fetch {url}: bad redirect to {location:?}"))
                })?;
                // A 303, and a 301/302 after a POST, become a GET without a body (as browsers do).
                if status == http::StatusCode::SEE_OTHER
                    || (method == http::Method::POST && matches!(status.as_u16(), 301 | 302))
                {
                    method = http::Method::GET;
                    body = None;
                    headers.retain(|k, _| {
                        !k.eq_ignore_ascii_case("content-type") && !k.eq_ignore_ascii_case("content-length")
                    });
                }
                // Credentials never follow a redirect to another host.
                if url_host_port(&next) != url_host_port(&url) {
                    headers
                        .retain(|k, _| !k.eq_ignore_ascii_case("authorization") && !k.eq_ignore_ascii_case("cookie"));
                }
                url = next;
                continue;
            }
            let mut out_headers = BTreeMap::new();
            for (name, value) in response.headers() {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                out_headers
                    .entry(name.as_str().to_string())
                    .and_modify(|v: &mut String| {
                        v.push_str(", ");
                        v.push_str(&value);
                    })
                    .or_insert(value);
            }
            let bytes = self.read_body(&url, response.into_body()).await?;
            return Ok(json!({
                "status": status.as_u16(),
                "statusText": status.canonical_reason().unwrap_or(""),
                "headers": out_headers,
                "url": url,
                "redirected": redirects > 0,
                "body": base64::engine::general_purpose::STANDARD.encode(&bytes),
            }));
        }
    }

    /// Reads a body of at most [`FETCH_MAX_BYTES`], each chunk only once the node-wide budget
    /// (`max_buffered_bytes`) has room for it.
    async fn read_body(&self, url: &str, mut body: hyper::body::Incoming) -> Result<Vec<u8>, HostError> {
        let failed = |why: String| HostError::new("FETCH_FAILED", format!("fetch {url}: {why}"));
        let mut out = Vec::new();
        let mut held = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| failed(format!("reading the body: {e}")))?;
            let Ok(chunk) = frame.into_data() else { continue };
            if out.len() + chunk.len() > FETCH_MAX_BYTES {
                return Err(failed(format!("the body is over {FETCH_MAX_BYTES} bytes")));
            }
            let kib = u32::try_from(chunk.len().div_ceil(1024)).unwrap_or(u32::MAX);
            match Arc::clone(&self.buffered).try_acquire_many_owned(kib) {
                Ok(permit) => held.push(permit),
                // Wait for room, within the fetch's own deadline.
                Err(_) => held.push(
                    Arc::clone(&self.buffered)
                        .acquire_many_owned(kib)
                        .await
                        .map_err(|_| failed("shutting down".into()))?,
                ),
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// One request to `uri` over a new connection to an allowed address.
    async fn once(
        &self,
        url: &str,
        uri: &http::Uri,
        method: &http::Method,
        headers: &BTreeMap<String, String>,
        body: Option<&[u8]>,
    ) -> Result<http::Response<hyper::body::Incoming>, HostError> {
        let failed = |why: String| HostError::new("FETCH_FAILED", format!("fetch {url}: {why}"));
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => {
                return Err(bad(format!(
                    "fetch: only http and https URLs can be fetched, not {url:?}"
                )))
            }
        };
        let (host, port) = url_host_port(url).ok_or_else(|| bad(format!("fetch: {url:?} has no host")))?;
        let addrs: Vec<SocketAddr> = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => {
                let _lookup = self.lookups.acquire().await.map_err(|_| bad("fetch: shutting down"))?;
                tokio::net::lookup_host((host.as_str(), port))
                    .await
                    .map_err(|e| failed(format!("cannot resolve {host}: {e}")))?
                    .collect()
            }
        };
        let mut refusal = None;
        let mut allowed = Vec::new();
        for addr in addrs {
            match self.policy.check(&host, addr) {
                Ok(()) => allowed.push(addr),
                Err(blocked) => refusal = Some(blocked.0),
            }
        }
        if allowed.is_empty() {
            return Err(HostError::new(
                "FETCH_BLOCKED",
                format!(
                    "fetch {url}: {}",
                    refusal.unwrap_or_else(|| format!("{host} resolves to no address"))
                ),
            ));
        }
        let mut last = String::new();
        let mut tcp = None;
        for addr in allowed {
            match TcpStream::connect(addr).await {
                Ok(stream) => {
                    tcp = Some(stream);
                    break;
                }
                Err(e) => last = format!("connecting to {addr}: {e}"),
            }
        }
        let tcp = tcp.ok_or_else(|| failed(last))?;
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let authority = uri.authority().map_or(host.clone(), |a| {
            a.as_str().rsplit('@').next().unwrap_or("").to_string()
        });
        let mut request = http::Request::builder().method(method.clone()).uri(path);
        let mut has_user_agent = false;
        for (name, value) in headers {
            if HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h)) {
                continue;
            }
            has_user_agent |= name.eq_ignore_ascii_case("user-agent");
            request = request.header(name.as_str(), value.as_str());
        }
        request = request.header(http::header::HOST, authority);
        if !has_user_agent {
            request = request.header(http::header::USER_AGENT, "sigil-action");
        }
        let request = request
            .body(Full::new(Bytes::from(body.map(<[u8]>::to_vec).unwrap_or_default())))
            .map_err(|e| bad(format!("fetch {url}: {e}")))?;
        if https {
            let name =
                ServerName::try_from(host.clone()).map_err(|_| failed(format!("{host} is not a TLS server name")))?;
            let tls = self
                .tls
                .connect(name, tcp)
                .await
                .map_err(|e| failed(format!("TLS with {host}: {e}")))?;
            exchange(TokioIo::new(tls), request).await.map_err(failed)
        } else {
            exchange(TokioIo::new(tcp), request).await.map_err(failed)
        }
    }
}

/// Sends `request` over `io` with HTTP/1.1 and returns the response head (the body streams).
async fn exchange<IO>(
    io: IO,
    request: http::Request<Full<Bytes>>,
) -> Result<http::Response<hyper::body::Incoming>, String>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| source_chain(&e))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    sender.send_request(request).await.map_err(|e| source_chain(&e))
}

/// A redirect's `Location`, resolved against the URL it came from.
fn resolve_location(base: &str, location: &str) -> Option<String> {
    let base: http::Uri = base.parse().ok()?;
    if location.starts_with("http://") || location.starts_with("https://") {
        return Some(location.to_string());
    }
    let scheme = base.scheme_str()?;
    let authority = base.authority()?.as_str();
    if let Some(rest) = location.strip_prefix("//") {
        return Some(format!("{scheme}://{rest}"));
    }
    if location.starts_with('/') {
        return Some(format!("{scheme}://{authority}{location}"));
    }
    let dir = base.path().rsplit_once('/').map_or("", |(d, _)| d);
    Some(format!("{scheme}://{authority}{dir}/{location}"))
}

fn bad(message: impl Into<String>) -> HostError {
    HostError::new("BAD_REQUEST", message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_resolve_against_their_url() {
        let base = "https://api.example.com/v1/price?x=1";
        assert_eq!(
            resolve_location(base, "http://127.0.0.1/").as_deref(),
            Some("http://127.0.0.1/")
        );
        assert_eq!(
            resolve_location(base, "//other.org/p").as_deref(),
            Some("https://other.org/p")
        );
        assert_eq!(
            resolve_location(base, "/v2").as_deref(),
            Some("https://api.example.com/v2")
        );
        assert_eq!(
            resolve_location(base, "next").as_deref(),
            Some("https://api.example.com/v1/next")
        );
    }
}
