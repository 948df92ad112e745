//! Bitcoin for PKPs: a PKP's two addresses — P2WPKH (its ECDSA key, compressed) and P2TR
//! key-path (its BIP-341 taproot output key, signed by BIP-340 Schnorr) — and transactions
//! spending the PKP's coins, each input signed by the network with the matching scheme. Built
//! with rust-bitcoin (`bitcoin`); nothing here talks to a Bitcoin node.

pub use bitcoin;
use bitcoin::hashes::Hash;
use bitcoin::key::{CompressedPublicKey, TweakedPublicKey};
use bitcoin::secp256k1;
use bitcoin::sighash::{EcdsaSighashType, Prevouts, SighashCache, TapSighashType};
use bitcoin::transaction::Version;
use bitcoin::{absolute, Address, Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness};
use sigil_tss::k256::elliptic_curve::sec1::ToEncodedPoint;

use crate::{Client, ClientError, Credential, KeyRef};

/// Which of a PKP's outputs holds a coin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BitcoinOutput {
    /// Pay to witness public key hash: spent with an ECDSA signature (`EcdsaK256Sha256`).
    P2wpkh,
    /// Pay to taproot, key path: spent with a BIP-340 signature (`SchnorrK256Taproot`).
    P2tr,
}

/// A coin of the PKP to spend: where it is, what it is worth, and which output of the PKP it pays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Coin {
    /// The transaction output holding it.
    pub outpoint: OutPoint,
    /// Its value.
    pub amount: Amount,
    /// The PKP's output it pays to.
    pub output: BitcoinOutput,
}

fn invalid(what: impl std::fmt::Display) -> ClientError {
    ClientError::Invalid(format!("bitcoin: {what}"))
}

impl Client {
    /// The PKP's compressed ECDSA public key as Bitcoin uses it.
    fn pkp_compressed_key(&self, key: KeyRef) -> Result<CompressedPublicKey, ClientError> {
        let point = self.pkp_public_key(key).to_affine().to_encoded_point(true);
        CompressedPublicKey::from_slice(point.as_bytes()).map_err(invalid)
    }

    /// The script a coin paying the PKP's `output` is locked by.
    pub fn pkp_bitcoin_script(&self, key: KeyRef, output: BitcoinOutput) -> Result<ScriptBuf, ClientError> {
        Ok(match output {
            BitcoinOutput::P2wpkh => ScriptBuf::new_p2wpkh(&self.pkp_compressed_key(key)?.wpubkey_hash()),
            BitcoinOutput::P2tr => ScriptBuf::new_p2tr_tweaked(self.pkp_taproot_output(key)?),
        })
    }

    fn pkp_taproot_output(&self, key: KeyRef) -> Result<TweakedPublicKey, ClientError> {
        let x = self.pkp_taproot_key(key)?;
        let x = secp256k1::XOnlyPublicKey::from_slice(&x).map_err(invalid)?;
        Ok(TweakedPublicKey::dangerous_assume_tweaked(x))
    }

    /// The PKP's address of kind `output` on `network` (bech32 for P2WPKH, bech32m for P2TR).
    pub fn pkp_bitcoin_address(
        &self,
        key: KeyRef,
        output: BitcoinOutput,
        network: bitcoin::Network,
    ) -> Result<Address, ClientError> {
        Ok(match output {
            BitcoinOutput::P2wpkh => Address::p2wpkh(&self.pkp_compressed_key(key)?, network),
            BitcoinOutput::P2tr => Address::p2tr_tweaked(self.pkp_taproot_output(key)?, network),
        })
    }

    /// A version-2 transaction spending the PKP's `coins` to `outputs` (what the coins hold
    /// beyond them is the fee), every input signed by the network as the holder of `auth`: a
    /// P2WPKH input by ECDSA over its BIP-143 sighash, a P2TR input by BIP-340 Schnorr over its
    /// BIP-341 key-path sighash (`SIGHASH_DEFAULT`, committing to every coin spent).
    pub async fn pkp_bitcoin_spend(
        &self,
        key: KeyRef,
        coins: &[Coin],
        outputs: Vec<TxOut>,
        auth: &dyn Credential,
    ) -> Result<Transaction, ClientError> {
        if coins.is_empty() || outputs.is_empty() {
            return Err(invalid("a spend needs at least one coin and one output"));
        }
        let total_in = coins
            .iter()
            .try_fold(Amount::ZERO, |sum, c| sum.checked_add(c.amount))
            .ok_or_else(|| invalid("the coins' values overflow"))?;
        let total_out = outputs
            .iter()
            .try_fold(Amount::ZERO, |sum, o| sum.checked_add(o.value))
            .ok_or_else(|| invalid("the outputs' values overflow"))?;
        if total_out > total_in {
            return Err(invalid(format!(
                "the outputs ({total_out}) exceed the coins ({total_in})"
            )));
        }
        let prevouts = coins
            .iter()
            .map(|c| {
                Ok(TxOut {
                    value: c.amount,
                    script_pubkey: self.pkp_bitcoin_script(key, c.output)?,
                })
            })
            .collect::<Result<Vec<_>, ClientError>>()?;
        let mut tx = Transaction {
            version: Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: coins
                .iter()
                .map(|c| TxIn {
                    previous_output: c.outpoint,
                    script_sig: ScriptBuf::new(),
                    sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                    witness: Witness::new(),
                })
                .collect(),
            output: outputs,
        };
        let mut witnesses = Vec::with_capacity(coins.len());
        {
            let mut cache = SighashCache::new(&tx);
            for (index, (coin, prevout)) in coins.iter().zip(&prevouts).enumerate() {
                let witness = match coin.output {
                    BitcoinOutput::P2wpkh => {
                        let hash = cache
                            .p2wpkh_signature_hash(index, &prevout.script_pubkey, coin.amount, EcdsaSighashType::All)
                            .map_err(invalid)?;
                        let outcome = self.pkp_sign(key, hash.to_byte_array(), auth).await?;
                        let rsv = outcome.signature.to_rsv();
                        let mut signature = secp256k1::ecdsa::Signature::from_compact(&rsv[..64]).map_err(invalid)?;
                        signature.normalize_s();
                        let signature = bitcoin::ecdsa::Signature {
                            signature,
                            sighash_type: EcdsaSighashType::All,
                        };
                        Witness::p2wpkh(&signature, &self.pkp_compressed_key(key)?.0)
                    }
                    BitcoinOutput::P2tr => {
                        let hash = cache
                            .taproot_key_spend_signature_hash(index, &Prevouts::All(&prevouts), TapSighashType::Default)
                            .map_err(invalid)?;
                        let outcome = self.pkp_sign_schnorr(key, hash.to_byte_array(), auth).await?;
                        let signature = bitcoin::taproot::Signature {
                            signature: secp256k1::schnorr::Signature::from_slice(&outcome.signature)
                                .map_err(invalid)?,
                            sighash_type: TapSighashType::Default,
                        };
                        Witness::p2tr_key_spend(&signature)
                    }
                };
                witnesses.push(witness);
            }
        }
        for (input, witness) in tx.input.iter_mut().zip(witnesses) {
            input.witness = witness;
        }
        Ok(tx)
    }
}
