//! HTTP for actions: `fetch` from inside a run and action code from the IPFS gateway, with a
//! timeout and a body size limit. Uses nothing else of the crate.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::json;
use sigil_actions::HostError;

fn bad(message: impl Into<String>) -> HostError {
    HostError::new("BAD_REQUEST", message)
}

/// How long one `fetch` may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(15);

/// Largest `fetch` response body.
const FETCH_MAX_BYTES: usize = 16 << 20;

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

pub(crate) async fn fetch(
    url: String,
    method: String,
    headers: BTreeMap<String, String>,
    body: Option<String>,
) -> Result<serde_json::Value, HostError> {
    let method =
        reqwest::Method::from_bytes(method.as_bytes()).map_err(|_| bad(format!("fetch: method {method:?}")))?;
    let mut request = http().request(method, &url);
    for (name, value) in &headers {
        request = request.header(name, value);
    }
    if let Some(body) = body {
        request = request.body(body);
    }
    let response = request
        .send()
        .await
        .map_err(|e| HostError::new("FETCH_FAILED", format!("fetch {url}: {e}")))?;
    let status = response.status();
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
    let final_url = response.url().to_string();
    let bytes = read_capped(response, FETCH_MAX_BYTES, &format!("fetch {url}"))
        .await
        .map_err(|e| HostError::new("FETCH_FAILED", e))?;
    Ok(json!({
        "status": status.as_u16(),
        "statusText": status.canonical_reason().unwrap_or(""),
        "headers": out_headers,
        "url": final_url,
        "body": String::from_utf8_lossy(&bytes),
    }))
}
