//! Bounded HTTP(S) GETs for auth methods: an issuer's JWKS, a provider's userinfo endpoint.
//!
//! HTTPS goes through rustls on ring with the webpki (Mozilla) roots, on the hyper client that
//! reqwest is built on; plain HTTP is accepted only to a loopback host (a test issuer, a sidecar).
//! Every request has one deadline covering connect, headers and body, follows no redirect (a
//! bearer token is never carried to another host), and reads at most a given number of bytes.
//! Uses `error`.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::error::source_chain;

/// Why a GET failed. The messages name the URL but never a token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The URL is not `https://`, nor `http://` to a loopback host.
    #[error("{url}: {why}")]
    BadUrl {
        /// The URL.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// No complete answer before the deadline.
    #[error("{url}: no answer within {ms} ms")]
    Timeout {
        /// The URL.
        url: String,
        /// The deadline.
        ms: u128,
    },
    /// Connecting, TLS, or reading failed.
    #[error("{url}: {why}")]
    Failed {
        /// The URL.
        url: String,
        /// What failed.
        why: String,
    },
    /// The body is over the limit.
    #[error("{url}: the response is over {max} bytes")]
    TooLarge {
        /// The URL.
        url: String,
        /// The limit.
        max: usize,
    },
}

/// What a GET answered.
#[derive(Clone, Debug)]
pub struct Fetched {
    /// HTTP status.
    pub status: u16,
    /// The `Cache-Control` header, if any (and readable).
    pub cache_control: Option<String>,
    /// The body, at most the limit given.
    pub body: Vec<u8>,
}

/// Checks that `url` may be fetched: `https://`, or `http://` to `localhost`, `127.0.0.0/8` or
/// `[::1]`. Returns the parsed URI.
pub fn check_url(url: &str) -> Result<http::Uri, FetchError> {
    let bad = |why: &str| FetchError::BadUrl {
        url: url.to_string(),
        why: why.to_string(),
    };
    let uri: http::Uri = url.parse().map_err(|_| bad("not a URL"))?;
    let host = uri.host().ok_or_else(|| bad("no host"))?;
    match uri.scheme_str() {
        Some("https") => Ok(uri),
        Some("http") if is_loopback(host) => Ok(uri),
        Some("http") => Err(bad("plain http is accepted only to a loopback host; use https")),
        _ => Err(bad("the scheme must be https")),
    }
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

/// An HTTP(S) client for auth methods: one connection pool, one deadline per request.
#[derive(Clone)]
pub struct Fetcher {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    timeout: Duration,
}

impl Fetcher {
    /// A client whose every request must complete within `timeout`.
    pub fn new(timeout: Duration) -> Result<Self, String> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| format!("TLS: {e}"))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(4)
            .build(connector);
        Ok(Self { client, timeout })
    }

    /// GETs `url` (checked with [`check_url`]), with `Authorization: Bearer {bearer}` if given,
    /// reading at most `max_bytes` of body. Any status is an answer; redirects are not followed.
    pub async fn get(&self, url: &str, bearer: Option<&str>, max_bytes: usize) -> Result<Fetched, FetchError> {
        let uri = check_url(url)?;
        let failed = |why: String| FetchError::Failed {
            url: url.to_string(),
            why,
        };
        let mut request = http::Request::get(uri).header(http::header::ACCEPT, "application/json");
        if let Some(token) = bearer {
            let value = http::HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| failed("the token is not a valid header value".into()))?;
            request = request.header(http::header::AUTHORIZATION, value);
        }
        let request = request
            .body(Empty::<Bytes>::new())
            .map_err(|e| failed(format!("request: {e}")))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| failed(source_chain(&e)))?;
            let status = response.status().as_u16();
            let cache_control = response
                .headers()
                .get(http::header::CACHE_CONTROL)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let declared = response
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let too_large = || FetchError::TooLarge {
                url: url.to_string(),
                max: max_bytes,
            };
            if declared.is_some_and(|n| n > max_bytes as u64) {
                return Err(too_large());
            }
            let body = Limited::new(response.into_body(), max_bytes)
                .collect()
                .await
                .map_err(|e| {
                    if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                        too_large()
                    } else {
                        failed(format!("reading the body: {e}"))
                    }
                })?
                .to_bytes()
                .to_vec();
            Ok(Fetched {
                status,
                cache_control,
                body,
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| FetchError::Timeout {
                url: url.to_string(),
                ms: self.timeout.as_millis(),
            })?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http() {
        for ok in [
            "https://www.googleapis.com/oauth2/v3/certs",
            "http://127.0.0.1:8080/jwks",
            "http://localhost/jwks",
            "http://[::1]:9/x",
        ] {
            assert!(check_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://example.com/jwks",
            "ftp://127.0.0.1/x",
            "file:///etc/passwd",
            "nonsense",
            "http://10.0.0.1/",
        ] {
            assert!(matches!(check_url(bad), Err(FetchError::BadUrl { .. })), "{bad}");
        }
    }
}
