//! Wire format shared by every protocol message: a versioned envelope and a bounds-checked reader.
//!
//! ```text
//! envelope = version:u8 | protocol:u8 | session:[u8; 32] | payload
//! ```
//! Payload encodings are fixed-width fields (points compressed, scalars in their canonical
//! representation) with explicit counts, so decoding never allocates more than the message size.

use std::collections::BTreeMap;

use crate::{PartyId, SessionId, TssError};

/// Current wire version. A node refuses messages of any other version.
pub const WIRE_VERSION: u8 = 1;

const HEADER_LEN: usize = 2 + 32;

/// Which protocol a message belongs to; part of the envelope so that a message can never be
/// fed to the wrong kind of state machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
#[non_exhaustive]
pub enum ProtocolKind {
    /// Verifiable secret sharing: DKG, reshare and refresh (either curve).
    Vss = 1,
    /// ECDSA triple generation.
    Triple = 2,
    /// ECDSA presigning.
    Presign = 3,
    /// FROST nonce commitments of a Schnorr signing set.
    SchnorrNonces = 4,
}

pub(crate) fn seal(kind: ProtocolKind, session: &SessionId, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.push(WIRE_VERSION);
    out.push(kind as u8);
    out.extend_from_slice(&session.0);
    out.extend_from_slice(payload);
    out
}

/// Checks the envelope and returns the payload.
pub(crate) fn open<'a>(
    kind: ProtocolKind,
    session: &SessionId,
    from: PartyId,
    bytes: &'a [u8],
) -> Result<&'a [u8], TssError> {
    let (header, payload) = bytes
        .split_at_checked(HEADER_LEN)
        .ok_or_else(|| TssError::malformed(from, format!("{} bytes is shorter than the envelope", bytes.len())))?;
    let wrong = |reason: String| TssError::WrongSession { from, reason };
    match header {
        [version, _, ..] if *version != WIRE_VERSION => {
            Err(wrong(format!("wire version {version}, expected {WIRE_VERSION}")))
        }
        [_, k, ..] if *k != kind as u8 => Err(wrong(format!("protocol {k}, expected {}", kind as u8))),
        [_, _, sid @ ..] if sid != session.0 => Err(wrong("session id differs".into())),
        _ => Ok(payload),
    }
}

/// A cursor over untrusted bytes; every read is bounds-checked. Errors name the sender of a network
/// message, or say that stored data is corrupt when reading local storage.
pub(crate) struct Reader<'a> {
    source: Source,
    rest: &'a [u8],
}

/// Where bytes come from, which decides how a decoding error reads.
#[derive(Clone, Copy)]
pub(crate) enum Source {
    Peer(PartyId),
    Storage(&'static str),
}

impl Source {
    pub(crate) fn error(self, reason: String) -> TssError {
        match self {
            Self::Peer(from) => TssError::malformed(from, reason),
            Self::Storage(what) => TssError::Corrupt(format!("{what}: {reason}")),
        }
    }
}

impl<'a> Reader<'a> {
    pub(crate) fn new(from: PartyId, bytes: &'a [u8]) -> Self {
        Self {
            source: Source::Peer(from),
            rest: bytes,
        }
    }

    /// Reads a stored record of kind `what`, checking its format version first.
    pub(crate) fn stored(what: &'static str, version: u8, bytes: &'a [u8]) -> Result<Self, TssError> {
        let mut r = Self {
            source: Source::Storage(what),
            rest: bytes,
        };
        let found = r.u8("format version")?;
        if found != version {
            return Err(r.source.error(format!("format version {found}, expected {version}")));
        }
        Ok(r)
    }

    pub(crate) fn source(&self) -> Source {
        self.source
    }

    pub(crate) fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], TssError> {
        let (head, tail) = self
            .rest
            .split_at_checked(n)
            .ok_or_else(|| self.source.error(format!("truncated {what}")))?;
        self.rest = tail;
        Ok(head)
    }

    pub(crate) fn u8(&mut self, what: &str) -> Result<u8, TssError> {
        Ok(self.take(1, what)?.first().copied().unwrap_or_default())
    }

    pub(crate) fn u16(&mut self, what: &str) -> Result<u16, TssError> {
        Ok(u16::from_be_bytes(self.array::<2>(what)?))
    }

    pub(crate) fn u32(&mut self, what: &str) -> Result<u32, TssError> {
        Ok(u32::from_be_bytes(self.array::<4>(what)?))
    }

    pub(crate) fn party(&mut self, what: &str) -> Result<PartyId, TssError> {
        self.u32(what).map(PartyId)
    }

    /// A count-prefixed (u8) list of parties.
    pub(crate) fn parties(&mut self, what: &str) -> Result<Vec<PartyId>, TssError> {
        let n = self.u8(what)?;
        (0..n).map(|_| self.party(what)).collect()
    }

    pub(crate) fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], TssError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    pub(crate) fn finish(self) -> Result<(), TssError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(self.source.error(format!("{} trailing bytes", self.rest.len())))
        }
    }
}

/// Appends a count-prefixed (u8) list of parties; lists are at most [`crate::MAX_PARTIES`] long.
pub(crate) fn put_parties(out: &mut Vec<u8>, parties: &[PartyId]) {
    out.push(parties.len().min(usize::from(u8::MAX)) as u8);
    parties
        .iter()
        .take(usize::from(u8::MAX))
        .for_each(|p| out.extend_from_slice(&p.0.to_be_bytes()));
}

/// Keeps `value` under `key`, a message of `from` (`what`): an identical copy is a duplicate and
/// accepted; a different one is [`TssError::Equivocation`], which the caller fails its run with.
pub(crate) fn keep_once<K: Ord, V: PartialEq>(
    map: &mut BTreeMap<K, V>,
    key: K,
    value: V,
    from: PartyId,
    what: &'static str,
) -> Result<(), TssError> {
    match map.get(&key) {
        Some(known) if *known == value => Ok(()),
        Some(_) => Err(TssError::Equivocation { from, what }),
        None => {
            map.insert(key, value);
            Ok(())
        }
    }
}
