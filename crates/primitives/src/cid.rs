//! IPFS CIDv0 (`Qm…`) of an action's code, computed exactly as `ipfs add --only-hash` does with
//! kubo's defaults for CIDv0, for a file of any size.
//!
//! The file is cut into chunks of 262144 bytes (`size-262144`; an empty file is one empty chunk).
//! Each chunk becomes a leaf: a dag-pb node whose `Data` is a UnixFS `File` holding the chunk
//! (not a raw leaf). A file of one chunk is that leaf alone. Otherwise the leaves are gathered by
//! the balanced layout: runs of at most 174 nodes get a parent, level after level, until one node
//! is left. A parent is a dag-pb node with one link per child (`Hash` = the child's multihash,
//! `Name` = "" written out, `Tsize` = the encoded bytes of the child's whole subtree) and `Data` =
//! a UnixFS `File` with `filesize` and one `blocksizes` entry per child (the file bytes it covers).
//! Fields are written as go-ipfs writes them: `Links` (field 2) before `Data` (field 1). A CID is
//! the SHA-256 multihash of the root node's bytes, in base58btc.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// Bytes per chunk of `ipfs add`'s default chunker; a file of at most this many bytes is stored as
/// a single block.
pub const MAX_SINGLE_CHUNK: usize = 256 * 1024;

/// Most links a node of the balanced layout holds (go-unixfs `helpers.DefaultLinksPerBlock`, the
/// importer's `maxChildrenPerNode`).
const MAX_LINKS: usize = 174;

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
}

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A node of a file's DAG, as its parent links to it.
struct Child {
    cid: Cid,
    /// Encoded bytes of the node and all nodes below it (a link's `Tsize`).
    tsize: u64,
    /// File bytes the node covers (its parent's `blocksizes` entry).
    filesize: u64,
}

/// The leaf for one chunk. The chunk is hashed in place rather than copied into the node.
fn leaf(chunk: &[u8]) -> Child {
    let len = chunk.len() as u64;
    // UnixFS Data { Type = File (2), Data = chunk (omitted when empty), filesize = len }
    let mut head = vec![0x08, 0x02];
    if !chunk.is_empty() {
        head.push(0x12);
        varint(&mut head, len);
    }
    let mut tail = vec![0x18];
    varint(&mut tail, len);
    let unixfs_len = (head.len() + chunk.len() + tail.len()) as u64;
    // PBNode { Data = unixfs }, no links.
    let mut node_head = vec![0x0a];
    varint(&mut node_head, unixfs_len);
    node_head.extend_from_slice(&head);
    Child {
        cid: Cid::of_block(&[&node_head, chunk, &tail]),
        tsize: (node_head.len() + chunk.len() + tail.len()) as u64,
        filesize: len,
    }
}

/// The parent of `children`.
fn parent(children: &[Child]) -> Child {
    let filesize = children.iter().map(|child| child.filesize).sum();
    // UnixFS Data { Type = File (2), filesize, blocksizes = each child's file bytes }
    let mut unixfs = vec![0x08, 0x02, 0x18];
    varint(&mut unixfs, filesize);
    for child in children {
        unixfs.push(0x20);
        varint(&mut unixfs, child.filesize);
    }
    // PBNode { Links, Data = unixfs }
    let mut node = Vec::new();
    for child in children {
        // PBLink { Hash = multihash, Name = "", Tsize }
        let mut link = vec![0x0a, 34];
        link.extend_from_slice(child.cid.as_bytes());
        link.extend_from_slice(&[0x12, 0x00, 0x18]);
        varint(&mut link, child.tsize);
        node.push(0x12);
        varint(&mut node, link.len() as u64);
        node.extend_from_slice(&link);
    }
    node.push(0x0a);
    varint(&mut node, unixfs.len() as u64);
    node.extend_from_slice(&unixfs);
    Child {
        cid: Cid::of_block(&[&node]),
        tsize: node.len() as u64 + children.iter().map(|child| child.tsize).sum::<u64>(),
        filesize,
    }
}

impl Cid {
    /// The CID `ipfs add --only-hash` prints for a file holding `data`. Never fails; the `Result`
    /// is kept for callers written when large files were refused.
    pub fn of_file(data: &[u8]) -> Result<Self, CidError> {
        let mut level: Vec<Child> = data.chunks(MAX_SINGLE_CHUNK).map(leaf).collect();
        loop {
            match level.as_slice() {
                // The chunker yields one empty chunk for an empty file.
                [] => return Ok(leaf(&[]).cid),
                [root] => return Ok(root.cid),
                // A lone node at the end of a level still gets a parent of its own, as the
                // importer does; only a file of one chunk is its own root.
                _ => level = level.chunks(MAX_LINKS).map(parent).collect(),
            }
        }
    }

    /// The CIDv0 of the block whose bytes are `parts`, concatenated.
    fn of_block(parts: &[&[u8]]) -> Self {
        let mut hasher = Sha256::new();
        for part in parts {
            hasher.update(part);
        }
        let mut bytes = [0u8; 34];
        bytes[0] = 0x12;
        bytes[1] = 0x20;
        bytes[2..].copy_from_slice(&hasher.finalize());
        Self(bytes)
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
        let text = text.trim();
        // A CIDv0 is 46 characters; base58 decoding time grows with the square of the length.
        if text.len() > 64 {
            return Err(CidError::NotBase58(format!(
                "{}… ({} characters)",
                text.get(..16).unwrap_or(""),
                text.len()
            )));
        }
        let bytes = bs58::decode(text)
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
    }
}
