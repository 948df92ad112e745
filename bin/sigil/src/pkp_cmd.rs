//! `sigil pkp …`: mint PKPs, manage their permissions, show them, send ETH from them, sign Cosmos
//! transfers from them; and
//! `sigil admin record-keys`. Uses `sigil::network`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use sigil_chain::alloy::network::{EthereumWallet, TransactionBuilder};
use sigil_chain::alloy::primitives::{Address, Bytes, U256};
use sigil_chain::alloy::providers::{DynProvider, Provider, ProviderBuilder};
use sigil_chain::alloy::rpc::types::TransactionRequest;
use sigil_chain::alloy::signers::local::PrivateKeySigner;
use sigil_chain::bindings::{PKPPermissions, PKPNFT};
use sigil_chain::deploy::{send, wallet_provider};
use sigil_client::pkp::NewAuthMethod;
use sigil_client::{Client, PkpSigner};
use sigil_primitives::Cid;

use sigil::network::{auth_sig, key_id_of, record_keys, token, token_hex, wallet, NetworkFile};

/// `sigil pkp` subcommands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Mint a PKP to your wallet.
    Mint {
        /// Print one JSON object (tokenId, keyId, publicKey, ethAddress).
        #[arg(long)]
        json: bool,
    },
    /// Permit an action (by IPFS CID) to use a PKP.
    GrantAction {
        /// Token id (decimal or 0x hex).
        token: String,
        /// The action's IPFS CIDv0 (`Qm…`).
        #[arg(long)]
        cid: String,
    },
    /// Mint a PKP that permits one auth method (Lit's type numbers: 1 wallet, 3 passkey, 6 OIDC
    /// JWT…); with `--self-owned` the NFT goes to the PKP's own address, so only that auth method
    /// controls it.
    MintWithAuthMethod {
        /// The auth method's type.
        #[arg(long = "type")]
        kind: u64,
        /// Its id (0x hex): a wallet's address, a passkey's or an OIDC identity's auth method id.
        #[arg(long)]
        id: String,
        /// The public key that proves it (0x hex; a passkey's COSE key).
        #[arg(long)]
        pubkey: Option<String>,
        /// Scope bits: 1 sign anything, 2 personal messages only.
        #[arg(long, default_value_t = 1)]
        scopes: u64,
        /// Send the NFT to the PKP's own address.
        #[arg(long)]
        self_owned: bool,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Claim the PKP derived from an auth method (PKPHelper `claimKey`): the network attests it to
    /// whoever proves the method, and it is minted to itself with that method permitted. Your
    /// wallet pays the gas and the mint fee.
    Claim {
        /// The auth method's type.
        #[arg(long = "type")]
        kind: u64,
        /// Its proof: an authSig (JSON) for type 1, a JWT for OIDC, an access token…
        #[arg(long)]
        access_token: String,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Permit an auth method to use a PKP you own.
    GrantAuthMethod {
        /// Token id (decimal or 0x hex).
        token: String,
        /// The auth method's type.
        #[arg(long = "type")]
        kind: u64,
        /// Its id (0x hex).
        #[arg(long)]
        id: String,
        /// The public key that proves it (0x hex).
        #[arg(long)]
        pubkey: Option<String>,
        /// Scope bits: 1 sign anything, 2 personal messages only.
        #[arg(long, default_value_t = 1)]
        scopes: u64,
    },
    /// Permit an address to sign with a PKP.
    GrantAddress {
        /// Token id (decimal or 0x hex).
        token: String,
        /// The address.
        address: Address,
    },
    /// Give a PKP (and control of its permissions) to another address.
    Transfer {
        /// Token id (decimal or 0x hex).
        token: String,
        /// The new owner.
        to: Address,
    },
    /// Mint a PKP, permit one action, and burn the token, in one transaction: only that action
    /// can ever use the key.
    MintGrantBurn {
        /// The action's JavaScript file (its IPFS CIDv0 is computed here).
        #[arg(long)]
        action: PathBuf,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Show a PKP: owner (or burned), public key, address, permissions.
    Show {
        /// Token id (decimal or 0x hex).
        token: String,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Send ETH from a PKP's address (signed by the network; you must own or be permitted).
    SendEth {
        /// Token id (decimal or 0x hex).
        token: String,
        /// Recipient.
        #[arg(long)]
        to: Address,
        /// Amount in wei.
        #[arg(long)]
        value: U256,
        /// Print one JSON object (txHash, from, to, value, status).
        #[arg(long)]
        json: bool,
    },
    /// Print a PKP's account address on a Cosmos SDK chain.
    CosmosAddress {
        /// Token id (decimal or 0x hex).
        token: String,
        /// The chain's bech32 account prefix.
        #[arg(long, default_value = "cosmos")]
        prefix: String,
    },
    /// Sign a bank `MsgSend` from a PKP's Cosmos account in SIGN_MODE_DIRECT and print the
    /// `TxRaw` (base64, for `/cosmos/tx/v1beta1/txs`); nothing is broadcast.
    CosmosSign {
        /// Token id (decimal or 0x hex).
        token: String,
        /// The chain id.
        #[arg(long)]
        chain_id: String,
        /// The chain's bech32 account prefix.
        #[arg(long, default_value = "cosmos")]
        prefix: String,
        /// The PKP's account number on the chain.
        #[arg(long)]
        account_number: u64,
        /// The PKP's next sequence number on the chain.
        #[arg(long)]
        sequence: u64,
        /// The recipient's address.
        #[arg(long)]
        to: String,
        /// The amount, in `--denom`.
        #[arg(long)]
        amount: u128,
        /// The denomination.
        #[arg(long, default_value = "uatom")]
        denom: String,
        /// The fee, in `--denom`.
        #[arg(long, default_value_t = 5000)]
        fee: u128,
        /// The gas limit.
        #[arg(long, default_value_t = 200_000)]
        gas: u64,
        /// The memo.
        #[arg(long, default_value = "")]
        memo: String,
    },
}

/// `sigil admin` subcommands (NodeSet is administered by one key for now).
#[derive(clap::Subcommand)]
pub enum AdminCommand {
    /// Record the network's root keys and mint attester in NodeSet, with the signatures of at
    /// least `threshold` nodes (any funded wallet may send it; a no-op once recorded).
    RecordKeys,
    /// Change the node set: propose the next epoch (nodes joining and leaving, a new threshold),
    /// withdraw the proposal, or show it.
    #[command(subcommand)]
    Epoch(crate::epoch_cmd::EpochCommand),
}

struct Ctx {
    network: NetworkFile,
    signer: PrivateKeySigner,
    provider: DynProvider,
}

impl Ctx {
    fn new(network_path: &Path, private_key: Option<&str>) -> anyhow::Result<Self> {
        let network = NetworkFile::load(network_path)?;
        let signer = wallet(private_key, &network)?;
        let rpc = network.rpc_url()?;
        let provider = wallet_provider(rpc, signer.clone())?;
        Ok(Self {
            network,
            signer,
            provider,
        })
    }

    async fn client(&self) -> anyhow::Result<Client> {
        Ok(Client::connect(&self.network.network()?)
            .await?
            .with_contracts(&self.network.contracts()?))
    }
}

pub async fn run(network_path: &Path, private_key: Option<&str>, command: Command) -> anyhow::Result<ExitCode> {
    let ctx = Ctx::new(network_path, private_key)?;
    let contracts = ctx.network.contracts()?;
    let me = ctx.signer.address();
    match command {
        Command::Mint { json } => {
            let client = ctx.client().await?;
            let auth = auth_sig(&client, &ctx.signer).await?;
            eprintln!("minting a PKP to {me} …");
            let pkp = client.mint_pkp(&ctx.provider, &auth, &contracts).await?;
            print_pkp(&pkp, json);
        }
        Command::MintGrantBurn { action, json } => {
            let code = std::fs::read(&action).with_context(|| format!("reading {}", action.display()))?;
            let cid = Cid::of_file(&code)?;
            let client = ctx.client().await?;
            let auth = auth_sig(&client, &ctx.signer).await?;
            eprintln!("minting a PKP for action {cid} and burning it …");
            let pkp = client
                .mint_grant_burn(&ctx.provider, &auth, &contracts, cid.as_bytes())
                .await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "tokenId": token_hex(pkp.token_id),
                        "keyId": format!("0x{}", hex::encode(pkp.key_id)),
                        "publicKey": format!("0x{}", hex::encode(pkp.public_key)),
                        "ethAddress": pkp.eth_address.to_checksum(None),
                        "action": cid.to_string(),
                        "txHash": pkp.tx_hash.to_string(),
                    })
                );
            } else {
                print_pkp(&pkp, false);
                println!("action      {cid}  (the only thing that can ever use this key)");
            }
        }
        Command::GrantAction { token: t, cid } => {
            let token = token(&t)?;
            let cid: Cid = cid.parse()?;
            let call = PKPPermissions::new(contracts.pkp_permissions, &ctx.provider)
                .addPermittedAction(token, Bytes::copy_from_slice(cid.as_bytes()))
                .into_transaction_request();
            let receipt = send(&ctx.provider, call, "PKPPermissions.addPermittedAction").await?;
            println!(
                "action {cid} may now use PKP {} (tx {})",
                token_hex(token),
                receipt.transaction_hash
            );
        }
        Command::MintWithAuthMethod {
            kind,
            id,
            pubkey,
            scopes,
            self_owned,
            json,
        } => {
            let client = ctx.client().await?;
            let auth = auth_sig(&client, &ctx.signer).await?;
            let method = NewAuthMethod {
                kind,
                id: hex_arg("--id", &id)?,
                user_pubkey: pubkey
                    .as_deref()
                    .map(|p| hex_arg("--pubkey", p))
                    .transpose()?
                    .unwrap_or_default(),
                scopes,
            };
            eprintln!("minting a PKP for auth method type {kind} …");
            let pkp = client
                .mint_with_auth_methods(&ctx.provider, &auth, &contracts, &[method], self_owned)
                .await?;
            print_pkp(&pkp, json);
        }
        Command::Claim {
            kind,
            access_token,
            json,
        } => {
            let client = ctx.client().await?;
            let method = sigil_primitives::AuthMethod {
                auth_method_type: kind,
                access_token,
            };
            eprintln!("claiming the PKP of auth method type {kind} …");
            let pkp = client.claim_key(&ctx.provider, &contracts, &method).await?;
            print_pkp(&pkp, json);
        }
        Command::GrantAuthMethod {
            token: t,
            kind,
            id,
            pubkey,
            scopes,
        } => {
            let token = token(&t)?;
            let id = hex_arg("--id", &id)?;
            let pubkey = pubkey
                .as_deref()
                .map(|p| hex_arg("--pubkey", p))
                .transpose()?
                .unwrap_or_default();
            let call = PKPPermissions::new(contracts.pkp_permissions, &ctx.provider)
                .addPermittedAuthMethodWithPubkey(
                    token,
                    U256::from(kind),
                    Bytes::from(id.clone()),
                    Bytes::from(pubkey),
                    U256::from(scopes),
                )
                .into_transaction_request();
            let receipt = send(&ctx.provider, call, "PKPPermissions.addPermittedAuthMethodWithPubkey").await?;
            println!(
                "auth method type {kind} id 0x{} may now use PKP {} with scopes {scopes} (tx {})",
                hex::encode(id),
                token_hex(token),
                receipt.transaction_hash
            );
        }
        Command::GrantAddress { token: t, address } => {
            let token = token(&t)?;
            let call = PKPPermissions::new(contracts.pkp_permissions, &ctx.provider)
                .addPermittedAddress(token, address)
                .into_transaction_request();
            let receipt = send(&ctx.provider, call, "PKPPermissions.addPermittedAddress").await?;
            println!(
                "{address} may now sign with PKP {} (tx {})",
                token_hex(token),
                receipt.transaction_hash
            );
        }
        Command::Transfer { token: t, to } => {
            let token = token(&t)?;
            let call = PKPNFT::new(contracts.pkp_nft, &ctx.provider)
                .transferFrom(me, to, token)
                .into_transaction_request();
            let receipt = send(&ctx.provider, call, "PKPNFT.transferFrom").await?;
            println!(
                "PKP {} now belongs to {to} (tx {})",
                token_hex(token),
                receipt.transaction_hash
            );
        }
        Command::Show { token: t, json } => show(&ctx, token(&t)?, json).await?,
        Command::SendEth {
            token: t,
            to,
            value,
            json,
        } => {
            let token = token(&t)?;
            let key_id = key_id_of(&ctx.network, token).await?;
            let client = ctx.client().await?;
            let auth = auth_sig(&client, &ctx.signer).await?;
            let signer = PkpSigner::new(client, key_id, auth);
            let from = sigil_chain::alloy::signers::Signer::address(&signer);
            let url = ctx.network.rpc_url()?.parse().context("rpcUrl")?;
            let provider = ProviderBuilder::new()
                .wallet(EthereumWallet::from(signer))
                .connect_http(url);
            let request = TransactionRequest::default().with_to(to).with_value(value);
            let pending = provider
                .send_transaction(request)
                .await
                .with_context(|| format!("sending {value} wei from PKP address {from}"))?;
            let receipt = pending.get_receipt().await.context("waiting for the receipt")?;
            let status = receipt.status();
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "txHash": receipt.transaction_hash.to_string(),
                        "from": from.to_checksum(None),
                        "to": to.to_checksum(None),
                        "value": value.to_string(),
                        "status": u8::from(status),
                        "blockNumber": receipt.block_number,
                    })
                );
            } else {
                println!("txHash  {}", receipt.transaction_hash);
                println!("from    {from} (PKP {})", token_hex(token));
                println!("to      {to}");
                println!("value   {value} wei");
                println!("status  {}", if status { "success" } else { "reverted" });
            }
            if !status {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::CosmosAddress { token: t, prefix } => {
            let key_id = key_id_of(&ctx.network, token(&t)?).await?;
            let client = ctx.client().await?;
            println!(
                "{}",
                client.pkp_cosmos_address(sigil_client::KeyRef::KeyId(key_id), &prefix)?
            );
        }
        Command::CosmosSign {
            token: t,
            chain_id,
            prefix,
            account_number,
            sequence,
            to,
            amount,
            denom,
            fee,
            gas,
            memo,
        } => {
            let key_id = key_id_of(&ctx.network, token(&t)?).await?;
            let client = ctx.client().await?;
            let auth = auth_sig(&client, &ctx.signer).await?;
            let send = sigil_client::CosmosSend {
                chain_id,
                prefix,
                account_number,
                sequence,
                to,
                amount,
                denom,
                fee,
                gas_limit: gas,
                memo,
            };
            let tx = client
                .pkp_cosmos_send(sigil_client::KeyRef::KeyId(key_id), &send, &auth)
                .await?;
            use base64::Engine;
            println!("{}", base64::engine::general_purpose::STANDARD.encode(tx));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_pkp(pkp: &sigil_client::MintedPkp, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::json!({
                "tokenId": token_hex(pkp.token_id),
                "keyId": format!("0x{}", hex::encode(pkp.key_id)),
                "publicKey": format!("0x{}", hex::encode(pkp.public_key)),
                "ethAddress": pkp.eth_address.to_checksum(None),
                "txHash": pkp.tx_hash.to_string(),
            })
        );
    } else {
        println!("tokenId     {}", token_hex(pkp.token_id));
        println!("keyId       0x{}", hex::encode(pkp.key_id));
        println!("publicKey   0x{}", hex::encode(pkp.public_key));
        println!("ethAddress  {}", pkp.eth_address.to_checksum(None));
        println!("txHash      {}", pkp.tx_hash);
    }
}

async fn show(ctx: &Ctx, token: U256, json: bool) -> anyhow::Result<()> {
    let contracts = ctx.network.contracts()?;
    let nft = PKPNFT::new(contracts.pkp_nft, &ctx.provider);
    let pubkey = nft
        .getPubkey(token)
        .call()
        .await
        .with_context(|| format!("PKP {} is not minted", token_hex(token)))?;
    let address = nft.getEthAddress(token).call().await?;
    let key_id = nft.getKeyId(token).call().await?;
    let owner = nft.ownerOrZero(token).call().await?;
    let burned = nft.isBurned(token).call().await?;
    let permissions = PKPPermissions::new(contracts.pkp_permissions, &ctx.provider);
    let actions: Vec<String> = permissions
        .getPermittedActions(token)
        .call()
        .await?
        .iter()
        .map(|cid| {
            Cid::from_bytes(cid)
                .map(|c| c.to_string())
                .unwrap_or_else(|_| format!("0x{}", hex::encode(cid)))
        })
        .collect();
    let addresses: Vec<String> = permissions
        .getPermittedAddresses(token)
        .call()
        .await?
        .iter()
        .map(|a| a.to_checksum(None))
        .collect();
    let methods: Vec<serde_json::Value> = permissions
        .getPermittedAuthMethods(token)
        .call()
        .await?
        .iter()
        .map(|m| {
            serde_json::json!({
                "authMethodType": m.authMethodType.to_string(),
                "id": format!("0x{}", hex::encode(&m.id)),
                "scopes": m.scopes.to_string(),
            })
        })
        .collect();
    if json {
        println!(
            "{}",
            serde_json::json!({
                "tokenId": token_hex(token),
                "keyId": key_id.to_string(),
                "owner": (!burned).then(|| owner.to_checksum(None)),
                "burned": burned,
                "publicKey": pubkey.to_string(),
                "ethAddress": address.to_checksum(None),
                "permittedActions": actions,
                "permittedAddresses": addresses,
                "permittedAuthMethods": methods,
            })
        );
    } else {
        println!("tokenId      {}", token_hex(token));
        println!("keyId        {key_id}");
        if burned {
            println!("owner        none (burned: its permissions can never change)");
        } else {
            println!("owner        {}", owner.to_checksum(None));
        }
        println!("publicKey    {pubkey}");
        println!("ethAddress   {}", address.to_checksum(None));
        println!(
            "actions      {}",
            if actions.is_empty() {
                "-".into()
            } else {
                actions.join(", ")
            }
        );
        println!(
            "addresses    {}",
            if addresses.is_empty() {
                "-".into()
            } else {
                addresses.join(", ")
            }
        );
        for m in &methods {
            println!(
                "auth method  type {} id {} scopes {}",
                m["authMethodType"], m["id"], m["scopes"]
            );
        }
    }
    Ok(())
}

/// `sigil admin record-keys`: collects the nodes' signatures over their root keys and records
/// them in NodeSet, unless this epoch's record is there already.
pub async fn record_keys_cmd(network_path: &Path, private_key: Option<&str>) -> anyhow::Result<ExitCode> {
    let ctx = Ctx::new(network_path, private_key)?;
    let keys = record_keys(&ctx.network, &ctx.provider).await?;
    println!(
        "root keys of epoch {} recorded in NodeSet {} ({} node signatures, threshold {}); mint attester {}",
        keys.epoch,
        ctx.network.contracts()?.node_set,
        keys.signatures.len(),
        keys.threshold,
        keys.keys.attester
    );
    for failure in &keys.failures {
        println!("  not counted: {failure}");
    }
    Ok(ExitCode::SUCCESS)
}

/// A `0x`-hex command-line value.
fn hex_arg(name: &str, text: &str) -> anyhow::Result<Vec<u8>> {
    hex::decode(text.trim_start_matches("0x")).with_context(|| format!("{name}: expected hex"))
}
