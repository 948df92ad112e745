//! The one error every service of the node returns: what kind of failure it is, a stable code
//! that clients match on, and a message that names the culprit.
//!
//! Services know nothing of HTTP: the [`Kind`] says what happened in the caller's terms (the
//! request is malformed, forbidden, conflicts with an earlier one, a peer misbehaved), and
//! `http::error` alone maps it to a status. Uses nothing else of the crate.

use std::borrow::Cow;

/// What kind of failure an [`Error`] is, in the terms a caller acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// The request is malformed or names something impossible: fix it, do not retry as is.
    Invalid,
    /// The request (or the code it carries) is over a size limit.
    TooLarge,
    /// The caller did not prove who it is (a missing, malformed, stale or expired auth signature).
    Unauthenticated,
    /// The caller is known and not allowed, or the key or network refuses this use.
    Forbidden,
    /// The key, action or endpoint named does not exist here.
    NotFound,
    /// The request conflicts with an earlier one or with the state of one-time material.
    Conflict,
    /// The request's own work ran out of time (an action over its wall time).
    TimedOut,
    /// The request was understood, and the work it asked for failed (an action threw).
    Failed,
    /// The node itself failed (storage, a thread): not the caller's fault.
    Internal,
    /// A peer, the allocator, the chain or a gateway answered wrongly or not at all.
    Upstream,
    /// Something the node waited on did not answer in time.
    UpstreamTimeout,
    /// Not now: the node is starting, busy, or out of stock; retry shortly.
    Unavailable,
    /// This caller sent more requests than its rate allows; retry after the given time.
    RateLimited,
    /// The node's storage for this kind of record is full, and stays full until its operator
    /// makes room.
    StorageFull,
}

/// A refusal or failure as a service reports it.
#[derive(Clone, Debug)]
pub struct Error {
    kind: Kind,
    code: Cow<'static, str>,
    message: String,
    logs: Vec<String>,
    retry_after: Option<u64>,
}

impl Error {
    /// An error of `kind` with a stable `code` and a human `message`.
    pub fn new(kind: Kind, code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self {
            kind,
            code: code.into(),
            message: message.into(),
            logs: Vec::new(),
            retry_after: None,
        }
    }

    /// `RATE_LIMITED`: the caller is over its request rate; retry after `retry_after_secs`.
    pub fn rate_limited(message: impl Into<String>, retry_after_secs: u64) -> Self {
        Self {
            retry_after: Some(retry_after_secs),
            ..Self::new(Kind::RateLimited, "RATE_LIMITED", message)
        }
    }

    /// `BUSY`: every slot of a bounded pool stayed taken while the request waited; worth
    /// retrying after `retry_after_secs` seconds.
    pub fn busy(message: impl Into<String>, retry_after_secs: u64) -> Self {
        Self {
            retry_after: Some(retry_after_secs),
            ..Self::new(Kind::Unavailable, "BUSY", message)
        }
    }

    /// `BAD_REQUEST`, with a message naming the bad field.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(Kind::Invalid, "BAD_REQUEST", message)
    }

    /// `INTERNAL`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(Kind::Internal, "INTERNAL", message)
    }

    /// `NOT_READY`: the root keys do not exist yet.
    pub fn not_ready() -> Self {
        Self::new(
            Kind::Unavailable,
            "NOT_READY",
            "the root keys do not exist yet (the network is still starting)",
        )
    }

    /// `CHAIN_UNAVAILABLE`: the chain did not answer.
    pub fn chain(e: sigil_chain::ChainError) -> Self {
        Self::new(Kind::Upstream, "CHAIN_UNAVAILABLE", e.to_string())
    }

    /// The same error, worth retrying after `retry_after_secs` seconds.
    pub fn with_retry_after(mut self, retry_after_secs: u64) -> Self {
        self.retry_after = Some(retry_after_secs);
        self
    }

    /// The same error carrying an action's console output.
    pub fn with_logs(mut self, logs: Vec<String>) -> Self {
        self.logs = logs;
        self
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The stable code.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The human message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Seconds after which a retry may succeed, for a refusal that is only "not now".
    pub fn retry_after(&self) -> Option<u64> {
        self.retry_after
    }

    /// The parts: kind, code, message, logs.
    pub fn into_parts(self) -> (Kind, String, String, Vec<String>) {
        (self.kind, self.code.into_owned(), self.message, self.logs)
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Error {}

/// Exactly `N` bytes of hex (`0x` optional) in field `field`.
pub fn hex_bytes<const N: usize>(field: &str, text: &str) -> Result<[u8; N], Error> {
    let raw = hex::decode(text.strip_prefix("0x").unwrap_or(text))
        .map_err(|e| Error::bad_request(format!("{field}: not hex ({e})")))?;
    let len = raw.len();
    raw.try_into()
        .map_err(|_| Error::bad_request(format!("{field}: {len} bytes, expected {N}")))
}

/// An error and its sources, on one line ("client error (Connect): tcp connect error: …").
pub(crate) fn source_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        out.push_str(": ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}
