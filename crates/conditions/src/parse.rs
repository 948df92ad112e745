//! From Lit's JSON shapes to [`Conditions`], naming the path of anything malformed.

use serde_json::{json, Map, Value};
use sigil_chain::alloy::dyn_abi::{DynSolType, Specifier};
use sigil_chain::alloy::json_abi::{Function, StateMutability};
use sigil_chain::alloy::primitives::{Address, U256};
use sigil_primitives::Cid;

use crate::value::{parse_address, parse_number};
use crate::{
    Check, Comparator, Condition, ConditionError, Conditions, Expr, ReturnValueTest, MAX_CONDITIONS, MAX_DEPTH,
};

/// The placeholder for the authenticated caller's address.
pub const USER_ADDRESS: &str = ":userAddress";
/// The placeholder for the CID of the action asking to decrypt.
pub const CURRENT_ACTION: &str = ":currentActionIpfsId";
/// The `standardContractType` of an action condition (Lit's name).
pub const ACTION_TYPE: &str = "LitAction";

/// What kind of value a test expects, to check `returnValueTest.value` before anything runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    Number,
    Address,
    Bool,
    Any,
}

impl Conditions {
    /// Parses and validates conditions given under the request field `field` (used as the root
    /// of error paths): an array of conditions joined by `{"operator": "and"|"or"}`, nested
    /// arrays as groups.
    pub fn parse(field: &str, value: &Value) -> Result<Self, ConditionError> {
        let mut count = 0;
        let (root, canonical) = group(field, value, 0, &mut count)?;
        Ok(Self { root, canonical })
    }

    /// Parses the one condition field a request carries, out of Lit's three:
    /// `accessControlConditions`, `evmContractConditions`, `unifiedAccessControlConditions`.
    pub fn from_fields(
        access: Option<&Value>,
        evm_contract: Option<&Value>,
        unified: Option<&Value>,
    ) -> Result<Self, ConditionError> {
        match (access, evm_contract, unified) {
            (Some(v), None, None) => Self::parse("accessControlConditions", v),
            (None, Some(v), None) => Self::parse("evmContractConditions", v),
            (None, None, Some(v)) => Self::parse("unifiedAccessControlConditions", v),
            (None, None, None) => Err(ConditionError::new(
                "accessControlConditions",
                "missing: give accessControlConditions, evmContractConditions or unifiedAccessControlConditions",
            )),
            _ => Err(ConditionError::new(
                "accessControlConditions",
                "give only one of accessControlConditions, evmContractConditions, unifiedAccessControlConditions",
            )),
        }
    }
}

fn group(path: &str, value: &Value, depth: usize, count: &mut usize) -> Result<(Expr, Value), ConditionError> {
    if depth >= MAX_DEPTH {
        return Err(ConditionError::new(
            path,
            format!("groups nested deeper than {MAX_DEPTH}"),
        ));
    }
    let items = value
        .as_array()
        .ok_or_else(|| ConditionError::new(path, "expected an array of conditions"))?;
    if items.is_empty() {
        return Err(ConditionError::new(path, "no conditions"));
    }
    if items.len() % 2 == 0 {
        return Err(ConditionError::new(
            path,
            "conditions and operators must alternate, starting and ending with a condition",
        ));
    }
    let mut exprs = Vec::new();
    let mut canonical = Vec::new();
    let mut operator: Option<&'static str> = None;
    for (i, item) in items.iter().enumerate() {
        let at = format!("{path}[{i}]");
        if i % 2 == 1 {
            let op = parse_operator(&at, item)?;
            if operator.is_some_and(|seen| seen != op) {
                return Err(ConditionError::new(
                    &at,
                    "\"and\" and \"or\" are mixed at one level; group conditions with a nested array to say which binds first",
                ));
            }
            operator = Some(op);
            canonical.push(json!({ "operator": op }));
            continue;
        }
        let (expr, canon) = match item {
            Value::Array(_) => group(&at, item, depth + 1, count)?,
            Value::Object(map) if map.contains_key("operator") => {
                return Err(ConditionError::new(&at, "expected a condition here, found an operator"))
            }
            Value::Object(map) => {
                *count += 1;
                if *count > MAX_CONDITIONS {
                    return Err(ConditionError::new(
                        &at,
                        format!("more than {MAX_CONDITIONS} conditions"),
                    ));
                }
                let condition = leaf(&at, map)?;
                let canon = condition.canonical.clone();
                (Expr::Leaf(Box::new(condition)), canon)
            }
            _ => {
                return Err(ConditionError::new(
                    &at,
                    "expected a condition object or a nested array",
                ))
            }
        };
        exprs.push(expr);
        canonical.push(canon);
    }
    let expr = match (operator, exprs.len()) {
        (_, 1) => exprs.pop().ok_or_else(|| ConditionError::new(path, "no conditions"))?,
        (Some("or"), _) => Expr::Or(exprs),
        _ => Expr::And(exprs),
    };
    Ok((expr, Value::Array(canonical)))
}

fn parse_operator(path: &str, item: &Value) -> Result<&'static str, ConditionError> {
    let map = item
        .as_object()
        .ok_or_else(|| ConditionError::new(path, "expected an operator {\"operator\": \"and\"|\"or\"}"))?;
    if let Some(extra) = map.keys().find(|k| *k != "operator") {
        return Err(ConditionError::new(
            &format!("{path}.{extra}"),
            "unknown field in an operator",
        ));
    }
    match map.get("operator").and_then(Value::as_str).map(str::to_ascii_lowercase) {
        Some(op) if op == "and" => Ok("and"),
        Some(op) if op == "or" => Ok("or"),
        Some(op) => Err(ConditionError::new(
            &format!("{path}.operator"),
            format!("unknown operator {op:?} (use \"and\" or \"or\")"),
        )),
        None => Err(ConditionError::new(
            &format!("{path}.operator"),
            "expected \"and\" or \"or\"",
        )),
    }
}

/// Reads the fields of one condition object, refusing unknown ones.
struct Fields<'a> {
    path: &'a str,
    map: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    fn new(path: &'a str, map: &'a Map<String, Value>, known: &[&str]) -> Result<Self, ConditionError> {
        if let Some(extra) = map.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(ConditionError::new(
                &format!("{path}.{extra}"),
                format!("unknown field (a condition of this type has: {})", known.join(", ")),
            ));
        }
        Ok(Self { path, map })
    }

    fn at(&self, field: &str) -> String {
        format!("{}.{field}", self.path)
    }

    fn string(&self, field: &str) -> Result<&'a str, ConditionError> {
        match self.map.get(field) {
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err(ConditionError::new(&self.at(field), "expected a string")),
            None => Err(ConditionError::new(&self.at(field), "missing")),
        }
    }

    fn strings(&self, field: &str) -> Result<Vec<String>, ConditionError> {
        let items = match self.map.get(field) {
            Some(Value::Array(items)) => items,
            Some(_) => return Err(ConditionError::new(&self.at(field), "expected an array of strings")),
            None => return Err(ConditionError::new(&self.at(field), "missing")),
        };
        items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.to_string()),
                Value::Bool(b) => Ok(b.to_string()),
                _ => Err(ConditionError::new(
                    &format!("{}[{i}]", self.at(field)),
                    "expected a string",
                )),
            })
            .collect()
    }

    fn test(&self, with_key: bool) -> Result<ReturnValueTest, ConditionError> {
        let path = self.at("returnValueTest");
        let map = match self.map.get("returnValueTest") {
            Some(Value::Object(map)) => map,
            Some(_) => return Err(ConditionError::new(&path, "expected an object {comparator, value}")),
            None => return Err(ConditionError::new(&path, "missing")),
        };
        let known: &[&str] = if with_key {
            &["key", "comparator", "value"]
        } else {
            &["comparator", "value"]
        };
        let fields = Fields::new(&path, map, known)?;
        let comparator = match fields.string("comparator")? {
            "=" | "==" => Comparator::Eq,
            "!=" => Comparator::Ne,
            ">" => Comparator::Gt,
            "<" => Comparator::Lt,
            ">=" => Comparator::Ge,
            "<=" => Comparator::Le,
            "contains" => Comparator::Contains,
            other => {
                return Err(ConditionError::new(
                    &fields.at("comparator"),
                    format!("unknown comparator {other:?} (use =, !=, >, <, >=, <= or contains)"),
                ))
            }
        };
        let value = match map.get("value") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::Bool(b)) => b.to_string(),
            Some(_) => return Err(ConditionError::new(&fields.at("value"), "expected a string")),
            None => return Err(ConditionError::new(&fields.at("value"), "missing")),
        };
        let key = if with_key && map.contains_key("key") {
            fields.string("key")?.to_string()
        } else {
            String::new()
        };
        Ok(ReturnValueTest { key, comparator, value })
    }
}

fn leaf(path: &str, map: &Map<String, Value>) -> Result<Condition, ConditionError> {
    let kind = match map.get("conditionType") {
        Some(Value::String(kind)) => kind.as_str(),
        Some(_) => {
            return Err(ConditionError::new(
                &format!("{path}.conditionType"),
                "expected a string",
            ))
        }
        None if map.contains_key("functionAbi") || map.contains_key("functionName") => "evmContract",
        None => "evmBasic",
    };
    match kind {
        "evmBasic" => evm_basic(path, map),
        "evmContract" => evm_contract(path, map),
        other => Err(ConditionError::new(
            &format!("{path}.conditionType"),
            format!("unsupported condition type {other:?} (this network evaluates evmBasic and evmContract)"),
        )),
    }
}

/// `:userAddress` or an address.
fn owner(path: &str, text: &str) -> Result<String, ConditionError> {
    if text == USER_ADDRESS {
        return Ok(text.to_string());
    }
    parse_address(text)
        .map(|a| format!("{a:#x}"))
        .ok_or_else(|| ConditionError::new(path, format!("{text:?} is neither {USER_ADDRESS} nor an address")))
}

fn contract(fields: &Fields<'_>) -> Result<Address, ConditionError> {
    let text = fields.string("contractAddress")?;
    parse_address(text).ok_or_else(|| {
        ConditionError::new(
            &fields.at("contractAddress"),
            format!("{text:?} is not a contract address (0x and 40 hex digits)"),
        )
    })
}

fn number(path: &str, text: &str) -> Result<U256, ConditionError> {
    match parse_number(text) {
        Some((false, n)) => Ok(n),
        _ => Err(ConditionError::new(
            path,
            format!("{text:?} is not a non-negative integer"),
        )),
    }
}

fn params_exactly(fields: &Fields<'_>, params: &[String], n: usize, shape: &str) -> Result<(), ConditionError> {
    if params.len() == n {
        Ok(())
    } else {
        Err(ConditionError::new(
            &fields.at("parameters"),
            format!("{} parameters, expected {shape}", params.len()),
        ))
    }
}

fn first(params: &[String]) -> &str {
    params.first().map(String::as_str).unwrap_or_default()
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

fn evm_basic(path: &str, map: &Map<String, Value>) -> Result<Condition, ConditionError> {
    let fields = Fields::new(
        path,
        map,
        &[
            "conditionType",
            "contractAddress",
            "standardContractType",
            "chain",
            "method",
            "parameters",
            "returnValueTest",
        ],
    )?;
    let chain = fields.string("chain")?;
    if chain.is_empty() {
        return Err(ConditionError::new(&fields.at("chain"), "empty chain name"));
    }
    let standard = fields.string("standardContractType")?;
    let method = fields.string("method")?;
    let params = fields.strings("parameters")?;
    let test = fields.test(false)?;
    let param_path = |i: usize| format!("{}[{i}]", fields.at("parameters"));
    let (check, want, contract_text) = match (standard, method) {
        ("", "") if first(&params) == USER_ADDRESS => {
            params_exactly(&fields, &params, 1, "[\":userAddress\"]")?;
            (Check::UserAddress, Want::Address, String::new())
        }
        ("", "") if first(&params) == CURRENT_ACTION => {
            params_exactly(&fields, &params, 1, "[\":currentActionIpfsId\"]")?;
            (Check::CurrentActionIpfsId, Want::Any, String::new())
        }
        ("", "") => {
            return Err(ConditionError::new(
                &fields.at("parameters"),
                format!("without a method, the parameters must be [\"{USER_ADDRESS}\"] or [\"{CURRENT_ACTION}\"]"),
            ))
        }
        ("", "eth_getBalance") => {
            if params.len() == 2 && params.get(1).map(String::as_str) != Some("latest") {
                return Err(ConditionError::new(&param_path(1), "only \"latest\" is supported"));
            }
            if params.is_empty() || params.len() > 2 {
                params_exactly(&fields, &params, 2, "[owner, \"latest\"]")?;
            }
            let owner = owner(&param_path(0), first(&params))?;
            (Check::Balance { owner }, Want::Number, String::new())
        }
        ("timestamp", "eth_getBlockByNumber") => {
            if params.iter().any(|p| p != "latest") || params.len() > 1 {
                return Err(ConditionError::new(&fields.at("parameters"), "expected [\"latest\"]"));
            }
            (Check::Timestamp, Want::Number, String::new())
        }
        ("ERC20", "balanceOf") => {
            params_exactly(&fields, &params, 1, "[owner]")?;
            let owner = owner(&param_path(0), first(&params))?;
            let contract = contract(&fields)?;
            (
                Check::Erc20Balance { contract, owner },
                Want::Number,
                format!("{contract:#x}"),
            )
        }
        ("ERC721", "ownerOf") => {
            params_exactly(&fields, &params, 1, "[tokenId]")?;
            let token = number(&param_path(0), first(&params))?;
            let contract = contract(&fields)?;
            (
                Check::Erc721Owner { contract, token },
                Want::Address,
                format!("{contract:#x}"),
            )
        }
        ("ERC721", "balanceOf") => {
            params_exactly(&fields, &params, 1, "[owner]")?;
            let owner = owner(&param_path(0), first(&params))?;
            let contract = contract(&fields)?;
            (
                Check::Erc721Balance { contract, owner },
                Want::Number,
                format!("{contract:#x}"),
            )
        }
        ("ERC1155", "balanceOf") => {
            params_exactly(&fields, &params, 2, "[owner, tokenId]")?;
            let owner = owner(&param_path(0), first(&params))?;
            let id = number(&param_path(1), params.get(1).map(String::as_str).unwrap_or_default())?;
            let contract = contract(&fields)?;
            (
                Check::Erc1155Balance { contract, owner, id },
                Want::Number,
                format!("{contract:#x}"),
            )
        }
        (ACTION_TYPE, method) => {
            let address = fields.string("contractAddress")?;
            let cid_text = address.strip_prefix("ipfs://").ok_or_else(|| {
                ConditionError::new(
                    &fields.at("contractAddress"),
                    "an action condition names its action as \"ipfs://<CID>\"",
                )
            })?;
            let cid: Cid = cid_text
                .parse()
                .map_err(|e| ConditionError::new(&fields.at("contractAddress"), format!("{e}")))?;
            if !is_identifier(method) {
                return Err(ConditionError::new(
                    &fields.at("method"),
                    format!("{method:?} is not the name of a function the action defines"),
                ));
            }
            (
                Check::Action {
                    cid,
                    method: method.to_string(),
                    params: params.clone(),
                },
                Want::Any,
                format!("ipfs://{cid}"),
            )
        }
        ("" | "timestamp" | "ERC20" | "ERC721" | "ERC1155", _) => {
            return Err(ConditionError::new(
                &fields.at("method"),
                format!("method {method:?} is not supported for standardContractType {standard:?}"),
            ))
        }
        (other, _) => {
            return Err(ConditionError::new(
                &fields.at("standardContractType"),
                format!("unsupported {other:?} (use \"\", ERC20, ERC721, ERC1155, timestamp or {ACTION_TYPE})"),
            ))
        }
    };
    let value = expected(&fields, &test, want)?;
    let canonical = json!({
        "conditionType": "evmBasic",
        "contractAddress": contract_text,
        "standardContractType": standard,
        "chain": chain,
        "method": method,
        "parameters": canonical_params(&check, &params),
        "returnValueTest": { "comparator": test.comparator.as_str(), "value": value },
    });
    Ok(Condition {
        path: path.to_string(),
        chain: chain.to_string(),
        check,
        test: ReturnValueTest { value, ..test },
        canonical,
    })
}

/// The parameters as hashed: where the condition reads an owner address, in one letter case
/// (the chain reads it the same either way); elsewhere as written, since an action may treat
/// letter case as it likes.
fn canonical_params(check: &Check, params: &[String]) -> Vec<String> {
    match check {
        Check::Balance { owner } => vec![owner.clone(), "latest".into()],
        Check::Erc20Balance { owner, .. } | Check::Erc721Balance { owner, .. } => vec![owner.clone()],
        Check::Erc1155Balance { owner, id, .. } => vec![owner.clone(), id.to_string()],
        Check::Erc721Owner { token, .. } => vec![token.to_string()],
        _ => params.to_vec(),
    }
}

/// Checks `returnValueTest.value` and the comparator against what the condition reads, and
/// returns the value in canonical form.
fn expected(fields: &Fields<'_>, test: &ReturnValueTest, want: Want) -> Result<String, ConditionError> {
    let path = format!("{}.returnValueTest", fields.path);
    let value = &test.value;
    match want {
        Want::Number => {
            if test.comparator == Comparator::Contains {
                return Err(ConditionError::new(
                    &format!("{path}.comparator"),
                    "contains does not apply to a number",
                ));
            }
            parse_number(value)
                .map(|_| value.clone())
                .ok_or_else(|| ConditionError::new(&format!("{path}.value"), format!("{value:?} is not a number")))
        }
        Want::Address | Want::Bool if !matches!(test.comparator, Comparator::Eq | Comparator::Ne) => Err(
            ConditionError::new(&format!("{path}.comparator"), "only = and != apply here"),
        ),
        Want::Address if value == USER_ADDRESS => Ok(value.clone()),
        Want::Address => parse_address(value).map(|a| format!("{a:#x}")).ok_or_else(|| {
            ConditionError::new(
                &format!("{path}.value"),
                format!("{value:?} is neither {USER_ADDRESS} nor an address"),
            )
        }),
        Want::Bool => match value.as_str() {
            "true" | "false" => Ok(value.clone()),
            _ => Err(ConditionError::new(
                &format!("{path}.value"),
                format!("{value:?} is not true or false"),
            )),
        },
        Want::Any => Ok(value.clone()),
    }
}

fn evm_contract(path: &str, map: &Map<String, Value>) -> Result<Condition, ConditionError> {
    let fields = Fields::new(
        path,
        map,
        &[
            "conditionType",
            "contractAddress",
            "functionName",
            "functionParams",
            "functionAbi",
            "chain",
            "returnValueTest",
        ],
    )?;
    let chain = fields.string("chain")?;
    if chain.is_empty() {
        return Err(ConditionError::new(&fields.at("chain"), "empty chain name"));
    }
    let contract = contract(&fields)?;
    let name = fields.string("functionName")?;
    let params = fields.strings("functionParams")?;
    let abi = map
        .get("functionAbi")
        .ok_or_else(|| ConditionError::new(&fields.at("functionAbi"), "missing"))?;
    let function: Function = serde_json::from_value(abi.clone())
        .map_err(|e| ConditionError::new(&fields.at("functionAbi"), format!("not a function ABI: {e}")))?;
    if function.name != name {
        return Err(ConditionError::new(
            &fields.at("functionAbi.name"),
            format!("{:?} differs from functionName {name:?}", function.name),
        ));
    }
    if !matches!(function.state_mutability, StateMutability::View | StateMutability::Pure) {
        return Err(ConditionError::new(
            &fields.at("functionAbi.stateMutability"),
            "only view and pure functions can be conditions",
        ));
    }
    if function.inputs.len() != params.len() {
        return Err(ConditionError::new(
            &fields.at("functionParams"),
            format!(
                "{} parameters for a function with {} inputs",
                params.len(),
                function.inputs.len()
            ),
        ));
    }
    for (i, (input, param)) in function.inputs.iter().zip(&params).enumerate() {
        let at = format!("{}[{i}]", fields.at("functionParams"));
        let ty = input
            .resolve()
            .map_err(|e| ConditionError::new(&fields.at(&format!("functionAbi.inputs[{i}]")), e.to_string()))?;
        if param == USER_ADDRESS {
            if ty != DynSolType::Address {
                return Err(ConditionError::new(
                    &at,
                    format!("{USER_ADDRESS} given for a {ty} input"),
                ));
            }
            continue;
        }
        ty.coerce_str(param)
            .map_err(|e| ConditionError::new(&at, format!("{param:?} is not a {ty}: {e}")))?;
    }
    let test = fields.test(true)?;
    let output = if test.key.is_empty() {
        function.outputs.first()
    } else {
        function.outputs.iter().find(|o| o.name == test.key)
    };
    let output = output.ok_or_else(|| {
        ConditionError::new(
            &format!("{path}.returnValueTest.key"),
            if test.key.is_empty() {
                "the function returns nothing to test".to_string()
            } else {
                format!("the function has no output named {:?}", test.key)
            },
        )
    })?;
    let output_type = output
        .resolve()
        .map_err(|e| ConditionError::new(&fields.at("functionAbi.outputs"), e.to_string()))?;
    let want = match output_type {
        DynSolType::Uint(_) | DynSolType::Int(_) => Want::Number,
        DynSolType::Address => Want::Address,
        DynSolType::Bool => Want::Bool,
        _ => Want::Any,
    };
    let value = expected(&fields, &test, want)?;
    // The ABI as hashed: what decides the call and its decoding (canonical types, output names
    // for `key`), written here rather than by a library whose serialisation may change.
    let abi_canonical = json!({
        "name": function.name,
        "inputs": function.inputs.iter().map(|p| p.selector_type().into_owned()).collect::<Vec<_>>(),
        "outputs": function
            .outputs
            .iter()
            .map(|p| json!({ "name": p.name, "type": p.selector_type().into_owned() }))
            .collect::<Vec<_>>(),
        "stateMutability": if function.state_mutability == StateMutability::Pure { "pure" } else { "view" },
    });
    let canonical = json!({
        "conditionType": "evmContract",
        "contractAddress": format!("{contract:#x}"),
        "functionName": name,
        "functionParams": params,
        "functionAbi": abi_canonical,
        "chain": chain,
        "returnValueTest": { "key": test.key, "comparator": test.comparator.as_str(), "value": value },
    });
    Ok(Condition {
        path: path.to_string(),
        chain: chain.to_string(),
        check: Check::Contract {
            contract,
            function: Box::new(function),
            params,
        },
        test: ReturnValueTest { value, ..test },
        canonical,
    })
}
