//! What a session signature costs a node per request: reading it, the ed25519 check, its time
//! window and the ReCap lookups (the capability itself is verified once per session and node,
//! then remembered: `capability_first_use` is that one-time cost for a wallet's capability).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::indexing_slicing, missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion};
use sigil_chain::alloy::primitives::U256;
use sigil_chain::alloy::signers::local::PrivateKeySigner;
use sigil_chain::session::{requested, Need, Recap, SessionKey, SessionMessage, SessionSig};
use sigil_chain::siwe::{parse_rfc3339, rfc3339, AuthSig, Expected, SiweMessage};
use sigil_primitives::{Resource, ResourceAbility};

fn bench(c: &mut Criterion) {
    let wallet = PrivateKeySigner::random();
    let key = SessionKey::random();
    let now = 1_800_000_000;
    let token = U256::from(0x5eu64);
    let requests = vec![ResourceAbility {
        resource: Resource {
            resource: hex::encode(token.to_be_bytes::<32>()),
            resource_prefix: "lit-pkp".into(),
        },
        ability: "pkp-signing".into(),
    }];
    let siwe = SiweMessage {
        domain: "localhost".into(),
        address: wallet.address(),
        statement: Some("Sigil: I grant the session key the listed abilities.".into()),
        uri: key.uri(),
        version: "1".into(),
        chain_id: 31337,
        nonce: format!("0x{}", "ab".repeat(32)),
        issued_at: now,
        expiration_time: Some(now + 3600),
        not_before: None,
        request_id: None,
        resources: vec![Recap::granting(&requests).encode()],
    };
    let capability = AuthSig::create(&wallet, &siwe).unwrap();
    let message = SessionMessage {
        session_key: key.public_hex(),
        resource_ability_requests: requests,
        capabilities: vec![capability.clone()],
        issued_at: rfc3339(now),
        expiration: rfc3339(now + 3600),
        node_address: "http://127.0.0.1:7470".into(),
    };
    let value = serde_json::to_value(key.sign(&message)).unwrap();
    let need = Need::pkp(token);
    let recap = Recap::of(&siwe.resources).unwrap();
    c.bench_function("session_per_request", |b| {
        b.iter(|| {
            let sig: SessionSig = SessionSig::from_value(&value).unwrap().unwrap();
            let opened = sig.open().unwrap();
            let _ = parse_rfc3339(&opened.issued_at).unwrap();
            let _ = parse_rfc3339(&opened.expiration).unwrap();
            assert!(requested(&opened.resource_ability_requests, &need));
            assert!(recap.grants(&need));
        })
    });
    let expected = Expected {
        domain: "localhost".into(),
        chain_id: 31337,
    };
    c.bench_function("capability_first_use", |b| {
        b.iter(|| {
            let verified = capability.verify(&expected, now + 1).unwrap();
            assert!(Recap::of(&verified.message.resources).unwrap().grants(&need));
        })
    });
    c.bench_function("auth_sig_verify", |b| {
        b.iter(|| capability.verify(&expected, now + 1).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
