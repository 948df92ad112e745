//! Fuzzed decoders of what peers send a node (driver: `sigil-fuzz`; budget and replay in its docs).
//!
//! | target | decoder | corpus |
//! |---|---|---|
//! | `wire_message` | `mesh::wire::Message::decode` (`/mesh/send`, inside an envelope) | one message of every kind |
//! | `wire_call` | `serde_json` into `mesh::wire::Call` (`/mesh/call`) | every call |
//! | `wire_reply` | `serde_json` into `mesh::wire::Reply` (what a peer answers a call with) | every reply |
//! | `mesh_frames` | `mesh::frames::FrameReader` (a `/mesh/send` or `/mesh/call` body, before any envelope opens), pushed in chunks of every size | bodies of zero to three frames |
//! | `signed_takes` | `store::SignedTakes::from_bytes`, `from_hex` (a peer's `proof`), `StorageKey::from_hex` | genuine encodings |
//! | `webauthn_assertion` | `auth::webauthn::Assertion::parse` and `verify` (a passkey auth method's `accessToken`) | assertions of a software passkey |
//! | `webauthn_cose_key` | `auth::webauthn::CredentialKey::from_cose` (the `userPubkey` registered on chain) | the passkey's COSE key |
//!
//! The `/web` bodies are fuzzed as types in `sigil-primitives` (`tests/it/fuzz.rs`); the node's
//! handlers parse those same types. Each case must return without panicking and allocate at most
//! 64 × input + 1 MiB; what decodes must encode and decode to the same bytes.

use serde_json::{json, Value};
use sigil_fuzz::Target;
use sigil_node::auth::webauthn::{Assertion, CredentialKey, Policy};
use sigil_node::mesh::frames::{batch, FrameReader, Framing, Ready};
use sigil_node::mesh::wire::{Call, Message, Reply, Start};
use sigil_node::store::{SignedTakes, StorageKey};

fn messages() -> Vec<Message> {
    vec![
        Message::Protocol([7; 32], vec![1, 2, 3, 4, 5]),
        Message::Protocol([0; 32], Vec::new()),
        Message::Start(Start {
            seq: 42,
            participants: vec![0, 2, 3],
        }),
        Message::Stored(u64::MAX),
        Message::Failed {
            seq: 9,
            silent: vec![1, 4],
        },
        Message::Action {
            request: [3; 16],
            topic: "collect/name".into(),
            value: "{\"a\":1}".into(),
        },
    ]
}

#[test]
fn fuzz_wire_message() {
    Target::new("wire_message")
        .corpus(messages().iter().map(Message::encode))
        .dict([
            "\"seq\":",
            "\"participants\":",
            "\"silent\":",
            "\"topic\":",
            "\"value\":",
            "[]",
            "{}",
        ])
        .run(|bytes| {
            if let Ok(message) = Message::decode(bytes) {
                let encoded = message.encode();
                let again = Message::decode(&encoded).unwrap();
                assert_eq!(again.encode(), encoded);
            }
        });
}

fn calls() -> Vec<Value> {
    vec![
        json!({"type": "ping"}),
        json!({"type": "witness"}),
        json!({"type": "discard", "seqs": [1, 2, 18446744073709551615u64]}),
        json!({"type": "allocate", "request": "00112233445566778899aabbccddeeff", "digest": "ab", "exclude": [3], "at": 1_700_000_000}),
    ]
}

fn replies() -> Vec<Value> {
    vec![
        json!({"type": "pong", "ready": true, "takes": 5, "proof": "00"}),
        json!({"type": "witnessed", "takes": 5, "proof": ""}),
        json!({"type": "allocated", "pool": 1, "seq": 2, "participants": [0, 1], "entropy": "ff", "digest": "ee"}),
        json!({"type": "dropped", "count": 3}),
        json!({"type": "error", "code": "BAD", "message": "no"}),
    ]
}

/// Decodes JSON as `T`; what decodes encodes to JSON that decodes to the same encoding.
fn trip<T: serde::de::DeserializeOwned + serde::Serialize>(bytes: &[u8]) {
    if let Ok(value) = serde_json::from_slice::<T>(bytes) {
        let encoded = serde_json::to_vec(&value).unwrap();
        let again: T = serde_json::from_slice(&encoded).unwrap();
        assert_eq!(serde_json::to_vec(&again).unwrap(), encoded);
    }
}

#[test]
fn fuzz_wire_call() {
    Target::new("wire_call")
        .json(calls())
        .dict(["\"type\":", "\"ping\"", "\"allocate\"", "\"discard\""])
        .run(trip::<Call>);
}

#[test]
fn fuzz_wire_reply() {
    Target::new("wire_reply")
        .json(replies())
        .dict(["\"type\":", "\"pong\"", "\"allocated\"", "\"error\""])
        .run(trip::<Reply>);
}

/// Pushes `body` into a reader in chunks of `chunk` bytes: the envelopes it handed out (each
/// after its prefix), or `None` when it refused the body.
fn read(framing: Framing, body: &[u8], chunk: usize) -> Option<Vec<Vec<u8>>> {
    let mut reader = FrameReader::new(framing);
    let mut frames = Vec::new();
    let mut prefix = None;
    for piece in body.chunks(chunk.max(1)) {
        let mut data = piece;
        while let Some(ready) = reader.push(&mut data).ok()? {
            match ready {
                Ready::Prefix { prefix: p, .. } => {
                    assert!(prefix.is_none(), "two prefixes without a frame between");
                    prefix = Some(p);
                }
                Ready::Frame(frame) => {
                    let p = prefix.take().expect("a frame before its prefix");
                    assert_eq!(frame[..p.len()], p[..], "the prefix is the frame's start");
                    frames.push(frame);
                }
            }
        }
    }
    if let Some(single) = reader.finish().ok()? {
        let p = prefix.take().expect("an envelope before its prefix");
        assert_eq!(single[..p.len()], p[..], "the prefix is the envelope's start");
        frames.push(single);
    }
    Some(frames)
}

#[test]
fn fuzz_mesh_frames() {
    let small = vec![0x11; sigil_mesh::OVERHEAD];
    let larger = vec![0xee; sigil_mesh::OVERHEAD + 300];
    let bodies = [
        batch([]),
        batch([small.as_slice()]),
        batch([small.as_slice(), larger.as_slice(), small.as_slice()]),
    ];
    Target::new("mesh_frames").corpus(bodies).run(|bytes| {
        let chunk = 1 + bytes.first().copied().unwrap_or(0) as usize;
        if let Some(frames) = read(Framing::Batch, bytes, chunk) {
            assert_eq!(
                batch(frames.iter().map(Vec::as_slice)),
                bytes,
                "frames must cover the body exactly"
            );
        }
        if let Some(frames) = read(Framing::Single, bytes, chunk) {
            assert_eq!(frames, [bytes.to_vec()], "one envelope is the whole body");
        }
    });
}

#[test]
fn fuzz_signed_takes() {
    let genuine = SignedTakes {
        takes: 77,
        signature: [0x1b; 65],
    };
    Target::new("signed_takes")
        .corpus([genuine.to_bytes().to_vec(), hex::encode([0xab; 32]).into_bytes()])
        .run(|bytes| {
            if let Some(takes) = SignedTakes::from_bytes(bytes) {
                assert_eq!(takes.to_bytes().as_slice(), bytes);
            }
            if let Ok(text) = std::str::from_utf8(bytes) {
                if let Some(takes) = SignedTakes::from_hex(7, text) {
                    assert_eq!(hex::encode(takes.signature), text.to_lowercase());
                }
                let _ = StorageKey::from_hex(text);
            }
        });
}

#[test]
fn fuzz_webauthn_assertion() {
    let mut passkey = sigil_client::passkey::SoftPasskey::new([5; 32], "localhost");
    let key = CredentialKey::from_cose(&passkey.cose_public_key()).unwrap();
    let policy = Policy {
        rp_id: "localhost".into(),
        origins: vec!["http://localhost:5173".into()],
        require_user_verified: false,
    };
    let tokens: Vec<Value> = (0..3)
        .map(|i| serde_json::from_str(&passkey.get(&[i; 32], "http://localhost:5173")).unwrap())
        .collect();
    Target::new("webauthn_assertion")
        .json(tokens)
        .dict([
            "\"rawId\":",
            "\"response\":",
            "\"authenticatorData\":",
            "\"clientDataJSON\":",
            "\"signature\":",
            "\"public-key\"",
            "\"webauthn.get\"",
        ])
        .run(|bytes| {
            let Ok(text) = std::str::from_utf8(bytes) else {
                return;
            };
            if let Ok(assertion) = Assertion::parse(text) {
                let challenge = assertion.challenge().to_vec();
                let _ = assertion.verify(&policy, &challenge, &key, assertion.counter().saturating_sub(1));
                let _ = assertion.auth_method_id();
            }
        });
}

#[test]
fn fuzz_webauthn_cose_key() {
    let passkey = sigil_client::passkey::SoftPasskey::new([6; 32], "localhost");
    Target::new("webauthn_cose_key")
        .corpus([passkey.cose_public_key()])
        .run(|bytes| {
            let _ = CredentialKey::from_cose(bytes);
        });
}
