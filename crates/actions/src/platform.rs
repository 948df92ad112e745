//! The native half of the actions' web platform: text encoding, base64, WHATWG URL parsing and
//! the cryptography behind `crypto.subtle` (SHA-2 digests, HMAC, AES-GCM), all RustCrypto or
//! `url` on the host side, never JavaScript crypto.
//!
//! Bytes cross the bridge as "binary strings" from JavaScript (one char per byte, 0–255: the
//! prelude makes them from typed arrays) and as `Uint8Array`s back. Every function here is pure:
//! the same input gives the same output on every node.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes128Gcm, Aes256Gcm};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha384, Sha512};

/// Why a platform call failed: the `DOMException` name the prelude throws, and a message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct PlatformError {
    pub(crate) name: &'static str,
    pub(crate) message: String,
}

fn error(name: &'static str, message: impl Into<String>) -> PlatformError {
    PlatformError {
        name,
        message: message.into(),
    }
}

/// The bytes of a binary string (each char 0–255).
pub(crate) fn bytes_of(binary: &str, what: &str) -> Result<Vec<u8>, PlatformError> {
    binary
        .chars()
        .map(|c| u8::try_from(u32::from(c)).map_err(|_| error("TypeError", format!("{what}: not a byte string"))))
        .collect()
}

/// A SHA-2 digest by its WebCrypto name.
pub(crate) fn digest(algorithm: &str, data: &[u8]) -> Result<Vec<u8>, PlatformError> {
    Ok(match algorithm.to_ascii_uppercase().as_str() {
        "SHA-256" => Sha256::digest(data).to_vec(),
        "SHA-384" => Sha384::digest(data).to_vec(),
        "SHA-512" => Sha512::digest(data).to_vec(),
        other => return Err(unsupported_hash(other)),
    })
}

fn unsupported_hash(name: &str) -> PlatformError {
    error(
        "NotSupportedError",
        format!("hash {name:?} is not supported (use SHA-256, SHA-384 or SHA-512)"),
    )
}

/// HMAC of `data` under `key` with a SHA-2 hash.
pub(crate) fn hmac(hash: &str, key: &[u8], data: &[u8]) -> Result<Vec<u8>, PlatformError> {
    fn mac<M: Mac + KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
        // HMAC takes keys of any length.
        match <M as KeyInit>::new_from_slice(key) {
            Ok(mut m) => {
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
            Err(_) => Vec::new(),
        }
    }
    Ok(match hash.to_ascii_uppercase().as_str() {
        "SHA-256" => mac::<Hmac<Sha256>>(key, data),
        "SHA-384" => mac::<Hmac<Sha384>>(key, data),
        "SHA-512" => mac::<Hmac<Sha512>>(key, data),
        other => return Err(unsupported_hash(other)),
    })
}

/// AES-GCM with a 128-bit tag and a 96-bit IV (the lengths WebCrypto uses by default and the
/// only ones accepted here): the ciphertext with its tag appended, or the plaintext.
pub(crate) fn aes_gcm(encrypt: bool, key: &[u8], iv: &[u8], data: &[u8], aad: &[u8]) -> Result<Vec<u8>, PlatformError> {
    let iv: [u8; 12] = iv.try_into().map_err(|_| {
        error(
            "NotSupportedError",
            format!("AES-GCM: a {}-byte iv; only 12-byte ivs are supported", iv.len()),
        )
    })?;
    let nonce = &aes_gcm::Nonce::from(iv);
    let payload = Payload { msg: data, aad };
    let out = match key.len() {
        16 => {
            let cipher = Aes128Gcm::new_from_slice(key).map_err(|_| error("DataError", "AES-GCM: bad key"))?;
            if encrypt {
                cipher.encrypt(nonce, payload)
            } else {
                cipher.decrypt(nonce, payload)
            }
        }
        32 => {
            let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| error("DataError", "AES-GCM: bad key"))?;
            if encrypt {
                cipher.encrypt(nonce, payload)
            } else {
                cipher.decrypt(nonce, payload)
            }
        }
        n => {
            return Err(error(
                "DataError",
                format!("AES-GCM: a {n}-byte key; use 16 (AES-128) or 32 (AES-256)"),
            ))
        }
    };
    out.map_err(|_| {
        if encrypt {
            error("OperationError", "AES-GCM: encryption failed")
        } else {
            error(
                "OperationError",
                "AES-GCM: the data does not decrypt under this key and iv (wrong key, iv or additional data, or altered ciphertext)",
            )
        }
    })
}

/// Standard base64 (with or without padding; whitespace ignored).
pub(crate) fn base64_decode(text: &str) -> Result<Vec<u8>, PlatformError> {
    use base64::Engine;
    let cleaned: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let trimmed = cleaned.trim_end_matches('=');
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(trimmed)
        .map_err(|_| error("InvalidCharacterError", "not base64"))
}

/// Standard base64 with padding.
pub(crate) fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The parts of a WHATWG URL, as JSON for the prelude's `URL` class.
pub(crate) fn parse_url(input: &str, base: Option<&str>) -> Result<serde_json::Value, PlatformError> {
    let invalid = |what: &str| error("TypeError", format!("Invalid URL: {what}"));
    let url = match base {
        Some(base) => {
            let base = url::Url::parse(base).map_err(|_| invalid(base))?;
            base.join(input).map_err(|_| invalid(input))?
        }
        None => url::Url::parse(input).map_err(|_| invalid(input))?,
    };
    Ok(url_parts(&url))
}

/// Sets one part of `href` (`protocol`, `host`, `pathname`, …) as the WHATWG setters do: an
/// invalid value leaves the URL unchanged.
pub(crate) fn set_url_part(href: &str, part: &str, value: &str) -> Result<serde_json::Value, PlatformError> {
    let mut url = url::Url::parse(href).map_err(|_| error("TypeError", format!("Invalid URL: {href}")))?;
    match part {
        "href" => {
            url = url::Url::parse(value).map_err(|_| error("TypeError", format!("Invalid URL: {value}")))?;
        }
        "protocol" => {
            let _ = url.set_scheme(value.trim_end_matches(':'));
        }
        "username" => {
            let _ = url.set_username(value);
        }
        "password" => {
            let _ = url.set_password(Some(value).filter(|v| !v.is_empty()));
        }
        "host" => {
            let (host, port) = match value.rsplit_once(':') {
                Some((h, p)) if !h.ends_with(']') || value.starts_with('[') => (h, Some(p)),
                _ => (value, None),
            };
            if url.set_host(Some(host)).is_ok() {
                if let Some(port) = port.and_then(|p| p.parse::<u16>().ok()) {
                    let _ = url.set_port(Some(port));
                }
            }
        }
        "hostname" => {
            let _ = url.set_host(Some(value));
        }
        "port" => {
            let port = if value.is_empty() {
                None
            } else {
                match value.parse::<u16>() {
                    Ok(p) => Some(p),
                    Err(_) => return Ok(url_parts(&url)),
                }
            };
            let _ = url.set_port(port);
        }
        "pathname" => url.set_path(value),
        "search" => url.set_query(Some(value.trim_start_matches('?')).filter(|q| !q.is_empty())),
        "hash" => url.set_fragment(Some(value.trim_start_matches('#')).filter(|f| !f.is_empty())),
        other => return Err(error("TypeError", format!("URL has no settable part {other:?}"))),
    }
    Ok(url_parts(&url))
}

fn url_parts(url: &url::Url) -> serde_json::Value {
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => String::new(),
    };
    let origin = url.origin().ascii_serialization();
    serde_json::json!({
        "href": url.as_str(),
        "origin": origin,
        "protocol": format!("{}:", url.scheme()),
        "username": url.username(),
        "password": url.password().unwrap_or(""),
        "host": host,
        "hostname": url.host_str().unwrap_or(""),
        "port": url.port().map(|p| p.to_string()).unwrap_or_default(),
        "pathname": url.path(),
        "search": url.query().filter(|q| !q.is_empty()).map(|q| format!("?{q}")).unwrap_or_default(),
        "hash": url.fragment().filter(|f| !f.is_empty()).map(|f| format!("#{f}")).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_and_macs_match_known_values() {
        assert_eq!(
            hex::encode(digest("SHA-256", b"abc").unwrap()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // RFC 4231 test case 2.
        assert_eq!(
            hex::encode(hmac("SHA-256", b"Jefe", b"what do ya want for nothing?").unwrap()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(digest("MD5", b"").unwrap_err().name, "NotSupportedError");
    }

    #[test]
    fn byte_strings_refuse_wide_chars() {
        assert_eq!(bytes_of("\u{0}\u{ff}", "x").unwrap(), vec![0, 255]);
        assert!(bytes_of("\u{100}", "x").is_err());
    }
}
