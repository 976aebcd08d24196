//! The same client for code without an async runtime (the CLI): each call runs on a small
//! runtime of the client's own. Do not call it from inside an async runtime.

use crate::node::ChainParams;
use crate::send::{Outcome, SendOptions, TxFields};
use crate::ClientError;
use alloy_primitives::{Address, B256};
use alloy_signer_local::PrivateKeySigner;
use mycel_types::api;
use mycel_types::{Genesis, SignedTx, TxKind};
use std::time::Duration;

/// A blocking [`crate::NodeClient`].
pub struct NodeClient {
    inner: crate::NodeClient,
    runtime: tokio::runtime::Runtime,
}

impl NodeClient {
    /// A client of the node at `url` (see [`crate::NodeClient::new`]).
    pub fn new(url: &str) -> Result<NodeClient, ClientError> {
        let inner = crate::NodeClient::new(url)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ClientError::BadUrl {
                url: url.to_string(),
                reason: format!("cannot start a runtime for the client: {e}"),
            })?;
        Ok(NodeClient { inner, runtime })
    }

    /// The same client with calls limited to `timeout` each.
    pub fn with_timeout(self, timeout: Duration) -> NodeClient {
        NodeClient {
            inner: self.inner.with_timeout(timeout),
            runtime: self.runtime,
        }
    }

    /// The async client underneath (for use on another runtime).
    pub fn client(&self) -> &crate::NodeClient {
        &self.inner
    }

    pub fn base(&self) -> &str {
        self.inner.base()
    }

    /// See [`crate::NodeClient::sign`].
    pub fn sign(
        &self,
        signer: &PrivateKeySigner,
        options: &SendOptions,
        build: impl FnOnce(TxFields) -> TxKind,
    ) -> Result<SignedTx, ClientError> {
        self.runtime
            .block_on(self.inner.sign(signer, options, build))
    }

    /// See [`crate::NodeClient::send_and_wait`].
    pub fn send_and_wait(
        &self,
        signer: &PrivateKeySigner,
        options: &SendOptions,
        build: impl FnOnce(TxFields) -> TxKind,
    ) -> Result<Outcome, ClientError> {
        self.runtime
            .block_on(self.inner.send_and_wait(signer, options, build))
    }
}

/// Blocking forms of the async client's calls, one for one.
macro_rules! blocking_calls {
    ($( $(#[$doc:meta])* fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty; )*) => {
        impl NodeClient {
            $(
                $(#[$doc])*
                pub fn $name(&self $(, $arg: $ty)*) -> Result<$ret, ClientError> {
                    self.runtime.block_on(self.inner.$name($($arg),*))
                }
            )*
        }
    };
}

blocking_calls! {
    /// `GET /health`.
    fn health(&self) -> ();
    fn sync_health(&self) -> api::SyncHealth;
    /// `GET /v1/status`.
    fn status(&self) -> api::Status;
    /// `GET /v1/storage`.
    fn storage(&self) -> api::StorageInfo;
    /// `GET /v1/storage/blobs/{id}`.
    fn blob(&self, blob_id: B256) -> api::BlobInfo;
    /// `GET /v1/market`.
    fn market(&self) -> mycel_types::market::MarketInfo;
    /// `GET /v1/market/providers`.
    fn providers(&self, after: Option<Address>) -> mycel_types::market::ProviderList;
    /// `GET /v1/market/deployments?…`.
    fn deployments(&self, query: &str) -> mycel_types::market::DeploymentList;
    /// `GET /v1/market/deployments/{id}`.
    fn deployment(&self, id: u64) -> mycel_types::market::Deployment;
    /// The chain id and minimum fee (read once).
    fn chain_params(&self) -> ChainParams;
    /// `GET /v1/genesis`.
    fn genesis(&self) -> Genesis;
    /// `GET /metrics`.
    fn metrics(&self) -> String;
    /// `POST /v1/txs`.
    fn submit(&self, tx: &SignedTx) -> B256;
    /// `POST /v1/txs` with the transaction's JSON form.
    fn submit_json(&self, tx: &SignedTx) -> B256;
    /// Follows a transaction until it is final or rejected, or `timeout` passes.
    fn wait(&self, hash: B256, timeout: Duration) -> Outcome;
    /// Submits a signed transaction and waits for it.
    fn submit_and_wait(&self, tx: &SignedTx, timeout: Duration) -> Outcome;
    /// `GET /v1/txs/{hash}`.
    fn tx(&self, hash: B256) -> api::TxStatus;
    /// `GET /v1/blocks/{height}`.
    fn block(&self, height: u64) -> api::Block;
    /// `GET /v1/blocks/latest`.
    fn latest_block(&self) -> api::Block;
    /// `GET /v1/accounts/{address}`.
    fn account(&self, address: Address) -> api::Account;
    /// The nonce to sign `address`'s next transaction with.
    fn next_nonce(&self, address: Address) -> u64;
    /// `GET /v1/subnets`.
    fn subnets(&self) -> api::SubnetList;
    /// `GET /v1/subnets/{netuid}`.
    fn subnet(&self, netuid: u16) -> api::Subnet;
    /// `GET /v1/subnets/{netuid}/metagraph`.
    fn metagraph(&self, netuid: u16) -> api::Metagraph;
    /// `GET /v1/subnets/{netuid}/training`.
    fn training_run(&self, netuid: u16) -> api::TrainingRun;
    /// `GET /v1/pools`.
    fn pools(&self) -> api::Pools;
    /// `GET /v1/emission`.
    fn emission(&self) -> api::EmissionSchedule;
    /// `GET /v1/emission/receipts/latest` (`None` before the first subnet).
    fn latest_emission_receipt(&self) -> Option<api::EmissionReceipt>;
    /// `GET /v1/stakes/{coldkey}`.
    fn stakes(&self, coldkey: Address) -> api::Stakes;
    /// `GET /v1/musd`.
    fn musd(&self) -> api::Musd;
    /// `GET /v1/musd/authorizations/{authorizer}/{nonce}`.
    fn authorization(&self, authorizer: Address, nonce: B256) -> api::AuthorizationState;
    /// `GET /v1/channels/{id}`.
    fn channel(&self, id: B256) -> api::Channel;
    /// `GET /v1/agents`.
    fn agents(&self, owner: Option<Address>, cursor: Option<u64>, limit: Option<usize>) -> api::AgentList;
    /// `GET /v1/agents/{id}`.
    fn agent(&self, id: u64) -> api::Agent;
    /// `GET /v1/agents/{id}/feedback`.
    fn agent_feedback(&self, id: u64, client: Option<Address>, cursor: Option<String>) -> api::FeedbackList;
    /// `GET /v1/agents/{id}/reputation`.
    fn reputation(&self, id: u64, clients: Vec<Address>, tag1: String, tag2: String, verified: bool) -> api::ReputationSummary;
    /// `GET /v1/validations/{hash}`.
    fn validation(&self, request_hash: B256) -> api::Validation;
    /// `GET /v1/validations?validator=`.
    fn validations_for(&self, validator: Address, pending: bool, cursor: Option<u64>) -> api::ValidationList;
    /// `GET /v1/agents/{id}/validations`.
    fn agent_validations(&self, id: u64, cursor: Option<u64>) -> api::ValidationList;
    /// `GET /v1/allowances/{agent}`.
    fn allowance(&self, agent: Address) -> api::Allowance;
    /// `GET /v1/jobs/{id}`.
    fn job(&self, id: u64) -> api::Job;
    /// `GET /v1/jobs`.
    fn jobs(&self, filter: crate::JobFilter, cursor: Option<u64>) -> api::JobList;
    /// `GET /v1/agents/{id}/events`.
    fn agent_events(&self, id: u64, cursor: Option<u64>) -> api::AgentHistory;
}
