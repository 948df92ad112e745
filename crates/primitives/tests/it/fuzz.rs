//! Fuzzed decoders of `sigil-primitives` (driver: `sigil-fuzz`; budget and replay in its docs).
//!
//! | target | decoder | corpus |
//! |---|---|---|
//! | `cid_from_str` | `Cid::from_str` | real CIDv0 strings |
//! | `cid_from_bytes` | `Cid::from_bytes` | real multihashes |
//! | `cid_of_file` | `Cid::of_file` (code a client uploads) | short files |
//! | `web_requests` | `serde_json` into every `/web` request body | one valid body each |
//! | `web_responses` | `serde_json` into every `/web` answer a client reads | one valid answer each |
//!
//! Each case must return (an error or a value) without panicking and allocate at most
//! 64 × input + 1 MiB; a value that decodes must survive a second trip through its encoding.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use sigil_fuzz::Target;
use sigil_primitives::*;

fn cids() -> Vec<Cid> {
    [&b""[..], b"hello world", b"export const x = 1;"]
        .iter()
        .map(|f| Cid::of_file(f).unwrap())
        .collect()
}

#[test]
fn fuzz_cid_from_str() {
    Target::new("cid_from_str")
        .corpus(cids().iter().map(|c| c.to_string()))
        .dict(["Qm", "1", "z", "0", "O", "l", " ", "\t"])
        .run(|bytes| {
            let Ok(text) = std::str::from_utf8(bytes) else { return };
            if let Ok(cid) = text.parse::<Cid>() {
                assert_eq!(cid.to_string().parse::<Cid>().unwrap(), cid);
            }
        });
}

#[test]
fn fuzz_cid_from_bytes() {
    Target::new("cid_from_bytes")
        .corpus(cids().iter().map(|c| c.as_bytes().to_vec()))
        .run(|bytes| {
            if let Ok(cid) = Cid::from_bytes(bytes) {
                assert_eq!(cid.as_bytes(), bytes);
            }
        });
}

#[test]
fn fuzz_cid_of_file() {
    // Hashing is linear in the input; a thousand cases cover the chunk boundaries as well as ten
    // thousand would, since inputs stay below one chunk.
    Target::new("cid_of_file").divide_cases(10).run(|bytes| {
        Cid::of_file(bytes).unwrap();
    });
}

/// Decodes `bytes` as `T`; what decodes must encode and decode again to the same JSON.
fn trip<T: DeserializeOwned + Serialize>(bytes: &[u8]) {
    if let Ok(value) = serde_json::from_slice::<T>(bytes) {
        let again = serde_json::to_value(&value).unwrap();
        let back: T = serde_json::from_value(again.clone()).unwrap();
        assert_eq!(serde_json::to_value(&back).unwrap(), again);
    }
}

const HEX32: &str = "0x00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

fn auth_sig() -> Value {
    json!({
        "sig": format!("{HEX32}{}", &HEX32[2..]),
        "derivedVia": "web3.eth.personal.sign",
        "signedMessage": "localhost wants you to sign in with your Ethereum account:\n0x0000000000000000000000000000000000000001\n\nURI: lit:session\nVersion: 1\nChain ID: 1\nNonce: 1\nIssued At: 2026-01-01T00:00:00Z",
        "address": "0x0000000000000000000000000000000000000001",
    })
}

fn condition() -> Value {
    json!([{
        "contractAddress": "",
        "standardContractType": "",
        "chain": "ethereum",
        "method": "eth_getBalance",
        "parameters": [":userAddress", "latest"],
        "returnValueTest": {"comparator": ">=", "value": "0"},
    }])
}

fn requests() -> Vec<Value> {
    vec![
        json!({"challenge": HEX32}),
        json!({
            "keyId": HEX32, "publicKey": "0x04", "tokenId": HEX32, "toSign": [1, 2, 3],
            "requestId": "0x00112233445566778899aabbccddeeff", "authSig": auth_sig(), "exclude": [1, 2],
        }),
        json!({"message": "0x68656c6c6f", "requestId": "00", "keyId": HEX32}),
        json!({"salt": HEX32, "viaHelper": true, "attempt": 2, "authSig": auth_sig(), "exclude": [0]}),
        json!({
            "code": "Lit.Actions.setResponse({response: 'x'})", "jsParams": {"a": [1, {"b": null}]},
            "authSig": auth_sig(), "requestId": "0011", "timestamp": 1_700_000_000_000u64,
        }),
        json!({"ipfsId": "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH", "requestId": "0011"}),
        json!({"code": "export const x = 1;"}),
        json!({
            "accessControlConditions": condition(), "dataToEncryptHash": &HEX32[2..],
            "authSig": auth_sig(), "chain": "ethereum", "epoch": 3,
        }),
        json!({"unifiedAccessControlConditions": condition(), "dataToEncryptHash": "00"}),
    ]
}

fn sign_response() -> Value {
    json!({
        "nodeId": 1, "share": HEX32, "publicKey": "0x04", "presignature": HEX32,
        "participants": [0, 1, 2], "threshold": 2,
    })
}

fn responses() -> Vec<Value> {
    vec![
        json!({
            "nodeId": 0, "epoch": 1, "threshold": 2, "ready": true, "ecdsaPublicKey": "02",
            "blsPublicKey": "a0", "blsPublicShares": {"0": "a0", "1": "a1"}, "identityKey": HEX32,
            "peers": [{"id": 0, "url": "http://127.0.0.1:1", "key": HEX32}], "version": "0.1.0",
            "chainId": 31337, "latestBlockhash": HEX32, "nodeSet": "0x01", "signer": "0x02",
            "attester": "0x03", "signature": "0x04", "keysSignature": "0x05",
        }),
        sign_response(),
        json!({
            "nodeId": 2, "response": "ok", "logs": ["a", "b"],
            "signatures": {"sig1": {"toSign": HEX32, "publicKey": "0x04", "share": sign_response()}},
            "singleNode": 2,
        }),
        json!({"cid": "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH", "size": 19}),
        json!({"nodeId": 1, "share": "ab", "identity": "cd"}),
        json!({"error": "bad", "errorCode": "BAD_REQUEST", "errorFields": {"field": "x"}, "logs": ["l"]}),
    ]
}

fn json_dict() -> [&'static str; 12] {
    [
        "null",
        "true",
        "[]",
        "{}",
        "\"",
        ",",
        ":",
        "\\u0000",
        "1e400",
        "-0",
        "\"requestId\":",
        "\"authSig\":",
    ]
}

#[test]
fn fuzz_web_requests() {
    Target::new("web_requests")
        .json(requests())
        .dict(json_dict())
        .max_random_len(256)
        .run(|bytes| {
            trip::<HandshakeRequest>(bytes);
            trip::<SignRequest>(bytes);
            trip::<AttestRequest>(bytes);
            trip::<ExecuteRequest>(bytes);
            trip::<StoreRequest>(bytes);
            trip::<EncryptionSignRequest>(bytes);
        });
}

#[test]
fn fuzz_web_responses() {
    Target::new("web_responses")
        .json(responses())
        .dict(json_dict())
        .max_random_len(256)
        .run(|bytes| {
            trip::<Handshake>(bytes);
            trip::<SignResponse>(bytes);
            trip::<ExecuteResponse>(bytes);
            trip::<StoredAction>(bytes);
            trip::<EncryptionShare>(bytes);
            trip::<ErrorBody>(bytes);
        });
}
