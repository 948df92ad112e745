//! Signing schemes beyond ECDSA on a real network: BIP-340 Schnorr by FROST under a PKP's taproot
//! output key, checked by verifiers that are not Sigil's (k256's BIP-340, Bitcoin Core's script
//! interpreter), through a kill -9, against a lying node and an allocator that binds nonces twice.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use k256::elliptic_curve::point::AffineCoordinates;
use k256::elliptic_curve::PrimeField;
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use sigil_client::{Client, KeyRef, SchnorrOutcome};
use sigil_tss::derive::{derive_public_key, KeyId};

use crate::bounds::metric;
#[cfg(feature = "test-faults")]
use crate::harness::fault_at;
use crate::harness::{open_store, Network};
use crate::signing::{mint, Owned};

const READY: Duration = Duration::from_secs(120);

fn random<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    OsRng.fill_bytes(&mut out);
    out
}

fn tagged_hash(tag: &str, data: &[&[u8]]) -> [u8; 32] {
    let tag = Sha256::digest(tag.as_bytes());
    let mut h = Sha256::new();
    h.update(tag);
    h.update(tag);
    for d in data {
        h.update(d);
    }
    h.finalize().into()
}

/// BIP-341's output key for an internal key with no script tree, computed here with k256 alone:
/// lift the internal key to even y, add `tagged_hash("TapTweak", x)·G`, take x.
pub fn bip341_output_key(internal: &k256::ProjectivePoint) -> [u8; 32] {
    let affine = internal.to_affine();
    let even = if bool::from(affine.y_is_odd()) {
        -*internal
    } else {
        *internal
    };
    let x: [u8; 32] = even.to_affine().x().into();
    let tweak = tagged_hash("TapTweak", &[&x]);
    let t = Option::<k256::Scalar>::from(k256::Scalar::from_repr(tweak.into())).unwrap();
    let q = even + k256::ProjectivePoint::GENERATOR * t;
    q.to_affine().x().into()
}

/// Checks a Schnorr outcome like a Bitcoin verifier would: the key is the PKP's BIP-341 output
/// key, and the signature verifies under it by BIP-340 (k256's implementation).
pub fn check_schnorr(client: &Client, key_id: [u8; 32], message: &[u8; 32], outcome: &SchnorrOutcome) {
    let internal = derive_public_key(client.ecdsa_root(), &KeyId(key_id));
    assert_eq!(
        outcome.output_key,
        bip341_output_key(&internal),
        "not the BIP-341 output key"
    );
    let key = k256::schnorr::VerifyingKey::from_bytes(&outcome.output_key).unwrap();
    let signature = k256::schnorr::Signature::try_from(&outcome.signature[..]).unwrap();
    key.verify_raw(message, &signature)
        .unwrap_or_else(|e| panic!("BIP-340 verification failed: {e}"));
    assert_eq!(
        outcome.signers.len(),
        client.threshold(),
        "signing set {:?}",
        outcome.signers
    );
}

/// A PKP minted to the dev wallet by `sigil pkp mint`: its token id, public key (hex, as the CLI
/// prints them) and key id.
pub fn cli_mint(net: &Network) -> (String, String, [u8; 32]) {
    let (ok, minted, stderr) = crate::actions::cli(net, &["pkp", "mint", "--json"]);
    assert!(ok, "{stderr}");
    let key_id = hex::decode(minted["keyId"].as_str().unwrap().trim_start_matches("0x"))
        .unwrap()
        .try_into()
        .unwrap();
    (
        minted["tokenId"].as_str().unwrap().to_string(),
        minted["publicKey"].as_str().unwrap().to_string(),
        key_id,
    )
}

async fn wait_for_schnorr_stock(net: &Network, node: usize, at_least: u64) {
    let started = Instant::now();
    while metric(net, node, "sigil_schnorr_stock").await < at_least {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no Schnorr stock on node {node}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Signs a random message with a random one of `owned`'s PKPs by Schnorr and checks it.
async fn sign_schnorr(client: &Client, owned: &Owned) -> SchnorrOutcome {
    let key_id = owned.key_ids[(random::<1>()[0] as usize) % owned.key_ids.len()];
    let message = random::<32>();
    let outcome = client
        .pkp_sign_schnorr(KeyRef::KeyId(key_id), message, &owned.auth)
        .await
        .unwrap_or_else(|e| panic!("Schnorr signing failed: {e}"));
    check_schnorr(client, key_id, &message, &outcome);
    outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_schnorr_signatures_from_random_sets_verify_under_bip340_and_no_nonce_is_used_twice_across_kill_9() {
    let mut net = Network::start(5, 8, |_| vec![]).await;
    let client = net.wait_ready(READY).await;
    assert_eq!(client.threshold(), 4);
    let owned = mint(&net, &client, 3).await;
    wait_for_schnorr_stock(&net, 0, 4).await;
    // A scheme Sigil does not sign with, and an EIP-191 message for Schnorr: clear 400s.
    let url = format!("{}/web/pkp/sign", net.urls[1]);
    let body = |extra: serde_json::Value| {
        let mut body = serde_json::json!({
            "keyId": hex::encode(owned.key_ids[0]),
            "requestId": hex::encode(random::<16>()),
        });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body.to_string()
    };
    let (status, json) = crate::harness::post(
        &url,
        body(serde_json::json!({"toSign": hex::encode([1u8; 32]), "signingScheme": "SchnorrEd448Shake256"})),
    )
    .await;
    assert_eq!(
        (status, json["error"]["code"].as_str()),
        (400, Some("BAD_REQUEST")),
        "{json}"
    );
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("SchnorrK256Taproot"),
        "{json}"
    );
    let (status, json) = crate::harness::post(
        &url,
        body(serde_json::json!({"message": "00ff", "signingScheme": "SchnorrK256Taproot"})),
    )
    .await;
    assert_eq!(
        (status, json["error"]["code"].as_str()),
        (400, Some("BAD_REQUEST")),
        "{json}"
    );
    assert!(json["error"]["message"].as_str().unwrap().contains("EIP-191"), "{json}");
    let mut outcomes = Vec::new();
    for _ in 0..25 {
        outcomes.push(sign_schnorr(&client, &owned).await);
    }
    // kill -9 a holder of nonces it may have taken ahead: signing goes on without it…
    net.kill(4);
    for _ in 0..20 {
        let outcome = sign_schnorr(&client, &owned).await;
        assert!(
            !outcome.signers.contains(&4),
            "the killed node signed: {:?}",
            outcome.signers
        );
        outcomes.push(outcome);
    }
    // … and after it restarts, it signs again with fresh nonces only.
    net.restart(4);
    let client = net.wait_ready(READY).await;
    for _ in 0..5 {
        outcomes.push(sign_schnorr(&client, &owned).await);
    }
    let sets: BTreeSet<Vec<u32>> = outcomes.iter().map(|o| o.signers.clone()).collect();
    assert!(sets.len() >= 2, "every signature came from one signing set: {sets:?}");
    let slots: BTreeSet<&str> = outcomes.iter().map(|o| o.presignature.as_str()).collect();
    assert_eq!(slots.len(), outcomes.len(), "two signatures used the same nonces");
    net.stop().await;

    // Storage: every Schnorr slot a node used is marked used once, no used slot is still in
    // stock, and each signature's nonces were taken (durably) by all t holders whose shares made it.
    let mut used_by: BTreeMap<u64, usize> = BTreeMap::new();
    for i in 0..5 {
        let store = open_store(&net.config(i), &net.data_dir(i));
        let used: Vec<_> = store.used().unwrap().into_iter().filter(|id| id.is_schnorr()).collect();
        let distinct: BTreeSet<_> = used.iter().map(|id| (id.pool, id.seq)).collect();
        assert_eq!(distinct.len(), used.len(), "node {i} lists a slot twice");
        for id in &used {
            let stocked = store.stocked(&id.pool).unwrap();
            assert!(
                !stocked.contains(&id.seq),
                "node {i}: used Schnorr slot {id} still in stock"
            );
            *used_by.entry(id.seq).or_default() += 1;
        }
    }
    for outcome in &outcomes {
        let seq: u64 = outcome.presignature.split(':').nth(1).unwrap().parse().unwrap();
        assert!(
            seq >= sigil_node::store::SCHNORR_SLOTS,
            "{} is no Schnorr slot",
            outcome.presignature
        );
        let holders = used_by.get(&seq).copied().unwrap_or(0);
        assert!(
            holders >= 4,
            "Schnorr slot {seq} marked used on {holders} nodes, not t = 4"
        );
    }
}

#[cfg(feature = "test-faults")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_sending_wrong_schnorr_shares_is_named_and_signing_still_succeeds() {
    let mut net = Network::start(4, 8, fault_at(2, "corrupt-signature-shares")).await;
    let client = net.wait_ready(READY).await;
    let owned = mint(&net, &client, 1).await;
    wait_for_schnorr_stock(&net, 0, 4).await;
    let mut named = 0;
    for _ in 0..8 {
        let outcome = sign_schnorr(&client, &owned).await;
        assert!(!outcome.signers.contains(&2), "node 2's wrong share was combined");
        for failure in &outcome.failures {
            assert_eq!(failure.node, Some(2), "only node 2 misbehaves: {failure}");
            assert!(failure.reason.contains("does not fit"), "{failure}");
            named += 1;
        }
    }
    assert!(named > 0, "node 2's wrong Schnorr shares were never noticed");
}

#[cfg(feature = "test-faults")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allocator_binding_schnorr_nonces_to_two_messages_gets_no_second_share() {
    // Node 0 allocates, and hands every other nonce slot to the next request as well: a second
    // share from the same nonces for another message would give away the holder's key share.
    let mut net = Network::start(4, 8, fault_at(0, "double-bind")).await;
    let client = net.wait_ready(READY).await;
    let owned = mint(&net, &client, 1).await;
    wait_for_schnorr_stock(&net, 0, 4).await;
    let mut slots = BTreeSet::new();
    for _ in 0..12 {
        let outcome = sign_schnorr(&client, &owned).await;
        assert!(
            slots.insert(outcome.presignature.clone()),
            "nonces {} used twice",
            outcome.presignature
        );
    }
    for i in 1..4 {
        assert!(
            metric(&net, i, "sigil_presignature_conflicts_total").await >= 1,
            "node {i} never saw a second binding"
        );
        assert!(
            net.log(i)
                .contains("bound a presignature this node already used to another request"),
            "node {i} did not log the conflict"
        );
    }
}

/// Checks input `index` of `tx` with Bitcoin Core's script interpreter (libbitcoinconsensus,
/// every consensus rule through taproot), given every coin the transaction spends.
fn bitcoin_core_accepts(tx: &[u8], spent: &[sigil_client::btc::bitcoin::TxOut], index: usize) -> Result<(), String> {
    let utxos: Vec<bitcoinconsensus::Utxo> = spent
        .iter()
        .map(|o| bitcoinconsensus::Utxo {
            script_pubkey: o.script_pubkey.as_bytes().as_ptr(),
            script_pubkey_len: o.script_pubkey.len() as u32,
            value: o.value.to_sat() as i64,
        })
        .collect();
    let coin = &spent[index];
    bitcoinconsensus::verify(
        coin.script_pubkey.as_bytes(),
        coin.value.to_sat(),
        tx,
        Some(&utxos),
        index,
    )
    .map_err(|e| format!("{e:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bitcoin_transaction_spending_a_pkps_p2wpkh_and_p2tr_coins_passes_bitcoin_cores_script_checks() {
    use sigil_client::btc::bitcoin::{
        self, absolute, transaction, Amount, OutPoint, ScriptBuf, Sequence, TxIn, TxOut, Witness,
    };
    use sigil_client::{BitcoinOutput, Coin};

    let mut net = Network::start(4, 8, |_| vec![]).await;
    let client = net.wait_ready(READY).await;
    let owned = mint(&net, &client, 1).await;
    let key = KeyRef::KeyId(owned.key_ids[0]);
    let p2wpkh = client
        .pkp_bitcoin_address(key, BitcoinOutput::P2wpkh, bitcoin::Network::Regtest)
        .unwrap();
    let p2tr = client
        .pkp_bitcoin_address(key, BitcoinOutput::P2tr, bitcoin::Network::Regtest)
        .unwrap();
    assert!(p2wpkh.to_string().starts_with("bcrt1q"), "{p2wpkh}");
    assert!(p2tr.to_string().starts_with("bcrt1p"), "{p2tr}");
    // The P2TR address encodes the BIP-341 output key computed here independently.
    let internal = derive_public_key(client.ecdsa_root(), &KeyId(owned.key_ids[0]));
    let tweaked = bip341_output_key(&internal);
    assert_eq!(&p2tr.script_pubkey().as_bytes()[2..], &tweaked[..]);

    // A transaction paying the PKP on both of its addresses…
    let funding = bitcoin::Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::null(),
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            witness: Witness::new(),
        }],
        output: vec![
            TxOut {
                value: Amount::from_sat(50_000),
                script_pubkey: p2wpkh.script_pubkey(),
            },
            TxOut {
                value: Amount::from_sat(70_000),
                script_pubkey: p2tr.script_pubkey(),
            },
        ],
    };
    let txid = funding.compute_txid();
    let coins = [
        Coin {
            outpoint: OutPoint { txid, vout: 0 },
            amount: Amount::from_sat(50_000),
            output: BitcoinOutput::P2wpkh,
        },
        Coin {
            outpoint: OutPoint { txid, vout: 1 },
            amount: Amount::from_sat(70_000),
            output: BitcoinOutput::P2tr,
        },
    ];
    // … and one spending both coins, back to the PKP's P2TR address and its P2WPKH one.
    let outputs = vec![
        TxOut {
            value: Amount::from_sat(100_000),
            script_pubkey: p2tr.script_pubkey(),
        },
        TxOut {
            value: Amount::from_sat(19_000),
            script_pubkey: p2wpkh.script_pubkey(),
        },
    ];
    let spend = client
        .pkp_bitcoin_spend(key, &coins, outputs, &owned.auth)
        .await
        .unwrap();
    let bytes = bitcoin::consensus::serialize(&spend);
    for index in 0..2 {
        bitcoin_core_accepts(&bytes, &funding.output, index)
            .unwrap_or_else(|e| panic!("Bitcoin Core refuses input {index}: {e}"));
    }
    // The signatures cover what they should: a transaction changed after signing is refused.
    let mut changed = spend.clone();
    changed.output[1].value = Amount::from_sat(19_500);
    let changed = bitcoin::consensus::serialize(&changed);
    for index in 0..2 {
        assert!(
            bitcoin_core_accepts(&changed, &funding.output, index).is_err(),
            "input {index} still valid"
        );
    }
    // A spend paying out more than the coins hold is refused before anything is signed.
    let greedy = vec![TxOut {
        value: Amount::from_sat(120_001),
        script_pubkey: p2tr.script_pubkey(),
    }];
    let err = client
        .pkp_bitcoin_spend(key, &coins, greedy, &owned.auth)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("exceed"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_signs_by_schnorr_with_sign_and_sign_and_combine_and_both_verify_under_bip340() {
    use crate::actions::{error_code, permit};
    use sigil_client::ActionCode;

    let mut net = Network::start(4, 8, |_| vec![]).await;
    let client = net.wait_ready(READY).await;
    let (token, public_key, key_id) = crate::schemes::cli_mint(&net);
    let code = r#"(async () => {
        const combined = await Lit.Actions.signAndCombine({ toSign: new Uint8Array(32).fill(9), publicKey, sigName: "c", signingScheme: "SchnorrK256Taproot" });
        await Lit.Actions.sign({ toSign: new Uint8Array(32).fill(5), publicKey, sigName: "s", signingScheme: "SchnorrK256Taproot" });
        await Lit.Actions.sign({ toSign: new Uint8Array(32).fill(6), publicKey, sigName: "e" });
        Lit.Actions.setResponse({ response: combined });
    })();"#;
    let unknown = r#"(async () => {
        await Lit.Actions.sign({ toSign: new Uint8Array(32).fill(5), publicKey, sigName: "x", signingScheme: "SchnorrEd448Shake256" });
    })();"#;
    for c in [code, unknown] {
        permit(&net, &token, c);
    }
    let params = serde_json::json!({ "publicKey": public_key });
    let outcome = client
        .execute(ActionCode::Code(code.to_string()), params.clone(), None)
        .await
        .unwrap();
    let output_key = bip341_output_key(&derive_public_key(client.ecdsa_root(), &KeyId(key_id)));
    let verify = |message: [u8; 32], key: &[u8], signature: &[u8]| {
        let key = k256::schnorr::VerifyingKey::from_bytes(key).unwrap();
        let signature = k256::schnorr::Signature::try_from(signature).unwrap();
        key.verify_raw(&message, &signature).is_ok()
    };
    // signAndCombine: the whole signature inside the action.
    let combined: serde_json::Value = serde_json::from_str(outcome.response.as_deref().unwrap()).unwrap();
    let key = hex::decode(combined["publicKey"].as_str().unwrap()).unwrap();
    assert_eq!(key, output_key, "signAndCombine reports another key");
    let signature = hex::decode(combined["signature"].as_str().unwrap()).unwrap();
    assert!(
        verify([9; 32], &key, &signature),
        "signAndCombine's signature does not verify"
    );
    // sign: shares to the client, combined and checked there.
    let s = &outcome.schnorr_signatures["s"];
    assert_eq!(s.output_key, output_key);
    assert!(
        verify([5; 32], &s.output_key, &s.signature),
        "sign's Schnorr signature does not verify"
    );
    assert_eq!(s.signers.len(), client.threshold());
    // The same call without a scheme is ECDSA, as before.
    assert!(outcome.signatures["e"]
        .signature
        .verify(&derive_public_key(client.ecdsa_root(), &KeyId(key_id)), &[6; 32]));
    let (code, message) = error_code(
        client
            .execute(ActionCode::Code(unknown.to_string()), params, None)
            .await,
    );
    assert_eq!(code, "UNSUPPORTED_SCHEME", "{message}");
}

/// Runs `cosmos_verify.js` (CosmJS, pinned in `tools/`) on a signed transaction.
fn cosmjs_verify(tx: &[u8], chain_id: &str, account_number: u64, prefix: &str) -> serde_json::Value {
    use base64::Engine;
    let tools = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tools/node_modules");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/network/cosmos_verify.js");
    let out = std::process::Command::new("node")
        .env("NODE_PATH", tools)
        .arg(script)
        .arg(base64::engine::general_purpose::STANDARD.encode(tx))
        .arg(chain_id)
        .arg(account_number.to_string())
        .arg(prefix)
        .output()
        .expect("node runs");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "CosmJS said: {} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cosmos_bank_send_signed_by_a_pkp_in_sign_mode_direct_verifies_with_cosmjs_and_the_cli_signs_for_cosmos_bitcoin_and_taproot(
) {
    use sigil_client::CosmosSend;

    let mut net = Network::start(4, 8, |_| vec![]).await;
    let client = net.wait_ready(READY).await;
    let owned = mint(&net, &client, 2).await;
    let key = KeyRef::KeyId(owned.key_ids[0]);
    let address = client.pkp_cosmos_address(key, "cosmos").unwrap();
    assert!(address.starts_with("cosmos1"), "{address}");
    let other = client
        .pkp_cosmos_address(KeyRef::KeyId(owned.key_ids[1]), "cosmos")
        .unwrap();
    let send = CosmosSend {
        chain_id: "sigil-test-1".into(),
        prefix: "cosmos".into(),
        account_number: 42,
        sequence: 7,
        to: other.clone(),
        amount: 1_234_567,
        denom: "uatom".into(),
        fee: 5_000,
        gas_limit: 200_000,
        memo: "from a PKP".into(),
    };
    let tx = client.pkp_cosmos_send(key, &send, &owned.auth).await.unwrap();
    let checked = cosmjs_verify(&tx, "sigil-test-1", 42, "cosmos");
    assert_eq!(checked["verified"], true, "{checked}");
    assert_eq!(checked["address"], address, "CosmJS derives another address: {checked}");
    assert_eq!(checked["from"], address, "{checked}");
    assert_eq!(checked["to"], other, "{checked}");
    assert_eq!(checked["amount"], serde_json::json!(["1234567uatom"]), "{checked}");
    assert_eq!(checked["signMode"], 1, "not SIGN_MODE_DIRECT: {checked}");
    assert_eq!(checked["sequence"], "7", "{checked}");
    // The signature binds the chain and the account: on another chain id or account number it
    // does not verify.
    assert_eq!(cosmjs_verify(&tx, "sigil-test-2", 42, "cosmos")["verified"], false);
    assert_eq!(cosmjs_verify(&tx, "sigil-test-1", 43, "cosmos")["verified"], false);
    // Another chain's prefix gives the same key another address; a recipient of another prefix is refused.
    let osmo = client.pkp_cosmos_address(key, "osmo").unwrap();
    assert!(osmo.starts_with("osmo1"));
    let wrong = CosmosSend { to: osmo, ..send };
    let err = client.pkp_cosmos_send(key, &wrong, &owned.auth).await.unwrap_err();
    assert!(err.to_string().contains("prefix"), "{err}");

    // The same from the CLI, for a PKP minted by it: its Cosmos address, a signed transfer CosmJS
    // accepts, its Bitcoin addresses, and a BIP-340 signature from `sigil sign --scheme`.
    use crate::actions::cli;
    let (token, _, key_id) = crate::schemes::cli_mint(&net);
    let (ok, printed, stderr) = cli(&net, &["pkp", "cosmos-address", &token, "--prefix", "cosmos"]);
    assert!(ok, "{stderr}");
    let cli_address = printed.as_str().unwrap().trim().to_string();
    assert_eq!(
        cli_address,
        client.pkp_cosmos_address(KeyRef::KeyId(key_id), "cosmos").unwrap()
    );
    let (ok, printed, stderr) = cli(
        &net,
        &[
            "pkp",
            "cosmos-sign",
            &token,
            "--chain-id",
            "sigil-test-1",
            "--account-number",
            "3",
            "--sequence",
            "0",
            "--to",
            &other,
            "--amount",
            "10",
            "--denom",
            "uatom",
        ],
    );
    assert!(ok, "{stderr}");
    let tx = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(printed.as_str().unwrap().trim())
            .unwrap()
    };
    let checked = cosmjs_verify(&tx, "sigil-test-1", 3, "cosmos");
    assert_eq!(
        (checked["verified"].clone(), checked["from"].clone()),
        (true.into(), cli_address.into()),
        "{checked}"
    );
    let (ok, printed, stderr) = cli(
        &net,
        &[
            "bitcoin",
            "address",
            "--token-id",
            &token,
            "--chain",
            "regtest",
            "--json",
        ],
    );
    assert!(ok, "{stderr}");
    let p2tr = client
        .pkp_bitcoin_address(
            KeyRef::KeyId(key_id),
            sigil_client::BitcoinOutput::P2tr,
            sigil_client::btc::bitcoin::Network::Regtest,
        )
        .unwrap();
    assert_eq!(printed["p2tr"], p2tr.to_string(), "{printed}");
    assert!(printed["p2wpkh"].as_str().unwrap().starts_with("bcrt1q"), "{printed}");
    // `sigil bitcoin spend`: a coin of each kind (the funding transaction need not exist: the
    // sighashes commit to the coins' outpoints, scripts and amounts), checked by Bitcoin Core.
    let funding = hex::encode(random::<32>());
    let p2wpkh_coin = format!("{funding}:0:50000:p2wpkh");
    let p2tr_coin = format!("{funding}:1:30000:p2tr");
    let to = format!("{p2tr}:79000");
    let (ok, printed, stderr) = cli(
        &net,
        &[
            "bitcoin",
            "spend",
            "--token-id",
            &token,
            "--coin",
            &p2wpkh_coin,
            "--coin",
            &p2tr_coin,
            "--to",
            &to,
            "--chain",
            "regtest",
        ],
    );
    assert!(ok, "{stderr}");
    let raw = hex::decode(printed.as_str().unwrap().trim()).unwrap();
    let p2wpkh = client
        .pkp_bitcoin_address(
            KeyRef::KeyId(key_id),
            sigil_client::BitcoinOutput::P2wpkh,
            sigil_client::btc::bitcoin::Network::Regtest,
        )
        .unwrap();
    let spent = [
        sigil_client::btc::bitcoin::TxOut {
            value: sigil_client::btc::bitcoin::Amount::from_sat(50_000),
            script_pubkey: p2wpkh.script_pubkey(),
        },
        sigil_client::btc::bitcoin::TxOut {
            value: sigil_client::btc::bitcoin::Amount::from_sat(30_000),
            script_pubkey: p2tr.script_pubkey(),
        },
    ];
    for index in 0..2 {
        bitcoin_core_accepts(&raw, &spent, index)
            .unwrap_or_else(|e| panic!("input {index} of `sigil bitcoin spend`: {e}"));
    }
    let message = random::<32>();
    let (ok, printed, stderr) = cli(
        &net,
        &[
            "sign",
            "--token-id",
            &token,
            "--hash",
            &hex::encode(message),
            "--scheme",
            "SchnorrK256Taproot",
            "--json",
        ],
    );
    assert!(ok, "{stderr}");
    let key = hex::decode(printed["outputKey"].as_str().unwrap().trim_start_matches("0x")).unwrap();
    let signature = hex::decode(printed["signature"].as_str().unwrap().trim_start_matches("0x")).unwrap();
    assert_eq!(
        key,
        bip341_output_key(&derive_public_key(client.ecdsa_root(), &KeyId(key_id)))
    );
    let verifying = k256::schnorr::VerifyingKey::from_bytes(&key).unwrap();
    verifying
        .verify_raw(&message, &k256::schnorr::Signature::try_from(&signature[..]).unwrap())
        .unwrap();
    let (ok, _, stderr) = cli(
        &net,
        &[
            "sign",
            "--token-id",
            &token,
            "--hash",
            &hex::encode(message),
            "--scheme",
            "Ed448",
        ],
    );
    assert!(!ok && stderr.contains("unknown signing scheme"), "{stderr}");
}

#[cfg(feature = "test-faults")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allocator_handing_a_presignature_to_a_schnorr_request_gets_nothing_and_the_presignature_is_not_spent() {
    // Node 0 allocates, and answers every Schnorr request with an ECDSA presignature slot.
    let mut net = Network::start(4, 8, fault_at(0, "cross-scheme-bind")).await;
    let client = net.wait_ready(READY).await;
    let owned = mint(&net, &client, 1).await;
    let err = client
        .pkp_sign_schnorr(KeyRef::KeyId(owned.key_ids[0]), random::<32>(), &owned.auth)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("(material for EcdsaK256Sha256) to a SchnorrK256Taproot request"),
        "{err}"
    );
    let named: u64 = err
        .split("allocated slot ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no slot named in {err}"));
    // ECDSA signing goes on.
    crate::signing::sign_and_check(&client, &owned).await;
    net.stop().await;
    // No holder bound the named presignature to a request: it is unused, or only taken ahead of
    // requests (reserved, never bound, so never signed with).
    for i in 0..4 {
        let store = open_store(&net.config(i), &net.data_dir(i));
        let used = store.used().unwrap();
        let reserved = store.reserved_before().unwrap();
        assert!(used.iter().all(|id| !id.is_schnorr()), "node {i} used a Schnorr slot");
        for id in used.iter().filter(|id| id.seq == named) {
            assert!(reserved.contains(id), "node {i} bound presignature {id} to a request");
        }
    }
}
