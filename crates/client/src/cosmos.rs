//! Cosmos SDK chains for PKPs: a PKP's bech32 account address (under the chain's prefix) and a
//! bank `MsgSend` from it, signed by the network in `SIGN_MODE_DIRECT` — ECDSA over SHA-256 of
//! the `SignDoc`, low-s as the SDK's secp256k1 verifier requires. Built with cosmrs; nothing here
//! talks to a Cosmos node.

pub use cosmrs;
use cosmrs::bank::MsgSend;
use cosmrs::tx::{Body, Fee, Msg, SignDoc, SignerInfo};
use cosmrs::{AccountId, Coin, Denom};
use sha2::{Digest, Sha256};
use sigil_tss::k256::ecdsa::{Signature, VerifyingKey};

use crate::{Client, ClientError, Credential, KeyRef};

/// A bank transfer from a PKP's account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CosmosSend {
    /// The chain's id (e.g. `cosmoshub-4`).
    pub chain_id: String,
    /// The bech32 prefix of its accounts (e.g. `cosmos`).
    pub prefix: String,
    /// The PKP's account number on that chain.
    pub account_number: u64,
    /// The PKP's next sequence number there.
    pub sequence: u64,
    /// The recipient's bech32 address.
    pub to: String,
    /// The amount sent, in `denom`.
    pub amount: u128,
    /// The denomination (e.g. `uatom`).
    pub denom: String,
    /// The fee, in `denom`.
    pub fee: u128,
    /// The gas limit.
    pub gas_limit: u64,
    /// The memo.
    pub memo: String,
}

fn invalid(what: impl std::fmt::Display) -> ClientError {
    ClientError::Invalid(format!("cosmos: {what}"))
}

impl Client {
    fn pkp_cosmos_key(&self, key: KeyRef) -> Result<VerifyingKey, ClientError> {
        VerifyingKey::from_affine(self.pkp_public_key(key).to_affine()).map_err(invalid)
    }

    /// The PKP's account address on a Cosmos SDK chain with bech32 prefix `prefix`:
    /// `bech32(prefix, ripemd160(sha256(compressed key)))`.
    pub fn pkp_cosmos_address(&self, key: KeyRef, prefix: &str) -> Result<String, ClientError> {
        let public = cosmrs::crypto::PublicKey::from(self.pkp_cosmos_key(key)?);
        Ok(public.account_id(prefix).map_err(invalid)?.to_string())
    }

    /// A bank `MsgSend` from the PKP's account as `send` describes, signed by the network as the
    /// holder of `auth` in `SIGN_MODE_DIRECT`: the `TxRaw` bytes, ready to broadcast.
    pub async fn pkp_cosmos_send(
        &self,
        key: KeyRef,
        send: &CosmosSend,
        auth: &dyn Credential,
    ) -> Result<Vec<u8>, ClientError> {
        let verifying = self.pkp_cosmos_key(key)?;
        let public = cosmrs::crypto::PublicKey::from(verifying);
        let from = public.account_id(&send.prefix).map_err(invalid)?;
        let to: AccountId = send
            .to
            .parse()
            .map_err(|e| invalid(format!("recipient {:?}: {e}", send.to)))?;
        if to.prefix() != send.prefix {
            return Err(invalid(format!(
                "recipient {} is not an address of prefix {:?}",
                send.to, send.prefix
            )));
        }
        let denom: Denom = send
            .denom
            .parse()
            .map_err(|e| invalid(format!("denom {:?}: {e}", send.denom)))?;
        let message = MsgSend {
            from_address: from,
            to_address: to,
            amount: vec![Coin {
                denom: denom.clone(),
                amount: send.amount,
            }],
        }
        .to_any()
        .map_err(invalid)?;
        let body = Body::new(vec![message], send.memo.clone(), 0u32);
        let fee = Fee::from_amount_and_gas(
            Coin {
                denom,
                amount: send.fee,
            },
            send.gas_limit,
        );
        let auth_info = SignerInfo::single_direct(Some(public), send.sequence).auth_info(fee);
        let chain_id = send
            .chain_id
            .parse()
            .map_err(|e| invalid(format!("chain id {:?}: {e}", send.chain_id)))?;
        let sign_doc = SignDoc::new(&body, &auth_info, &chain_id, send.account_number).map_err(invalid)?;
        let (body_bytes, auth_info_bytes) = (sign_doc.body_bytes.clone(), sign_doc.auth_info_bytes.clone());
        let hash: [u8; 32] = Sha256::digest(sign_doc.into_bytes().map_err(invalid)?).into();
        let outcome = self.pkp_sign(key, hash, auth).await?;
        let signature = Signature::from_scalars(outcome.signature.r, outcome.signature.s).map_err(invalid)?;
        let signature = signature.normalize_s().unwrap_or(signature);
        let raw = cosmrs::proto::cosmos::tx::v1beta1::TxRaw {
            body_bytes,
            auth_info_bytes,
            signatures: vec![signature.to_bytes().to_vec()],
        };
        cosmrs::tx::Raw::from(raw).to_bytes().map_err(invalid)
    }
}
