//! Party identities, session ids and the threshold rule.

use std::fmt;

/// A node's index in a key's participant set.
///
/// Party `i` evaluates sharing polynomials at `x = i + 1`, so no party sits at zero
/// (where the secret lives). The same convention holds for every curve and every protocol here,
/// which is what lets an ECDSA share, a BLS share and a presignature of one node line up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartyId(pub u32);

impl PartyId {
    /// The x-coordinate at which this party's share is evaluated.
    pub fn x(self) -> u64 {
        u64::from(self.0) + 1
    }
}

impl fmt::Display for PartyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// The identifier every message of one protocol run carries, chosen by the caller
/// (the node derives it from the request or the pool slot). Messages with another id are refused.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(pub [u8; 32]);

impl SessionId {
    /// A session id derived from a human-readable label, handy for tests and one-off runs.
    pub fn from_label(label: &str) -> Self {
        use sha2::Digest;
        Self(
            sha2::Sha256::new_with_prefix(b"sigil/session/v1")
                .chain_update(label)
                .finalize()
                .into(),
        )
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({})", hex::encode(&self.0[..8]))
    }
}

/// Smallest network Sigil supports.
pub const MIN_PARTIES: usize = 3;
/// Largest network Sigil supports.
pub const MAX_PARTIES: usize = 31;

/// The number of shares needed to use a key among `n` nodes: ⌈2n/3⌉.
pub fn threshold_for(n_parties: usize) -> usize {
    (2 * n_parties).div_ceil(3)
}

/// Sorted, duplicate-free party list; `None` if the input repeats a party.
pub(crate) fn sorted_unique(parties: &[PartyId]) -> Option<Vec<PartyId>> {
    let mut out = parties.to_vec();
    out.sort_unstable();
    out.dedup();
    (out.len() == parties.len()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_thirds_rounded_up() {
        let got: Vec<_> = [3, 4, 5, 7, 10, 31].iter().map(|&n| threshold_for(n)).collect();
        assert_eq!(got, vec![2, 3, 4, 5, 7, 21]);
    }
}
