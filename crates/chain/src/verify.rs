//! The seeds' chain of trust, checked link by link: a signature made by a PKP of this network,
//! a PKP minted and burned in one transaction (so at no block did it have an owner who could sign
//! with it, and its permissions never changed: PKPHelper's Mint/Grant/Burn does this), one
//! permitted action and nothing else, and that action's code. If every link holds, only that code
//! can have made the signature (nodes also refuse custom-auth sessions for burned PKPs).
//!
//! The claim carries the message, not a bare hash: for any key, anyone can make a "signature"
//! that recovers to it from a hash they choose, but not from a hash of a message they choose.

use alloy::primitives::{keccak256, Signature, B256, U256};
use alloy::providers::Provider;
use alloy::rpc::types::Filter;
use serde::Serialize;
use sigil_primitives::Cid;

use crate::registry::Registry;

/// One link of the chain of trust, checked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Link {
    /// Which link (`signature`, `minted`, `mint-grant-burn`, `only-action`, `code`).
    pub name: &'static str,
    /// Whether it holds.
    pub ok: bool,
    /// What was found, or why it does not hold.
    pub detail: String,
}

/// Every link, in order; the chain holds if each does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The links.
    pub links: Vec<Link>,
    /// The PKP's token id (0x-hex), when the signature recovers to a key.
    pub token_id: Option<String>,
    /// The PKP's Ethereum address, when the signature recovers to a key.
    pub address: Option<String>,
}

impl Report {
    /// Whether every link holds.
    pub fn holds(&self) -> bool {
        !self.links.is_empty() && self.links.iter().all(|l| l.ok)
    }
}

/// What the check is about: the signature, what was signed, and the action.
pub struct Claim<'a> {
    /// 65 bytes `r ‖ s ‖ v` (v 0/1 or 27/28).
    pub signature: &'a [u8],
    /// The message whose keccak256 was signed (as `ethers.utils.keccak256(message)`).
    pub message: &'a [u8],
    /// The action's CID, as the PKP should permit it.
    pub cid: Cid,
    /// The action's code, if given: it must hash to `cid`.
    pub code: Option<&'a [u8]>,
}

fn link(name: &'static str, ok: bool, detail: impl Into<String>) -> Link {
    Link {
        name,
        ok,
        detail: detail.into(),
    }
}

/// Checks every link of `claim` against the chain `registry` reads. Errors reading the chain are
/// reported as failed links naming them, not as an error: the report says how far it got.
pub async fn verify(registry: &Registry, claim: &Claim<'_>) -> Report {
    let mut links = Vec::new();
    let report = |links: Vec<Link>, token: Option<U256>, address: Option<String>| Report {
        links,
        token_id: token.map(|t| format!("{t:#x}")),
        address,
    };
    // 1. The signature recovers to a key, and that key is a PKP minted on this network.
    let recovered = <[u8; 65]>::try_from(claim.signature)
        .map_err(|_| format!("{} bytes, expected 65 (r ‖ s ‖ v)", claim.signature.len()))
        .and_then(|raw| {
            let mut raw = raw;
            if raw[64] >= 27 {
                raw[64] -= 27;
            }
            Signature::from_raw_array(&raw).map_err(|e| format!("not a signature: {e}"))
        })
        .and_then(|sig| {
            sig.recover_from_prehash(&keccak256(claim.message))
                .map_err(|e| format!("recovers to no key: {e}"))
        });
    let key = match recovered {
        Ok(key) => key,
        Err(why) => {
            links.push(link("signature", false, why));
            return report(links, None, None);
        }
    };
    let point = key.to_encoded_point(false);
    let Ok(pubkey) = <[u8; 65]>::try_from(point.as_bytes()) else {
        links.push(link("signature", false, "the key does not encode as 65 bytes"));
        return report(links, None, None);
    };
    let token = crate::token_id(&pubkey);
    let address = alloy::primitives::Address::from_raw_public_key(&pubkey[1..]).to_checksum(None);
    links.push(link(
        "signature",
        true,
        format!("recovers to {address} (PKP {token:#x})"),
    ));
    match registry.minted(token).await {
        Ok(true) => links.push(link(
            "minted",
            true,
            format!("PKP {token:#x} was minted on chain {}", registry.chain_id()),
        )),
        Ok(false) => {
            links.push(link(
                "minted",
                false,
                format!(
                    "no PKP {token:#x} was ever minted on chain {}: the key is not this network's",
                    registry.chain_id()
                ),
            ));
            return report(links, Some(token), Some(address));
        }
        Err(e) => {
            links.push(link("minted", false, format!("reading the chain: {e}")));
            return report(links, Some(token), Some(address));
        }
    }
    // 2. Minted and burned in one transaction: PKPNFT's Transfer from 0 and to 0 for this token,
    //    in the same transaction. Nodes read state between blocks, so no block ever saw it owned.
    links.push(match minted_and_burned_in(registry, token).await {
        Ok(Some(tx)) => link(
            "mint-grant-burn",
            true,
            format!("minted, granted and burned in transaction {tx:#x}: it never had an owner, and its permissions can never change"),
        ),
        Ok(None) => link(
            "mint-grant-burn",
            false,
            format!("PKP {token:#x} was not minted and burned in one transaction: it had an owner, who could sign with it or change what it permits"),
        ),
        Err(e) => link("mint-grant-burn", false, format!("reading the chain: {e}")),
    });
    // 3. The only thing the PKP permits is this action.
    links.push(only_action(registry, token, &claim.cid).await);
    // 4. The code is the action.
    if let Some(code) = claim.code {
        links.push(match Cid::of_file(code) {
            Ok(got) if got == claim.cid => link("code", true, format!("the file hashes to {got}")),
            Ok(got) => link(
                "code",
                false,
                format!("the file hashes to {got}, not {}: it is another program", claim.cid),
            ),
            Err(e) => link("code", false, format!("the file cannot be hashed: {e}")),
        });
    }
    report(links, Some(token), Some(address))
}

/// The transaction that both minted and burned `token` (PKPNFT's ERC-721 `Transfer` from and to
/// the zero address), if one did and the token is burned.
async fn minted_and_burned_in(registry: &Registry, token: U256) -> Result<Option<B256>, String> {
    let burned = registry.burned(token).await.map_err(|e| e.to_string())?;
    if !burned {
        return Ok(None);
    }
    let transfer = keccak256("Transfer(address,address,uint256)");
    let filter = Filter::new()
        .address(registry.contracts().pkp_nft)
        .event_signature(transfer)
        .topic3(B256::from(token))
        .from_block(0);
    let logs = registry.provider().get_logs(&filter).await.map_err(|e| e.to_string())?;
    let (mut minted, mut burned_in) = (None, None);
    for log in &logs {
        let (Some(tx), [_, from, to, ..]) = (log.transaction_hash, log.topics()) else {
            continue;
        };
        if from.is_zero() {
            minted = Some(tx);
        }
        if to.is_zero() {
            burned_in = Some(tx);
        }
    }
    Ok(match (minted, burned_in) {
        (Some(m), Some(b)) if m == b => Some(m),
        _ => None,
    })
}

async fn only_action(registry: &Registry, token: U256, cid: &Cid) -> Link {
    let read = async {
        let actions = registry.permitted_actions(token).await?;
        let addresses = registry.permitted_addresses(token).await?;
        let methods = registry.permitted_auth_methods(token).await?;
        Ok::<_, crate::ChainError>((actions, addresses, methods))
    };
    let (actions, addresses, methods) = match read.await {
        Ok(all) => all,
        Err(e) => return link("only-action", false, format!("reading the permissions: {e}")),
    };
    let names: Vec<String> = actions
        .iter()
        .map(|b| {
            Cid::from_bytes(b)
                .map(|c| c.to_string())
                .unwrap_or_else(|_| format!("0x{}", hex::encode(b)))
        })
        .collect();
    let mut extra = Vec::new();
    if !addresses.is_empty() {
        extra.push(format!("{} permitted address(es)", addresses.len()));
    }
    if !methods.is_empty() {
        extra.push(format!("{} permitted auth method(s)", methods.len()));
    }
    match (names.as_slice(), extra.is_empty()) {
        ([only], true) if only == &cid.to_string() => link(
            "only-action",
            true,
            format!("the only thing it permits is action {cid}"),
        ),
        ([], true) => link("only-action", false, "it permits no action".to_string()),
        _ => link(
            "only-action",
            false,
            format!(
                "it permits {}{}{}, not only {cid}",
                if names.is_empty() {
                    "no action".to_string()
                } else {
                    format!("action(s) {}", names.join(", "))
                },
                if extra.is_empty() { "" } else { " and " },
                extra.join(" and ")
            ),
        ),
    }
}
