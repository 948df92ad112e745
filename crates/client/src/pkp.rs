//! PKPs on chain: minting against the network's attestation, Mint/Grant/Burn, and
//! [`PkpSigner`], an alloy signer whose key is a PKP — so alloy users send transactions, sign
//! EIP-191 messages and EIP-712 typed data from a PKP address.

use sigil_chain::alloy::consensus::SignableTransaction;
use sigil_chain::alloy::network::TxSigner;
use sigil_chain::alloy::primitives::{Address, Bytes, ChainId, Signature, B256, U256};
use sigil_chain::alloy::providers::DynProvider;
use sigil_chain::alloy::signers::Signer;
use sigil_chain::bindings::{PKPHelper, PKPNFT};
use sigil_chain::deploy::send;
use sigil_chain::Contracts;
use sigil_tss::derive::{eth_address, uncompressed};
use sigil_tss::ecdsa::EcdsaSignature;

use crate::{request_id, Client, ClientError, Credential, KeyRef};

/// A freshly minted PKP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MintedPkp {
    /// `uint256(keccak256(public key))`.
    pub token_id: U256,
    /// The key id the contract fixed (`keccak256(minter ‖ salt)`).
    pub key_id: [u8; 32],
    /// Uncompressed public key.
    pub public_key: [u8; 65],
    /// Its Ethereum address.
    pub eth_address: Address,
    /// The mint transaction.
    pub tx_hash: B256,
}

fn chain(e: impl std::fmt::Display) -> ClientError {
    ClientError::Chain(e.to_string())
}

impl Client {
    fn minted(&self, key_id: [u8; 32], tx_hash: B256) -> MintedPkp {
        let point = self.pkp_public_key(KeyRef::KeyId(key_id));
        let public_key = uncompressed(&point);
        MintedPkp {
            token_id: sigil_chain::token_id(&public_key),
            key_id,
            public_key,
            eth_address: Address::from(eth_address(&point)),
            tx_hash,
        }
    }

    /// The key id a mint by the signer of `auth` with `salt` gets (through PKPHelper at `helper`).
    pub fn key_id_for(
        &self,
        auth: &dyn Credential,
        salt: &[u8; 32],
        helper: Option<Address>,
    ) -> Result<[u8; 32], ClientError> {
        Ok(sigil_chain::mint_key_id(auth.address()?, salt, helper))
    }

    /// Requests the mint of `key_id` on chain (`PKPNFT.requestMint`), paying the mint fee: the
    /// nodes attest a key only once its mint was requested, so attestations are not free. Returns
    /// the transaction hash, or zero when the key id was already requested (by anyone: a front-run
    /// request costs its sender the fee and the minter nothing).
    pub async fn request_mint(
        &self,
        wallet: &DynProvider,
        contracts: &Contracts,
        key_id: [u8; 32],
    ) -> Result<B256, ClientError> {
        let nft = PKPNFT::new(contracts.pkp_nft, wallet);
        // Someone may have paid for this key id first (it is public once the request is in the
        // mempool): the nodes then attest it all the same, and only the salt's owner can mint it.
        if !nft.mintRequester(key_id.into()).call().await.map_err(chain)?.is_zero() {
            return Ok(B256::ZERO);
        }
        let fee = nft.mintFee().call().await.map_err(chain)?;
        let call = nft.requestMint(key_id.into()).value(fee).into_transaction_request();
        let receipt = send(wallet, call, "PKPNFT.requestMint").await.map_err(chain)?;
        Ok(receipt.transaction_hash)
    }

    /// Mints a PKP to the wallet behind `wallet`, whose auth signature is `auth`: a random salt
    /// fixes the key id, the mint is requested on chain (paying the mint fee), the network attests
    /// the key, and `PKPNFT.mint` checks the attestation.
    pub async fn mint_pkp(
        &self,
        wallet: &DynProvider,
        auth: &dyn Credential,
        contracts: &Contracts,
    ) -> Result<MintedPkp, ClientError> {
        let salt = B256::from(random32());
        self.request_mint(wallet, contracts, self.key_id_for(auth, &salt.0, None)?)
            .await?;
        let (key_id, attestation) = self.mint_attestation(salt.0, None, auth).await?;
        let public_key = uncompressed(&self.pkp_public_key(KeyRef::KeyId(key_id)));
        let call = PKPNFT::new(contracts.pkp_nft, wallet)
            .mint(
                salt,
                Bytes::copy_from_slice(&public_key),
                Bytes::copy_from_slice(&attestation),
            )
            .into_transaction_request();
        let receipt = send(wallet, call, "PKPNFT.mint").await.map_err(chain)?;
        Ok(self.minted(key_id, receipt.transaction_hash))
    }

    /// Mint/Grant/Burn in one transaction: mints a PKP, permits the action with IPFS CID
    /// `cid` (its bytes), and burns the token, so that action alone can ever use the key. `wallet`
    /// must send as the signer of `auth`.
    pub async fn mint_grant_burn(
        &self,
        wallet: &DynProvider,
        auth: &dyn Credential,
        contracts: &Contracts,
        cid: &[u8],
    ) -> Result<MintedPkp, ClientError> {
        let salt = B256::from(random32());
        let key_id = self.key_id_for(auth, &salt.0, Some(contracts.pkp_helper))?;
        self.request_mint(wallet, contracts, key_id).await?;
        let (key_id, attestation) = self.mint_attestation(salt.0, Some(contracts.pkp_helper), auth).await?;
        let public_key = uncompressed(&self.pkp_public_key(KeyRef::KeyId(key_id)));
        let call = PKPHelper::new(contracts.pkp_helper, wallet)
            .mintGrantBurn(
                salt,
                Bytes::copy_from_slice(&public_key),
                Bytes::copy_from_slice(&attestation),
                Bytes::copy_from_slice(cid),
            )
            .into_transaction_request();
        let receipt = send(wallet, call, "PKPHelper.mintGrantBurn").await.map_err(chain)?;
        Ok(self.minted(key_id, receipt.transaction_hash))
    }
}

/// An auth method to permit at mint ([`Client::mint_with_auth_methods`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAuthMethod {
    /// Lit's type number.
    pub kind: u64,
    /// Its id within the type.
    pub id: Vec<u8>,
    /// The public key that proves it (a WebAuthn credential's COSE key), or empty.
    pub user_pubkey: Vec<u8>,
    /// Scope bits: 1 sign anything, 2 personal messages.
    pub scopes: u64,
}

impl Client {
    /// Mints a PKP permitting `methods` through PKPHelper (`mintWithAuthMethods`), paid and sent
    /// by `wallet` (the signer of `auth`). With `send_to_itself` the NFT goes to the PKP's own
    /// address, so only its auth methods control it: a key for someone without a wallet.
    pub async fn mint_with_auth_methods(
        &self,
        wallet: &DynProvider,
        auth: &dyn Credential,
        contracts: &Contracts,
        methods: &[NewAuthMethod],
        send_to_itself: bool,
    ) -> Result<MintedPkp, ClientError> {
        let salt = B256::from(random32());
        let key_id = self.key_id_for(auth, &salt.0, Some(contracts.pkp_helper))?;
        self.request_mint(wallet, contracts, key_id).await?;
        let (key_id, attestation) = self.mint_attestation(salt.0, Some(contracts.pkp_helper), auth).await?;
        let public_key = uncompressed(&self.pkp_public_key(KeyRef::KeyId(key_id)));
        let methods = methods
            .iter()
            .map(|m| PKPHelper::NewAuthMethod {
                authMethodType: U256::from(m.kind),
                id: Bytes::copy_from_slice(&m.id),
                userPubkey: Bytes::copy_from_slice(&m.user_pubkey),
                scopes: U256::from(m.scopes),
            })
            .collect();
        let call = PKPHelper::new(contracts.pkp_helper, wallet)
            .mintWithAuthMethods(
                salt,
                Bytes::copy_from_slice(&public_key),
                Bytes::copy_from_slice(&attestation),
                methods,
                send_to_itself,
            )
            .into_transaction_request();
        let receipt = send(wallet, call, "PKPHelper.mintWithAuthMethods")
            .await
            .map_err(chain)?;
        Ok(self.minted(key_id, receipt.transaction_hash))
    }
}

impl Client {
    /// Claims the PKP derived from auth method `method` (PKPHelper `claimKey`), paid and sent by
    /// `wallet` (anyone: a relayer for someone without a wallet): a node tells the method's id
    /// (`/web/auth_method_id`), the mint is requested, the network attests the key to whoever
    /// proves the method, and the PKP is minted to itself with that method permitted.
    pub async fn claim_key(
        &self,
        wallet: &DynProvider,
        contracts: &Contracts,
        method: &sigil_primitives::AuthMethod,
    ) -> Result<MintedPkp, ClientError> {
        let node = self.nodes.first().ok_or(ClientError::NoChain)?;
        let body = sigil_primitives::AuthMethodIdRequest {
            auth_method: method.clone(),
        };
        let answer: sigil_primitives::AuthMethodIdResponse =
            crate::post(&self.http, &format!("{}/web/auth_method_id", node.url), &body)
                .await
                .map_err(ClientError::Auth)?;
        let id = hex::decode(answer.auth_method_id.trim_start_matches("0x"))
            .map_err(|e| ClientError::Invalid(format!("authMethodId: {e}")))?;
        // Computed here, not taken from the node: the attestation binds it.
        let key_id = sigil_chain::claim_key_id(contracts.pkp_helper, answer.auth_method_type, &id);
        self.request_mint(wallet, contracts, key_id).await?;
        let attestation = self.claim_attestation(method, key_id).await?;
        let public_key = uncompressed(&self.pkp_public_key(KeyRef::KeyId(key_id)));
        let call = PKPHelper::new(contracts.pkp_helper, wallet)
            .claimKey(
                U256::from(answer.auth_method_type),
                Bytes::from(id),
                Bytes::copy_from_slice(&public_key),
                Bytes::copy_from_slice(&attestation),
            )
            .into_transaction_request();
        let receipt = send(wallet, call, "PKPHelper.claimKey").await.map_err(chain)?;
        Ok(self.minted(key_id, receipt.transaction_hash))
    }
}

impl Client {
    /// Requests the mint (`PKPNFT.requestMint`, paying the mint fee) of the key that action
    /// `cid` will claim as `key_id` with `Lit.Actions.claimKey`: the nodes attest a claim only
    /// once its mint was requested. Returns the PKP's key id.
    pub async fn request_action_claim(
        &self,
        wallet: &DynProvider,
        contracts: &Contracts,
        cid: &str,
        key_id: &str,
    ) -> Result<[u8; 32], ClientError> {
        let cid: sigil_primitives::Cid = cid
            .parse()
            .map_err(|e| ClientError::Invalid(format!("claim CID: {e}")))?;
        let derived = sigil_chain::action_claim_derived_key_id(&cid.to_string(), key_id);
        let pkp_key_id = sigil_chain::action_claim_key_id(contracts.pkp_helper, cid.as_bytes(), &derived);
        self.request_mint(wallet, contracts, pkp_key_id).await?;
        Ok(pkp_key_id)
    }

    /// Mints the PKP an action claimed (PKPHelper `claimActionKey`), sent by `wallet` (anyone:
    /// the outcome is the same whoever sends it): the PKP permits the claiming action and owns
    /// itself. The claim's key id is checked against `contracts` first.
    pub async fn claim_action_key(
        &self,
        wallet: &DynProvider,
        contracts: &Contracts,
        claim: &crate::ActionKeyClaim,
    ) -> Result<MintedPkp, ClientError> {
        let cid: sigil_primitives::Cid = claim
            .cid
            .parse()
            .map_err(|e| ClientError::Invalid(format!("claim CID: {e}")))?;
        let key_id = sigil_chain::action_claim_key_id(contracts.pkp_helper, cid.as_bytes(), &claim.derived_key_id);
        if key_id != claim.key_id {
            return Err(ClientError::Invalid(format!(
                "the claim's key id 0x{} is not PKPHelper {}'s for action {} (0x{})",
                hex::encode(claim.key_id),
                contracts.pkp_helper,
                claim.cid,
                hex::encode(key_id)
            )));
        }
        let token = sigil_chain::token_id(&claim.public_key);
        let nft = PKPNFT::new(contracts.pkp_nft, wallet);
        let owner = nft
            .ownerOrZero(token)
            .call()
            .await
            .map_err(|e| ClientError::Chain(format!("PKPNFT.ownerOrZero: {e}")))?;
        let burned = nft
            .isBurned(token)
            .call()
            .await
            .map_err(|e| ClientError::Chain(format!("PKPNFT.isBurned: {e}")))?;
        if !owner.is_zero() || burned {
            return Err(ClientError::Invalid(format!(
                "the PKP {} claimed by action {} is minted already",
                claim.eth_address, claim.cid
            )));
        }
        let attestation = claim.attestation.ok_or_else(|| {
            ClientError::Invalid(format!(
                "the network made no attestation for the key {} claimed by action {}: request its mint (request_action_claim), then run the action again (if an earlier run used the attempt, with claimKey({{ keyId, attempt: 1 }}))",
                claim.eth_address, claim.cid
            ))
        })?;
        let call = PKPHelper::new(contracts.pkp_helper, wallet)
            .claimActionKey(
                Bytes::copy_from_slice(cid.as_bytes()),
                B256::from(claim.derived_key_id),
                Bytes::copy_from_slice(&claim.public_key),
                Bytes::copy_from_slice(&attestation),
            )
            .into_transaction_request();
        let receipt = send(wallet, call, "PKPHelper.claimActionKey").await.map_err(chain)?;
        Ok(self.minted(key_id, receipt.transaction_hash))
    }
}

fn random32() -> [u8; 32] {
    let mut out = [0u8; 32];
    out[..16].copy_from_slice(&request_id());
    out[16..].copy_from_slice(&request_id());
    out
}

/// An alloy signer backed by a PKP: every signature is a threshold signature by the network,
/// authorised by `auth`. Use it as `EthereumWallet::from(signer)` to send transactions.
#[derive(Clone, Debug)]
pub struct PkpSigner {
    client: Client,
    key_id: [u8; 32],
    auth: std::sync::Arc<dyn Credential>,
    address: Address,
    chain_id: Option<ChainId>,
}

impl PkpSigner {
    /// A signer for the PKP under `key_id`, authorised by `auth` (an auth signature or a session).
    pub fn new(client: Client, key_id: [u8; 32], auth: impl Credential + 'static) -> Self {
        let point = client.pkp_public_key(KeyRef::KeyId(key_id));
        let chain_id = client.chain_id();
        Self {
            address: Address::from(eth_address(&point)),
            client,
            key_id,
            auth: std::sync::Arc::new(auth),
            chain_id,
        }
    }
}

/// An alloy signature from a threshold signature (already low-s).
pub fn to_alloy(signature: &EcdsaSignature) -> Signature {
    Signature::new(
        U256::from_be_bytes(signature.r),
        U256::from_be_bytes(signature.s),
        signature.recovery_id & 1 == 1,
    )
}

#[async_trait::async_trait]
impl Signer for PkpSigner {
    async fn sign_hash(&self, hash: &B256) -> sigil_chain::alloy::signers::Result<Signature> {
        let outcome = self
            .client
            .pkp_sign(KeyRef::KeyId(self.key_id), hash.0, self.auth.as_ref())
            .await
            .map_err(sigil_chain::alloy::signers::Error::other)?;
        Ok(to_alloy(&outcome.signature))
    }

    /// EIP-191 through the nodes' own hashing, so a PKP granted for personal messages only
    /// (scope 2) can sign too.
    async fn sign_message(&self, message: &[u8]) -> sigil_chain::alloy::signers::Result<Signature> {
        let outcome = self
            .client
            .pkp_sign_message(KeyRef::KeyId(self.key_id), message, self.auth.as_ref())
            .await
            .map_err(sigil_chain::alloy::signers::Error::other)?;
        Ok(to_alloy(&outcome.signature))
    }

    fn address(&self) -> Address {
        self.address
    }

    fn chain_id(&self) -> Option<ChainId> {
        self.chain_id
    }

    fn set_chain_id(&mut self, chain_id: Option<ChainId>) {
        self.chain_id = chain_id;
    }
}

#[async_trait::async_trait]
impl TxSigner<Signature> for PkpSigner {
    fn address(&self) -> Address {
        self.address
    }

    async fn sign_transaction(
        &self,
        tx: &mut dyn SignableTransaction<Signature>,
    ) -> sigil_chain::alloy::signers::Result<Signature> {
        if let Some(chain_id) = self.chain_id {
            if !tx.set_chain_id_checked(chain_id) {
                return Err(sigil_chain::alloy::signers::Error::TransactionChainIdMismatch {
                    signer: chain_id,
                    tx: tx.chain_id().unwrap_or_default(),
                });
            }
        }
        self.sign_hash(&tx.signature_hash()).await
    }
}
