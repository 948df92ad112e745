//! What access-control conditions read on a node ([`NodeEnv`]): its chains (through
//! [`super::chains`]) and its action sandbox, for conditions that run an action.
//! Uses `node`, `actions::chains`, `actions::run`.

use std::sync::Arc;

use async_trait::async_trait;
use sigil_chain::alloy::eips::BlockNumberOrTag;
use sigil_chain::alloy::primitives::{Address, U256};
use sigil_chain::alloy::providers::Provider;
use sigil_conditions::{Context, EnvError, Environment};
use sigil_primitives::Cid;

use super::chains::{call, provider, unavailable};
use super::run::run_condition;
use crate::node::Node;

/// What conditions read, for a node: its chains and its action sandbox.
pub(crate) struct NodeEnv {
    pub(crate) node: Arc<Node>,
}

impl NodeEnv {
    /// Conditions as `node` reads them.
    pub(crate) fn new(node: &Arc<Node>) -> Self {
        Self { node: Arc::clone(node) }
    }
}

#[async_trait]
impl Environment for NodeEnv {
    async fn balance(&self, chain: &str, owner: Address) -> Result<U256, EnvError> {
        provider(&self.node, chain)?
            .get_balance(owner)
            .await
            .map_err(unavailable(chain))
    }

    async fn call(&self, chain: &str, to: Address, data: Vec<u8>) -> Result<Result<Vec<u8>, String>, EnvError> {
        call(&self.node, chain, to, data).await
    }

    async fn latest_timestamp(&self, chain: &str) -> Result<u64, EnvError> {
        let block = provider(&self.node, chain)?
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
