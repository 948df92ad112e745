//! The one error type of this crate. Every error caused by another party's input names that party.

use crate::PartyId;

/// What went wrong in a threshold protocol or in combining shares.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TssError {
    /// The caller asked for something impossible (threshold above n, a party twice, ...).
    #[error("bad parameters: {0}")]
    BadParameters(String),
    /// A message could not be decoded.
    #[error("message from party {from} is malformed: {reason}")]
    Malformed {
        /// Who sent it.
        from: PartyId,
        /// What was wrong with it.
        reason: String,
    },
    /// A message for another session, protocol or wire version.
    #[error("message from party {from} does not belong to this session: {reason}")]
    WrongSession {
        /// Who sent it.
        from: PartyId,
        /// Which field did not match.
        reason: String,
    },
    /// A message from someone outside the participant set, or from ourselves.
    #[error("party {from} is not a peer in this session")]
    UnknownSender {
        /// The claimed sender.
        from: PartyId,
    },
    /// A party sent two different versions of the same message.
    #[error("party {from} sent two different {what} messages")]
    Equivocation {
        /// Who sent them.
        from: PartyId,
        /// Which message.
        what: &'static str,
    },
    /// A party's contribution failed its check (a VSS share, a BLS signature share, ...).
    #[error("party {culprit} sent an invalid {what}")]
    InvalidShare {
        /// Who sent it.
        culprit: PartyId,
        /// What failed to verify.
        what: String,
    },
    /// Signature shares that do not match their holders' commitments (see `ecdsa::combine`).
    #[error("parties {} sent signature shares that do not match their commitments", culprits.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))]
    InvalidShares {
        /// Every party whose share is wrong, sorted.
        culprits: Vec<PartyId>,
    },
    /// The protocol aborted. `suspect` is the sender of the message whose processing failed, when known;
    /// the underlying ECDSA presigning protocol has no identifiable abort, so this is a lead, not proof.
    #[error("protocol aborted{}: {reason}", suspect.map(|p| format!(" (suspect: party {p})")).unwrap_or_default())]
    Protocol {
        /// The likely culprit.
        suspect: Option<PartyId>,
        /// What the protocol reported.
        reason: String,
    },
    /// Fewer shares than the threshold.
    #[error("not enough shares: have {have}, need {need}")]
    NotEnoughShares {
        /// Valid shares at hand.
        have: usize,
        /// Shares required.
        need: usize,
    },
    /// The combined signature did not verify against the public key, so it was not returned.
    #[error("the combined signature does not verify: at least one share is bad")]
    SignatureInvalid,
    /// Decryption failed: tampered ciphertext, wrong identity or wrong key.
    #[error("decryption failed: {0}")]
    Decryption(String),
    /// Encoded state (a key share, triple or presignature from storage, a public key package from a
    /// peer) does not decode or fails its consistency check.
    #[error("cannot decode {0}")]
    Corrupt(String),
    /// The protocol object already failed or finished; it accepts nothing more.
    #[error("the protocol has already terminated")]
    Terminated,
}

impl TssError {
    /// The party whose own message shows the fault (a malformed or foreign message, two conflicting
    /// messages, a share that fails its check). Safe to act on: an honest party is never named.
    pub fn culprit(&self) -> Option<PartyId> {
        match self {
            Self::Malformed { from, .. }
            | Self::WrongSession { from, .. }
            | Self::UnknownSender { from }
            | Self::Equivocation { from, .. } => Some(*from),
            Self::InvalidShare { culprit, .. } => Some(*culprit),
            Self::InvalidShares { culprits } => culprits.first().copied(),
            _ => None,
        }
    }

    /// Every party the error proves at fault ([`TssError::culprit`] names the first).
    pub fn culprits(&self) -> Vec<PartyId> {
        match self {
            Self::InvalidShares { culprits } => culprits.clone(),
            _ => self.culprit().into_iter().collect(),
        }
    }

    /// The culprit if there is one, else the party an abort points to without proof (see
    /// [`TssError::Protocol`]). Worth logging and watching; not grounds to exclude a node.
    pub fn suspect(&self) -> Option<PartyId> {
        match self {
            Self::Protocol { suspect, .. } => *suspect,
            _ => self.culprit(),
        }
    }

    pub(crate) fn malformed(from: PartyId, reason: impl Into<String>) -> Self {
        Self::Malformed {
            from,
            reason: reason.into(),
        }
    }
}
