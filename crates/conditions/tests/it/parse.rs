use serde_json::{json, Value};
use sha2::Digest;
use sigil_conditions::{identity, Check, Conditions};

const CID: &str = "QmSXNJaDn9Zn7aBCLUXW4UJcRhNyfJKJYsjGUHjHEWHYxQ";

fn balance(value: &str) -> Value {
    json!({
        "contractAddress": "",
        "standardContractType": "",
        "chain": "sigil",
        "method": "eth_getBalance",
        "parameters": [":userAddress", "latest"],
        "returnValueTest": { "comparator": ">=", "value": value }
    })
}

/// Parsing `conditions` fails at `path` with a reason containing `reason`.
#[track_caller]
fn rejects(conditions: Value, path: &str, reason: &str) {
    let error = Conditions::parse("accessControlConditions", &conditions).expect_err("must be rejected");
    assert_eq!(error.path, path, "{error}");
    assert!(error.reason.contains(reason), "{error}");
}

#[test]
fn every_basic_shape_parses() {
    let nft = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
    let conditions = json!([
        { "contractAddress": "", "standardContractType": "", "chain": "sigil", "method": "",
          "parameters": [":userAddress"], "returnValueTest": { "comparator": "=", "value": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8" } },
        { "operator": "or" },
        balance("1000000000000000000"),
        { "operator": "or" },
        { "contractAddress": nft, "standardContractType": "ERC20", "chain": "sigil", "method": "balanceOf",
          "parameters": [":userAddress"], "returnValueTest": { "comparator": ">", "value": "0" } },
        { "operator": "or" },
        { "contractAddress": nft, "standardContractType": "ERC721", "chain": "sigil", "method": "ownerOf",
          "parameters": ["7"], "returnValueTest": { "comparator": "=", "value": ":userAddress" } },
        { "operator": "or" },
        { "contractAddress": nft, "standardContractType": "ERC721", "chain": "sigil", "method": "balanceOf",
          "parameters": [":userAddress"], "returnValueTest": { "comparator": ">=", "value": "1" } },
        { "operator": "or" },
        { "contractAddress": nft, "standardContractType": "ERC1155", "chain": "sigil", "method": "balanceOf",
          "parameters": [":userAddress", "3"], "returnValueTest": { "comparator": ">", "value": "0" } },
        { "operator": "or" },
        { "contractAddress": "", "standardContractType": "timestamp", "chain": "sigil", "method": "eth_getBlockByNumber",
          "parameters": ["latest"], "returnValueTest": { "comparator": ">=", "value": "1651276942" } },
        { "operator": "or" },
        { "contractAddress": format!("ipfs://{CID}"), "standardContractType": "LitAction", "chain": "sigil", "method": "go",
          "parameters": ["40"], "returnValueTest": { "comparator": "=", "value": "true" } },
        { "operator": "or" },
        { "contractAddress": "", "standardContractType": "", "chain": "sigil", "method": "",
          "parameters": [":currentActionIpfsId"], "returnValueTest": { "comparator": "=", "value": CID } },
    ]);
    let parsed = Conditions::parse("accessControlConditions", &conditions).expect("valid");
    let kinds: Vec<&str> = parsed
        .leaves()
        .iter()
        .map(|c| match c.check {
            Check::UserAddress => "user",
            Check::Balance { .. } => "balance",
            Check::Erc20Balance { .. } => "erc20",
            Check::Erc721Owner { .. } => "erc721-owner",
            Check::Erc721Balance { .. } => "erc721-balance",
            Check::Erc1155Balance { .. } => "erc1155",
            Check::Timestamp => "timestamp",
            Check::Action { .. } => "action",
            Check::CurrentActionIpfsId => "current-action",
            Check::Contract { .. } => "contract",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "user",
            "balance",
            "erc20",
            "erc721-owner",
            "erc721-balance",
            "erc1155",
            "timestamp",
            "action",
            "current-action"
        ]
    );
}

#[test]
fn evm_contract_condition_parses_with_its_abi() {
    let conditions = json!([{
        "conditionType": "evmContract",
        "contractAddress": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
        "functionName": "balanceOf",
        "functionParams": [":userAddress", "8"],
        "functionAbi": {
            "type": "function", "stateMutability": "view", "name": "balanceOf",
            "inputs": [{ "type": "address", "name": "account" }, { "type": "uint256", "name": "id" }],
            "outputs": [{ "type": "uint256", "name": "balance" }]
        },
        "chain": "sigil",
        "returnValueTest": { "key": "balance", "comparator": ">", "value": "0" }
    }]);
    let parsed = Conditions::parse("unifiedAccessControlConditions", &conditions).expect("valid");
    assert!(matches!(parsed.leaves()[0].check, Check::Contract { .. }));
}

#[test]
fn malformed_conditions_name_the_offending_path() {
    rejects(json!({}), "accessControlConditions", "expected an array");
    rejects(json!([]), "accessControlConditions", "no conditions");
    rejects(
        json!([balance("1"), { "operator": "and" }]),
        "accessControlConditions",
        "alternate",
    );
    rejects(
        json!([balance("1"), { "operator": "xor" }, balance("2")]),
        "accessControlConditions[1].operator",
        "unknown operator",
    );
    rejects(
        json!([balance("1"), { "operator": "and" }, balance("2"), { "operator": "or" }, balance("3")]),
        "accessControlConditions[3]",
        "mixed",
    );
    let mut bad = balance("1");
    bad["returnValueTest"]["comparator"] = json!("~");
    rejects(
        json!([balance("1"), { "operator": "and" }, [balance("2"), { "operator": "or" }, bad]]),
        "accessControlConditions[2][2].returnValueTest.comparator",
        "unknown comparator",
    );
    rejects(
        json!([balance("lots")]),
        "accessControlConditions[0].returnValueTest.value",
        "not a number",
    );
    let mut typo = balance("1");
    typo["returnValuTest"] = json!({});
    rejects(
        json!([typo]),
        "accessControlConditions[0].returnValuTest",
        "unknown field",
    );
    let mut no_chain = balance("1");
    no_chain.as_object_mut().map(|m| m.remove("chain"));
    rejects(json!([no_chain]), "accessControlConditions[0].chain", "missing");
    rejects(
        json!([{ "contractAddress": "0x12", "standardContractType": "ERC721", "chain": "sigil", "method": "ownerOf",
                 "parameters": ["1"], "returnValueTest": { "comparator": "=", "value": ":userAddress" } }]),
        "accessControlConditions[0].contractAddress",
        "not a contract address",
    );
    rejects(
        json!([{ "contractAddress": "0x5FbDB2315678afecb367f032d93F642f64180aa3", "standardContractType": "ERC721", "chain": "sigil",
                 "method": "ownerOf", "parameters": ["one"], "returnValueTest": { "comparator": "=", "value": ":userAddress" } }]),
        "accessControlConditions[0].parameters[0]",
        "not a non-negative integer",
    );
    rejects(
        json!([{ "contractAddress": "ipfs://nope", "standardContractType": "LitAction", "chain": "sigil", "method": "go",
                 "parameters": [], "returnValueTest": { "comparator": "=", "value": "true" } }]),
        "accessControlConditions[0].contractAddress",
        "",
    );
    rejects(
        json!([{ "contractAddress": "", "standardContractType": "ERC777", "chain": "sigil", "method": "x",
                 "parameters": [], "returnValueTest": { "comparator": "=", "value": "1" } }]),
        "accessControlConditions[0].standardContractType",
        "unsupported",
    );
    rejects(
        json!([{ "conditionType": "solRpc", "chain": "solana" }]),
        "accessControlConditions[0].conditionType",
        "unsupported condition type",
    );
}

#[test]
fn evm_contract_mistakes_are_named() {
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut c = json!({
            "contractAddress": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
            "functionName": "threshold",
            "functionParams": [],
            "functionAbi": { "type": "function", "stateMutability": "view", "name": "threshold",
                             "inputs": [], "outputs": [{ "type": "uint32", "name": "" }] },
            "chain": "sigil",
            "returnValueTest": { "key": "", "comparator": ">=", "value": "2" }
        });
        edit(&mut c);
        json!([c])
    };
    assert!(Conditions::parse("evmContractConditions", &with(&|_| {})).is_ok());
    let at = |field: &str| format!("evmContractConditions[0].{field}");
    let reject = |edit: &dyn Fn(&mut Value), path: &str, reason: &str| {
        let e = Conditions::parse("evmContractConditions", &with(edit)).expect_err("rejected");
        assert_eq!(e.path, path, "{e}");
        assert!(e.reason.contains(reason), "{e}");
    };
    reject(
        &|c| c["functionName"] = json!("other"),
        &at("functionAbi.name"),
        "differs",
    );
    reject(
        &|c| c["functionAbi"]["stateMutability"] = json!("nonpayable"),
        &at("functionAbi.stateMutability"),
        "view",
    );
    reject(
        &|c| c["functionParams"] = json!(["1"]),
        &at("functionParams"),
        "1 parameters",
    );
    reject(
        &|c| c["returnValueTest"]["key"] = json!("count"),
        &at("returnValueTest.key"),
        "no output named",
    );
    reject(
        &|c| c["returnValueTest"]["value"] = json!("two"),
        &at("returnValueTest.value"),
        "not a number",
    );
    reject(
        &|c| c["functionAbi"] = json!("threshold()"),
        &at("functionAbi"),
        "not a function ABI",
    );
}

#[test]
fn the_hash_ignores_formatting_but_not_meaning() {
    let a = json!([balance("1"), { "operator": "and" }, balance("2")]);
    let text = r#"[ {"returnValueTest":{"value":"1","comparator":">="},"parameters":[":userAddress","latest"],
        "method":"eth_getBalance","chain":"sigil","standardContractType":"","contractAddress":""},
        {"operator":"AND"},
        {"chain":"sigil","contractAddress":"","standardContractType":"","method":"eth_getBalance",
         "parameters":[":userAddress","latest"],"returnValueTest":{"comparator":">=","value":"2"}} ]"#;
    let b: Value = serde_json::from_str(text).expect("json");
    let hash = |v: &Value| Conditions::parse("accessControlConditions", v).expect("valid").hash();
    assert_eq!(hash(&a), hash(&b));
    assert_ne!(
        hash(&a),
        hash(&json!([balance("1"), { "operator": "or" }, balance("2")]))
    );
    assert_ne!(
        hash(&a),
        hash(&json!([balance("1"), { "operator": "and" }, balance("3")]))
    );
    let id = identity(&hash(&a), &[0xab; 32]);
    assert!(id.starts_with("sigil-acc://"));
    assert!(id.ends_with(&format!("/{}", "ab".repeat(32))));
}

#[test]
fn the_canonical_form_is_pinned() {
    // Changing this breaks every ciphertext made before: the identity would differ.
    let conditions = json!([balance("1"), { "operator": "AND" }, {
        "conditionType": "evmContract",
        "contractAddress": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
        "functionName": "threshold", "functionParams": [],
        "functionAbi": { "type": "function", "stateMutability": "view", "name": "threshold", "inputs": [],
                         "outputs": [{ "type": "uint32", "name": "t", "internalType": "uint32" }] },
        "chain": "sigil", "returnValueTest": { "key": "t", "comparator": ">=", "value": "2" }
    }]);
    let parsed = Conditions::parse("unifiedAccessControlConditions", &conditions).unwrap();
    assert_eq!(
        parsed.canonical_json(),
        concat!(
            r#"[{"chain":"sigil","conditionType":"evmBasic","contractAddress":"","method":"eth_getBalance","#,
            r#""parameters":[":userAddress","latest"],"returnValueTest":{"comparator":">=","value":"1"},"standardContractType":""},"#,
            r#"{"operator":"and"},"#,
            r#"{"chain":"sigil","conditionType":"evmContract","contractAddress":"0x5fbdb2315678afecb367f032d93f642f64180aa3","#,
            r#""functionAbi":{"inputs":[],"name":"threshold","outputs":[{"name":"t","type":"uint32"}],"stateMutability":"view"},"#,
            r#""functionName":"threshold","functionParams":[],"returnValueTest":{"comparator":">=","key":"t","value":"2"}}]"#
        )
    );
    assert_eq!(
        hex::encode(parsed.hash()),
        hex::encode(<[u8; 32]>::from(sha2::Sha256::digest(
            parsed.canonical_json().as_bytes()
        )))
    );
}

#[test]
fn owner_addresses_hash_the_same_in_any_letter_case() {
    let owner = |address: &str| {
        json!([{ "contractAddress": "0x5FbDB2315678afecb367f032d93F642f64180aa3", "standardContractType": "ERC721",
                 "chain": "sigil", "method": "balanceOf", "parameters": [address],
                 "returnValueTest": { "comparator": ">", "value": "0" } }])
    };
    let hash = |v: &Value| Conditions::parse("accessControlConditions", v).unwrap().hash();
    assert_eq!(
        hash(&owner("0x70997970C51812dc3A010C7d01b50e0d17dc79C8")),
        hash(&owner("0x70997970c51812dc3a010c7d01b50e0d17dc79c8"))
    );
}
