//! IPFS CIDv0 (`Qm…`) of an action's code, computed exactly as `ipfs add --only-hash` does for a
//! file of one chunk (up to 256 KiB): a UnixFS `File` node inside a dag-pb node, SHA-256
//! multihash, base58btc.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// Largest file `ipfs add` stores as a single block with its default chunker.
pub const MAX_SINGLE_CHUNK: usize = 256 * 1024;

/// A CIDv0: the 34-byte SHA-256 multihash (`0x12 0x20 ‖ digest`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cid([u8; 34]);

/// Why bytes or text are not a CIDv0.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidError {
    /// Not base58btc.
    #[error("CID {0:?} is not base58 text")]
    NotBase58(String),
    /// Not a 34-byte SHA-256 multihash.
    #[error("a CIDv0 is a 34-byte SHA-256 multihash (Qm…), got {0} bytes")]
    NotSha256Multihash(usize),
    /// The file needs more than one chunk.
    #[error("action code of {0} bytes: only files up to 262144 bytes (one IPFS chunk) are supported")]
    TooLarge(usize),
}

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

impl Cid {
    /// The CID `ipfs add --only-hash` prints for a file holding `data`.
    pub fn of_file(data: &[u8]) -> Result<Self, CidError> {
        if data.len() > MAX_SINGLE_CHUNK {
            return Err(CidError::TooLarge(data.len()));
        }
        // UnixFS Data { Type = File (2), Data = data (omitted when empty), filesize = len }
        let mut unixfs = vec![0x08, 0x02];
        if !data.is_empty() {
            unixfs.push(0x12);
            varint(&mut unixfs, data.len() as u64);
            unixfs.extend_from_slice(data);
        }
        unixfs.push(0x18);
        varint(&mut unixfs, data.len() as u64);
        // PBNode { Data = unixfs }, no links.
        let mut node = vec![0x0a];
        varint(&mut node, unixfs.len() as u64);
        node.extend_from_slice(&unixfs);
        let mut bytes = [0u8; 34];
        bytes[0] = 0x12;
        bytes[1] = 0x20;
        bytes[2..].copy_from_slice(&Sha256::digest(&node));
        Ok(Self(bytes))
    }

    /// From the multihash bytes (as PKPPermissions stores them).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CidError> {
        match <[u8; 34]>::try_from(bytes) {
            Ok(b) if b[0] == 0x12 && b[1] == 0x20 => Ok(Self(b)),
            _ => Err(CidError::NotSha256Multihash(bytes.len())),
        }
    }

    /// The multihash bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl FromStr for Cid {
    type Err = CidError;
    fn from_str(text: &str) -> Result<Self, CidError> {
        let bytes = bs58::decode(text.trim())
            .into_vec()
            .map_err(|_| CidError::NotBase58(text.to_string()))?;
        Self::from_bytes(&bytes)
    }
}

impl fmt::Display for Cid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&bs58::encode(self.0).into_string())
    }
}

impl fmt::Debug for Cid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cid({self})")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn matches_ipfs_add_only_hash() {
        assert_eq!(
            Cid::of_file(b"").unwrap().to_string(),
            "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
        );
        assert_eq!(
            Cid::of_file(b"hello world").unwrap().to_string(),
            "Qmf412jQZiuVUtdgnB36FXFX7xg5V6KEbSJ4dpQuhkLyfD"
        );
        assert_eq!(
            Cid::of_file(b"hello world\n").unwrap().to_string(),
            "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
        );
    }

    #[test]
    fn parses_what_it_prints_and_refuses_the_rest() {
        let cid = Cid::of_file(b"export const x = 1;").unwrap();
        assert_eq!(cid.to_string().parse::<Cid>().unwrap(), cid);
        assert_eq!(Cid::from_bytes(cid.as_bytes()).unwrap(), cid);
        assert!(matches!("0OIl".parse::<Cid>(), Err(CidError::NotBase58(_))));
        assert!(matches!("2g".parse::<Cid>(), Err(CidError::NotSha256Multihash(_))));
        assert!(matches!(
            Cid::of_file(&vec![0; MAX_SINGLE_CHUNK + 1]),
            Err(CidError::TooLarge(_))
        ));
    }
}
