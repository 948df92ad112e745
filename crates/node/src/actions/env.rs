//! What access-control conditions read on a node ([`NodeEnv`]): its chains (the network's own and
//! `[actions] rpc_urls`) and its action sandbox, for conditions that run an action.
//! Uses `node`, `actions::run`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use sigil_chain::alloy::eips::BlockNumberOrTag;
use sigil_chain::alloy::primitives::{Address, U256};
use sigil_chain::alloy::providers::{DynProvider, Provider};
use sigil_chain::alloy::rpc::types::TransactionRequest;
use sigil_chain::registry::read_provider;
use sigil_conditions::{Context, EnvError, Environment};
use sigil_primitives::Cid;

use super::run::run_condition;
use crate::node::Node;

/// What conditions read, for a node: its chains and its action sandbox.
pub(crate) struct NodeEnv {
    pub(crate) node: Arc<Node>,
}

fn unavailable(chain: &str) -> impl Fn(sigil_chain::alloy::transports::TransportError) -> EnvError + '_ {
    move |e| EnvError::new("CHAIN_UNAVAILABLE", format!("chain {chain:?}: {e}"))
}

impl NodeEnv {
    /// Conditions as `node` reads them.
    pub(crate) fn new(node: &Arc<Node>) -> Self {
        Self { node: Arc::clone(node) }
    }

    /// The provider of `chain` (the registry's own for the network's chain), kept per URL.
    pub(crate) fn provider(&self, chain: &str) -> Result<DynProvider, EnvError> {
        let url = self
            .node
            .rpc_url(chain)
            .map_err(|e| EnvError::new(e.code(), e.message()))?;
        if let Some(registry) = &self.node.options.registry {
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
}

#[async_trait]
impl Environment for NodeEnv {
    async fn balance(&self, chain: &str, owner: Address) -> Result<U256, EnvError> {
        self.provider(chain)?
            .get_balance(owner)
            .await
            .map_err(unavailable(chain))
    }

    async fn call(&self, chain: &str, to: Address, data: Vec<u8>) -> Result<Result<Vec<u8>, String>, EnvError> {
        let request = TransactionRequest::default().to(to).input(data.into());
        match self.provider(chain)?.call(request).await {
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

    async fn latest_timestamp(&self, chain: &str) -> Result<u64, EnvError> {
        let block = self
            .provider(chain)?
            .get_block_by_number(BlockNumberOrTag::Latest)
            .await
            .map_err(unavailable(chain))?
            .ok_or_else(|| EnvError::new("CHAIN_UNAVAILABLE", format!("chain {chain:?} has no latest block")))?;
        Ok(block.header.timestamp)
    }

    async fn run_action(
        &self,
        cid: &Cid,
        method: &str,
        params: &[String],
        context: &Context,
    ) -> Result<Result<String, String>, EnvError> {
        run_condition(&self.node, cid, method, params, context).await
    }
}
