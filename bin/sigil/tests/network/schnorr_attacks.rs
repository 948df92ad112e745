//! Attacks on Schnorr (`SchnorrK256Taproot`) signing inside actions: a node lying about the key
//! id of its share to get honest signers blamed, and a non-signer echoing a share to stop
//! `signAndCombine`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sigil_client::{ActionCode, Client, ClientError};
use sigil_tss::derive::{derive_public_key, KeyId};

use crate::actions::permit;
use crate::harness::{mitm_proxy_after, Network, Rewrite};
use crate::schemes::bip341_output_key;

const READY: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_reporting_another_key_id_for_an_actions_schnorr_share_cannot_get_honest_signers_blamed() {
    // n = 4, t = 3. Node 3 is malicious: its /web/execute answer is the true one except that the
    // Schnorr entry names another PKP's key id (a field the client's agreement key leaves out).
    // It answers first; the honest nodes are a little further away.
    let mut net = Network::start(4, 8, |_| vec![]).await;
    let _ = net.wait_ready(READY).await;
    let (token, public_key, key_id) = crate::schemes::cli_mint(&net);
    let code = r#"(async () => {
        await Lit.Actions.sign({ toSign: new Uint8Array(32).fill(5), publicKey, sigName: "s", signingScheme: "SchnorrK256Taproot" });
        Lit.Actions.setResponse({ response: "ok" });
    })();"#;
    permit(&net, &token, code);

    let lie: Rewrite = Arc::new(|path, mut answer| {
        if path == "/web/execute" && answer["signatures"]["s"].is_object() {
            answer["signatures"]["s"]["keyId"] = serde_json::Value::String(hex::encode([7u8; 32]));
        }
        answer
    });
    let honest: Rewrite = Arc::new(|_, answer| answer);
    let mut urls = BTreeMap::new();
    for i in 0..3u32 {
        urls.insert(
            i,
            mitm_proxy_after(
                net.urls[i as usize].clone(),
                Duration::from_millis(1500),
                Arc::clone(&honest),
            )
            .await,
        );
    }
    urls.insert(3, mitm_proxy_after(net.urls[3].clone(), Duration::ZERO, lie).await);
    let client = Client::connect_via(&net.chain(), &urls).await.unwrap();

    let params = serde_json::json!({ "publicKey": public_key });
    // The first eight Schnorr slots cover every signing set of three of the four nodes, two of
    // them without node 3: runs with node 3 in the set cannot sign (it withholds its true share,
    // as any signer can), the others must; in none is an honest node blamed.
    let mut signed = 0;
    for run in 0..8 {
        let result = tokio::time::timeout(
            Duration::from_secs(120),
            client.execute(ActionCode::Code(code.to_string()), params.clone(), None),
        )
        .await
        .expect("execute hung");
        let failures = match &result {
            Ok(outcome) => outcome.failures.clone(),
            Err(ClientError::Action { failures, .. }) => failures.clone(),
            Err(e) => panic!("run {run}: execute: {e}"),
        };
        let blamed: Vec<String> = failures
            .iter()
            .filter(|f| f.node.is_some_and(|n| n != 3) && f.reason.contains("does not fit"))
            .map(|f| f.to_string())
            .collect();
        assert!(
            blamed.is_empty(),
            "run {run}: honest nodes named for wrong Schnorr shares on node 3's word: {blamed:?}"
        );
        let Ok(outcome) = result else { continue };
        let s = &outcome.schnorr_signatures["s"];
        assert!(!s.signers.contains(&3), "run {run}: node 3's share was combined");
        let output_key = bip341_output_key(&derive_public_key(client.ecdsa_root(), &KeyId(key_id)));
        assert_eq!(s.output_key, output_key, "signed under another key");
        let key = k256::schnorr::VerifyingKey::from_bytes(&s.output_key).unwrap();
        let signature = k256::schnorr::Signature::try_from(&s.signature[..]).unwrap();
        assert!(key.verify_raw(&[5; 32], &signature).is_ok());
        signed += 1;
    }
    assert!(signed >= 1, "no run signed, though two of the sets leave node 3 out");
    net.stop().await;
}

#[cfg(feature = "test-faults")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_signer_echoing_a_schnorr_share_cannot_stop_sign_and_combine() {
    use crate::actions::error_code;
    // n = 4, t = 3. Node 3, whenever it is outside the signing set of a Schnorr signAndCombine,
    // posts a copy of a signer's share (with the set's commitments) as its own.
    let mut net = Network::start(4, 8, crate::harness::fault_at(3, "echo-schnorr-shares")).await;
    let client = net.wait_ready(READY).await;
    let (token, public_key, _) = crate::schemes::cli_mint(&net);
    let code = r#"(async () => {
        const combined = await Lit.Actions.signAndCombine({ toSign: new Uint8Array(32).fill(9), publicKey, sigName: "c", signingScheme: "SchnorrK256Taproot" });
        Lit.Actions.setResponse({ response: combined });
    })();"#;
    permit(&net, &token, code);
    let params = serde_json::json!({ "publicKey": public_key });
    // Until node 3 has tried (a quarter of the signing sets leave it out), and a round more.
    let mut tried_in = None;
    for round in 0..24 {
        if tried_in.is_some_and(|r| round > r + 1) {
            break;
        }
        let result = tokio::time::timeout(
            Duration::from_secs(120),
            client.execute(ActionCode::Code(code.to_string()), params.clone(), None),
        )
        .await
        .expect("execute hung");
        let echoed = net.log(3).contains("echoed another node's Schnorr share as its own");
        if echoed && tried_in.is_none() {
            tried_in = Some(round);
        }
        match result {
            Ok(outcome) => assert!(outcome.response.unwrap().contains("signature")),
            Err(e) => {
                let (code, message) = error_code(Err(e));
                panic!("round {round} (node 3 echoed so far: {echoed}): {code}: {message}");
            }
        }
    }
    assert!(
        net.log(3).contains("echoed another node's Schnorr share as its own"),
        "node 3 was in every signing set; the attack was never tried"
    );
    net.stop().await;
}
