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
//! ([`MAX_MESSAGE_BYTES`], [`MAX_RESOURCES`]) before any field is read, and never panics. The
//! `siwe` crate reads and writes the EIP-4361 fields; this module adds what Sigil requires on
//! top (the empty lines around the statement, canonical text, nonce and request ID alphabets, no
//! control characters in the statement, an optional `scheme://` before the domain) and errors
//! that name the offending line. Times are unix seconds; [`rfc3339`] and [`parse_rfc3339`]
//! convert them with the `time` crate. Signatures are recovered with alloy, which also names
//! the address a wrong signature recovers to.
//!
//! [EIP-4361]: https://eips.ethereum.org/EIPS/eip-4361
//! [EIP-191]: https://eips.ethereum.org/EIPS/eip-191

use std::fmt::Display;
use std::str::FromStr;

use alloy::primitives::{Address, Signature};
use alloy::signers::local::PrivateKeySigner;
use alloy::signers::SignerSync;
use iri_string::types::UriString;
use serde::{Deserialize, Serialize};
use siwe::{ParseError, TimeStamp};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The only `derivedVia` value accepted: the signature is an EIP-191 `personal_sign`.
pub const DERIVED_VIA: &str = "web3.eth.personal.sign";

/// Largest accepted SIWE message, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024;

/// Most `Resources:` entries accepted in one SIWE message.
pub const MAX_RESOURCES: usize = 64;

/// How far a client's clock may run ahead of ours, in seconds, for `Issued At` and `Not Before`.
pub const CLOCK_SKEW_SECS: u64 = 60;

/// Ends the first line of every SIWE message, after the domain.
const HEADER_SUFFIX: &str = " wants you to sign in with your Ethereum account:";

/// Longest piece of offending input quoted back in an error message, in characters.
const QUOTE_CHARS: usize = 64;

/// The lines every message has after its statement, in this order.
const REQUIRED_FIELDS: [&str; 5] = ["URI", "Version", "Chain ID", "Nonce", "Issued At"];

/// The lines a message may have after `Issued At`, in this order, before `Resources:`.
const OPTIONAL_FIELDS: [&str; 3] = ["Expiration Time", "Not Before", "Request ID"];

/// Opens the list of resources, one `- <URI>` line each.
const RESOURCES_LINE: &str = "Resources:";

/// The last instant RFC 3339's four-digit years can write: 9999-12-31T23:59:59Z.
const LAST_RFC3339_SECOND: u64 = 253_402_300_799;

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
    /// Fails with [`AuthError::Malformed`] if the message cannot be rendered (a domain that is no
    /// RFC 3986 authority, a URI without a scheme, a time after 9999) or would not parse back to
    /// itself (an empty statement, a line break inside a field), so every auth signature this
    /// makes is one [`AuthSig::verify`] can read.
    pub fn create(signer: &PrivateKeySigner, message: &SiweMessage) -> Result<Self, AuthError> {
        let text = message
            .text()
            .map_err(|why| AuthError::Malformed(format!("the message cannot be written as EIP-4361 text: {why}")))?;
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
    /// Lines end with LF. The size and the number of resources are checked first, then the
    /// `siwe` crate reads the fields, and the text must be exactly what that crate writes for
    /// them (so `Chain ID: 031337` or a stray line is refused). Times may carry fractional seconds
    /// and offsets, as JavaScript's `toISOString` writes them; the one other leniency is the
    /// statement, which may hold any characters except control characters, as wallets and
    /// reference parsers allow. Errors are [`AuthError::Malformed`] and name the offending line
    /// and field.
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
        let layout = Layout::of(text)?;
        let message: siwe::Message = layout.body.parse().map_err(|err| layout.explain(err))?;
        layout.check_canonical(&message)?;
        layout.read(message)
    }

    /// Renders the exact EIP-4361 text with the `siwe` crate: EIP-55 checksummed address, times
    /// as `YYYY-MM-DDTHH:MM:SSZ`, no trailing newline.
    ///
    /// `parse(&m.render()) == Ok(m)` for every message [`AuthSig::create`] accepts. An empty
    /// statement renders as no statement. A message that has no EIP-4361 text (a domain that is
    /// no RFC 3986 authority, a URI or resource that is no URI, a version other than "1", a time
    /// after 9999) renders as a one-line explanation in parentheses, which no parser reads as a
    /// SIWE message; [`AuthSig::create`] refuses such a message with that explanation.
    pub fn render(&self) -> String {
        self.text()
            .unwrap_or_else(|why| format!("(no EIP-4361 text for this message: {why})"))
    }

    /// The EIP-4361 text of this message, or why it has none.
    fn text(&self) -> Result<String, String> {
        let (scheme, authority) = split_scheme(&self.domain)?;
        let message = siwe::Message {
            domain: parse_as("the domain", "an RFC 3986 authority", authority)?,
            address: self.address.into(),
            statement: self.statement.clone().filter(|statement| !statement.is_empty()),
            uri: parse_as("the URI", "an RFC 3986 URI", &self.uri)?,
            version: parse_as("the version", "\"1\"", &self.version)?,
            chain_id: self.chain_id,
            nonce: self.nonce.clone(),
            issued_at: timestamp("Issued At", self.issued_at)?,
            expiration_time: self
                .expiration_time
                .map(|at| timestamp("Expiration Time", at))
                .transpose()?,
            not_before: self.not_before.map(|at| timestamp("Not Before", at)).transpose()?,
            request_id: self.request_id.clone(),
            resources: self
                .resources
                .iter()
                .map(|resource| parse_as("the resource", "an RFC 3986 URI", resource))
                .collect::<Result<_, _>>()?,
        };
        Ok(match scheme {
            Some(scheme) => format!("{scheme}://{message}"),
            None => message.to_string(),
        })
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

/// Where the parts of a message's text are, found before the `siwe` crate reads it.
///
/// The crate skips the lines around the statement without looking at them, knows no
/// `scheme://` before the domain and names no line in its errors; this fills those gaps.
struct Layout<'a> {
    /// The lines of the whole text; line `n` (from 1) is `lines[n - 1]`.
    lines: Vec<&'a str>,
    /// The domain as written, with its scheme if it has one.
    domain: &'a str,
    /// The domain without its scheme: what the crate reads as an RFC 3986 authority.
    authority: &'a str,
    /// The text from the authority on (the text without `scheme://`): what the crate reads.
    body: &'a str,
    /// The index in `lines` of the `URI:` line, the first of [`REQUIRED_FIELDS`].
    fields_at: usize,
}

impl<'a> Layout<'a> {
    /// Checks the header, the empty lines around the statement and the number of resources.
    fn of(text: &'a str) -> Result<Self, AuthError> {
        let lines: Vec<&str> = text.split('\n').collect();
        let line = |idx: usize, what: &str| {
            lines
                .get(idx)
                .copied()
                .ok_or_else(|| AuthError::Malformed(format!("the SIWE message ends before its {what} line")))
        };
        let empty = |idx: usize, after: &str| {
            let found = line(idx, &format!("empty line after the {after}"))?;
            if found.is_empty() {
                Ok(())
            } else {
                Err(at_line(
                    idx + 1,
                    format!("expected an empty line after the {after}, found {}", quote(found)),
                ))
            }
        };

        let header = line(0, "header")?;
        let domain = header.strip_suffix(HEADER_SUFFIX).ok_or_else(|| {
            at_line(
                1,
                format!("expected \"<domain>{HEADER_SUFFIX}\", found {}", quote(header)),
            )
        })?;
        let (_, authority) = split_scheme(domain).map_err(|why| at_line(1, why))?;
        let body = text.get(domain.len() - authority.len()..).unwrap_or_default();

        line(1, "address")?;
        empty(2, "address")?;
        let statement = line(3, "statement")?;
        let fields_at = if statement.is_empty() {
            4
        } else if statement.starts_with("URI: ") {
            return Err(at_line(
                4,
                "expected an empty line before the URI line; without a statement EIP-4361 puts \
                 two empty lines after the address"
                    .to_owned(),
            ));
        } else {
            empty(4, "statement")?;
            5
        };

        if let Some(at) = lines.iter().skip(fields_at).position(|line| *line == RESOURCES_LINE) {
            let first = fields_at + at + 1;
            if lines.len().saturating_sub(first) > MAX_RESOURCES {
                return Err(at_line(
                    first + MAX_RESOURCES + 1,
                    format!("more than {MAX_RESOURCES} resources"),
                ));
            }
        }

        Ok(Layout {
            lines,
            domain,
            authority,
            body,
            fields_at,
        })
    }

    /// Line `n` (from 1), if the text has it.
    fn line(&self, n: usize) -> Option<&'a str> {
        self.lines.get(n.checked_sub(1)?).copied()
    }

    /// The line number of the required field `name` (one of [`REQUIRED_FIELDS`]), and its
    /// value if that line holds it.
    fn required(&self, name: &str) -> (usize, Option<&'a str>) {
        let idx = REQUIRED_FIELDS
            .iter()
            .position(|field| *field == name)
            .unwrap_or_default();
        let n = self.fields_at + idx + 1;
        let value = self
            .line(n)
            .and_then(|line| line.strip_prefix(name)?.strip_prefix(": "));
        (n, value)
    }

    /// The line number of the `name: value` line after the statement, and its value.
    fn field(&self, name: &str) -> Option<(usize, &'a str)> {
        let prefix = format!("{name}: ");
        (self.fields_at + 1..=self.lines.len()).find_map(|n| Some((n, self.line(n)?.strip_prefix(&prefix)?)))
    }

    /// Turns the crate's error into one that names the line and the field.
    fn explain(&self, err: ParseError) -> AuthError {
        match err {
            ParseError::Domain(err) => at_line(
                1,
                format!(
                    "the domain {} is not an RFC 3986 authority: {err}",
                    quote(self.authority)
                ),
            ),
            ParseError::Format(what) => self.explain_format(what),
            ParseError::Address(_) => self.explain_address(),
            ParseError::Uri(err) => self.explain_uri(&err),
            ParseError::TimeStamp(err) => self.explain_time(&err),
            ParseError::ParseIntError(err) => {
                let (n, value) = self.required("Chain ID");
                at_line(
                    n,
                    format!(
                        "Chain ID: {} is not a decimal number that fits in 64 bits: {err}",
                        quote(value.unwrap_or_default())
                    ),
                )
            }
            ParseError::Never(never) => match never {},
        }
    }

    /// Explains the crate's `Format` error, which holds either the tag of the line it expected
    /// or a short description.
    fn explain_format(&self, what: &str) -> AuthError {
        match what {
            "0x" | "Address is not in EIP-55 format" => self.explain_address(),
            "Bad Version" => {
                let (n, version) = self.required("Version");
                at_line(
                    n,
                    format!("Version is {}, expected \"1\"", quote(version.unwrap_or_default())),
                )
            }
            "Nonce must be longer than 8 characters" => {
                let (n, nonce) = self.required("Nonce");
                let why = check_nonce(nonce.unwrap_or_default()).err().unwrap_or_default();
                at_line(n, format!("Nonce: {why}"))
            }
            "Unexpected Content" => self.explain_unexpected(),
            "- " => {
                let (n, found) = self
                    .field_lines_after(RESOURCES_LINE)
                    .find(|(_, line)| !line.starts_with("- "))
                    .unwrap_or_default();
                at_line(
                    n,
                    format!("expected a resource line \"- <URI>\", found {}", quote(found)),
                )
            }
            _ => match REQUIRED_FIELDS
                .iter()
                .find(|name| what.strip_suffix(": ") == Some(**name))
            {
                Some(name) => {
                    let (n, _) = self.required(name);
                    match self.line(n) {
                        Some(found) => at_line(n, format!("expected \"{name}: <value>\", found {}", quote(found))),
                        None => AuthError::Malformed(format!("the SIWE message ends before its \"{name}\" line")),
                    }
                }
                None => AuthError::Malformed(format!("the SIWE message is not EIP-4361: {what}")),
            },
        }
    }

    /// The numbered lines after the first line equal to `marker` (none if there is no such line).
    fn field_lines_after(&self, marker: &str) -> impl Iterator<Item = (usize, &'a str)> + '_ {
        let from = (self.fields_at + 1..=self.lines.len())
            .find(|n| self.line(*n) == Some(marker))
            .map_or(self.lines.len() + 1, |n| n + 1);
        (from..=self.lines.len()).filter_map(move |n| Some((n, self.line(n)?)))
    }

    fn explain_address(&self) -> AuthError {
        let found = self.line(2).unwrap_or_default();
        let why = match parse_checksummed_address(found) {
            Err(why) => why,
            Ok(_) => format!("address {} is not accepted", quote(found)),
        };
        at_line(2, why)
    }

    /// Finds the first line after `Issued At` that is out of EIP-4361's order.
    fn explain_unexpected(&self) -> AuthError {
        let mut n = self.fields_at + REQUIRED_FIELDS.len() + 1;
        for name in OPTIONAL_FIELDS {
            if self.line(n).is_some_and(|line| line.starts_with(&format!("{name}: "))) {
                n += 1;
            }
        }
        let found = self.line(n).unwrap_or_default();
        at_line(
            n,
            format!(
                "unexpected line {}; after \"Issued At\" EIP-4361 allows only Expiration Time, \
                 Not Before, Request ID and Resources, in that order, and nothing after them",
                quote(found)
            ),
        )
    }

    fn explain_uri(&self, err: &impl Display) -> AuthError {
        if let Some((n, uri)) = self.field("URI") {
            if let Err(why) = parse_as::<UriString>("URI:", "an RFC 3986 URI", uri) {
                return at_line(n, why);
            }
        }
        for (n, line) in self.field_lines_after(RESOURCES_LINE) {
            let resource = line.strip_prefix("- ").unwrap_or(line);
            if let Err(why) = parse_as::<UriString>("resource", "an RFC 3986 URI", resource) {
                return at_line(n, why);
            }
        }
        AuthError::Malformed(format!("the SIWE message holds a URI that is not RFC 3986: {err}"))
    }

    fn explain_time(&self, err: &impl Display) -> AuthError {
        for name in ["Issued At", "Expiration Time", "Not Before"] {
            if let Some((n, value)) = self.field(name) {
                if let Err(why) = parse_time(value) {
                    return at_line(n, format!("{name}: {why}"));
                }
            }
        }
        AuthError::Malformed(format!("the SIWE message holds a time that is not RFC 3339: {err}"))
    }

    /// Requires the text to be what the crate writes for what it read.
    ///
    /// The one difference allowed is a `Resources:` line with no resources after it, which
    /// EIP-4361's grammar allows and which the crate does not write back.
    fn check_canonical(&self, message: &siwe::Message) -> Result<(), AuthError> {
        let written = message.to_string();
        if self.body == written || self.body.strip_suffix("\nResources:") == Some(written.as_str()) {
            return Ok(());
        }
        let mut found = self.body.split('\n');
        let mut expected = written.split('\n');
        let mut n = 1;
        loop {
            match (found.next(), expected.next()) {
                (Some(a), Some(b)) if a == b => n += 1,
                (None, None) => return Ok(()),
                (found, expected) => {
                    let show = |line: Option<&str>| line.map_or_else(|| "the end of the message".to_owned(), quote);
                    return Err(at_line(
                        n,
                        format!(
                            "expected {}, found {}; EIP-4361 writes each field one way",
                            show(expected),
                            show(found)
                        ),
                    ));
                }
            }
        }
    }

    /// Applies Sigil's rules to what the crate read, and converts it.
    fn read(&self, message: siwe::Message) -> Result<SiweMessage, AuthError> {
        if let Some(statement) = &message.statement {
            check_statement(statement).map_err(|why| at_line(4, why))?;
        }
        let (nonce_line, _) = self.required("Nonce");
        check_nonce(&message.nonce).map_err(|why| at_line(nonce_line, format!("Nonce: {why}")))?;
        if let Some(request_id) = &message.request_id {
            let n = self.field("Request ID").map_or(0, |(n, _)| n);
            check_request_id(request_id).map_err(|why| at_line(n, format!("Request ID: {why}")))?;
        }
        // The crate keeps each time as written; Sigil's reading of it (a "T" before the time,
        // 1970 to 9999) is `parse_rfc3339`'s.
        let time = |name: &str, at: &TimeStamp| {
            let n = self.field(name).map_or(0, |(n, _)| n);
            parse_time(&at.to_string()).map_err(|why| at_line(n, format!("{name}: {why}")))
        };
        Ok(SiweMessage {
            domain: self.domain.to_owned(),
            address: Address::from(message.address),
            issued_at: time("Issued At", &message.issued_at)?,
            expiration_time: message
                .expiration_time
                .as_ref()
                .map(|at| time("Expiration Time", at))
                .transpose()?,
            not_before: message
                .not_before
                .as_ref()
                .map(|at| time("Not Before", at))
                .transpose()?,
            statement: message.statement,
            uri: message.uri.into(),
            version: match message.version {
                siwe::Version::V1 => "1".to_owned(),
            },
            chain_id: message.chain_id,
            nonce: message.nonce,
            request_id: message.request_id,
            resources: message.resources.into_iter().map(String::from).collect(),
        })
    }
}

/// Splits an optional `scheme://` off a domain, checking the scheme.
fn split_scheme(domain: &str) -> Result<(Option<&str>, &str), String> {
    let Some((scheme, authority)) = domain.split_once("://") else {
        return Ok((None, domain));
    };
    let mut chars = scheme.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if valid {
        Ok((Some(scheme), authority))
    } else {
        Err(format!(
            "the domain's scheme {} is not an RFC 3986 scheme",
            quote(scheme)
        ))
    }
}

/// Parses `text` as a `T` of the `siwe` crate, or says why `what` is not `kind`.
fn parse_as<T>(what: &str, kind: &str, text: &str) -> Result<T, String>
where
    T: FromStr,
    T::Err: Display,
{
    text.parse()
        .map_err(|err| format!("{what} {} is not {kind}: {err}", quote(text)))
}

/// Unix seconds as the crate's time stamp, written without fractions.
fn timestamp(name: &str, unix: u64) -> Result<TimeStamp, String> {
    rfc3339(unix)
        .parse()
        .map_err(|_| format!("{name} {unix} is after 9999-12-31T23:59:59Z, the last time RFC 3339 can write"))
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

/// RFC 3986 `pchar` (with `%` standing in for percent-encoding).
fn is_pchar(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            '-' | '.' | '_' | '~' | '!' | '$' | '&' | '\'' | '(' | ')' | '*' | '+' | ',' | ';' | '=' | '%' | ':' | '@'
        )
}

fn check_statement(statement: &str) -> Result<(), String> {
    match statement.chars().find(|c| c.is_control()) {
        Some(bad) => Err(format!("statement contains the control character {bad:?}")),
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
/// Instants after 9999-12-31T23:59:59Z, which RFC 3339's four-digit years cannot write, print
/// as `unix time <seconds>`, which [`parse_rfc3339`] does not read.
pub fn rfc3339(unix: u64) -> String {
    i64::try_from(unix)
        .ok()
        .and_then(|secs| OffsetDateTime::from_unix_timestamp(secs).ok())
        .and_then(|at| at.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("unix time {unix}"))
}

/// Parses an RFC 3339 date-time into unix seconds.
///
/// Accepts `YYYY-MM-DDTHH:MM:SS`, optional fractional seconds (dropped), then `Z` or a numeric
/// offset like `+02:00`; `t` and `z` may be lowercase. A leap second (`23:59:60` at the end of a
/// month, UTC) reads as the second before it. Rejects impossible dates and instants before 1970
/// or after 9999 (UTC) with [`AuthError::Malformed`].
pub fn parse_rfc3339(text: &str) -> Result<u64, AuthError> {
    parse_time(text).map_err(AuthError::Malformed)
}

fn parse_time(text: &str) -> Result<u64, String> {
    let bad = |why: &dyn Display| format!("{} is not an RFC 3339 time: {why}", quote(text));
    if text.len() > 64 {
        return Err(bad(&"too long"));
    }
    let at = OffsetDateTime::parse(text, &Rfc3339).map_err(|err| match err {
        time::error::Parse::ParseFromDescription(_) => bad(&format!(
            "{err}; expected YYYY-MM-DDTHH:MM:SS, optional fractional seconds, then Z or an offset like +02:00"
        )),
        _ => bad(&err),
    })?;
    // `time` accepts any character between the date and the time; RFC 3339's `date-time`, which
    // EIP-4361 names, has only "T" (or "t").
    if !matches!(text.as_bytes().get(10), Some(b'T' | b't')) {
        return Err(bad(&"expected \"T\" between the date and the time"));
    }
    let unix = u64::try_from(at.unix_timestamp()).map_err(|_| bad(&"before 1970-01-01T00:00:00Z"))?;
    if unix > LAST_RFC3339_SECOND {
        return Err(bad(&"after 9999-12-31T23:59:59Z"));
    }
    Ok(unix)
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

    // ---- messages as Lit's JS clients write them ----
    //
    // Composed here in the shapes Lit's JS SDK writes (`createSiweMessage`,
    // `createSiweMessageWithRecaps`, capacity delegation, `signSessionKey`): times from
    // `toISOString` with milliseconds, a block-hash nonce, the ReCap sentence appended to the
    // statement, `lit:` URIs and `urn:recap:` resources.

    /// Checks a message as Lit's clients write it: the `siwe` crate writes it back byte for
    /// byte, it parses to `expected`, renders back to the same text but for the dropped
    /// fractional seconds, reads back to itself, and a `personal_sign` of the text by the dev key
    /// verifies at `now` with a lowercase `address` field, as the SDK sends it.
    fn check_lit(text: &str, expected: &SiweMessage, now: u64) {
        let crate_text = text.parse::<siwe::Message>().unwrap().to_string();
        assert_eq!(crate_text, text);
        let parsed = SiweMessage::parse(text).unwrap();
        assert_eq!(&parsed, expected);
        assert_eq!(parsed.render(), without_fractions(text));
        check_round_trip(&parsed);

        let signature = signer(DEV_KEY).sign_message_sync(text.as_bytes()).unwrap();
        let auth = AuthSig {
            sig: format!("0x{}", hex::encode(signature.as_bytes())),
            derived_via: DERIVED_VIA.to_owned(),
            signed_message: text.to_owned(),
            address: DEV_ADDRESS.to_lowercase(),
        };
        let expected_auth = Expected {
            domain: expected.domain.clone(),
            chain_id: expected.chain_id,
        };
        let verified = auth.verify(&expected_auth, now).unwrap();
        assert_eq!(verified.message, parsed);
    }

    /// The text with the fractional seconds of its times removed, as [`SiweMessage::render`]
    /// writes it.
    fn without_fractions(text: &str) -> String {
        let times = ["Issued At: ", "Expiration Time: ", "Not Before: "];
        text.split('\n')
            .map(|line| match line.rsplit_once('.') {
                Some((head, tail)) if times.iter().any(|tag| line.starts_with(tag)) => {
                    format!("{head}{}", tail.trim_start_matches(|c: char| c.is_ascii_digit()))
                }
                _ => line.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A Lit message with the fields most share; each test changes what its shape changes.
    fn lit_message(statement: &str) -> SiweMessage {
        SiweMessage {
            domain: "localhost".to_owned(),
            address: DEV_ADDRESS.parse().unwrap(),
            statement: Some(statement.to_owned()),
            uri: "lit:session:2ceea2a90af451a0622c2c887249922c1e83d2d22dd983de6afc001e069ba394".to_owned(),
            version: "1".to_owned(),
            chain_id: 1,
            nonce: "0xb7259dc3a26b64dc29047edc2d016e9751c50ae3658e28700e9a415a296e2880".to_owned(),
            issued_at: 1_772_439_330,
            expiration_time: Some(1_772_525_730),
            not_before: None,
            request_id: None,
            resources: Vec::new(),
        }
    }

    /// A wallet grants a session key the abilities to run actions and sign with PKPs, with
    /// the SDK's default statement (two spaces after its first sentence) and the ReCap sentence.
    #[test]
    fn lit_session_capability_from_a_wallet() {
        let text = "localhost wants you to sign in with your Ethereum account:
0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266

This is a test statement.  You can put anything you want here. I further authorize the stated URI to perform the following actions on my behalf: (1) 'Threshold': 'Execution' for 'lit-litaction://*'. (2) 'Threshold': 'Signing' for 'lit-pkp://*'.

URI: lit:session:2ceea2a90af451a0622c2c887249922c1e83d2d22dd983de6afc001e069ba394
Version: 1
Chain ID: 1
Nonce: 0xb7259dc3a26b64dc29047edc2d016e9751c50ae3658e28700e9a415a296e2880
Issued At: 2026-03-02T08:15:30.512Z
Expiration Time: 2026-03-03T08:15:30.498Z
Resources:
- urn:recap:eyJhdHQiOnsibGl0LWxpdGFjdGlvbjovLyoiOnsiVGhyZXNob2xkL0V4ZWN1dGlvbiI6W3t9XX0sImxpdC1wa3A6Ly8qIjp7IlRocmVzaG9sZC9TaWduaW5nIjpbe31dfX0sInByZiI6W119";
        let expected = SiweMessage {
            resources: vec!["urn:recap:eyJhdHQiOnsibGl0LWxpdGFjdGlvbjovLyoiOnsiVGhyZXNob2xkL0V4ZWN1dGlvbiI6W3t9XX0sImxpdC1wa3A6Ly8qIjp7IlRocmVzaG9sZC9TaWduaW5nIjpbe31dfX0sInByZiI6W119".to_owned()],
            ..lit_message(
                "This is a test statement.  You can put anything you want here. I further authorize the \
                 stated URI to perform the following actions on my behalf: (1) 'Threshold': 'Execution' \
                 for 'lit-litaction://*'. (2) 'Threshold': 'Signing' for 'lit-pkp://*'.",
            )
        };
        check_lit(text, &expected, 1_772_440_000);
    }

    /// A capacity credit owner delegates its credits: no statement of its own, so the ReCap
    /// sentence follows a single space, and the URI is `lit:capability:delegation`.
    #[test]
    fn lit_capacity_delegation() {
        let text = "localhost wants you to sign in with your Ethereum account:
0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266

 I further authorize the stated URI to perform the following actions on my behalf: (1) 'Auth': 'Auth' for 'lit-ratelimitincrease://4242'.

URI: lit:capability:delegation
Version: 1
Chain ID: 1
Nonce: 0x94e39ab60d4ea948dd8c8b1c38a6eb99405a01dbd1086d249806195690eb5794
Issued At: 2026-01-15T19:04:11.027Z
Expiration Time: 2026-01-22T19:04:11.025Z
Resources:
- urn:recap:eyJhdHQiOnsibGl0LXJhdGVsaW1pdGluY3JlYXNlOi8vNDI0MiI6eyJBdXRoL0F1dGgiOlt7ImRlbGVnYXRlX3RvIjpbIjcwOTk3OTcwYzUxODEyZGMzYTAxMGM3ZDAxYjUwZTBkMTdkYzc5YzgiXSwibmZ0X2lkIjpbIjQyNDIiXSwidXNlcyI6IjI1In1dfX0sInByZiI6W119";
        let expected = SiweMessage {
            uri: "lit:capability:delegation".to_owned(),
            nonce: "0x94e39ab60d4ea948dd8c8b1c38a6eb99405a01dbd1086d249806195690eb5794".to_owned(),
            issued_at: 1_768_503_851,
            expiration_time: Some(1_769_108_651),
            resources: vec!["urn:recap:eyJhdHQiOnsibGl0LXJhdGVsaW1pdGluY3JlYXNlOi8vNDI0MiI6eyJBdXRoL0F1dGgiOlt7ImRlbGVnYXRlX3RvIjpbIjcwOTk3OTcwYzUxODEyZGMzYTAxMGM3ZDAxYjUwZTBkMTdkYzc5YzgiXSwibmZ0X2lkIjpbIjQyNDIiXSwidXNlcyI6IjI1In1dfX0sInByZiI6W119".to_owned()],
            ..lit_message(
                " I further authorize the stated URI to perform the following actions on my behalf: \
                 (1) 'Auth': 'Auth' for 'lit-ratelimitincrease://4242'.",
            )
        };
        check_lit(text, &expected, 1_768_600_000);
    }

    /// A session the network grants a PKP (`signSessionKey`): `Issued At` in whole seconds,
    /// `Expiration Time` with milliseconds, and two ReCap resources, the first one empty.
    #[test]
    fn lit_pkp_session_from_the_network() {
        let text = "localhost:3000 wants you to sign in with your Ethereum account:
0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266

Lit Protocol PKP session signature I further authorize the stated URI to perform the following actions on my behalf: (1) 'Threshold': 'Signing' for 'lit-pkp://*'.

URI: lit:session:6d13ae02b1963634d1c6fbefb03befe29fb2b9520fea5c5ac7ce234d3f4cc20c
Version: 1
Chain ID: 1
Nonce: 0xbbcd0b69e968ad3169eebc775c418becc2056db2cc145784c1aaef2b4a1f0817
Issued At: 2026-05-20T06:00:00Z
Expiration Time: 2026-05-21T06:00:42.100Z
Resources:
- urn:recap:eyJhdHQiOnt9LCJwcmYiOltdfQ
- urn:recap:eyJhdHQiOnsibGl0LXBrcDovLyoiOnsiVGhyZXNob2xkL1NpZ25pbmciOlt7fV19fSwicHJmIjpbXX0";
        let expected = SiweMessage {
            domain: "localhost:3000".to_owned(),
            uri: "lit:session:6d13ae02b1963634d1c6fbefb03befe29fb2b9520fea5c5ac7ce234d3f4cc20c".to_owned(),
            nonce: "0xbbcd0b69e968ad3169eebc775c418becc2056db2cc145784c1aaef2b4a1f0817".to_owned(),
            issued_at: 1_779_256_800,
            expiration_time: Some(1_779_343_242),
            resources: vec![
                "urn:recap:eyJhdHQiOnt9LCJwcmYiOltdfQ".to_owned(),
                "urn:recap:eyJhdHQiOnsibGl0LXBrcDovLyoiOnsiVGhyZXNob2xkL1NpZ25pbmciOlt7fV19fSwicHJmIjpbXX0".to_owned(),
            ],
            ..lit_message(
                "Lit Protocol PKP session signature I further authorize the stated URI to perform the \
                 following actions on my behalf: (1) 'Threshold': 'Signing' for 'lit-pkp://*'.",
            )
        };
        check_lit(text, &expected, 1_779_257_000);
    }

    /// A plain wallet `authSig` from a browser dapp: no statement (two empty lines), an http URI,
    /// the SIWE library's 17-character nonce, no resources.
    #[test]
    fn lit_plain_auth_sig_without_statement() {
        let text = "localhost:5173 wants you to sign in with your Ethereum account:
0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266


URI: http://localhost:5173/
Version: 1
Chain ID: 1
Nonce: q7XbN2sLw9RkT4vYe
Issued At: 2025-12-01T23:59:59.999Z
Expiration Time: 2025-12-02T23:59:59.001Z";
        let expected = SiweMessage {
            domain: "localhost:5173".to_owned(),
            statement: None,
            uri: "http://localhost:5173/".to_owned(),
            nonce: "q7XbN2sLw9RkT4vYe".to_owned(),
            issued_at: 1_764_633_599,
            expiration_time: Some(1_764_719_999),
            ..lit_message("")
        };
        check_lit(text, &expected, 1_764_640_000);
    }

    /// Decryption under an access control condition, with a dapp's own statement in another
    /// script: any character but a control character is allowed in a statement.
    #[test]
    fn lit_decryption_with_a_statement_in_any_script() {
        let text = "app.example.org wants you to sign in with your Ethereum account:
0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266

Déchiffrer « mes notes » — ✓ 鍵 I further authorize the stated URI to perform the following actions on my behalf: (1) 'Threshold': 'Decryption' for 'lit-accesscontrolcondition://6ad810d2080dea1d737317c50d9949f0454151f7b8df588c07a1f7a495aac766'.

URI: lit:session:2ceea2a90af451a0622c2c887249922c1e83d2d22dd983de6afc001e069ba394
Version: 1
Chain ID: 137
Nonce: 0xcf553c6671071ee1614b35f9f0d9b5aa0254251b2c5d733a3ad88179cd1dea38
Issued At: 2026-07-04T12:30:00.250Z
Expiration Time: 2026-07-04T13:30:00.250Z
Resources:
- urn:recap:eyJhdHQiOnsibGl0LWFjY2Vzc2NvbnRyb2xjb25kaXRpb246Ly82YWQ4MTBkMjA4MGRlYTFkNzM3MzE3YzUwZDk5NDlmMDQ1NDE1MWY3YjhkZjU4OGMwN2ExZjdhNDk1YWFjNzY2Ijp7IlRocmVzaG9sZC9EZWNyeXB0aW9uIjpbe31dfX0sInByZiI6W119";
        let expected = SiweMessage {
            domain: "app.example.org".to_owned(),
            chain_id: 137,
            nonce: "0xcf553c6671071ee1614b35f9f0d9b5aa0254251b2c5d733a3ad88179cd1dea38".to_owned(),
            issued_at: 1_783_168_200,
            expiration_time: Some(1_783_171_800),
            resources: vec!["urn:recap:eyJhdHQiOnsibGl0LWFjY2Vzc2NvbnRyb2xjb25kaXRpb246Ly82YWQ4MTBkMjA4MGRlYTFkNzM3MzE3YzUwZDk5NDlmMDQ1NDE1MWY3YjhkZjU4OGMwN2ExZjdhNDk1YWFjNzY2Ijp7IlRocmVzaG9sZC9EZWNyeXB0aW9uIjpbe31dfX0sInByZiI6W119".to_owned()],
            ..lit_message(
                "Déchiffrer « mes notes » — ✓ 鍵 I further authorize the stated URI to perform the \
                 following actions on my behalf: (1) 'Threshold': 'Decryption' for \
                 'lit-accesscontrolcondition://6ad810d2080dea1d737317c50d9949f0454151f7b8df588c07a1f7a495aac766'.",
            )
        };
        check_lit(text, &expected, 1_783_168_300);
    }

    /// Sigil's own session capability, as `/web/sign_session_key` writes it, is one of these
    /// shapes too: whole seconds, so it renders back byte for byte.
    #[test]
    fn sigil_session_capability_renders_back_byte_for_byte() {
        let text = message().render();
        assert_eq!(text.parse::<siwe::Message>().unwrap().to_string(), text);
        assert_eq!(SiweMessage::parse(&text).unwrap().render(), text);
    }

    #[test]
    fn a_scheme_before_the_domain_is_part_of_it() {
        let m = SiweMessage {
            domain: "https://sigil.example:8443".to_owned(),
            ..message()
        };
        let text = m.render();
        assert!(text.starts_with("https://sigil.example:8443 wants you"), "{text}");
        check_round_trip(&m);
    }

    #[test]
    fn an_empty_resources_list_is_accepted() {
        let text = SiweMessage {
            resources: Vec::new(),
            ..message()
        }
        .render();
        let m = SiweMessage::parse(&format!("{text}\nResources:")).unwrap();
        assert!(m.resources.is_empty());
        assert_eq!(m.render(), text);
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
        check_malformed(
            &with_line(&text, "sigil.example", ""),
            "line 1: the domain \"\" is not an RFC 3986 authority",
        );
        check_malformed(
            &with_line(&text, "sigil.example", "sigil example"),
            "\"sigil example\" is not an RFC 3986 authority: invalid uri character",
        );
        check_malformed(
            &with_line(&text, "sigil.example", "1ttp://sigil.example"),
            "scheme \"1ttp\" is not an RFC 3986 scheme",
        );
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
        // The `siwe` crate skips the lines around the statement without reading them.
        check_malformed(
            &with_line(&text, "92266\n\n", "92266\njunk\n"),
            "line 3: expected an empty line after the address, found \"junk\"",
        );
        check_malformed(
            &with_line(&text, "Sign in to Sigil.\n\n", "Sign in to Sigil.\njunk\n"),
            "line 5: expected an empty line after the statement, found \"junk\"",
        );
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
            "line 8: expected \"Chain ID: 31337\", found \"Chain ID: 031337\"",
        );
        check_malformed(
            &with_line(&text, "Chain ID: 31337", "Chain ID: 18446744073709551616"),
            "64 bits",
        );
        check_malformed(
            &with_line(&text, "URI: lit:session:", "URI: "),
            "line 6: URI: \"6a1f1e8a00b61867b85eaf329d6fdf855220ac3e32f44ec13e4db0dd303dea6a\" is not an \
             RFC 3986 URI: invalid IRI: expected an absolute IRI",
        );
        check_malformed(
            &with_line(&text, "URI: lit:session:", "URI: 1it:session:"),
            "invalid scheme",
        );
        check_malformed(
            &with_line(&text, "URI: lit:session:", "URI: lit:ses sion:"),
            "invalid path",
        );
        let nonce = "0xfe88c94d860f01a17f961bf4bdfb6e0c6cd10d3fda5cc861e805ca1240c58553";
        check_malformed(
            &with_line(&text, nonce, "1234567"),
            "Nonce: \"1234567\" is not a valid nonce",
        );
        check_malformed(&with_line(&text, nonce, "0x"), "not a valid nonce");
        check_malformed(&with_line(&text, nonce, "abcd-efgh-ijkl"), "not a valid nonce");
        check_malformed(
            &with_line(&text, nonce, "abcd efgh"),
            "line 9: Nonce: \"abcd efgh\" is not a valid nonce",
        );
        check_malformed(
            &with_line(&text, "urn:recap:", "urn recap:"),
            "line 13: resource \"urn recap:",
        );
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
        check_malformed(&bad("2026-11-21T09:59:00"), "then Z or an offset like +02:00");
        check_malformed(&bad("2026-13-21T09:59:00Z"), "month was not in range");
        check_malformed(&bad("2023-02-29T09:59:00Z"), "day was not in range");
        check_malformed(&bad("1969-12-31T23:59:59Z"), "before 1970");
        check_malformed(&bad("9999-12-31T23:59:59-01:00"), "after 9999-12-31T23:59:59Z");
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
        assert!(no_uri
            .render()
            .starts_with("(no EIP-4361 text for this message: the URI"));
        let bad_domain = SiweMessage {
            domain: "sigil example".to_owned(),
            ..message()
        };
        assert!(matches!(AuthSig::create(&key, &bad_domain), Err(AuthError::Malformed(why)) if why.contains("domain")));
        let far_future = SiweMessage {
            expiration_time: Some(253_402_300_800),
            ..message()
        };
        assert!(
            matches!(AuthSig::create(&key, &far_future), Err(AuthError::Malformed(why)) if why.contains("Expiration Time"))
        );
        let version_two = SiweMessage {
            version: "2".to_owned(),
            ..message()
        };
        assert!(
            matches!(AuthSig::create(&key, &version_two), Err(AuthError::Malformed(why)) if why.contains("version"))
        );
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
        // Instants RFC 3339 cannot write print as unix seconds, which do not parse back.
        for unix in [253_402_300_800, u64::MAX] {
            assert_eq!(rfc3339(unix), format!("unix time {unix}"));
            assert!(parse_rfc3339(&rfc3339(unix)).is_err());
        }
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
    fn rfc3339_leap_seconds_read_as_the_second_before() {
        check_time("2016-12-31T23:59:60Z", 1_483_228_799);
        check_time("2017-01-01T00:59:60+01:00", 1_483_228_799);
        assert!(parse_rfc3339("2026-11-21T10:00:60Z").is_err());
        assert!(parse_rfc3339("2026-11-30T22:59:60Z").is_err());
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
            "2026-11-21 10:00:00Z",
            "2026-11-21_10:00:00Z",
            "9999-12-31T23:59:59-00:01",
        ] {
            let err = parse_rfc3339(text).unwrap_err();
            assert!(
                matches!(&err, AuthError::Malformed(why) if why.contains("is not an RFC 3339 time")),
                "{text:?}: {err:?}"
            );
        }
    }
}
