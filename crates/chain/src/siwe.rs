//! Sign-In with Ethereum ([EIP-4361]) messages and Lit Protocol's `authSig` envelope.
//!
//! A client proves control of an Ethereum account by signing a SIWE message with
//! `personal_sign` ([EIP-191]) and sending the result as an [`AuthSig`]. This module parses and
//! renders SIWE text ([`SiweMessage`]), creates auth signatures with a local wallet
//! ([`AuthSig::create`]) and runs every check that needs no chain access ([`AuthSig::verify`]):
//! envelope shape, signature, domain, chain ID and validity window. Nonce freshness needs the
//! chain (Sigil nonces are recent block hashes), so the node checks it and reports
//! [`AuthError::StaleNonce`].
//!
//! Everything here reads untrusted input: parsing is strict, bounded in size
//! ([`MAX_MESSAGE_BYTES`], [`MAX_RESOURCES`]) and never panics. Times are unix seconds; the
//! RFC 3339 conversions ([`rfc3339`], [`parse_rfc3339`]) are written out here so the crate needs
//! no calendar dependency.
//!
//! [EIP-4361]: https://eips.ethereum.org/EIPS/eip-4361
//! [EIP-191]: https://eips.ethereum.org/EIPS/eip-191

use alloy::primitives::{Address, Signature};
use alloy::signers::local::PrivateKeySigner;
use alloy::signers::SignerSync;
use serde::{Deserialize, Serialize};

/// The only `derivedVia` value accepted: the signature is an EIP-191 `personal_sign`.
pub const DERIVED_VIA: &str = "web3.eth.personal.sign";

/// Largest accepted SIWE message, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024;

/// Most `Resources:` entries accepted in one SIWE message.
pub const MAX_RESOURCES: usize = 64;

/// How far a client's clock may run ahead of ours, in seconds, for `Issued At` and `Not Before`.
pub const CLOCK_SKEW_SECS: u64 = 60;

/// The only SIWE message version defined by EIP-4361.
const VERSION: &str = "1";

/// Ends the first line of every SIWE message, after the domain.
const HEADER_SUFFIX: &str = " wants you to sign in with your Ethereum account:";

/// Longest piece of offending input quoted back in an error message, in characters.
const QUOTE_CHARS: usize = 64;

/// Why an auth signature was rejected.
///
/// Each variant has a stable [`code`](AuthError::code) for HTTP responses; the `Display` text
/// is meant for the person who signed, with times shown as RFC 3339.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthError {
    /// The envelope or the SIWE message does not have the required shape; the text says which
    /// field or line is wrong.
    #[error("malformed authSig: {0}")]
    Malformed(String),
    /// The signature does not prove control of the claimed address.
    #[error("authSig signature does not match {claimed}: it recovers to {}", show_recovered(.recovered))]
    BadSignature {
        /// The address the authSig claims to be from.
        claimed: Address,
        /// The address the signature actually recovers to, if it recovers at all.
        recovered: Option<Address>,
    },
    /// The message was signed for another site or service.
    #[error("authSig is for domain {got:?}, but this node expects {expected:?}")]
    WrongDomain {
        /// The message's domain.
        got: String,
        /// The domain this node serves.
        expected: String,
    },
    /// The message was signed for another chain.
    #[error("authSig is for chain ID {got}, but this node expects chain ID {expected}")]
    WrongChain {
        /// The message's chain ID.
        got: u64,
        /// The chain ID this node serves.
        expected: u64,
    },
    /// The message's `Expiration Time` has passed.
    #[error("authSig expired at {} (now {})", rfc3339(*.at), rfc3339(*.now))]
    Expired {
        /// The message's expiration time, unix seconds.
        at: u64,
        /// The verifier's clock, unix seconds.
        now: u64,
    },
    /// The message's `Not Before` time has not arrived yet.
    #[error("authSig is not valid before {} (now {})", rfc3339(*.at), rfc3339(*.now))]
    NotYetValid {
        /// The message's not-before time, unix seconds.
        at: u64,
        /// The verifier's clock, unix seconds.
        now: u64,
    },
    /// The message claims to be issued later than now, beyond the allowed clock skew.
    #[error(
        "authSig was issued at {}, which is in the future (now {}); check the signer's clock",
        rfc3339(*.at),
        rfc3339(*.now)
    )]
    IssuedInFuture {
        /// The message's issued-at time, unix seconds.
        at: u64,
        /// The verifier's clock, unix seconds.
        now: u64,
    },
    /// The message's nonce is not (or no longer) accepted. Sigil nonces are recent block
    /// hashes, which the node checks against the chain. Holds the reason, naming the nonce.
    #[error("authSig nonce rejected: {0}; sign in again with a fresh nonce")]
    StaleNonce(String),
}

impl AuthError {
    /// A stable, machine-readable code for this error, used in HTTP responses.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Malformed(_) => "AUTH_MALFORMED",
            AuthError::BadSignature { .. } => "AUTH_BAD_SIGNATURE",
            AuthError::WrongDomain { .. } => "AUTH_WRONG_DOMAIN",
            AuthError::WrongChain { .. } => "AUTH_WRONG_CHAIN",
            AuthError::Expired { .. } => "AUTH_EXPIRED",
            AuthError::NotYetValid { .. } => "AUTH_NOT_YET_VALID",
            AuthError::IssuedInFuture { .. } => "AUTH_ISSUED_IN_FUTURE",
            AuthError::StaleNonce(_) => "AUTH_STALE_NONCE",
        }
    }
}

fn show_recovered(recovered: &Option<Address>) -> String {
    match recovered {
        Some(address) => address.to_string(),
        None => "no address (the signature is invalid)".to_owned(),
    }
}

/// Lit Protocol's `authSig`: a SIWE message and its EIP-191 signature, as sent on the wire.
///
/// JSON shape (camelCase): `{"sig": "0x…", "derivedVia": "web3.eth.personal.sign",
/// "signedMessage": "<SIWE text>", "address": "0x…"}`. Unknown fields (such as Lit's `algo`)
/// are ignored.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AuthSig {
    /// The 65-byte signature `r ‖ s ‖ v` as 0x-prefixed hex.
    pub sig: String,
    /// How the signature was made; must be [`DERIVED_VIA`].
    pub derived_via: String,
    /// The exact SIWE text that was signed.
    pub signed_message: String,
    /// The signer's address as 0x-prefixed hex, in any letter case.
    pub address: String,
}

/// What a node requires of every auth signature it accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    /// The SIWE domain the node serves, compared byte for byte with the message's domain.
    pub domain: String,
    /// The chain the node serves.
    pub chain_id: u64,
}

/// An auth signature that passed every check in [`AuthSig::verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedAuth {
    /// The signer, proven by the signature.
    pub address: Address,
    /// The signed message.
    pub message: SiweMessage,
}

impl AuthSig {
    /// Signs a SIWE message with a local wallet (EIP-191 `personal_sign`).
    ///
    /// Fails with [`AuthError::Malformed`] if the message would not parse back to itself once
    /// rendered (for example an empty statement, a URI without a scheme, or a line break inside
    /// a field), so every auth signature this makes is one [`AuthSig::verify`] can read.
    pub fn create(signer: &PrivateKeySigner, message: &SiweMessage) -> Result<Self, AuthError> {
        let text = message.render();
        let reparsed = SiweMessage::parse(&text)?;
        if reparsed != *message {
            return Err(AuthError::Malformed(format!(
                "the message does not read back as itself once rendered; differing fields: {}",
                message.differing_fields(&reparsed).join(", ")
            )));
        }
        let signature = signer
            .sign_message_sync(text.as_bytes())
            .map_err(|err| AuthError::Malformed(format!("signing the SIWE message failed: {err}")))?;
        Ok(AuthSig {
            sig: format!("0x{}", hex::encode(signature.as_bytes())),
            derived_via: DERIVED_VIA.to_owned(),
            signed_message: text,
            address: message.address.to_checksum(None),
        })
    }

    /// Checks everything that needs no chain access, and returns the signer and the message.
    ///
    /// In order: `derivedVia` is [`DERIVED_VIA`] and the message parses ([`AuthError::Malformed`]);
    /// the signature recovers (EIP-191) to the message's address and the `address` field names
    /// that same address in any case ([`AuthError::BadSignature`]); the domain and chain ID are
    /// the expected ones ([`AuthError::WrongDomain`], [`AuthError::WrongChain`]); an
    /// `Expiration Time` is present ([`AuthError::Malformed`]) and later than `now`
    /// ([`AuthError::Expired`]); `Not Before` and `Issued At` are no later than `now` plus
    /// [`CLOCK_SKEW_SECS`] ([`AuthError::NotYetValid`], [`AuthError::IssuedInFuture`]).
    ///
    /// `now` is unix seconds. The nonce is not checked here; see [`AuthError::StaleNonce`].
    pub fn verify(&self, expected: &Expected, now: u64) -> Result<VerifiedAuth, AuthError> {
        if self.derived_via != DERIVED_VIA {
            return Err(AuthError::Malformed(format!(
                "derivedVia is {}, expected {DERIVED_VIA:?}",
                quote(&self.derived_via)
            )));
        }
        let message = SiweMessage::parse(&self.signed_message)?;
        let address_field = parse_address_any_case(&self.address)
            .map_err(|why| AuthError::Malformed(format!("address field: {why}")))?;
        let signature = parse_signature(&self.sig)?;

        let recovered = signature.recover_address_from_msg(self.signed_message.as_bytes()).ok();
        if recovered != Some(message.address) {
            return Err(AuthError::BadSignature {
                claimed: message.address,
                recovered,
            });
        }
        if address_field != message.address {
            return Err(AuthError::BadSignature {
                claimed: address_field,
                recovered,
            });
        }

        if message.domain != expected.domain {
            return Err(AuthError::WrongDomain {
                got: message.domain,
                expected: expected.domain.clone(),
            });
        }
        if message.chain_id != expected.chain_id {
            return Err(AuthError::WrongChain {
                got: message.chain_id,
                expected: expected.chain_id,
            });
        }

        let Some(expiration_time) = message.expiration_time else {
            return Err(AuthError::Malformed(
                "the SIWE message has no Expiration Time line; Sigil requires one".to_owned(),
            ));
        };
        if expiration_time <= now {
            return Err(AuthError::Expired {
                at: expiration_time,
                now,
            });
        }
        let latest = now.saturating_add(CLOCK_SKEW_SECS);
        if let Some(not_before) = message.not_before {
            if not_before > latest {
                return Err(AuthError::NotYetValid { at: not_before, now });
            }
        }
        if message.issued_at > latest {
            return Err(AuthError::IssuedInFuture {
                at: message.issued_at,
                now,
            });
        }

        Ok(VerifiedAuth {
            address: message.address,
            message,
        })
    }
}

/// A parsed EIP-4361 (Sign-In with Ethereum) message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiweMessage {
    /// The authority asking for the sign-in (`host[:port]`), exactly as it precedes
    /// " wants you to sign in…" on the first line, so an optional `scheme://` prefix is part of it.
    pub domain: String,
    /// The signing account; written EIP-55 checksummed in the text.
    pub address: Address,
    /// A human-readable statement, one line, non-empty when present.
    pub statement: Option<String>,
    /// The RFC 3986 URI the sign-in is for (Lit puts its session key here).
    pub uri: String,
    /// The message version; always "1".
    pub version: String,
    /// The EIP-155 chain ID the sign-in is bound to.
    pub chain_id: u64,
    /// Anti-replay nonce: at least 8 ASCII letters or digits, optionally after "0x" (Sigil uses a
    /// recent block hash).
    pub nonce: String,
    /// When the message was issued, unix seconds (fractional seconds in the text are dropped).
    pub issued_at: u64,
    /// When the message stops being valid, unix seconds.
    pub expiration_time: Option<u64>,
    /// When the message starts being valid, unix seconds.
    pub not_before: Option<u64>,
    /// A system-specific request identifier (RFC 3986 `pchar`s, possibly empty).
    pub request_id: Option<String>,
    /// URIs the signer grants access to (Lit puts ReCap capabilities here).
    pub resources: Vec<String>,
}

impl SiweMessage {
    /// Parses EIP-4361 text, following the specification's line order strictly.
    ///
    /// Lines end with LF. The one leniency is the statement, which may hold any characters
    /// except control characters, as wallets and reference parsers allow. Errors are
    /// [`AuthError::Malformed`] and name the offending line and field.
    pub fn parse(text: &str) -> Result<Self, AuthError> {
        if text.len() > MAX_MESSAGE_BYTES {
            return Err(AuthError::Malformed(format!(
                "the SIWE message is {} bytes, more than the limit of {MAX_MESSAGE_BYTES}",
                text.len()
            )));
        }
        if text.contains('\r') {
            return Err(AuthError::Malformed(
                "the SIWE message contains a carriage return; lines must end with LF only".to_owned(),
            ));
        }
        let mut lines = Lines::new(text);

        let (n, header) = lines.next("header")?;
        let domain = header.strip_suffix(HEADER_SUFFIX).ok_or_else(|| {
            at_line(
                n,
                format!("expected \"<domain>{HEADER_SUFFIX}\", found {}", quote(header)),
            )
        })?;
        check_domain(domain).map_err(|why| at_line(n, why))?;

        let (n, address_line) = lines.next("address")?;
        let address = parse_checksummed_address(address_line).map_err(|why| at_line(n, why))?;
        lines.empty("address")?;

        let (n, line) = lines.next("statement")?;
        let statement = if line.is_empty() {
            None
        } else if line.starts_with("URI: ") {
            return Err(at_line(
                n,
                "expected an empty line before the URI line; without a statement EIP-4361 puts \
                 two empty lines after the address"
                    .to_owned(),
            ));
        } else {
            check_statement(line).map_err(|why| at_line(n, why))?;
            lines.empty("statement")?;
            Some(line.to_owned())
        };

        let (n, uri) = lines.field("URI")?;
        check_uri(uri).map_err(|why| at_line(n, format!("URI: {why}")))?;

        let (n, version) = lines.field("Version")?;
        if version != VERSION {
            return Err(at_line(
                n,
                format!("Version is {}, expected \"{VERSION}\"", quote(version)),
            ));
        }

        let (n, chain_id) = lines.field("Chain ID")?;
        let chain_id = parse_chain_id(chain_id).map_err(|why| at_line(n, format!("Chain ID: {why}")))?;

        let (n, nonce) = lines.field("Nonce")?;
        check_nonce(nonce).map_err(|why| at_line(n, format!("Nonce: {why}")))?;

        let (n, issued_at) = lines.field("Issued At")?;
        let issued_at = parse_time_field(n, "Issued At", issued_at)?;

        let expiration_time = match lines.optional_field("Expiration Time") {
            Some((n, value)) => Some(parse_time_field(n, "Expiration Time", value)?),
            None => None,
        };
        let not_before = match lines.optional_field("Not Before") {
            Some((n, value)) => Some(parse_time_field(n, "Not Before", value)?),
            None => None,
        };
        let request_id = match lines.optional_field("Request ID") {
            Some((n, value)) => {
                check_request_id(value).map_err(|why| at_line(n, format!("Request ID: {why}")))?;
                Some(value.to_owned())
            }
            None => None,
        };

        let mut resources = Vec::new();
        if lines.peek() == Some("Resources:") {
            lines.skip();
            while let Some((n, line)) = lines.next_line() {
                let resource = line.strip_prefix("- ").ok_or_else(|| {
                    at_line(
                        n,
                        format!("expected a resource line \"- <URI>\", found {}", quote(line)),
                    )
                })?;
                if resources.len() == MAX_RESOURCES {
                    return Err(at_line(n, format!("more than {MAX_RESOURCES} resources")));
                }
                check_uri(resource).map_err(|why| at_line(n, format!("resource: {why}")))?;
                resources.push(resource.to_owned());
            }
        }

        if let Some((n, line)) = lines.next_line() {
            return Err(at_line(
                n,
                format!(
                    "unexpected line {}; after \"Issued At\" EIP-4361 allows only Expiration Time, \
                     Not Before, Request ID and Resources, in that order, and nothing after them",
                    quote(line)
                ),
            ));
        }

        Ok(SiweMessage {
            domain: domain.to_owned(),
            address,
            statement,
            uri: uri.to_owned(),
            version: version.to_owned(),
            chain_id,
            nonce: nonce.to_owned(),
            issued_at,
            expiration_time,
            not_before,
            request_id,
            resources,
        })
    }

    /// Renders the exact EIP-4361 text: EIP-55 checksummed address, times as
    /// `YYYY-MM-DDTHH:MM:SSZ`, no trailing newline.
    ///
    /// `parse(&m.render()) == Ok(m)` for every message [`AuthSig::create`] accepts. An empty
    /// statement renders as no statement.
    pub fn render(&self) -> String {
        let mut lines: Vec<String> = vec![
            format!("{}{HEADER_SUFFIX}", self.domain),
            self.address.to_checksum(None),
            String::new(),
        ];
        if let Some(statement) = self.statement.as_deref().filter(|s| !s.is_empty()) {
            lines.push(statement.to_owned());
        }
        lines.push(String::new());
        lines.push(format!("URI: {}", self.uri));
        lines.push(format!("Version: {}", self.version));
        lines.push(format!("Chain ID: {}", self.chain_id));
        lines.push(format!("Nonce: {}", self.nonce));
        lines.push(format!("Issued At: {}", rfc3339(self.issued_at)));
        if let Some(at) = self.expiration_time {
            lines.push(format!("Expiration Time: {}", rfc3339(at)));
        }
        if let Some(at) = self.not_before {
            lines.push(format!("Not Before: {}", rfc3339(at)));
        }
        if let Some(request_id) = &self.request_id {
            lines.push(format!("Request ID: {request_id}"));
        }
        if !self.resources.is_empty() {
            lines.push("Resources:".to_owned());
            lines.extend(self.resources.iter().map(|resource| format!("- {resource}")));
        }
        lines.join("\n")
    }

    /// Names the fields in which `self` and `other` differ.
    fn differing_fields(&self, other: &SiweMessage) -> Vec<&'static str> {
        let checks = [
            ("domain", self.domain == other.domain),
            ("address", self.address == other.address),
            ("statement", self.statement == other.statement),
            ("uri", self.uri == other.uri),
            ("version", self.version == other.version),
            ("chain_id", self.chain_id == other.chain_id),
            ("nonce", self.nonce == other.nonce),
            ("issued_at", self.issued_at == other.issued_at),
            ("expiration_time", self.expiration_time == other.expiration_time),
            ("not_before", self.not_before == other.not_before),
            ("request_id", self.request_id == other.request_id),
            ("resources", self.resources == other.resources),
        ];
        checks.iter().filter(|(_, same)| !same).map(|(name, _)| *name).collect()
    }
}

/// The lines of a SIWE message, numbered from 1.
struct Lines<'a> {
    inner: std::iter::Peekable<std::iter::Enumerate<std::str::Split<'a, char>>>,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Self {
        Lines {
            inner: text.split('\n').enumerate().peekable(),
        }
    }

    fn next_line(&mut self) -> Option<(usize, &'a str)> {
        self.inner.next().map(|(idx, line)| (idx + 1, line))
    }

    fn peek(&mut self) -> Option<&'a str> {
        self.inner.peek().map(|(_, line)| *line)
    }

    fn skip(&mut self) {
        self.inner.next();
    }

    /// The next line, which must exist because the `what` line is required.
    fn next(&mut self, what: &str) -> Result<(usize, &'a str), AuthError> {
        self.next_line()
            .ok_or_else(|| AuthError::Malformed(format!("the SIWE message ends before its {what} line")))
    }

    /// The empty line that must follow the `after` line.
    fn empty(&mut self, after: &str) -> Result<(), AuthError> {
        let (n, line) = self.next(&format!("empty line after the {after}"))?;
        if line.is_empty() {
            Ok(())
        } else {
            Err(at_line(
                n,
                format!("expected an empty line after the {after}, found {}", quote(line)),
            ))
        }
    }

    /// The value of the required `name: value` line.
    fn field(&mut self, name: &str) -> Result<(usize, &'a str), AuthError> {
        let (n, line) = self.next(&format!("\"{name}\""))?;
        let value = field_value(line, name)
            .ok_or_else(|| at_line(n, format!("expected \"{name}: <value>\", found {}", quote(line))))?;
        Ok((n, value))
    }

    /// The value of the optional `name: value` line, consumed only if it is next.
    fn optional_field(&mut self, name: &str) -> Option<(usize, &'a str)> {
        let (idx, line) = self.inner.peek().copied()?;
        let value = field_value(line, name)?;
        self.skip();
        Some((idx + 1, value))
    }
}

fn field_value<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.strip_prefix(name)?.strip_prefix(": ")
}

fn at_line(n: usize, why: String) -> AuthError {
    AuthError::Malformed(format!("SIWE message line {n}: {why}"))
}

/// Quotes untrusted text for an error message, escaped and cut to [`QUOTE_CHARS`].
fn quote(text: &str) -> String {
    match text.char_indices().nth(QUOTE_CHARS) {
        Some((cut, _)) => format!("{:?}…", text.get(..cut).unwrap_or_default()),
        None => format!("{text:?}"),
    }
}

fn is_unreserved(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~')
}

fn is_sub_delim(c: char) -> bool {
    matches!(c, '!' | '$' | '&' | '\'' | '(' | ')' | '*' | '+' | ',' | ';' | '=')
}

/// RFC 3986 `pchar` (with `%` standing in for percent-encoding).
fn is_pchar(c: char) -> bool {
    is_unreserved(c) || is_sub_delim(c) || matches!(c, '%' | ':' | '@')
}

/// Any character that can appear in an RFC 3986 URI.
fn is_uri_char(c: char) -> bool {
    is_pchar(c) || matches!(c, '/' | '?' | '#' | '[' | ']')
}

fn check_domain(domain: &str) -> Result<(), String> {
    if domain.is_empty() {
        return Err("the domain before \" wants you to sign in\" is empty".to_owned());
    }
    // An RFC 3986 authority, optionally preceded by `scheme://`.
    match domain.chars().find(|c| !(is_pchar(*c) || matches!(c, '/' | '[' | ']'))) {
        Some(bad) => Err(format!(
            "domain {} contains {bad:?}, which cannot appear in a domain",
            quote(domain)
        )),
        None => Ok(()),
    }
}

fn check_statement(statement: &str) -> Result<(), String> {
    match statement.chars().find(|c| c.is_control()) {
        Some(bad) => Err(format!("statement contains the control character {bad:?}")),
        None => Ok(()),
    }
}

fn check_uri(uri: &str) -> Result<(), String> {
    let Some((scheme, _)) = uri.split_once(':') else {
        return Err(format!(
            "{} is not a URI: it has no scheme (like \"https:\")",
            quote(uri)
        ));
    };
    let mut scheme_chars = scheme.chars();
    let scheme_ok = scheme_chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && scheme_chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok {
        return Err(format!(
            "{} is not a URI: its scheme {} is invalid",
            quote(uri),
            quote(scheme)
        ));
    }
    match uri.chars().find(|c| !is_uri_char(*c)) {
        Some(bad) => Err(format!("{} is not a URI: it contains {bad:?}", quote(uri))),
        None => Ok(()),
    }
}

fn check_request_id(request_id: &str) -> Result<(), String> {
    match request_id.chars().find(|c| !is_pchar(*c)) {
        Some(bad) => Err(format!(
            "{} contains {bad:?}, which is not an RFC 3986 pchar",
            quote(request_id)
        )),
        None => Ok(()),
    }
}

fn check_nonce(nonce: &str) -> Result<(), String> {
    let alphanumeric = |s: &str| s.len() >= 8 && s.chars().all(|c| c.is_ascii_alphanumeric());
    if alphanumeric(nonce) || nonce.strip_prefix("0x").is_some_and(alphanumeric) {
        Ok(())
    } else {
        Err(format!(
            "{} is not a valid nonce: expected at least 8 ASCII letters or digits, optionally after \"0x\"",
            quote(nonce)
        ))
    }
}

fn parse_chain_id(text: &str) -> Result<u64, String> {
    let canonical =
        !text.is_empty() && text.chars().all(|c| c.is_ascii_digit()) && (text == "0" || !text.starts_with('0'));
    if !canonical {
        return Err(format!("{} is not a decimal number without leading zeros", quote(text)));
    }
    text.parse()
        .map_err(|_| format!("{} does not fit in 64 bits", quote(text)))
}

fn parse_time_field(n: usize, name: &str, value: &str) -> Result<u64, AuthError> {
    parse_time(value).map_err(|why| at_line(n, format!("{name}: {why}")))
}

/// Parses 0x-prefixed hex of exactly 20 bytes, in any letter case.
fn parse_address_any_case(text: &str) -> Result<Address, String> {
    let bad = || format!("{} is not a 0x-prefixed 20-byte hex address", quote(text));
    let digits = text.strip_prefix("0x").ok_or_else(bad)?;
    if digits.len() != 40 {
        return Err(bad());
    }
    let bytes = hex::decode(digits).map_err(|_| bad())?;
    let bytes: [u8; 20] = bytes.as_slice().try_into().map_err(|_| bad())?;
    Ok(Address::from(bytes))
}

/// Parses an address that must be written with its EIP-55 checksum.
fn parse_checksummed_address(text: &str) -> Result<Address, String> {
    let address = parse_address_any_case(text)?;
    let checksummed = address.to_checksum(None);
    if text == checksummed {
        Ok(address)
    } else {
        Err(format!(
            "address {} is not EIP-55 checksummed (expected {checksummed})",
            quote(text)
        ))
    }
}

/// Parses the `sig` field: 0x-prefixed hex of `r ‖ s ‖ v`.
fn parse_signature(text: &str) -> Result<Signature, AuthError> {
    let bad = |why: &str| AuthError::Malformed(format!("sig {}: {why}", quote(text)));
    let digits = text.strip_prefix("0x").ok_or_else(|| bad("expected 0x-prefixed hex"))?;
    if digits.len() != 130 {
        return Err(bad("expected 65 bytes (130 hex digits)"));
    }
    let bytes = hex::decode(digits).map_err(|_| bad("not valid hex"))?;
    Signature::from_raw(&bytes).map_err(|err| bad(&format!("not an ECDSA signature: {err}")))
}

/// Formats unix seconds as RFC 3339 in UTC: `YYYY-MM-DDTHH:MM:SSZ`.
///
/// Instants after 9999-12-31T23:59:59Z print with a longer year, which [`parse_rfc3339`]
/// does not read.
pub fn rfc3339(unix: u64) -> String {
    // u64::MAX / 86_400 is far below i64::MAX, so the cast is exact.
    let days = (unix / 86_400) as i64;
    let secs_of_day = unix % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs_of_day / 3_600,
        secs_of_day % 3_600 / 60,
        secs_of_day % 60
    )
}

/// Parses an RFC 3339 date-time into unix seconds.
///
/// Accepts `YYYY-MM-DDTHH:MM:SS`, optional fractional seconds (dropped), then `Z` or a numeric
/// offset like `+02:00`; `t` and `z` may be lowercase. Rejects impossible dates, leap seconds
/// and instants before 1970 with [`AuthError::Malformed`].
pub fn parse_rfc3339(text: &str) -> Result<u64, AuthError> {
    parse_time(text).map_err(AuthError::Malformed)
}

fn parse_time(text: &str) -> Result<u64, String> {
    let bad = |why: &str| format!("{} is not an RFC 3339 time: {why}", quote(text));
    let form = "expected YYYY-MM-DDTHH:MM:SS followed by Z or an offset like +02:00";
    if text.len() > 64 {
        return Err(bad("too long"));
    }
    let b = text.as_bytes();
    let sep = |idx: usize, allowed: &[u8]| b.get(idx).is_some_and(|c| allowed.contains(c));
    let (Some(year), Some(month), Some(day), Some(hour), Some(minute), Some(second)) = (
        digits(b, 0, 4),
        digits(b, 5, 2),
        digits(b, 8, 2),
        digits(b, 11, 2),
        digits(b, 14, 2),
        digits(b, 17, 2),
    ) else {
        return Err(bad(form));
    };
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt") && sep(13, b":") && sep(16, b":")) {
        return Err(bad(form));
    }

    let mut rest = b.get(19..).unwrap_or_default();
    if let Some(fraction) = rest.strip_prefix(b".") {
        let n_digits = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if n_digits == 0 {
            return Err(bad("expected digits after the decimal point"));
        }
        rest = fraction.get(n_digits..).unwrap_or_default();
    }
    let offset_secs: i64 = match rest {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), ..] => {
            let (Some(off_hour), Some(off_minute)) = (digits(rest, 1, 2), digits(rest, 4, 2)) else {
                return Err(bad("expected an offset like +02:00"));
            };
            if rest.len() != 6 || rest.get(3) != Some(&b':') {
                return Err(bad("expected an offset like +02:00"));
            }
            if off_hour > 23 || off_minute > 59 {
                return Err(bad("offset out of range"));
            }
            let magnitude = i64::from(off_hour) * 3_600 + i64::from(off_minute) * 60;
            if *sign == b'+' {
                magnitude
            } else {
                -magnitude
            }
        }
        _ => return Err(bad("expected Z or an offset like +02:00 after the seconds")),
    };

    if !(1..=12).contains(&month) {
        return Err(bad("month out of range"));
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err(bad("no such day in that month"));
    }
    if hour > 23 || minute > 59 {
        return Err(bad("time of day out of range"));
    }
    if second > 59 {
        return Err(bad("seconds out of range (leap seconds are not accepted)"));
    }

    let local = days_from_civil(i64::from(year), month, day) * 86_400
        + i64::from(hour) * 3_600
        + i64::from(minute) * 60
        + i64::from(second);
    u64::try_from(local - offset_secs).map_err(|_| bad("before 1970-01-01T00:00:00Z"))
}

/// Reads `len` ASCII digits at `start` as a number.
fn digits(bytes: &[u8], start: usize, len: usize) -> Option<u32> {
    let field = bytes.get(start..start.checked_add(len)?)?;
    field.iter().try_fold(0u32, |acc, c| {
        c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
    })
}

fn is_leap_year(year: u32) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

    use super::*;

    /// Anvil's first development key and its address.
    const DEV_KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
    const DEV_ADDRESS: &str = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
    /// Anvil's second development key.
    const OTHER_KEY: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";

    /// 2026-11-21T10:00:00Z.
    const NOW: u64 = 1_795_255_200;
    const HOUR: u64 = 3_600;

    fn signer(key: &str) -> PrivateKeySigner {
        key.parse().unwrap()
    }

    fn expected() -> Expected {
        Expected {
            domain: "sigil.example".to_owned(),
            chain_id: 31_337,
        }
    }

    /// A message as Sigil's clients send it: block-hash nonce, Lit session URI, a ReCap resource.
    fn message() -> SiweMessage {
        SiweMessage {
            domain: "sigil.example".to_owned(),
            address: DEV_ADDRESS.parse().unwrap(),
            statement: Some("Sign in to Sigil.".to_owned()),
            uri: "lit:session:6a1f1e8a00b61867b85eaf329d6fdf855220ac3e32f44ec13e4db0dd303dea6a".to_owned(),
            version: "1".to_owned(),
            chain_id: 31_337,
            nonce: "0xfe88c94d860f01a17f961bf4bdfb6e0c6cd10d3fda5cc861e805ca1240c58553".to_owned(),
            issued_at: NOW - 60,
            expiration_time: Some(NOW + HOUR),
            not_before: None,
            request_id: None,
            resources: vec!["urn:recap:eyJhdHQiOnt9LCJwcmYiOltdfQ".to_owned()],
        }
    }

    #[test]
    fn the_dev_key_signs_for_the_dev_address() {
        assert_eq!(signer(DEV_KEY).address().to_checksum(None), DEV_ADDRESS);
    }

    fn sign(message: &SiweMessage) -> AuthSig {
        AuthSig::create(&signer(DEV_KEY), message).unwrap()
    }

    fn malformed(text: &str) -> String {
        match SiweMessage::parse(text) {
            Err(AuthError::Malformed(why)) => why,
            other => panic!("expected Malformed for {text:?}, got {other:?}"),
        }
    }

    /// Asserts that `text` is rejected as malformed with an explanation containing `needle`.
    fn check_malformed(text: &str, needle: &str) {
        let why = malformed(text);
        assert!(why.contains(needle), "error {why:?} should mention {needle:?}");
    }

    fn check_round_trip(message: &SiweMessage) {
        let text = message.render();
        assert_eq!(SiweMessage::parse(&text).as_ref(), Ok(message), "text:\n{text}");
    }

    const EIP_EXAMPLE: &str = "service.invalid wants you to sign in with your Ethereum account:
0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2

I accept the ServiceOrg Terms of Service: https://service.invalid/tos

URI: https://service.invalid/login
Version: 1
Chain ID: 1
Nonce: 32891756
Issued At: 2021-09-30T16:25:24Z
Resources:
- ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/
- https://example.com/my-web2-claim.json";

    // ---- parse / render ----

    #[test]
    fn parses_the_eip_example_field_by_field() {
        let m = SiweMessage::parse(EIP_EXAMPLE).unwrap();
        assert_eq!(m.domain, "service.invalid");
        assert_eq!(
            m.address.to_checksum(None),
            "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
        );
        assert_eq!(
            m.statement.as_deref(),
            Some("I accept the ServiceOrg Terms of Service: https://service.invalid/tos")
        );
        assert_eq!(m.uri, "https://service.invalid/login");
        assert_eq!(m.version, "1");
        assert_eq!(m.chain_id, 1);
        assert_eq!(m.nonce, "32891756");
        assert_eq!(m.issued_at, 1_633_019_124);
        assert_eq!(m.expiration_time, None);
        assert_eq!(m.not_before, None);
        assert_eq!(m.request_id, None);
        assert_eq!(
            m.resources,
            [
                "ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/",
                "https://example.com/my-web2-claim.json"
            ]
        );
        assert_eq!(m.render(), EIP_EXAMPLE);
    }

    #[test]
    fn renders_the_exact_text() {
        let mut m = message();
        m.statement = None;
        m.resources.clear();
        let text = m.render();
        assert_eq!(
            text,
            "sigil.example wants you to sign in with your Ethereum account:\n\
             0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266\n\
             \n\
             \n\
             URI: lit:session:6a1f1e8a00b61867b85eaf329d6fdf855220ac3e32f44ec13e4db0dd303dea6a\n\
             Version: 1\n\
             Chain ID: 31337\n\
             Nonce: 0xfe88c94d860f01a17f961bf4bdfb6e0c6cd10d3fda5cc861e805ca1240c58553\n\
             Issued At: 2026-11-21T09:59:00Z\n\
             Expiration Time: 2026-11-21T11:00:00Z"
        );
    }

    #[test]
    fn round_trip_with_statement_and_resources() {
        check_round_trip(&message());
    }

    #[test]
    fn round_trip_without_statement() {
        check_round_trip(&SiweMessage {
            statement: None,
            ..message()
        });
    }

    #[test]
    fn round_trip_with_every_optional_field() {
        check_round_trip(&SiweMessage {
            not_before: Some(NOW - 10),
            request_id: Some("req-42:abc@x".to_owned()),
            resources: vec![
                "ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/".to_owned(),
                "lit-litaction://*".to_owned(),
                "https://example.com/a?b=c#d".to_owned(),
            ],
            ..message()
        });
    }

    #[test]
    fn round_trip_with_minimal_fields() {
        check_round_trip(&SiweMessage {
            domain: "localhost:3000".to_owned(),
            statement: None,
            nonce: "abcdEFGH1234".to_owned(),
            expiration_time: None,
            request_id: Some(String::new()),
            resources: Vec::new(),
            ..message()
        });
    }

    #[test]
    fn parses_lit_style_messages_with_fractional_times_and_lowercase_nonce() {
        let text = "localhost:3002 wants you to sign in with your Ethereum account:
0xF75a0001F014204CecD8c84A838495352c06178B


URI: http://localhost:3002/
Version: 1
Chain ID: 1
Nonce: VSuoypVnDqyxL9DdV
Issued At: 2023-07-17T13:07:41.436Z
Expiration Time: 2023-07-18T13:07:41.371Z";
        let m = SiweMessage::parse(text).unwrap();
        assert_eq!(m.domain, "localhost:3002");
        assert_eq!(m.statement, None);
        assert_eq!(m.issued_at, 1_689_599_261);
        assert_eq!(m.expiration_time, Some(1_689_685_661));
    }

    #[test]
    fn accepts_nonces_with_and_without_0x() {
        for nonce in ["32891756", "0x1234567", "0x12345678", "VSuoypVnDqyxL9DdV"] {
            check_round_trip(&SiweMessage {
                nonce: nonce.to_owned(),
                ..message()
            });
        }
    }

    // ---- malformed messages ----

    fn with_line(text: &str, from: &str, to: &str) -> String {
        assert!(text.contains(from), "{from:?} not in the message");
        text.replacen(from, to, 1)
    }

    #[test]
    fn rejects_missing_lines() {
        let text = message().render();
        check_malformed("", "line 1");
        check_malformed(text.lines().next().unwrap(), "ends before its address line");
        check_malformed(
            &with_line(&text, "Version: 1\n", ""),
            "line 7: expected \"Version: <value>\"",
        );
        check_malformed(
            &with_line(&text, "Chain ID: 31337\n", ""),
            "expected \"Chain ID: <value>\"",
        );
        let no_issued_at = with_line(&text, "Issued At: 2026-11-21T09:59:00Z\n", "");
        check_malformed(&no_issued_at, "expected \"Issued At: <value>\"");
        let cut = &text[..text.find("\nNonce").unwrap()];
        check_malformed(cut, "ends before its \"Nonce\" line");
    }

    #[test]
    fn rejects_a_bad_header() {
        let text = message().render();
        check_malformed(
            &with_line(&text, " wants you", " want you"),
            "line 1: expected \"<domain> wants you",
        );
        check_malformed(&with_line(&text, "sigil.example", ""), "domain before");
        check_malformed(&with_line(&text, "sigil.example", "sigil example"), "contains ' '");
    }

    #[test]
    fn rejects_bad_addresses() {
        let text = message().render();
        let lower = with_line(&text, DEV_ADDRESS, &DEV_ADDRESS.to_lowercase());
        check_malformed(
            &lower,
            "not EIP-55 checksummed (expected 0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266)",
        );
        check_malformed(
            &with_line(&text, DEV_ADDRESS, "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb9226"),
            "line 2",
        );
        check_malformed(
            &with_line(&text, DEV_ADDRESS, "f39Fd6e51aad88F6F4ce6aB8827279cffFb92266"),
            "20-byte hex",
        );
        check_malformed(
            &with_line(&text, DEV_ADDRESS, "0xg39Fd6e51aad88F6F4ce6aB8827279cffFb92266"),
            "20-byte hex",
        );
    }

    #[test]
    fn rejects_bad_layout() {
        let text = message().render();
        check_malformed(
            &with_line(&text, "Sign in to Sigil.\n\n", "Sign in to Sigil.\n"),
            "line 5: expected an empty line after the statement",
        );
        let no_statement = SiweMessage {
            statement: None,
            ..message()
        }
        .render();
        check_malformed(
            &no_statement.replacen("\n\n\n", "\n\n", 1),
            "line 4: expected an empty line before the URI line",
        );
        check_malformed(&text.replace('\n', "\r\n"), "carriage return");
        let no_resources = SiweMessage {
            resources: Vec::new(),
            ..message()
        }
        .render();
        check_malformed(&format!("{no_resources}\n"), "line 12: unexpected line \"\"");
        check_malformed(
            &format!("{text}\n"),
            "line 14: expected a resource line \"- <URI>\", found \"\"",
        );
        let swapped = SiweMessage {
            not_before: Some(NOW),
            resources: Vec::new(),
            ..message()
        }
        .render();
        let swapped = swapped
            .replace("Expiration Time", "TMP")
            .replace("Not Before", "Expiration Time")
            .replace("TMP", "Not Before");
        check_malformed(&swapped, "unexpected line \"Expiration Time");
        check_malformed(&format!("{text}\n-urn:x"), "expected a resource line");
        check_malformed(
            &with_line(&text, "Sign in to Sigil.", "Sign in\tto Sigil."),
            "control character",
        );
    }

    #[test]
    fn rejects_bad_fields() {
        let text = message().render();
        check_malformed(
            &with_line(&text, "Version: 1", "Version: 2"),
            "Version is \"2\", expected \"1\"",
        );
        check_malformed(
            &with_line(&text, "Chain ID: 31337", "Chain ID: 0x7a69"),
            "Chain ID: \"0x7a69\" is not a decimal number",
        );
        check_malformed(&with_line(&text, "Chain ID: 31337", "Chain ID: +31337"), "Chain ID");
        check_malformed(
            &with_line(&text, "Chain ID: 31337", "Chain ID: 031337"),
            "leading zeros",
        );
        check_malformed(
            &with_line(&text, "Chain ID: 31337", "Chain ID: 18446744073709551616"),
            "64 bits",
        );
        check_malformed(&with_line(&text, "URI: lit:session:", "URI: "), "has no scheme");
        check_malformed(&with_line(&text, "URI: lit:session:", "URI: 1it:session:"), "scheme");
        check_malformed(
            &with_line(&text, "URI: lit:session:", "URI: lit:ses sion:"),
            "contains ' '",
        );
        let nonce = "0xfe88c94d860f01a17f961bf4bdfb6e0c6cd10d3fda5cc861e805ca1240c58553";
        check_malformed(
            &with_line(&text, nonce, "1234567"),
            "Nonce: \"1234567\" is not a valid nonce",
        );
        check_malformed(&with_line(&text, nonce, "0x"), "not a valid nonce");
        check_malformed(&with_line(&text, nonce, "abcd-efgh-ijkl"), "not a valid nonce");
        check_malformed(&with_line(&text, "urn:recap:", "urn recap:"), "resource");
        let request = SiweMessage {
            request_id: Some("ok".to_owned()),
            ..message()
        }
        .render();
        check_malformed(
            &with_line(&request, "Request ID: ok", "Request ID: not ok"),
            "Request ID",
        );
    }

    #[test]
    fn rejects_bad_times() {
        let text = message().render();
        let bad = |time: &str| with_line(&text, "2026-11-21T09:59:00Z", time);
        check_malformed(
            &bad("2026-11-21 09:59:00Z"),
            "line 10: Issued At: \"2026-11-21 09:59:00Z\" is not an RFC 3339 time",
        );
        check_malformed(&bad("2026-11-21T09:59:00"), "expected Z or an offset");
        check_malformed(&bad("2026-13-21T09:59:00Z"), "month out of range");
        check_malformed(&bad("2023-02-29T09:59:00Z"), "no such day");
        check_malformed(
            &with_line(&text, "Expiration Time: 2026-11-21T11:00:00Z", "Expiration Time: soon"),
            "Expiration Time: \"soon\"",
        );
    }

    #[test]
    fn rejects_huge_input() {
        let text = format!("{}\n- urn:{}", message().render(), "a".repeat(MAX_MESSAGE_BYTES));
        check_malformed(&text, "more than the limit of 8192");
        let many = SiweMessage {
            resources: (0..=MAX_RESOURCES).map(|i| format!("urn:r:{i}")).collect(),
            ..message()
        };
        check_malformed(&many.render(), "more than 64 resources");
        let enough = SiweMessage {
            resources: many.resources[..MAX_RESOURCES].to_vec(),
            ..message()
        };
        check_round_trip(&enough);
        let long_line = "x".repeat(5_000);
        let why = malformed(&long_line);
        assert!(why.len() < 300, "error quotes the input in full: {} bytes", why.len());
    }

    #[test]
    fn never_panics_on_mangled_input() {
        let text = SiweMessage {
            not_before: Some(NOW),
            request_id: Some("r".to_owned()),
            ..message()
        }
        .render();
        // Every prefix, on byte and char boundaries alike.
        for cut in 0..=text.len() {
            if let Some(prefix) = text.get(..cut) {
                let _ = SiweMessage::parse(prefix);
            }
        }
        // Deterministic byte substitutions, including multi-byte characters and control bytes.
        let replacements = ["", "\n", "\r", "é", "€", "\u{0}", ":", " ", "0", "-", "+", "Z", "."];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..5_000 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let at = (state >> 33) as usize % text.len();
            let with = replacements[(state >> 20) as usize % replacements.len()];
            let mut bytes = text.as_bytes().to_vec();
            bytes.splice(at..=at, with.bytes());
            if let Ok(mangled) = String::from_utf8(bytes) {
                let _ = SiweMessage::parse(&mangled);
                let auth = AuthSig {
                    signed_message: mangled,
                    ..sign(&message())
                };
                let _ = auth.verify(&expected(), NOW);
            }
        }
        let time = "2026-11-21T12:00:00.5+02:00";
        for cut in 0..=time.len() {
            let _ = parse_rfc3339(&time[..cut]);
        }
    }

    // ---- verify ----

    #[test]
    fn a_valid_auth_sig_verifies() {
        let auth = sign(&message());
        assert_eq!(auth.derived_via, "web3.eth.personal.sign");
        assert_eq!(auth.address, DEV_ADDRESS);
        assert_eq!(auth.sig.len(), 2 + 130);
        let verified = auth.verify(&expected(), NOW).unwrap();
        assert_eq!(verified.address, DEV_ADDRESS.parse::<Address>().unwrap());
        assert_eq!(verified.message, message());
    }

    #[test]
    fn the_wire_form_is_lits_camel_case_json() {
        let auth = sign(&message());
        let json = serde_json::to_value(&auth).unwrap();
        let keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 4);
        for key in ["sig", "derivedVia", "signedMessage", "address"] {
            assert!(keys.contains(&key), "missing {key}");
        }
        let back: AuthSig = serde_json::from_value(json).unwrap();
        assert_eq!(back, auth);
    }

    /// An authSig made by Lit's JS SDK in a browser wallet, with a lowercase `address` field.
    #[test]
    fn verifies_an_auth_sig_from_lits_sdk() {
        let json = r#"{
            "sig": "0x746c42ed63cecaba9d91376dfeddd76d825b0e16303512c7ac7f1d7e24c1466750a440aecd5d99add16ef30eab25930d6ebd9d4f06ac4f61eaef5b5797c3dac41b",
            "derivedVia": "web3.eth.personal.sign",
            "signedMessage": "localhost:3002 wants you to sign in with your Ethereum account:\n0xF75a0001F014204CecD8c84A838495352c06178B\n\n\nURI: http://localhost:3002/\nVersion: 1\nChain ID: 1\nNonce: VSuoypVnDqyxL9DdV\nIssued At: 2023-07-17T13:07:41.436Z\nExpiration Time: 2023-07-18T13:07:41.371Z",
            "address": "0xf75a0001f014204cecd8c84a838495352c06178b",
            "algo": null
        }"#;
        let auth: AuthSig = serde_json::from_str(json).unwrap();
        let expected = Expected {
            domain: "localhost:3002".to_owned(),
            chain_id: 1,
        };
        let verified = auth.verify(&expected, 1_689_600_000).unwrap();
        assert_eq!(
            verified.address.to_checksum(None),
            "0xF75a0001F014204CecD8c84A838495352c06178B"
        );
        assert_eq!(
            auth.verify(&expected, 1_689_685_661),
            Err(AuthError::Expired {
                at: 1_689_685_661,
                now: 1_689_685_661
            })
        );
    }

    #[test]
    fn expired() {
        let auth = sign(&message());
        let err = auth.verify(&expected(), NOW + HOUR + 300).unwrap_err();
        assert_eq!(
            err,
            AuthError::Expired {
                at: NOW + HOUR,
                now: NOW + HOUR + 300
            }
        );
        assert_eq!(
            err.to_string(),
            "authSig expired at 2026-11-21T11:00:00Z (now 2026-11-21T11:05:00Z)"
        );
        assert!(auth.verify(&expected(), NOW + HOUR - 1).is_ok());
    }

    #[test]
    fn missing_expiration_is_malformed() {
        let auth = sign(&SiweMessage {
            expiration_time: None,
            ..message()
        });
        let err = auth.verify(&expected(), NOW).unwrap_err();
        assert!(
            matches!(&err, AuthError::Malformed(why) if why.contains("no Expiration Time")),
            "{err:?}"
        );
    }

    #[test]
    fn not_yet_valid() {
        let auth = sign(&SiweMessage {
            not_before: Some(NOW + 61),
            ..message()
        });
        let err = auth.verify(&expected(), NOW).unwrap_err();
        assert_eq!(err, AuthError::NotYetValid { at: NOW + 61, now: NOW });
        assert_eq!(
            err.to_string(),
            "authSig is not valid before 2026-11-21T10:01:01Z (now 2026-11-21T10:00:00Z)"
        );
        // Within the allowed clock skew.
        let auth = sign(&SiweMessage {
            not_before: Some(NOW + 60),
            ..message()
        });
        assert!(auth.verify(&expected(), NOW).is_ok());
    }

    #[test]
    fn issued_in_future() {
        let auth = sign(&SiweMessage {
            issued_at: NOW + 61,
            ..message()
        });
        let err = auth.verify(&expected(), NOW).unwrap_err();
        assert_eq!(err, AuthError::IssuedInFuture { at: NOW + 61, now: NOW });
        assert!(err.to_string().contains("issued at 2026-11-21T10:01:01Z"), "{err}");
        let auth = sign(&SiweMessage {
            issued_at: NOW + 60,
            ..message()
        });
        assert!(auth.verify(&expected(), NOW).is_ok());
    }

    #[test]
    fn wrong_domain() {
        let auth = sign(&SiweMessage {
            domain: "evil.example".to_owned(),
            ..message()
        });
        let err = auth.verify(&expected(), NOW).unwrap_err();
        assert_eq!(
            err,
            AuthError::WrongDomain {
                got: "evil.example".to_owned(),
                expected: "sigil.example".to_owned()
            }
        );
        assert_eq!(
            err.to_string(),
            "authSig is for domain \"evil.example\", but this node expects \"sigil.example\""
        );
    }

    #[test]
    fn wrong_chain() {
        let auth = sign(&SiweMessage {
            chain_id: 1,
            ..message()
        });
        let err = auth.verify(&expected(), NOW).unwrap_err();
        assert_eq!(
            err,
            AuthError::WrongChain {
                got: 1,
                expected: 31_337
            }
        );
        assert_eq!(
            err.to_string(),
            "authSig is for chain ID 1, but this node expects chain ID 31337"
        );
    }

    #[test]
    fn message_altered_after_signing() {
        let mut auth = sign(&message());
        auth.signed_message = auth.signed_message.replace("Chain ID: 31337", "Chain ID: 1");
        let err = auth.verify(&expected(), NOW).unwrap_err();
        let AuthError::BadSignature {
            claimed,
            recovered: Some(recovered),
        } = err.clone()
        else {
            panic!("expected BadSignature with a recovered address, got {err:?}");
        };
        assert_eq!(claimed, DEV_ADDRESS.parse::<Address>().unwrap());
        assert_ne!(recovered, claimed);
        assert_eq!(
            err.to_string(),
            format!("authSig signature does not match {DEV_ADDRESS}: it recovers to {recovered}")
        );
    }

    #[test]
    fn signed_by_another_key() {
        let other = signer(OTHER_KEY);
        let auth = AuthSig::create(&other, &message()).unwrap();
        let err = auth.verify(&expected(), NOW).unwrap_err();
        assert_eq!(
            err,
            AuthError::BadSignature {
                claimed: DEV_ADDRESS.parse().unwrap(),
                recovered: Some(other.address())
            }
        );
    }

    #[test]
    fn address_field_differs_from_the_message() {
        let other = signer(OTHER_KEY).address();
        let auth = AuthSig {
            address: other.to_checksum(None),
            ..sign(&message())
        };
        assert_eq!(
            auth.verify(&expected(), NOW),
            Err(AuthError::BadSignature {
                claimed: other,
                recovered: Some(DEV_ADDRESS.parse().unwrap())
            })
        );
        // The address field may be in any letter case.
        let lower = AuthSig {
            address: DEV_ADDRESS.to_lowercase(),
            ..sign(&message())
        };
        assert!(lower.verify(&expected(), NOW).is_ok());
        let garbage = AuthSig {
            address: "me".to_owned(),
            ..sign(&message())
        };
        assert!(
            matches!(garbage.verify(&expected(), NOW), Err(AuthError::Malformed(why)) if why.contains("address field"))
        );
    }

    #[test]
    fn garbage_signatures() {
        let good = sign(&message());
        let with_sig = |sig: String| AuthSig { sig, ..good.clone() };
        for sig in [
            "",
            "0x",
            "zz",
            "0x1234",
            &format!("0x{}", "zz".repeat(65)),
            &good.sig[2..],
        ] {
            let err = with_sig(sig.to_owned()).verify(&expected(), NOW).unwrap_err();
            assert!(
                matches!(&err, AuthError::Malformed(why) if why.contains("sig")),
                "{sig:?}: {err:?}"
            );
        }
        // A recovery id outside 0, 1, 27, 28 (or EIP-155 values).
        let bad_v = format!("{}05", &good.sig[..good.sig.len() - 2]);
        assert!(matches!(
            with_sig(bad_v).verify(&expected(), NOW),
            Err(AuthError::Malformed(_))
        ));
        // Well-formed bytes that are no valid signature (r = s = 0) recover to nothing.
        let zero = format!("0x{}1b", "00".repeat(64));
        assert_eq!(
            with_sig(zero).verify(&expected(), NOW),
            Err(AuthError::BadSignature {
                claimed: DEV_ADDRESS.parse().unwrap(),
                recovered: None
            })
        );
    }

    #[test]
    fn wrong_derived_via_is_malformed() {
        let auth = AuthSig {
            derived_via: "cosmos.signArbitrary".to_owned(),
            ..sign(&message())
        };
        let err = auth.verify(&expected(), NOW).unwrap_err();
        assert!(
            matches!(&err, AuthError::Malformed(why) if why.contains("derivedVia")),
            "{err:?}"
        );
    }

    #[test]
    fn create_rejects_messages_that_do_not_read_back() {
        let key = signer(DEV_KEY);
        let empty_statement = SiweMessage {
            statement: Some(String::new()),
            ..message()
        };
        assert!(
            matches!(AuthSig::create(&key, &empty_statement), Err(AuthError::Malformed(why)) if why.contains("statement"))
        );
        let two_lines = SiweMessage {
            statement: Some("a\nb".to_owned()),
            ..message()
        };
        assert!(matches!(
            AuthSig::create(&key, &two_lines),
            Err(AuthError::Malformed(_))
        ));
        let no_uri = SiweMessage {
            uri: String::new(),
            ..message()
        };
        assert!(matches!(AuthSig::create(&key, &no_uri), Err(AuthError::Malformed(why)) if why.contains("URI")));
    }

    #[test]
    fn every_error_has_a_distinct_code() {
        let address = Address::ZERO;
        let errors = [
            AuthError::Malformed("x".to_owned()),
            AuthError::BadSignature {
                claimed: address,
                recovered: None,
            },
            AuthError::WrongDomain {
                got: "a".to_owned(),
                expected: "b".to_owned(),
            },
            AuthError::WrongChain { got: 1, expected: 2 },
            AuthError::Expired { at: 0, now: 1 },
            AuthError::NotYetValid { at: 1, now: 0 },
            AuthError::IssuedInFuture { at: 1, now: 0 },
            AuthError::StaleNonce("nonce 0x00 is not a block hash".to_owned()),
        ];
        let mut codes: Vec<&str> = errors.iter().map(AuthError::code).collect();
        assert!(codes.iter().all(|code| code.starts_with("AUTH_")));
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), errors.len());
        assert_eq!(
            errors[7].to_string(),
            "authSig nonce rejected: nonce 0x00 is not a block hash; sign in again with a fresh nonce"
        );
        assert_eq!(
            AuthError::BadSignature {
                claimed: address,
                recovered: None
            }
            .to_string(),
            "authSig signature does not match 0x0000000000000000000000000000000000000000: \
             it recovers to no address (the signature is invalid)"
        );
    }

    // ---- RFC 3339 ----

    fn check_time(text: &str, unix: u64) {
        assert_eq!(parse_rfc3339(text), Ok(unix), "{text}");
    }

    #[test]
    fn rfc3339_known_instants() {
        for (unix, text) in [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (946_684_799, "1999-12-31T23:59:59Z"),
            (1_633_019_124, "2021-09-30T16:25:24Z"),
            (1_709_164_800, "2024-02-29T00:00:00Z"),
            (4_107_542_400, "2100-03-01T00:00:00Z"),
            (NOW, "2026-11-21T10:00:00Z"),
            (253_402_300_799, "9999-12-31T23:59:59Z"),
        ] {
            assert_eq!(rfc3339(unix), text);
            check_time(text, unix);
        }
        // Far-future instants still format without overflow.
        assert!(rfc3339(u64::MAX).ends_with('Z'));
    }

    #[test]
    fn rfc3339_leap_days() {
        check_time("2000-02-29T12:00:00Z", 951_825_600);
        check_time("2024-03-01T00:00:00Z", 1_709_164_800 + 86_400);
        assert!(parse_rfc3339("2100-02-29T00:00:00Z").is_err());
        assert!(parse_rfc3339("2023-02-29T00:00:00Z").is_err());
        assert!(parse_rfc3339("2024-04-31T00:00:00Z").is_err());
    }

    #[test]
    fn rfc3339_offsets_and_fractions() {
        check_time("2026-11-21T12:00:00+02:00", NOW);
        check_time("2026-11-21T04:30:00-05:30", NOW);
        check_time("2026-11-21T10:00:00+00:00", NOW);
        check_time("2026-11-21T10:00:00-00:00", NOW);
        check_time("2026-11-21T10:00:00.999Z", NOW);
        check_time("2026-11-21T10:00:00.123456789Z", NOW);
        check_time("2026-11-21T12:00:00.5+02:00", NOW);
        check_time("2026-11-21t10:00:00z", NOW);
        check_time("1970-01-01T01:00:00+01:00", 0);
    }

    #[test]
    fn rfc3339_rejects_bad_text() {
        for text in [
            "",
            "2026-11-21",
            "2026-11-21T10:00Z",
            "2026-11-21T10:00:00",
            "2026-11-21T10:00:00.Z",
            "2026-11-21T10:00:00+0200",
            "2026-11-21T10:00:00+02",
            "2026-11-21T10:00:00+24:00",
            "2026-11-21T10:00:00+02:00Z",
            "2026-11-21T24:00:00Z",
            "2026-11-21T10:60:00Z",
            "2026-11-21T10:00:60Z",
            "2026-00-21T10:00:00Z",
            "2026-11-00T10:00:00Z",
            "+026-11-21T10:00:00Z",
            "2026-11-21T10:00:00ZZ",
            "1969-12-31T23:59:59Z",
            "1970-01-01T00:00:00+00:01",
            "２026-11-21T10:00:00Z",
        ] {
            let err = parse_rfc3339(text).unwrap_err();
            assert!(
                matches!(&err, AuthError::Malformed(why) if why.contains("is not an RFC 3339 time")),
                "{text:?}: {err:?}"
            );
        }
    }
}
