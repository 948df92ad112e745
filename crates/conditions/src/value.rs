//! Values read from the chain or an action, and how `returnValueTest` compares them.

use std::cmp::Ordering;
use std::fmt;

use sigil_chain::alloy::dyn_abi::DynSolValue;
use sigil_chain::alloy::primitives::{Address, U256};

use crate::Comparator;

/// `0x` and 40 hex digits, any letter case.
pub(crate) fn parse_address(text: &str) -> Option<Address> {
    let hex = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X"))?;
    if hex.len() != 40 {
        return None;
    }
    let bytes = hex::decode(hex).ok()?;
    Some(Address::from_slice(&bytes))
}

/// A decimal or `0x` hex integer with an optional `-`: (negative, magnitude).
pub(crate) fn parse_number(text: &str) -> Option<(bool, U256)> {
    let text = text.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let magnitude = match digits.strip_prefix("0x").or_else(|| digits.strip_prefix("0X")) {
        Some(hex) if !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit()) => {
            U256::from_str_radix(hex, 16).ok()?
        }
        Some(_) => return None,
        None if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) => {
            U256::from_str_radix(digits, 10).ok()?
        }
        None => return None,
    };
    Some((negative && !magnitude.is_zero(), magnitude))
}

fn order(a: (bool, U256), b: (bool, U256)) -> Ordering {
    match (a.0, b.0) {
        (false, false) => a.1.cmp(&b.1),
        (true, true) => b.1.cmp(&a.1),
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
    }
}

/// A value a condition read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    /// An integer: (negative, magnitude).
    Number(bool, U256),
    /// An address.
    Address(Address),
    /// A boolean.
    Bool(bool),
    /// Text (also bytes, as 0x hex).
    Text(String),
    /// An array or tuple.
    List(Vec<Found>),
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Number(true, n) => write!(f, "-{n}"),
            Self::Number(false, n) => write!(f, "{n}"),
            Self::Address(a) => write!(f, "{}", a.to_checksum(None)),
            Self::Bool(b) => write!(f, "{b}"),
            Self::Text(t) => write!(f, "{t:?}"),
            Self::List(items) => {
                let items: Vec<String> = items.iter().map(ToString::to_string).collect();
                write!(f, "[{}]", items.join(", "))
            }
        }
    }
}

impl From<&DynSolValue> for Found {
    fn from(value: &DynSolValue) -> Self {
        match value {
            DynSolValue::Bool(b) => Self::Bool(*b),
            DynSolValue::Uint(n, _) => Self::Number(false, *n),
            DynSolValue::Int(n, _) => Self::Number(n.is_negative(), n.unsigned_abs()),
            DynSolValue::Address(a) => Self::Address(*a),
            DynSolValue::String(s) => Self::Text(s.clone()),
            DynSolValue::Bytes(b) => Self::Text(format!("0x{}", hex::encode(b))),
            DynSolValue::FixedBytes(b, size) => {
                Self::Text(format!("0x{}", hex::encode(b.get(..*size).unwrap_or_default())))
            }
            DynSolValue::Array(items) | DynSolValue::FixedArray(items) | DynSolValue::Tuple(items) => {
                Self::List(items.iter().map(Self::from).collect())
            }
            other => Self::Text(format!("{other:?}")),
        }
    }
}

/// Whether `found` passes `comparator` against `expected` (placeholders already substituted).
/// An error says why the two cannot be compared.
pub(crate) fn compare(found: &Found, comparator: Comparator, expected: &str) -> Result<bool, String> {
    use Comparator::*;
    match found {
        Found::Number(neg, n) => {
            let want = parse_number(expected).ok_or_else(|| format!("{expected:?} is not a number"))?;
            let ord = order((*neg, *n), want);
            Ok(match comparator {
                Eq => ord == Ordering::Equal,
                Ne => ord != Ordering::Equal,
                Gt => ord == Ordering::Greater,
                Lt => ord == Ordering::Less,
                Ge => ord != Ordering::Less,
                Le => ord != Ordering::Greater,
                Contains => return Err("contains does not apply to a number".into()),
            })
        }
        Found::Address(a) => {
            let want = parse_address(expected).ok_or_else(|| format!("{expected:?} is not an address"))?;
            match comparator {
                Eq => Ok(*a == want),
                Ne => Ok(*a != want),
                _ => Err(format!("{} does not apply to an address", comparator.as_str())),
            }
        }
        Found::Bool(b) => {
            let want = match expected {
                "true" => true,
                "false" => false,
                _ => return Err(format!("{expected:?} is not true or false")),
            };
            match comparator {
                Eq => Ok(*b == want),
                Ne => Ok(*b != want),
                _ => Err(format!("{} does not apply to a boolean", comparator.as_str())),
            }
        }
        Found::Text(text) => match comparator {
            Eq => Ok(text == expected),
            Ne => Ok(text != expected),
            Contains => Ok(text.contains(expected)),
            _ => match (parse_number(text), parse_number(expected)) {
                (Some(a), Some(_)) => compare(&Found::Number(a.0, a.1), comparator, expected),
                _ => Err(format!(
                    "{} needs numbers, found {text:?} and {expected:?}",
                    comparator.as_str()
                )),
            },
        },
        Found::List(items) => match comparator {
            Contains => Ok(items.iter().any(|item| compare(item, Eq, expected) == Ok(true))),
            _ => Err(format!(
                "{} does not apply to a list; use contains",
                comparator.as_str()
            )),
        },
    }
}
