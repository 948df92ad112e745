//! Fuzzed decoders of `sigil-chain` (driver: `sigil-fuzz`; budget and replay in its docs).
//!
//! | target | decoder | corpus |
//! |---|---|---|
//! | `siwe_parse` | `SiweMessage::parse` | Sigil's own message, the EIP-4361 example, a Lit SDK shape, optional lines |
//! | `siwe_verify` | `serde_json` into `AuthSig`, then `AuthSig::verify` | genuine auth signatures |
//! | `rfc3339` | `parse_rfc3339` | timestamps with and without fractions and offsets |
//! | `signer_of` | `vouch::signer_of` on a 65-byte signature | a genuine signature |
//!
//! Each case must return without panicking and allocate at most 64 × input + 1 MiB; a message
//! that parses must render and parse back to itself, and a verified auth signature must name
//! the message's address.

use serde_json::Value;
use sigil_chain::alloy::primitives::B256;
use sigil_chain::alloy::signers::local::PrivateKeySigner;
use sigil_chain::siwe::{parse_rfc3339, rfc3339, AuthSig, Expected, SiweMessage};
use sigil_chain::vouch::{sign_digest, signer_of};
use sigil_fuzz::Target;

const KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
const NOW: u64 = 1_795_255_200;

fn messages() -> Vec<SiweMessage> {
    let sigil = SiweMessage {
        domain: "sigil.example".to_owned(),
        address: "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266".parse().unwrap(),
        statement: Some("Sign in to Sigil.".to_owned()),
        uri: "lit:session:6a1f1e8a00b61867b85eaf329d6fdf855220ac3e32f44ec13e4db0dd303dea6a".to_owned(),
        version: "1".to_owned(),
        chain_id: 31_337,
        nonce: "0xfe88c94d860f01a17f961bf4bdfb6e0c6cd10d3fda5cc861e805ca1240c58553".to_owned(),
        issued_at: NOW - 60,
        expiration_time: Some(NOW + 3600),
        not_before: None,
        request_id: None,
        resources: vec!["urn:recap:eyJhdHQiOnt9LCJwcmYiOltdfQ".to_owned()],
    };
    let full = SiweMessage {
        domain: "https://localhost:8443".to_owned(),
        statement: None,
        not_before: Some(NOW - 10),
        request_id: Some("req-1".to_owned()),
        resources: vec!["ipfs://Qm/".to_owned(), "https://example.com/a.json".to_owned()],
        ..sigil.clone()
    };
    vec![sigil, full]
}

const EIP_EXAMPLE: &str = "service.invalid wants you to sign in with your Ethereum account:
0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2

I accept the ServiceOrg Terms of Service: https://service.invalid/tos

URI: https://service.invalid/login
Version: 1
Chain ID: 1
Nonce: 32891756
Issued At: 2021-09-30T16:25:24.123Z
Expiration Time: 2021-10-30T16:25:24+02:00
Resources:
- ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/
- https://example.com/my-web2-claim.json";

/// A session capability in the shape Lit's JS SDK writes: milliseconds, the ReCap sentence.
const LIT_SHAPE: &str = "localhost wants you to sign in with your Ethereum account:
0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266

This is a test statement.  You can put anything you want here. I further authorize the stated URI to perform the following actions on my behalf: (1) 'Threshold': 'Signing' for 'lit-pkp://*'.

URI: lit:session:2ceea2a90af451a0622c2c887249922c1e83d2d22dd983de6afc001e069ba394
Version: 1
Chain ID: 1
Nonce: 0xb7259dc3a26b64dc29047edc2d016e9751c50ae3658e28700e9a415a296e2880
Issued At: 2026-03-02T08:15:30.512Z
Expiration Time: 2026-03-03T08:15:30.498Z
Resources:
- urn:recap:eyJhdHQiOnsibGl0LXBrcDovLyoiOnsiVGhyZXNob2xkL1NpZ25pbmciOlt7fV19fSwicHJmIjpbXX0";

fn siwe_dict() -> [&'static str; 14] {
    [
        "\n",
        "URI: ",
        "Version: 1",
        "Chain ID: ",
        "Nonce: ",
        "Issued At: ",
        "Expiration Time: ",
        "Not Before: ",
        "Request ID: ",
        "Resources:\n- ",
        " wants you to sign in with your Ethereum account:\n",
        "0x",
        "Z",
        "\r",
    ]
}

#[test]
fn fuzz_siwe_parse() {
    let texts: Vec<String> = messages()
        .iter()
        .map(SiweMessage::render)
        .chain([EIP_EXAMPLE.to_owned(), LIT_SHAPE.to_owned()])
        .collect();
    Target::new("siwe_parse")
        .corpus(texts)
        .dict(siwe_dict())
        .max_random_len(1024)
        .run(|bytes| {
            let Ok(text) = std::str::from_utf8(bytes) else { return };
            if let Ok(message) = SiweMessage::parse(text) {
                let again = SiweMessage::parse(&message.render());
                assert_eq!(again.as_ref(), Ok(&message), "rendered:\n{}", message.render());
            }
        });
}

#[test]
fn fuzz_siwe_verify() {
    let signer: PrivateKeySigner = KEY.parse().unwrap();
    let sigs: Vec<Value> = messages()
        .iter()
        .map(|m| serde_json::to_value(AuthSig::create(&signer, m).unwrap()).unwrap())
        .collect();
    let expected = Expected {
        domain: "sigil.example".to_owned(),
        chain_id: 31_337,
    };
    Target::new("siwe_verify").json(sigs).dict(siwe_dict()).run(|bytes| {
        let Ok(auth) = serde_json::from_slice::<AuthSig>(bytes) else {
            return;
        };
        if let Ok(verified) = auth.verify(&expected, NOW) {
            assert_eq!(verified.address, verified.message.address);
            assert_eq!(verified.message.domain, expected.domain);
        }
    });
}

#[test]
fn fuzz_rfc3339() {
    Target::new("rfc3339")
        .corpus([rfc3339(NOW), rfc3339(0), rfc3339(u64::from(u32::MAX) * 100)])
        .corpus([
            "2021-09-30T16:25:24.123456789Z",
            "2021-09-30T16:25:24+23:59",
            "9999-12-31T23:59:60-00:00",
        ])
        .dict(["T", "Z", "+", "-", ":", ".", "99999999999999999999"])
        .run(|bytes| {
            let Ok(text) = std::str::from_utf8(bytes) else { return };
            if let Ok(unix) = parse_rfc3339(text) {
                // What parses without an offset or fraction prints back the same, but for the
                // letter case of the "T" (RFC 3339 allows "t").
                if text.ends_with('Z') && !text.contains('.') && text.len() == 20 && !text.contains(":60") {
                    assert!(
                        rfc3339(unix).eq_ignore_ascii_case(text),
                        "{text} printed back as {}",
                        rfc3339(unix)
                    );
                }
            }
        });
}

#[test]
fn fuzz_signer_of() {
    let signer: PrivateKeySigner = KEY.parse().unwrap();
    let digest = B256::repeat_byte(7);
    let genuine = sign_digest(&signer, &digest);
    Target::new("signer_of").corpus([genuine]).run(|bytes| {
        if let Some(address) = signer_of(&digest, bytes) {
            // Anything that recovers is 65 bytes long with a low s.
            assert_eq!(bytes.len(), 65);
            let _ = address;
        }
    });
}
