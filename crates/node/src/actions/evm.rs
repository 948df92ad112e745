//! Chain reads for actions beyond permissions: `getLatestNonce` and `callContract`, whose
//! transaction arrives serialized (RLP, as ethers' `serializeTransaction` makes it, legacy or
//! typed, unsigned) and is decoded here only as far as a call needs: `to`, `value`, `data`.
//! Uses `actions::env`.

use sigil_actions::HostError;
use sigil_chain::alloy::primitives::{Address, U256};

fn bad(message: impl Into<String>) -> HostError {
    HostError::new("BAD_REQUEST", message)
}

/// One RLP item: a byte string or a list, and the bytes after it.
enum Item<'a> {
    Bytes(&'a [u8]),
    List(&'a [u8]),
}

/// Splits the first RLP item off `input`.
fn item(input: &[u8]) -> Result<(Item<'_>, &[u8]), HostError> {
    let short = || bad("callContract: txn is not valid RLP (it ends early)");
    let (&first, rest) = input.split_first().ok_or_else(short)?;
    let long = |len_of_len: usize, rest: &[u8]| -> Result<(usize, usize), HostError> {
        let bytes = rest.get(..len_of_len).ok_or_else(short)?;
        if len_of_len > 4 {
            return Err(bad("callContract: txn is too long"));
        }
        let len = bytes.iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        Ok((len_of_len, len))
    };
    let (is_list, skip, len) = match first {
        0x00..=0x7f => return Ok((Item::Bytes(input.get(..1).ok_or_else(short)?), rest)),
        0x80..=0xb7 => (false, 0, usize::from(first - 0x80)),
        0xb8..=0xbf => {
            let (skip, len) = long(usize::from(first - 0xb7), rest)?;
            (false, skip, len)
        }
        0xc0..=0xf7 => (true, 0, usize::from(first - 0xc0)),
        0xf8..=0xff => {
            let (skip, len) = long(usize::from(first - 0xf7), rest)?;
            (true, skip, len)
        }
    };
    let body = rest
        .get(skip..skip.checked_add(len).ok_or_else(short)?)
        .ok_or_else(short)?;
    let after = rest.get(skip + len..).ok_or_else(short)?;
    Ok((if is_list { Item::List(body) } else { Item::Bytes(body) }, after))
}

/// The fields of an RLP list.
fn fields(list: &[u8]) -> Result<Vec<&[u8]>, HostError> {
    let mut out = Vec::new();
    let mut rest = list;
    while !rest.is_empty() {
        let (field, after) = item(rest)?;
        out.push(match field {
            Item::Bytes(b) => b,
            // An access list: a call does not need it.
            Item::List(_) => &[][..],
        });
        rest = after;
    }
    Ok(out)
}

/// What an `eth_call` needs from a serialized transaction (its value is checked, not sent).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Call {
    pub(crate) to: Address,
    pub(crate) data: Vec<u8>,
}

/// Decodes ethers' `serializeTransaction` output (hex): a legacy list, or an EIP-2930 (`0x01`)
/// or EIP-1559 (`0x02`) envelope.
pub(crate) fn decode_call(txn: &str) -> Result<Call, HostError> {
    let bytes = hex::decode(txn.trim().trim_start_matches("0x"))
        .map_err(|e| bad(format!("callContract: txn is not hex ({e})")))?;
    // Index of `to` in the field list, by transaction type.
    let (body, to_at) = match bytes.first() {
        Some(0x01) => (bytes.get(1..).unwrap_or_default(), 4),
        Some(0x02) => (bytes.get(1..).unwrap_or_default(), 5),
        Some(b) if *b >= 0xc0 => (&bytes[..], 3),
        _ => return Err(bad("callContract: txn is not a serialized transaction")),
    };
    let (Item::List(list), _) = item(body)? else {
        return Err(bad("callContract: txn is not an RLP list"));
    };
    let f = fields(list)?;
    let to = f.get(to_at).copied().unwrap_or_default();
    if to.len() != 20 {
        return Err(bad(
            "callContract: txn has no `to` address (a contract creation cannot be called)",
        ));
    }
    let value = f.get(to_at + 1).copied().unwrap_or_default();
    if value.len() > 32 {
        return Err(bad("callContract: txn value is over 32 bytes"));
    }
    if U256::from_be_slice(value) != U256::ZERO {
        return Err(bad("callContract: a call sends no value; give value 0"));
    }
    Ok(Call {
        to: Address::from_slice(to),
        data: f.get(to_at + 2).copied().unwrap_or_default().to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_and_typed_transactions_decode_to_their_call() {
        // ethers.utils.serializeTransaction({ to: 0x11…11, data: "0x06fdde03" }): a legacy list
        // of nonce, gasPrice, gasLimit, to, value, data.
        let legacy = "0xde808080941111111111111111111111111111111111111111808406fdde03";
        let call = decode_call(legacy).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(call.to, Address::repeat_byte(0x11));
        assert_eq!(call.data, vec![0x06, 0xfd, 0xde, 0x03]);
        // EIP-1559: chainId 1, nonce 0, tips 0, gas 0, to, value 0, data, empty access list.
        let typed = "0x02e10180808080942222222222222222222222222222222222222222808406fdde03c0";
        let call = decode_call(typed).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(call.to, Address::repeat_byte(0x22));
        assert_eq!(call.data, vec![0x06, 0xfd, 0xde, 0x03]);
        // The same with value 5: a call cannot send value.
        let paying = "0x02e10180808080942222222222222222222222222222222222222222058406fdde03c0";
        assert!(decode_call(paying).is_err());
    }

    #[test]
    fn bad_transactions_are_refused_not_panicked_on() {
        for bad in ["", "0x", "zz", "0x02", "0xc0", "0x02ff", "0xdd80", "0xf9ffff"] {
            assert!(decode_call(bad).is_err(), "{bad}");
        }
    }
}
