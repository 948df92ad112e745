//! Deciding conditions for one caller, through an [`Environment`].

use async_trait::async_trait;
use sigil_chain::alloy::dyn_abi::{DynSolType, DynSolValue, FunctionExt, JsonAbiExt, Specifier};
use sigil_chain::alloy::json_abi::Function;
use sigil_chain::alloy::primitives::{Address, U256};
use sigil_primitives::Cid;

use crate::parse::{CURRENT_ACTION, USER_ADDRESS};
use crate::value::{compare, Found};
use crate::{Check, Condition, Conditions, Expr};

/// Who asks.
#[derive(Clone, Debug, Default)]
pub struct Context {
    /// The authenticated caller (`:userAddress`), if any.
    pub user: Option<Address>,
    /// The CID of the action that asks (`:currentActionIpfsId`), if an action asks.
    pub action: Option<String>,
}

/// The environment failed (as opposed to a condition not holding).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct EnvError {
    /// Stable code, e.g. `UNKNOWN_CHAIN`, `CHAIN_UNAVAILABLE`, `ACTION_NOT_FOUND`.
    pub code: String,
    /// What went wrong.
    pub message: String,
}

impl EnvError {
    /// An error with a code.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }
}

/// What conditions read: chains by name, and action runs.
#[async_trait]
pub trait Environment: Send + Sync {
    /// Native balance of `owner` on `chain`, at the latest block.
    async fn balance(&self, chain: &str, owner: Address) -> Result<U256, EnvError>;
    /// `eth_call` of `data` to `to` on `chain`: the return data, or the revert reason inside.
    async fn call(&self, chain: &str, to: Address, data: Vec<u8>) -> Result<Result<Vec<u8>, String>, EnvError>;
    /// Timestamp of the latest block of `chain` (unix seconds).
    async fn latest_timestamp(&self, chain: &str) -> Result<u64, EnvError>;
    /// Runs action `cid`, calls `method(...params)` and returns its result as text (a string
    /// as is, anything else as JSON); the inner error says why the action failed.
    async fn run_action(
        &self,
        cid: &Cid,
        method: &str,
        params: &[String],
        context: &Context,
    ) -> Result<Result<String, String>, EnvError>;
}

/// The outcome for one caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The conditions hold.
    Granted,
    /// They do not; the reason names the condition that failed and what was found.
    Denied(String),
}

/// Evaluation could not finish: the environment failed while reading a condition.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {error}")]
pub struct EvalError {
    /// The condition being read.
    pub path: String,
    /// What failed.
    pub error: EnvError,
}

impl Conditions {
    /// Decides the conditions for `context`. `and` stops at the first condition that fails,
    /// `or` at the first that holds.
    pub async fn evaluate(&self, context: &Context, env: &dyn Environment) -> Result<Verdict, EvalError> {
        evaluate(self.root(), context, env).await
    }
}

fn evaluate<'a>(
    expr: &'a Expr,
    context: &'a Context,
    env: &'a dyn Environment,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Verdict, EvalError>> + Send + 'a>> {
    Box::pin(async move {
        match expr {
            Expr::Leaf(condition) => leaf(condition, context, env).await,
            Expr::And(items) => {
                for item in items {
                    if let Verdict::Denied(why) = evaluate(item, context, env).await? {
                        return Ok(Verdict::Denied(why));
                    }
                }
                Ok(Verdict::Granted)
            }
            Expr::Or(items) => {
                let mut reasons = Vec::new();
                let mut failure = None;
                for item in items {
                    match evaluate(item, context, env).await {
                        Ok(Verdict::Granted) => return Ok(Verdict::Granted),
                        Ok(Verdict::Denied(why)) => reasons.push(why),
                        Err(e) => {
                            reasons.push(e.to_string());
                            failure.get_or_insert(e);
                        }
                    }
                }
                // When a branch could not be read, the answer is unknown, not "no".
                match failure {
                    Some(e) => Err(e),
                    None => Ok(Verdict::Denied(format!("none holds: {}", reasons.join("; ")))),
                }
            }
        }
    })
}

fn substitute(text: &str, context: &Context) -> Result<String, String> {
    match text {
        USER_ADDRESS => context
            .user
            .map(|a| format!("{a:#x}"))
            .ok_or_else(|| format!("{USER_ADDRESS} is used but the request carries no authenticated address")),
        CURRENT_ACTION => context
            .action
            .clone()
            .ok_or_else(|| format!("{CURRENT_ACTION} is used but no action asks")),
        other => Ok(other.to_string()),
    }
}

fn owner_address(text: &str, context: &Context) -> Result<Address, String> {
    let text = substitute(text, context)?;
    crate::value::parse_address(&text).ok_or_else(|| format!("{text:?} is not an address"))
}

/// A standard function from its signature; the signatures are constants, so parsing cannot fail
/// on input, and a failure is reported like a read error rather than a panic.
fn standard(signature: &str) -> Result<Function, String> {
    Function::parse(signature).map_err(|e| format!("internal ABI {signature:?}: {e}"))
}

async fn leaf(condition: &Condition, context: &Context, env: &dyn Environment) -> Result<Verdict, EvalError> {
    let env_error = |error: EnvError| EvalError {
        path: condition.path.clone(),
        error,
    };
    let denied = |why: String| Ok(Verdict::Denied(format!("{condition} does not hold: {why}")));
    let chain = condition.chain.as_str();
    let found = match &condition.check {
        Check::UserAddress => match context.user {
            Some(user) => Found::Address(user),
            None => return denied("the request carries no authenticated address".into()),
        },
        Check::CurrentActionIpfsId => match &context.action {
            Some(cid) => Found::Text(cid.clone()),
            None => return denied("it is asked outside an action".into()),
        },
        Check::Balance { owner } => {
            let owner = match owner_address(owner, context) {
                Ok(a) => a,
                Err(why) => return denied(why),
            };
            Found::Number(false, env.balance(chain, owner).await.map_err(env_error)?)
        }
        Check::Timestamp => Found::Number(false, U256::from(env.latest_timestamp(chain).await.map_err(env_error)?)),
        Check::Erc20Balance { contract, owner } | Check::Erc721Balance { contract, owner } => {
            let owner = match owner_address(owner, context) {
                Ok(a) => a,
                Err(why) => return denied(why),
            };
            let function =
                standard("function balanceOf(address) view returns (uint256)").map_err(internal(condition))?;
            match call(env, chain, *contract, &function, &[DynSolValue::Address(owner)], "")
                .await
                .map_err(env_error)?
            {
                Ok(found) => found,
                Err(why) => return denied(why),
            }
        }
        Check::Erc721Owner { contract, token } => {
            let function = standard("function ownerOf(uint256) view returns (address)").map_err(internal(condition))?;
            match call(env, chain, *contract, &function, &[DynSolValue::Uint(*token, 256)], "")
                .await
                .map_err(env_error)?
            {
                Ok(found) => found,
                Err(why) => return denied(why),
            }
        }
        Check::Erc1155Balance { contract, owner, id } => {
            let owner = match owner_address(owner, context) {
                Ok(a) => a,
                Err(why) => return denied(why),
            };
            let function =
                standard("function balanceOf(address,uint256) view returns (uint256)").map_err(internal(condition))?;
            let args = [DynSolValue::Address(owner), DynSolValue::Uint(*id, 256)];
            match call(env, chain, *contract, &function, &args, "")
                .await
                .map_err(env_error)?
            {
                Ok(found) => found,
                Err(why) => return denied(why),
            }
        }
        Check::Contract {
            contract,
            function,
            params,
        } => {
            let mut args = Vec::with_capacity(params.len());
            for (input, param) in function.inputs.iter().zip(params) {
                let text = match substitute(param, context) {
                    Ok(t) => t,
                    Err(why) => return denied(why),
                };
                let value = input
                    .resolve()
                    .and_then(|ty: DynSolType| ty.coerce_str(&text))
                    .map_err(|e| e.to_string());
                match value {
                    Ok(v) => args.push(v),
                    Err(why) => return denied(format!("argument {text:?}: {why}")),
                }
            }
            match call(env, chain, *contract, function, &args, &condition.test.key)
                .await
                .map_err(env_error)?
            {
                Ok(found) => found,
                Err(why) => return denied(why),
            }
        }
        Check::Action { cid, method, params } => {
            let mut args = Vec::with_capacity(params.len());
            for param in params {
                match substitute(param, context) {
                    Ok(t) => args.push(t),
                    Err(why) => return denied(why),
                }
            }
            match env.run_action(cid, method, &args, context).await.map_err(env_error)? {
                Ok(text) => Found::Text(text),
                Err(why) => return denied(format!("the action failed: {why}")),
            }
        }
    };
    let expected = match substitute(&condition.test.value, context) {
        Ok(v) => v,
        Err(why) => return denied(why),
    };
    match compare(&found, condition.test.comparator, &expected) {
        Ok(true) => Ok(Verdict::Granted),
        Ok(false) => denied(format!("found {found}")),
        Err(why) => denied(format!("found {found}, which cannot be compared: {why}")),
    }
}

fn internal(condition: &Condition) -> impl Fn(String) -> EvalError + '_ {
    move |message| EvalError {
        path: condition.path.clone(),
        error: EnvError::new("INTERNAL", message),
    }
}

/// Calls `function` and picks output `key` (`""` = the first). The inner error is a revert or
/// an answer that does not decode, which fails the condition rather than the request.
async fn call(
    env: &dyn Environment,
    chain: &str,
    contract: Address,
    function: &Function,
    args: &[DynSolValue],
    key: &str,
) -> Result<Result<Found, String>, EnvError> {
    let data = match function.abi_encode_input(args) {
        Ok(d) => d,
        Err(e) => return Ok(Err(format!("arguments do not encode: {e}"))),
    };
    let returned = match env.call(chain, contract, data).await? {
        Ok(bytes) => bytes,
        Err(reason) => return Ok(Err(format!("{}() reverted: {reason}", function.name))),
    };
    let outputs = match function.abi_decode_output(&returned) {
        Ok(o) => o,
        Err(e) => {
            return Ok(Err(format!(
                "{}() returned {} bytes that do not decode as its outputs ({e}); is there a contract at {contract}?",
                function.name,
                returned.len()
            )))
        }
    };
    let index = if key.is_empty() {
        0
    } else {
        function
            .outputs
            .iter()
            .position(|o| o.name == key)
            .unwrap_or(usize::MAX)
    };
    Ok(outputs
        .get(index)
        .map(Found::from)
        .ok_or_else(|| format!("{}() has no output {key:?}", function.name)))
}
