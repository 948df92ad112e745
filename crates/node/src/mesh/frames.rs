//! Reading what a peer posts, a frame at a time, sans-IO: the bytes of a `/mesh/send` body
//! (`len:u32 | envelope`, repeated) or a `/mesh/call` body (one envelope) are pushed in as they
//! arrive, and the reader hands out each envelope's prefix (header and session, to be
//! authenticated before anything more is kept) and then the whole envelope. A frame holds only
//! its prefix until the prefix was handed out, then grows with the bytes that really arrive
//! (never to its declared length ahead of them), up to [`MAX_FRAME_BYTES`]; a batch has at most
//! [`MAX_FRAMES`] frames and [`MAX_SEND_BYTES`] bytes.

use std::sync::atomic::{AtomicUsize, Ordering};

use sigil_mesh::{OVERHEAD, PREFIX_LEN};

/// Largest envelope a peer may post (its body at most this less [`OVERHEAD`]). The largest
/// message nodes exchange is an action value (at most 1 MiB, JSON-escaped).
pub const MAX_FRAME_BYTES: usize = 8 << 20;
/// Largest `/mesh/call` envelope: calls are small (the largest, a discard of 1024 slots, is about
/// 25 KiB), and a call is held while it is answered (an allocation waits up to 35 s).
pub const MAX_CALL_BYTES: usize = 64 << 10;
/// Frames in one `/mesh/send` body.
pub const MAX_FRAMES: usize = 64;
/// Bytes in one `/mesh/send` body, length fields included.
pub const MAX_SEND_BYTES: usize = 16 << 20;
/// Bytes of a length field.
const LEN_BYTES: usize = 4;

/// What the pushed bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// A `/mesh/send` body: length-prefixed envelopes.
    Batch,
    /// A `/mesh/call` body: one envelope, its length the body's.
    Single,
}

/// Why a body was refused before its frames were opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// A frame declares more than [`MAX_FRAME_BYTES`] (or less than an envelope's overhead).
    #[error("frame {index} declares {len} bytes; an envelope has {OVERHEAD} to {MAX_FRAME_BYTES}")]
    FrameSize {
        /// Position in the body, from 0.
        index: usize,
        /// The declared length.
        len: usize,
    },
    /// More than [`MAX_FRAMES`] frames.
    #[error("more than {MAX_FRAMES} frames in one body")]
    TooManyFrames,
    /// More than [`MAX_SEND_BYTES`] bytes.
    #[error("body exceeds {MAX_SEND_BYTES} bytes")]
    TooLarge,
    /// The body ended inside a frame.
    #[error("body ends inside frame {index}")]
    Truncated {
        /// The frame cut short.
        index: usize,
    },
}

/// The next thing the pushed bytes completed.
#[derive(Debug, PartialEq, Eq)]
pub enum Ready {
    /// The first [`PREFIX_LEN`] bytes of an envelope of `len` bytes (`None`: the length is the
    /// body's, not known yet): authenticate them before pushing more.
    Prefix {
        /// Header and session.
        prefix: [u8; PREFIX_LEN],
        /// The envelope's declared length.
        len: Option<usize>,
    },
    /// A whole envelope (of a batch; a single envelope comes from [`FrameReader::finish`]).
    Frame(Vec<u8>),
}

/// Reads frames from pushed bytes; see the module doc.
#[derive(Debug)]
pub struct FrameReader {
    framing: Framing,
    /// The length field being read.
    len_bytes: Vec<u8>,
    /// The declared length of the frame being read, once its length field is in.
    len: Option<usize>,
    /// The frame being read.
    frame: Vec<u8>,
    prefix_sent: bool,
    frames: usize,
    total: usize,
}

impl FrameReader {
    /// A reader for a body of the given framing.
    pub fn new(framing: Framing) -> Self {
        Self {
            framing,
            len_bytes: Vec::with_capacity(LEN_BYTES),
            len: None,
            frame: Vec::new(),
            prefix_sent: false,
            frames: 0,
            total: 0,
        }
    }

    /// Consumes bytes from the front of `data` until something is ready or `data` is empty. Call
    /// again with the rest of `data` after handling what it returned.
    pub fn push(&mut self, data: &mut &[u8]) -> Result<Option<Ready>, FrameError> {
        while !data.is_empty() {
            if self.framing == Framing::Batch && self.len.is_none() {
                if self.frames >= MAX_FRAMES {
                    return Err(FrameError::TooManyFrames);
                }
                let take = (LEN_BYTES - self.len_bytes.len()).min(data.len());
                self.consume(data, take, false)?;
                if self.len_bytes.len() < LEN_BYTES {
                    continue;
                }
                let mut field = [0u8; LEN_BYTES];
                field.copy_from_slice(&self.len_bytes);
                let len = u32::from_be_bytes(field) as usize;
                if !(OVERHEAD..=MAX_FRAME_BYTES).contains(&len) {
                    return Err(FrameError::FrameSize {
                        index: self.frames,
                        len,
                    });
                }
                self.len = Some(len);
                continue;
            }
            // Until the prefix is checked, only the prefix is kept.
            let limit = match (self.prefix_sent, self.len) {
                (false, _) => PREFIX_LEN,
                (true, Some(len)) => len,
                (true, None) => MAX_CALL_BYTES,
            };
            let take = limit.saturating_sub(self.frame.len()).min(data.len());
            if take == 0 && self.framing == Framing::Single {
                return Err(FrameError::FrameSize {
                    index: 0,
                    len: self.frame.len() + data.len(),
                });
            }
            self.consume(data, take, true)?;
            if !self.prefix_sent && self.frame.len() == PREFIX_LEN {
                self.prefix_sent = true;
                let mut prefix = [0u8; PREFIX_LEN];
                prefix.copy_from_slice(&self.frame);
                return Ok(Some(Ready::Prefix { prefix, len: self.len }));
            }
            if let Some(len) = self.len {
                if self.frame.len() == len {
                    self.len = None;
                    self.len_bytes.clear();
                    self.prefix_sent = false;
                    self.frames += 1;
                    return Ok(Some(Ready::Frame(std::mem::take(&mut self.frame))));
                }
            }
        }
        Ok(None)
    }

    /// Bytes of the frame being read after its prefix was handed out: kept, but not authenticated
    /// until the whole envelope is in.
    pub fn unverified(&self) -> usize {
        if self.prefix_sent {
            // What the buffer holds, not what it was filled with: it grows by doubling.
            self.frame.capacity()
        } else {
            0
        }
    }

    /// The body ended: a batch must end between frames; a single envelope is returned whole.
    pub fn finish(mut self) -> Result<Option<Vec<u8>>, FrameError> {
        match self.framing {
            Framing::Batch if self.len.is_some() || !self.len_bytes.is_empty() => {
                Err(FrameError::Truncated { index: self.frames })
            }
            Framing::Batch => Ok(None),
            Framing::Single if self.frame.len() < OVERHEAD => Err(FrameError::Truncated { index: 0 }),
            Framing::Single => Ok(Some(std::mem::take(&mut self.frame))),
        }
    }

    fn consume(&mut self, data: &mut &[u8], take: usize, into_frame: bool) -> Result<(), FrameError> {
        self.total += take;
        if self.total > MAX_SEND_BYTES {
            return Err(FrameError::TooLarge);
        }
        let (head, rest) = data.split_at(take);
        if into_frame {
            // Grown as bytes arrive, never to the declared length ahead of them: a replayed
            // genuine prefix declaring 8 MiB costs only what its sender really sends. Doubling,
            // but never past the declared length, so what is charged (the capacity) stays
            // within twice what arrived and within the frame's size.
            let want = self.frame.len() + head.len();
            if want > self.frame.capacity() {
                let ceiling = self.len.unwrap_or(MAX_CALL_BYTES).max(want);
                let grown = (self.frame.capacity() * 2).max(PREFIX_LEN).clamp(want, ceiling);
                self.frame.reserve_exact(grown - self.frame.len());
            }
            self.frame.extend_from_slice(head);
        } else {
            self.len_bytes.extend_from_slice(head);
        }
        *data = rest;
        Ok(())
    }
}

/// The bytes the bodies being read hold of envelopes not authenticated yet
/// ([`FrameReader::unverified`]), against one limit: one of the two [`Budgets`].
#[derive(Debug)]
pub struct Unverified {
    held: AtomicUsize,
    limit: usize,
}

impl Unverified {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            held: AtomicUsize::new(0),
            limit,
        }
    }

    /// Bytes held now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// A reader that held `from` bytes now holds `to`: false, and nothing charged, if the growth
    /// does not fit.
    pub fn charge(&self, from: usize, to: usize) -> bool {
        if to <= from {
            self.held.fetch_sub(from - to, Ordering::Relaxed);
            return true;
        }
        let grow = to - from;
        self.held
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
                held.checked_add(grow).filter(|total| *total <= self.limit)
            })
            .is_ok()
    }
}

/// The unverified-bytes budgets of a node: one for bodies from anywhere but the node list's
/// addresses (`limit` bytes), and one for those addresses together, in which each address has a
/// share (`limit / addresses`, at least [`MAX_FRAME_BYTES`] so the largest genuine envelope
/// always fits) and which is the sum of the shares (`max(limit, addresses × MAX_FRAME_BYTES)`;
/// a host name counts with at most two addresses): a member replaying prefixes from its own
/// addresses fills only their shares, never what the other peers need.
#[derive(Debug)]
pub struct Budgets {
    limit: usize,
    others: Unverified,
    listed: std::sync::OnceLock<Listed>,
}

/// The node list's budget: its total, and each address's share of it.
#[derive(Debug)]
struct Listed {
    total: Unverified,
    shares: std::collections::HashMap<std::net::IpAddr, Unverified>,
}

impl Budgets {
    /// Budgets of `limit` bytes; until [`Budgets::set_listed`], every body is charged to the
    /// strangers'.
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            others: Unverified::new(limit),
            listed: std::sync::OnceLock::new(),
        }
    }

    /// The node list's addresses (IPv4-mapped IPv6 addresses count as IPv4), each given its
    /// share of the listed budget. Only the first call counts.
    pub fn set_listed(&self, addresses: impl IntoIterator<Item = std::net::IpAddr>) {
        let addresses: std::collections::HashSet<std::net::IpAddr> = addresses.into_iter().map(subnet).collect();
        let share = (self.limit / addresses.len().max(1)).max(MAX_FRAME_BYTES.min(self.limit));
        let total = self.limit.max(share.saturating_mul(addresses.len()));
        let _ = self.listed.set(Listed {
            total: Unverified::new(total),
            shares: addresses.into_iter().map(|ip| (ip, Unverified::new(share))).collect(),
        });
    }

    fn share(&self, source: Option<std::net::IpAddr>) -> Option<(&Unverified, &Unverified)> {
        let listed = self.listed.get()?;
        let share = listed.shares.get(&subnet(source?))?;
        Some((&listed.total, share))
    }

    /// A body from `source` that held `from` unverified bytes now holds `to`: false, and nothing
    /// charged, if that does not fit its address's share and the listed budget (for one of the
    /// node list's addresses) or the strangers' budget.
    pub fn charge(&self, source: Option<std::net::IpAddr>, from: usize, to: usize) -> bool {
        let Some((total, share)) = self.share(source) else {
            return self.others.charge(from, to);
        };
        if !total.charge(from, to) {
            return false;
        }
        if !share.charge(from, to) {
            total.charge(to, from);
            return false;
        }
        true
    }

    /// Bytes held now by bodies from `source`'s address (one of the node list's) or from all
    /// strangers.
    pub fn held_for(&self, source: Option<std::net::IpAddr>) -> usize {
        self.share(source).map_or(&self.others, |(_, share)| share).held()
    }

    /// Bytes held now, in every budget.
    pub fn held(&self) -> usize {
        self.others.held() + self.listed.get().map_or(0, |listed| listed.total.held())
    }
}

/// What one client or peer address is counted as, by the listener's limits and by these
/// budgets alike: an IPv4 address (also IPv4-mapped IPv6), or an IPv6 /64 (one subscriber's
/// usual allocation: counting single IPv6 addresses would give each of them 2⁶⁴ fresh limits,
/// and a peer's temporary IPv6 source addresses are its own).
pub fn subnet(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => std::net::IpAddr::V4(v4),
            None => std::net::IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        },
        v4 => v4,
    }
}

/// A `/mesh/send` body of `envelopes`, each with its length field.
pub fn batch<'a>(envelopes: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut body = Vec::new();
    for envelope in envelopes {
        body.extend_from_slice(&(envelope.len() as u32).to_be_bytes());
        body.extend_from_slice(envelope);
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(len: usize, fill: u8) -> Vec<u8> {
        vec![fill; len]
    }

    /// Pushes `body` in chunks of `chunk` bytes; returns what came out, stopping at an error.
    fn read(framing: Framing, body: &[u8], chunk: usize) -> (Vec<Ready>, Result<Option<Vec<u8>>, FrameError>) {
        let mut reader = FrameReader::new(framing);
        let mut out = Vec::new();
        for piece in body.chunks(chunk.max(1)) {
            let mut data = piece;
            loop {
                match reader.push(&mut data) {
                    Ok(Some(ready)) => out.push(ready),
                    Ok(None) => break,
                    Err(e) => return (out, Err(e)),
                }
            }
        }
        (out, reader.finish())
    }

    #[test]
    fn frames_come_out_whole_after_their_prefix_in_any_chunking() {
        let a = envelope(OVERHEAD, 1);
        let b = envelope(OVERHEAD + 1000, 2);
        let body = batch([a.as_slice(), b.as_slice()]);
        for chunk in [1, 3, 4, 7, 64, 65, 69, 1000, body.len()] {
            let (out, end) = read(Framing::Batch, &body, chunk);
            assert_eq!(end, Ok(None), "chunk {chunk}");
            assert_eq!(out.len(), 4, "chunk {chunk}");
            assert!(matches!(&out[0], Ready::Prefix { len: Some(l), .. } if *l == a.len()));
            assert_eq!(out[1], Ready::Frame(a.clone()));
            assert!(
                matches!(&out[2], Ready::Prefix { prefix, len: Some(l) } if *l == b.len() && prefix[..] == b[..PREFIX_LEN])
            );
            assert_eq!(out[3], Ready::Frame(b.clone()));
        }
        let (out, end) = read(Framing::Single, &b, 10);
        assert!(matches!(&out[..], [Ready::Prefix { len: None, .. }]));
        assert_eq!(end, Ok(Some(b)));
    }

    #[test]
    fn a_huge_declared_length_is_refused_before_anything_is_kept() {
        let mut body = u32::MAX.to_be_bytes().to_vec();
        body.extend_from_slice(&[0u8; 100]);
        let (out, end) = read(Framing::Batch, &body, 1 << 20);
        assert!(out.is_empty());
        assert_eq!(
            end,
            Err(FrameError::FrameSize {
                index: 0,
                len: u32::MAX as usize
            })
        );
        let tiny = batch([&[0u8; 3][..]]);
        assert!(matches!(
            read(Framing::Batch, &tiny, 100).1,
            Err(FrameError::FrameSize { .. })
        ));
    }

    #[test]
    fn before_its_prefix_is_checked_a_frame_holds_only_its_prefix() {
        let big = envelope(MAX_FRAME_BYTES, 5);
        let body = batch([big.as_slice()]);
        let mut reader = FrameReader::new(Framing::Batch);
        let mut data = &body[..];
        assert!(matches!(reader.push(&mut data), Ok(Some(Ready::Prefix { .. }))));
        // The rest is still the caller's; the reader kept the prefix only.
        assert_eq!(data.len(), body.len() - LEN_BYTES - PREFIX_LEN);
        assert!(reader.frame.capacity() < 4 * PREFIX_LEN);
    }

    #[test]
    fn after_its_prefix_a_frame_keeps_memory_in_proportion_to_the_bytes_received() {
        // A prefix that passes `check_prefix` (replayed from a genuine envelope) and a frame
        // declaring MAX_FRAME_BYTES: one more byte must not get the whole length kept.
        let mut body = (MAX_FRAME_BYTES as u32).to_be_bytes().to_vec();
        body.extend_from_slice(&[5u8; PREFIX_LEN + 1]);
        let mut reader = FrameReader::new(Framing::Batch);
        let mut data = &body[..];
        assert!(matches!(reader.push(&mut data), Ok(Some(Ready::Prefix { .. }))));
        assert_eq!(reader.push(&mut data), Ok(None));
        assert_eq!(reader.frame.len(), PREFIX_LEN + 1);
        assert!(
            reader.frame.capacity() <= 4 * PREFIX_LEN,
            "{} bytes kept for {} received",
            reader.frame.capacity(),
            LEN_BYTES + PREFIX_LEN + 1
        );
        // Growing to the whole frame stays within the declared length.
        let big = envelope(MAX_FRAME_BYTES, 5);
        let body = batch([big.as_slice()]);
        let (out, end) = read(Framing::Batch, &body, 1000);
        assert_eq!(end, Ok(None));
        assert_eq!(out.len(), 2);
        let mut reader = FrameReader::new(Framing::Batch);
        let mut data = &body[..];
        let _ = reader.push(&mut data);
        let _ = reader.push(&mut &data[..MAX_FRAME_BYTES - PREFIX_LEN - 1]);
        assert!(reader.frame.capacity() <= MAX_FRAME_BYTES);
    }

    #[test]
    fn frame_count_body_size_and_truncation_are_bounded() {
        let small = envelope(OVERHEAD, 0);
        let many: Vec<&[u8]> = (0..=MAX_FRAMES).map(|_| small.as_slice()).collect();
        let (out, end) = read(Framing::Batch, &batch(many), 4096);
        assert_eq!(end, Err(FrameError::TooManyFrames));
        assert_eq!(out.len(), 2 * MAX_FRAMES);
        let big = envelope(MAX_FRAME_BYTES, 0);
        let body = batch([big.as_slice(), big.as_slice(), big.as_slice()]);
        assert_eq!(read(Framing::Batch, &body, 1 << 20).1, Err(FrameError::TooLarge));
        let cut = batch([small.as_slice()]);
        for at in 1..cut.len() {
            assert_eq!(
                read(Framing::Batch, &cut[..at], 7).1,
                Err(FrameError::Truncated { index: 0 }),
                "cut at {at}"
            );
        }
        assert_eq!(
            read(Framing::Single, &small[..OVERHEAD - 1], 7).1,
            Err(FrameError::Truncated { index: 0 })
        );
        let oversized = envelope(MAX_CALL_BYTES + 1, 0);
        assert!(matches!(
            read(Framing::Single, &oversized, 1 << 20).1,
            Err(FrameError::FrameSize { .. })
        ));
    }

    #[test]
    fn bodies_from_the_node_lists_addresses_have_a_budget_strangers_cannot_take() {
        let budgets = Budgets::new(1000);
        let peer: std::net::IpAddr = "10.0.0.2".parse().unwrap();
        let stranger: std::net::IpAddr = "10.0.0.9".parse().unwrap();
        budgets.set_listed([peer]);
        assert!(budgets.charge(Some(stranger), 0, 1000));
        assert!(!budgets.charge(Some(stranger), 0, 1), "the strangers' budget is full");
        assert!(!budgets.charge(None, 0, 1), "an unknown source is a stranger");
        assert!(budgets.charge(Some(peer), 0, 1000), "the peers' is untouched");
        let mapped: std::net::IpAddr = "::ffff:10.0.0.2".parse().unwrap();
        assert!(
            !budgets.charge(Some(mapped), 0, 1),
            "an IPv4-mapped peer address is the peer's"
        );
        let v6 = Budgets::new(1000);
        v6.set_listed(["2001:db8:0:1::10".parse().unwrap()]);
        assert!(v6.charge(Some("2001:db8:0:1::beef".parse().unwrap()), 0, 1000));
        assert!(
            !v6.charge(Some("2001:db8:0:1::10".parse().unwrap()), 0, 1),
            "one /64 is one peer's"
        );
        assert_eq!(budgets.held(), 2000);
    }

    #[test]
    fn a_member_filling_its_addresss_share_leaves_the_other_members_theirs() {
        let limit = 4 * MAX_FRAME_BYTES;
        let budgets = Budgets::new(limit);
        let members: Vec<std::net::IpAddr> = (1..=4).map(|i| format!("10.0.0.{i}").parse().unwrap()).collect();
        budgets.set_listed(members.iter().copied().chain([members[0]]));
        let share = limit / 4;
        // The member at 10.0.0.1 holds replayed prefixes up to its share, and no further.
        assert!(budgets.charge(Some(members[0]), 0, share));
        assert!(!budgets.charge(Some(members[0]), share, share + 1));
        assert_eq!(budgets.held_for(Some(members[0])), share);
        // Every other member still has its whole share.
        for member in &members[1..] {
            assert!(budgets.charge(Some(*member), 0, share), "{member}");
        }
        assert_eq!(budgets.held(), limit);
        // Given back, it is free again.
        assert!(budgets.charge(Some(members[0]), share, 0));
        assert_eq!(budgets.held(), limit - share);
    }

    /// The adversary: colluding members, each holding a largest envelope's worth of replayed
    /// prefixes from its address, on a network with more addresses than the limit has shares.
    #[test]
    fn every_listed_address_keeps_its_share_however_many_there_are() {
        let limit = 64 << 20;
        let budgets = Budgets::new(limit);
        let address = |i: u16| std::net::IpAddr::from([0x2001, 0xdb8, i, 0, 0, 0, 0, 1]);
        budgets.set_listed((0..20u16).map(address));
        // Eight members fill their shares: the other twelve still have theirs.
        for i in 0..8u16 {
            assert!(budgets.charge(Some(address(i)), 0, MAX_FRAME_BYTES));
            assert!(!budgets.charge(Some(address(i)), MAX_FRAME_BYTES, MAX_FRAME_BYTES + 1));
        }
        for i in 8..20u16 {
            assert!(budgets.charge(Some(address(i)), 0, MAX_FRAME_BYTES), "address {i}");
        }
        assert_eq!(budgets.held(), 20 * MAX_FRAME_BYTES);
        assert_eq!(budgets.held_for(Some(address(0))), MAX_FRAME_BYTES);
        // A refused charge left nothing behind, and the strangers' budget is untouched.
        assert!(budgets.charge(None, 0, limit));
        assert!(budgets.charge(Some(address(0)), MAX_FRAME_BYTES, 0));
        assert_eq!(budgets.held(), 19 * MAX_FRAME_BYTES + limit);
    }

    #[test]
    fn what_a_frame_is_charged_covers_its_buffer_and_stays_within_its_declared_length() {
        let body = envelope(300_000, 3);
        let mut reader = FrameReader::new(Framing::Batch);
        let framed = batch([body.as_slice()]);
        let mut fed = 0;
        for chunk in framed.chunks(4096).take(40) {
            let mut data = chunk;
            while !data.is_empty() {
                if reader.push(&mut data).is_err() {
                    break;
                }
            }
            fed += chunk.len();
            assert!(reader.unverified() <= body.len(), "charged past the frame's length");
            assert!(reader.unverified() >= reader.frame.len(), "charged less than held");
            assert!(
                reader.unverified() <= 2 * fed.max(PREFIX_LEN),
                "charged far past what arrived"
            );
        }
    }
}
