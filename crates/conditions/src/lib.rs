//! Access-control conditions: who may decrypt data encrypted to the Sigil network.
//!
//! Conditions come in the JSON shapes Lit Protocol documents — `accessControlConditions`
//! (`evmBasic`), `evmContractConditions` (`evmContract`) and `unifiedAccessControlConditions`
//! (each item tagged with `conditionType`) — as an array of conditions joined by
//! `{"operator": "and"}` / `{"operator": "or"}`, where a nested array is a parenthesised group.
//!
//! - [`Conditions::parse`] validates them and names the path of anything malformed
//!   (`[2].returnValueTest.comparator: ...`); the client parses at encrypt time, the nodes again
//!   at decrypt time.
//! - [`Conditions::hash`] is the SHA-256 of a canonical JSON rendering, so the same conditions
//!   written with other whitespace, key order or letter case of operators hash the same;
//!   [`identity`] binds that hash and the data's hash into the identity the data is encrypted to.
//! - [`Conditions::evaluate`] decides them for one caller through the [`Environment`] trait: chain
//!   reads (balance, `eth_call`, latest block time) and action runs. The node implements it over
//!   the chain crate and the action sandbox; tests implement it in memory.
//!
//! No I/O here, and no knowledge of keys: this crate only says yes or no, and why.

mod eval;
mod parse;
mod value;

use std::fmt;

pub use eval::{Context, EnvError, Environment, EvalError, Verdict};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sigil_chain::alloy::json_abi::Function;
use sigil_chain::alloy::primitives::{Address, U256};
use sigil_primitives::Cid;

/// The scheme of the identities data is encrypted to.
pub const IDENTITY_SCHEME: &str = "sigil-acc://";
/// Most conditions (leaves) one request may hold.
pub const MAX_CONDITIONS: usize = 32;
/// Deepest nesting of groups.
pub const MAX_DEPTH: usize = 8;

/// A malformed condition, with the path of the offending part.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct ConditionError {
    /// Where, e.g. `accessControlConditions[2].returnValueTest.comparator`.
    pub path: String,
    /// What is wrong.
    pub reason: String,
}

impl ConditionError {
    pub(crate) fn new(path: &str, reason: impl Into<String>) -> Self {
        Self {
            path: path.to_string(),
            reason: reason.into(),
        }
    }
}

/// How a return value is compared with the expected value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Comparator {
    /// `=`
    #[serde(rename = "=")]
    Eq,
    /// `!=`
    #[serde(rename = "!=")]
    Ne,
    /// `>`
    #[serde(rename = ">")]
    Gt,
    /// `<`
    #[serde(rename = "<")]
    Lt,
    /// `>=`
    #[serde(rename = ">=")]
    Ge,
    /// `<=`
    #[serde(rename = "<=")]
    Le,
    /// `contains`: a substring of a string, or an element of a list.
    #[serde(rename = "contains")]
    Contains,
}

impl Comparator {
    /// Its JSON spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Eq => "=",
            Self::Ne => "!=",
            Self::Gt => ">",
            Self::Lt => "<",
            Self::Ge => ">=",
            Self::Le => "<=",
            Self::Contains => "contains",
        }
    }

    /// Whether it orders (only numbers can be ordered).
    pub fn orders(self) -> bool {
        matches!(self, Self::Gt | Self::Lt | Self::Ge | Self::Le)
    }
}

/// `returnValueTest`: compare the value found with `value` (after `:userAddress` substitution).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReturnValueTest {
    /// For `evmContract`: the name of the output to test (`""` = the first).
    pub key: String,
    /// The comparator.
    pub comparator: Comparator,
    /// The expected value, as written.
    pub value: String,
}

/// What one condition reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Check {
    /// The caller's address itself (`parameters: [":userAddress"]`, no method).
    UserAddress,
    /// The CID of the action asking (`parameters: [":currentActionIpfsId"]`); only an action
    /// that decrypts for itself has one.
    CurrentActionIpfsId,
    /// Native balance (`eth_getBalance`) of an address.
    Balance {
        /// Whose (`:userAddress` or an address).
        owner: String,
    },
    /// ERC-20 `balanceOf(owner)`.
    Erc20Balance {
        /// The token contract.
        contract: Address,
        /// Whose.
        owner: String,
    },
    /// ERC-721 `ownerOf(tokenId)`.
    Erc721Owner {
        /// The NFT contract.
        contract: Address,
        /// The token.
        token: U256,
    },
    /// ERC-721 `balanceOf(owner)`.
    Erc721Balance {
        /// The NFT contract.
        contract: Address,
        /// Whose.
        owner: String,
    },
    /// ERC-1155 `balanceOf(owner, id)`.
    Erc1155Balance {
        /// The contract.
        contract: Address,
        /// Whose.
        owner: String,
        /// The token id.
        id: U256,
    },
    /// The latest block's timestamp (unix seconds).
    Timestamp,
    /// Any view function, described by its ABI.
    Contract {
        /// The contract.
        contract: Address,
        /// The function.
        function: Box<Function>,
        /// Its arguments as strings (`:userAddress` substituted), coerced to the ABI types.
        params: Vec<String>,
    },
    /// An action run by CID: `method(...parameters)` is called and its result tested.
    Action {
        /// The action's code.
        cid: Cid,
        /// The function the code defines.
        method: String,
        /// Its arguments (`:userAddress` substituted).
        params: Vec<String>,
    },
}

/// One condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition {
    /// Where it sits in the request, for messages.
    pub path: String,
    /// The chain it reads (a name the nodes know).
    pub chain: String,
    /// What it reads.
    pub check: Check,
    /// How the value read is tested.
    pub test: ReturnValueTest,
    /// Its canonical JSON form.
    pub(crate) canonical: serde_json::Value,
}

/// A tree of conditions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    /// One condition.
    Leaf(Box<Condition>),
    /// All must hold.
    And(Vec<Expr>),
    /// One must hold.
    Or(Vec<Expr>),
}

/// A validated set of access-control conditions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conditions {
    root: Expr,
    canonical: serde_json::Value,
}

impl Conditions {
    /// The tree.
    pub fn root(&self) -> &Expr {
        &self.root
    }

    /// The canonical JSON: keys in a fixed order, operators in lower case, no fields beyond
    /// those that decide the outcome.
    pub fn canonical_json(&self) -> String {
        let mut out = String::new();
        write_canonical(&self.canonical, &mut out);
        out
    }

    /// SHA-256 of [`Conditions::canonical_json`].
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.canonical_json().as_bytes()).into()
    }

    /// Every leaf, in order.
    pub fn leaves(&self) -> Vec<&Condition> {
        fn walk<'a>(expr: &'a Expr, out: &mut Vec<&'a Condition>) {
            match expr {
                Expr::Leaf(c) => out.push(c),
                Expr::And(items) | Expr::Or(items) => items.iter().for_each(|e| walk(e, out)),
            }
        }
        let mut out = Vec::new();
        walk(&self.root, &mut out);
        out
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match &self.check {
            Check::UserAddress => "the caller's address".to_string(),
            Check::CurrentActionIpfsId => "the asking action's CID".to_string(),
            Check::Balance { owner } => format!("the {} balance of {owner}", self.chain),
            Check::Erc20Balance { contract, owner } => format!("ERC-20 {contract} balanceOf({owner})"),
            Check::Erc721Owner { contract, token } => format!("ERC-721 {contract} ownerOf({token})"),
            Check::Erc721Balance { contract, owner } => format!("ERC-721 {contract} balanceOf({owner})"),
            Check::Erc1155Balance { contract, owner, id } => {
                format!("ERC-1155 {contract} balanceOf({owner}, {id})")
            }
            Check::Timestamp => format!("the latest {} block time", self.chain),
            Check::Contract {
                contract,
                function,
                params,
            } => format!("{contract} {}({})", function.name, params.join(", ")),
            Check::Action { cid, method, params } => format!("action {cid} {method}({})", params.join(", ")),
        };
        let key = if self.test.key.is_empty() {
            String::new()
        } else {
            format!(".{}", self.test.key)
        };
        write!(
            f,
            "{}: {what}{key} {} {}",
            self.path,
            self.test.comparator.as_str(),
            self.test.value
        )
    }
}

/// Writes `value` as JSON with every object's keys in sorted order and no whitespace, whatever
/// order the map keeps them in: the hash must not depend on a serde_json feature flag.
fn write_canonical(value: &serde_json::Value, out: &mut String) {
    match value {
        serde_json::Value::Object(map) => {
            out.push('{');
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String(key.clone()).to_string());
                out.push(':');
                if let Some(item) = map.get(key) {
                    write_canonical(item, out);
                }
            }
            out.push('}');
        }
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// The identity data is encrypted to: `sigil-acc://{hex(conditions hash)}/{hex(data hash)}`.
pub fn identity(conditions_hash: &[u8; 32], data_hash: &[u8; 32]) -> String {
    format!(
        "{IDENTITY_SCHEME}{}/{}",
        hex::encode(conditions_hash),
        hex::encode(data_hash)
    )
}
