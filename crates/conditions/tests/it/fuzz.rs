//! Fuzzed condition parsing and evaluation (driver: `sigil-fuzz`; budget and replay in its docs).
//!
//! | target | decoder | corpus |
//! |---|---|---|
//! | `conditions_parse` | JSON → `Conditions::from_fields` (all three fields) → `canonical_json`, `hash` | one condition of every kind, groups |
//! | `conditions_evaluate` | what parses, evaluated against a chain answering garbage (empty, all ones, a 4 GiB array length, the call data itself) | the same |
//!
//! Each case must return without panicking and allocate at most 64 × input + 1 MiB; what parses
//! must hash the same when written out again with other whitespace.

use async_trait::async_trait;
use serde_json::{json, Value};
use sigil_chain::alloy::primitives::{Address, U256};
use sigil_conditions::{Conditions, Context, EnvError, Environment};
use sigil_fuzz::Target;
use sigil_primitives::Cid;

const NFT: &str = "0x5FbDB2315678afecb367f032d93F642f64180aa3";

fn corpus() -> Vec<Value> {
    let balance = json!({ "contractAddress": "", "standardContractType": "", "chain": "sigil", "method": "eth_getBalance",
        "parameters": [":userAddress", "latest"], "returnValueTest": { "comparator": ">=", "value": "1000000000000000000" } });
    let owner = json!({ "contractAddress": NFT, "standardContractType": "ERC721", "chain": "sigil", "method": "ownerOf",
        "parameters": ["7"], "returnValueTest": { "comparator": "=", "value": ":userAddress" } });
    let erc20 = json!({ "contractAddress": NFT, "standardContractType": "ERC20", "chain": "sigil", "method": "balanceOf",
        "parameters": [":userAddress"], "returnValueTest": { "comparator": ">", "value": "0" } });
    let erc1155 = json!({ "contractAddress": NFT, "standardContractType": "ERC1155", "chain": "sigil", "method": "balanceOf",
        "parameters": [":userAddress", "3"], "returnValueTest": { "comparator": ">", "value": "0" } });
    let time = json!({ "contractAddress": "", "standardContractType": "timestamp", "chain": "sigil", "method": "eth_getBlockByNumber",
        "parameters": ["latest"], "returnValueTest": { "comparator": ">=", "value": "1700000000" } });
    let action = json!({ "contractAddress": "ipfs://QmSXNJaDn9Zn7aBCLUXW4UJcRhNyfJKJYsjGUHjHEWHYxQ", "standardContractType": "LitAction",
        "chain": "sigil", "method": "go", "parameters": ["40", ":userAddress"], "returnValueTest": { "comparator": "=", "value": "true" } });
    let current = json!({ "contractAddress": "", "standardContractType": "", "chain": "sigil", "method": "",
        "parameters": [":currentActionIpfsId"], "returnValueTest": { "comparator": "=", "value": "QmSXNJaDn9Zn7aBCLUXW4UJcRhNyfJKJYsjGUHjHEWHYxQ" } });
    let contract = |outputs: Value, key: &str, value: &str| {
        json!({
            "contractAddress": NFT, "functionName": "f", "functionParams": [":userAddress", "5", "0x00ff", "true"],
            "functionAbi": { "type": "function", "stateMutability": "view", "name": "f",
                "inputs": [{"type": "address", "name": "a"}, {"type": "uint256", "name": "n"}, {"type": "bytes", "name": "b"}, {"type": "bool", "name": "c"}],
                "outputs": outputs },
            "chain": "sigil", "returnValueTest": { "key": key, "comparator": "=", "value": value }
        })
    };
    let c1 = contract(json!([{ "type": "uint32", "name": "" }]), "", "4");
    let c2 = contract(
        json!([{ "type": "uint256[]", "name": "xs" }, { "type": "string", "name": "s" }]),
        "s",
        "x",
    );
    let c3 = contract(
        json!([{ "type": "tuple", "name": "t", "components": [{ "type": "bytes", "name": "b" }, { "type": "address[2]", "name": "a" }] }]),
        "t",
        "0x",
    );
    let unified = |mut v: Value, kind: &str| {
        v["conditionType"] = json!(kind);
        v
    };
    vec![
        json!([balance.clone()]),
        json!([owner.clone(), { "operator": "and" }, [time.clone(), { "operator": "or" }, erc20.clone()]]),
        json!([erc1155, { "operator": "or" }, action.clone(), { "operator": "or" }, current]),
        json!([c1.clone()]),
        json!([c2, { "operator": "and" }, c3]),
        json!([unified(balance, "evmBasic"), { "operator": "and" }, unified(c1, "evmContract")]),
        json!([[[owner, { "operator": "and" }, time]]]),
    ]
}

fn parse(value: &Value, field: u8) -> Option<Conditions> {
    let (a, e, u) = match field % 3 {
        0 => (Some(value), None, None),
        1 => (None, Some(value), None),
        _ => (None, None, Some(value)),
    };
    let conditions = Conditions::from_fields(a, e, u).ok()?;
    // The same conditions written with other whitespace hash the same.
    let pretty: Value = serde_json::from_str(&serde_json::to_string_pretty(value).unwrap()).unwrap();
    let field = [
        "accessControlConditions",
        "evmContractConditions",
        "unifiedAccessControlConditions",
    ][usize::from(field % 3)];
    let again = Conditions::parse(field, &pretty).unwrap();
    assert_eq!(again.hash(), conditions.hash());
    assert_eq!(again.canonical_json(), conditions.canonical_json());
    Some(conditions)
}

#[test]
fn fuzz_conditions_parse() {
    Target::new("conditions_parse")
        .json(corpus())
        .dict([
            "\"operator\"",
            "\"and\"",
            "\"or\"",
            ":userAddress",
            "\"ERC721\"",
            "[",
            "]",
            "{}",
            "\"tuple\"",
        ])
        .run(|bytes| {
            let Ok(value) = serde_json::from_slice::<Value>(bytes) else {
                return;
            };
            for field in 0..3 {
                let _ = parse(&value, field);
            }
        });
}

/// A chain whose every answer is `answer` (or, when empty, the call data echoed back).
struct Garbage {
    answer: Vec<u8>,
}

#[async_trait]
impl Environment for Garbage {
    async fn balance(&self, _chain: &str, _owner: Address) -> Result<U256, EnvError> {
        Ok(U256::MAX)
    }
    async fn call(&self, _chain: &str, _to: Address, data: Vec<u8>) -> Result<Result<Vec<u8>, String>, EnvError> {
        if self.answer.is_empty() {
            // The call data minus its selector: a valid encoding of the inputs, read as outputs.
            Ok(Ok(data.get(4..).unwrap_or_default().to_vec()))
        } else {
            Ok(Ok(self.answer.clone()))
        }
    }
    async fn latest_timestamp(&self, _chain: &str) -> Result<u64, EnvError> {
        Ok(u64::MAX)
    }
    async fn run_action(
        &self,
        _cid: &Cid,
        _method: &str,
        params: &[String],
        _context: &Context,
    ) -> Result<Result<String, String>, EnvError> {
        Ok(Ok(params.join(",")))
    }
}

#[test]
fn fuzz_conditions_evaluate() {
    let mut huge_length = [0u8; 64];
    huge_length[31] = 0x20; // offset of the first dynamic value
    huge_length[60..].copy_from_slice(&[0xff; 4]); // its length: 2^32 - 1
    let chains = [
        Garbage { answer: Vec::new() },
        Garbage { answer: vec![0xff; 96] },
        Garbage {
            answer: huge_length.to_vec(),
        },
        Garbage { answer: vec![0; 3] },
    ];
    let context = Context {
        user: Some(NFT.parse().unwrap()),
        action: Some("QmSXNJaDn9Zn7aBCLUXW4UJcRhNyfJKJYsjGUHjHEWHYxQ".into()),
    };
    Target::new("conditions_evaluate").json(corpus()).run_with(
        || tokio::runtime::Builder::new_current_thread().build().unwrap(),
        u64::MAX,
        |runtime, bytes| {
            let Ok(value) = serde_json::from_slice::<Value>(bytes) else {
                return;
            };
            let Some(conditions) = parse(&value, bytes.len() as u8) else {
                return;
            };
            for chain in &chains {
                let _ = runtime.block_on(conditions.evaluate(&context, chain));
            }
        },
    );
}
