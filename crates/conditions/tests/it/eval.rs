use std::collections::HashMap;

use async_trait::async_trait;
use serde_json::{json, Value};
use sigil_chain::alloy::dyn_abi::{DynSolValue, JsonAbiExt};
use sigil_chain::alloy::json_abi::Function;
use sigil_chain::alloy::primitives::{Address, U256};
use sigil_conditions::{Conditions, Context, EnvError, Environment, Verdict};
use sigil_primitives::Cid;

const NFT: &str = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
const ALICE: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const BOB: &str = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";

/// A chain and an action runner in memory.
#[derive(Default)]
struct Fake {
    balances: HashMap<Address, U256>,
    calls: HashMap<Vec<u8>, Result<Vec<u8>, String>>,
    timestamp: u64,
    action: Option<Result<String, String>>,
}

#[async_trait]
impl Environment for Fake {
    async fn balance(&self, chain: &str, owner: Address) -> Result<U256, EnvError> {
        known(chain)?;
        Ok(self.balances.get(&owner).copied().unwrap_or_default())
    }
    async fn call(&self, chain: &str, _to: Address, data: Vec<u8>) -> Result<Result<Vec<u8>, String>, EnvError> {
        known(chain)?;
        Ok(self
            .calls
            .get(&data)
            .cloned()
            .unwrap_or_else(|| Err("no such call".into())))
    }
    async fn latest_timestamp(&self, chain: &str) -> Result<u64, EnvError> {
        known(chain)?;
        Ok(self.timestamp)
    }
    async fn run_action(
        &self,
        _cid: &Cid,
        method: &str,
        params: &[String],
        _c: &Context,
    ) -> Result<Result<String, String>, EnvError> {
        assert_eq!(method, "go");
        assert_eq!(params, ["40"]);
        self.action
            .clone()
            .ok_or_else(|| EnvError::new("ACTION_NOT_FOUND", "no code"))
    }
}

fn known(chain: &str) -> Result<(), EnvError> {
    if chain == "sigil" {
        Ok(())
    } else {
        Err(EnvError::new("UNKNOWN_CHAIN", format!("no chain {chain:?}")))
    }
}

fn address(text: &str) -> Address {
    text.parse().expect("address")
}

fn user(text: &str) -> Context {
    Context {
        user: Some(address(text)),
        action: None,
    }
}

fn encode_call(signature: &str, args: &[DynSolValue]) -> Vec<u8> {
    Function::parse(signature)
        .expect("abi")
        .abi_encode_input(args)
        .expect("encode")
}

fn fake() -> Fake {
    let mut fake = Fake {
        timestamp: 1_700_000_000,
        ..Fake::default()
    };
    fake.balances
        .insert(address(ALICE), U256::from(2_000_000_000_000_000_000u128));
    // ownerOf(7) = ALICE; ownerOf(8) reverts.
    fake.calls.insert(
        encode_call("function ownerOf(uint256)", &[DynSolValue::Uint(U256::from(7), 256)]),
        Ok(DynSolValue::Address(address(ALICE)).abi_encode()),
    );
    fake.calls.insert(
        encode_call("function ownerOf(uint256)", &[DynSolValue::Uint(U256::from(8), 256)]),
        Err("ERC721NonexistentToken(8)".into()),
    );
    fake.calls.insert(
        encode_call("function threshold()", &[]),
        Ok(DynSolValue::Uint(U256::from(4), 32).abi_encode()),
    );
    fake
}

fn balance(at_least: &str) -> Value {
    json!({ "contractAddress": "", "standardContractType": "", "chain": "sigil", "method": "eth_getBalance",
            "parameters": [":userAddress", "latest"], "returnValueTest": { "comparator": ">=", "value": at_least } })
}

fn owner_of(token: &str) -> Value {
    json!({ "contractAddress": NFT, "standardContractType": "ERC721", "chain": "sigil", "method": "ownerOf",
            "parameters": [token], "returnValueTest": { "comparator": "=", "value": ":userAddress" } })
}

fn timestamp(comparator: &str, value: &str) -> Value {
    json!({ "contractAddress": "", "standardContractType": "timestamp", "chain": "sigil", "method": "eth_getBlockByNumber",
            "parameters": ["latest"], "returnValueTest": { "comparator": comparator, "value": value } })
}

async fn decide(env: &Fake, context: &Context, conditions: Value) -> Verdict {
    Conditions::parse("accessControlConditions", &conditions)
        .expect("valid")
        .evaluate(context, env)
        .await
        .expect("evaluates")
}

#[tokio::test]
async fn balance_holds_for_the_funded_wallet_only() {
    let env = fake();
    let one_eth = json!([balance("1000000000000000000")]);
    assert_eq!(decide(&env, &user(ALICE), one_eth.clone()).await, Verdict::Granted);
    let Verdict::Denied(why) = decide(&env, &user(BOB), one_eth).await else {
        panic!("granted")
    };
    assert!(why.starts_with("accessControlConditions[0]:"), "{why}");
    assert!(why.contains("found 0"), "{why}");
}

#[tokio::test]
async fn nft_ownership_and_reverts() {
    let env = fake();
    assert_eq!(
        decide(&env, &user(ALICE), json!([owner_of("7")])).await,
        Verdict::Granted
    );
    assert!(matches!(
        decide(&env, &user(BOB), json!([owner_of("7")])).await,
        Verdict::Denied(_)
    ));
    let Verdict::Denied(why) = decide(&env, &user(ALICE), json!([owner_of("8")])).await else {
        panic!("granted")
    };
    assert!(why.contains("reverted"), "{why}");
}

#[tokio::test]
async fn or_needs_one_and_needs_all() {
    let env = fake();
    let or = json!([balance("5000000000000000000"), { "operator": "or" }, timestamp("<", "1"), { "operator": "or" }, owner_of("7")]);
    assert_eq!(decide(&env, &user(ALICE), or).await, Verdict::Granted);
    let none = json!([balance("5000000000000000000"), { "operator": "or" }, timestamp("<", "1")]);
    let Verdict::Denied(why) = decide(&env, &user(ALICE), none).await else {
        panic!("granted")
    };
    assert!(
        why.contains("none holds") && why.contains("[0]") && why.contains("[2]"),
        "{why}"
    );
    let and = json!([owner_of("7"), { "operator": "and" }, [timestamp(">=", "1700000000"), { "operator": "or" }, timestamp("<", "0")]]);
    assert_eq!(decide(&env, &user(ALICE), and).await, Verdict::Granted);
    let and = json!([owner_of("7"), { "operator": "and" }, timestamp(">", "1700000000")]);
    let Verdict::Denied(why) = decide(&env, &user(ALICE), and).await else {
        panic!("granted")
    };
    assert!(why.starts_with("accessControlConditions[2]"), "{why}");
}

#[tokio::test]
async fn evm_contract_reads_any_view_function() {
    let env = fake();
    let condition = |value: &str| {
        json!([{
            "contractAddress": NFT, "functionName": "threshold", "functionParams": [],
            "functionAbi": { "type": "function", "stateMutability": "view", "name": "threshold", "inputs": [],
                             "outputs": [{ "type": "uint32", "name": "" }] },
            "chain": "sigil", "returnValueTest": { "key": "", "comparator": "=", "value": value }
        }])
    };
    assert_eq!(decide(&env, &user(BOB), condition("4")).await, Verdict::Granted);
    assert!(matches!(
        decide(&env, &user(BOB), condition("5")).await,
        Verdict::Denied(_)
    ));
}

#[tokio::test]
async fn action_conditions_test_the_result() {
    let cid = "QmSXNJaDn9Zn7aBCLUXW4UJcRhNyfJKJYsjGUHjHEWHYxQ";
    let condition = json!([{ "contractAddress": format!("ipfs://{cid}"), "standardContractType": "LitAction", "chain": "sigil",
        "method": "go", "parameters": ["40"], "returnValueTest": { "comparator": "=", "value": "true" } }]);
    let mut env = fake();
    env.action = Some(Ok("true".into()));
    assert_eq!(decide(&env, &user(BOB), condition.clone()).await, Verdict::Granted);
    env.action = Some(Ok("false".into()));
    assert!(matches!(
        decide(&env, &user(BOB), condition.clone()).await,
        Verdict::Denied(_)
    ));
    env.action = Some(Err("ACTION_TIMEOUT".into()));
    let Verdict::Denied(why) = decide(&env, &user(BOB), condition.clone()).await else {
        panic!("granted")
    };
    assert!(why.contains("the action failed: ACTION_TIMEOUT"), "{why}");
    env.action = None;
    let parsed = Conditions::parse("accessControlConditions", &condition).expect("valid");
    let error = parsed.evaluate(&user(BOB), &env).await.expect_err("env error");
    assert_eq!(error.error.code, "ACTION_NOT_FOUND");
    assert_eq!(error.path, "accessControlConditions[0]");
}

#[tokio::test]
async fn placeholders_without_a_caller_deny() {
    let env = fake();
    let Verdict::Denied(why) = decide(&env, &Context::default(), json!([balance("0")])).await else {
        panic!("granted")
    };
    assert!(why.contains("no authenticated address"), "{why}");
    let cid = "QmSXNJaDn9Zn7aBCLUXW4UJcRhNyfJKJYsjGUHjHEWHYxQ";
    let only_action = json!([{ "contractAddress": "", "standardContractType": "", "chain": "sigil", "method": "",
        "parameters": [":currentActionIpfsId"], "returnValueTest": { "comparator": "=", "value": cid } }]);
    assert!(matches!(
        decide(&env, &user(ALICE), only_action.clone()).await,
        Verdict::Denied(_)
    ));
    let inside = Context {
        user: None,
        action: Some(cid.into()),
    };
    assert_eq!(decide(&env, &inside, only_action).await, Verdict::Granted);
}

#[tokio::test]
async fn unknown_chain_is_an_error_naming_the_condition() {
    let env = fake();
    let mut c = balance("1");
    c["chain"] = json!("nowhere");
    let parsed = Conditions::parse(
        "accessControlConditions",
        &json!([owner_of("7"), { "operator": "and" }, c]),
    )
    .expect("valid");
    let error = parsed.evaluate(&user(ALICE), &env).await.expect_err("unknown chain");
    assert_eq!(error.path, "accessControlConditions[2]");
    assert_eq!(error.error.code, "UNKNOWN_CHAIN");
}
