//! The chains actions and conditions read: a provider per RPC URL (the registry's own for the
//! network's chain), and an `eth_call` whose revert is an answer, not an error.
//! Uses `node`.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use sigil_chain::alloy::primitives::Address;
use sigil_chain::alloy::providers::{DynProvider, Provider};
use sigil_chain::alloy::rpc::types::TransactionRequest;
use sigil_chain::registry::read_provider;
use sigil_conditions::EnvError;

use crate::node::Node;

/// Turns a transport error on `chain` into `CHAIN_UNAVAILABLE`.
pub(crate) fn unavailable(chain: &str) -> impl Fn(sigil_chain::alloy::transports::TransportError) -> EnvError + '_ {
    move |e| EnvError::new("CHAIN_UNAVAILABLE", format!("chain {chain:?}: {e}"))
}

/// The provider of `chain` on `node`, kept per URL.
pub(crate) fn provider(node: &Node, chain: &str) -> Result<DynProvider, EnvError> {
    let url = node.rpc_url(chain).map_err(|e| EnvError::new(e.code(), e.message()))?;
    if let Some(registry) = &node.options.registry {
        if registry.rpc_url() == url {
            return Ok(registry.provider().clone());
        }
    }
    static PROVIDERS: OnceLock<Mutex<HashMap<String, DynProvider>>> = OnceLock::new();
    let providers = PROVIDERS.get_or_init(Default::default);
    if let Some(provider) = providers.lock().ok().and_then(|p| p.get(&url).cloned()) {
        return Ok(provider);
    }
    let provider = read_provider(&url).map_err(|e| EnvError::new("CHAIN_UNAVAILABLE", e.to_string()))?;
    if let Ok(mut providers) = providers.lock() {
        providers.insert(url, provider.clone());
    }
    Ok(provider)
}

/// `eth_call` of `data` to `to` on `chain`: the returned data, or the revert message.
pub(crate) async fn call(
    node: &Node,
    chain: &str,
    to: Address,
    data: Vec<u8>,
) -> Result<Result<Vec<u8>, String>, EnvError> {
    let request = TransactionRequest::default().to(to).input(data.into());
    match provider(node, chain)?.call(request).await {
        Ok(bytes) => Ok(Ok(bytes.to_vec())),
        // A revert fails the condition; any other error (rate limit, missing state, transport)
        // leaves the answer unknown.
        Err(e) => match e.as_error_resp() {
            Some(payload) if payload.code == 3 || payload.message.contains("revert") => {
                Ok(Err(payload.message.to_string()))
            }
            _ => Err(unavailable(chain)(e)),
        },
    }
}
