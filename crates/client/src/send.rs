//! Sign, submit, wait: the one way a transaction is sent ([`NodeClient::send_and_wait`] and its
//! steps), and nonces for accounts that send without waiting ([`Nonces`]).

use crate::{ClientError, NodeClient};
use alloy_primitives::{Address, B256, U256};
use alloy_signer_local::PrivateKeySigner;
use mycel_types::api::{code, ErrorDetail, TxReceipt, TxResult, TxState};
use mycel_types::{SignedTx, TxKind};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How a transaction is signed and followed. The defaults ask the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendOptions {
    /// Fee in MYC base units (default: the node's minimum fee).
    pub fee: Option<u128>,
    /// Nonce (default: the account's next nonce, its pending transactions counted).
    pub nonce: Option<u64>,
    /// How long to wait for finality.
    pub timeout: Duration,
}

impl Default for SendOptions {
    fn default() -> Self {
        SendOptions {
            fee: None,
            nonce: None,
            timeout: Duration::from_secs(60),
        }
    }
}

impl SendOptions {
    /// The defaults, waiting at most `timeout`.
    pub fn timeout(timeout: Duration) -> SendOptions {
        SendOptions {
            timeout,
            ..SendOptions::default()
        }
    }
}

/// What a transaction being built is given: its sender, nonce and fee.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxFields {
    pub from: Address,
    pub nonce: u64,
    pub fee: U256,
}

/// A transaction applied in a finalized block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub hash: B256,
    pub height: u64,
    pub index: u32,
    pub receipt: TxReceipt,
}

/// What became of a submitted transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Applied in a finalized block.
    Applied(Applied),
    /// In a finalized block, but it failed (it still paid its fee).
    Failed {
        hash: B256,
        height: u64,
        index: u32,
        error: ErrorDetail,
    },
    /// Refused on entry, or dropped from the mempool later (`evicted`, `expired`, …).
    Rejected { hash: B256, error: ErrorDetail },
    /// Still pending when the wait ended.
    TimedOut { hash: B256, waited: Duration },
}

impl Outcome {
    pub fn hash(&self) -> B256 {
        match self {
            Outcome::Applied(a) => a.hash,
            Outcome::Failed { hash, .. }
            | Outcome::Rejected { hash, .. }
            | Outcome::TimedOut { hash, .. } => *hash,
        }
    }

    /// The node's error, for a failed or rejected transaction.
    pub fn error(&self) -> Option<&ErrorDetail> {
        match self {
            Outcome::Failed { error, .. } | Outcome::Rejected { error, .. } => Some(error),
            Outcome::Applied(_) | Outcome::TimedOut { .. } => None,
        }
    }

    /// The applied transaction, or this outcome as [`ClientError::NotApplied`].
    pub fn applied(self) -> Result<Applied, ClientError> {
        match self {
            Outcome::Applied(applied) => Ok(applied),
            other => Err(ClientError::NotApplied(Box::new(other))),
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Applied(a) => write!(
                f,
                "transaction {} was applied in block {}",
                a.hash, a.height
            ),
            Outcome::Failed {
                hash,
                height,
                error,
                ..
            } => write!(
                f,
                "transaction {hash} failed in block {height}: {} ({})",
                error.message, error.code
            ),
            Outcome::Rejected { hash, error } => write!(
                f,
                "transaction {hash} was rejected: {} ({})",
                error.message, error.code
            ),
            Outcome::TimedOut { hash, waited } => write!(
                f,
                "transaction {hash} is still pending after {} s",
                waited.as_secs()
            ),
        }
    }
}

/// How long a transaction may be unknown to the node right after it was submitted (a node
/// behind a load balancer may not have seen it yet).
const UNKNOWN_GRACE: Duration = Duration::from_secs(5);

impl NodeClient {
    /// Signs what `build` makes from the sender, nonce and fee: the fee and nonce from
    /// `options`, else the node's minimum fee and the account's next nonce; the node's chain id.
    pub async fn sign(
        &self,
        signer: &PrivateKeySigner,
        options: &SendOptions,
        build: impl FnOnce(TxFields) -> TxKind,
    ) -> Result<SignedTx, ClientError> {
        let params = self.chain_params().await?;
        let from = signer.address();
        let nonce = match options.nonce {
            Some(nonce) => nonce,
            None => self.next_nonce(from).await?,
        };
        let fee = U256::from(options.fee.unwrap_or(params.min_fee));
        let kind = build(TxFields { from, nonce, fee });
        let tx_type = kind.type_name();
        SignedTx::sign(kind, params.chain_id, signer).map_err(|e| ClientError::Signing {
            tx_type: tx_type.to_string(),
            reason: e.to_string(),
        })
    }

    /// Follows `hash` until it is final or rejected, or `timeout` passes.
    pub async fn wait(&self, hash: B256, timeout: Duration) -> Result<Outcome, ClientError> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(20);
        loop {
            match self.tx(hash).await {
                Ok(status) => match status.state {
                    TxState::Pending => {}
                    TxState::Finalized {
                        height,
                        index,
                        result: TxResult::Receipt(receipt),
                    } => {
                        return Ok(Outcome::Applied(Applied {
                            hash,
                            height,
                            index,
                            receipt,
                        }))
                    }
                    TxState::Finalized {
                        height,
                        index,
                        result: TxResult::Error(error),
                    } => {
                        return Ok(Outcome::Failed {
                            hash,
                            height,
                            index,
                            error,
                        })
                    }
                    TxState::Rejected { error } => return Ok(Outcome::Rejected { hash, error }),
                },
                Err(e)
                    if e.is_code(code::UNKNOWN_TX)
                        && started.elapsed() < UNKNOWN_GRACE.min(timeout) => {}
                Err(e) => return Err(e),
            }
            if started.elapsed() + pause > timeout {
                return Ok(Outcome::TimedOut {
                    hash,
                    waited: started.elapsed(),
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(250));
        }
    }

    /// Signs (see [`NodeClient::sign`]), submits and waits (see [`NodeClient::wait`]). A
    /// transaction the node refuses on entry is [`Outcome::Rejected`] with the refusal's code.
    pub async fn send_and_wait(
        &self,
        signer: &PrivateKeySigner,
        options: &SendOptions,
        build: impl FnOnce(TxFields) -> TxKind,
    ) -> Result<Outcome, ClientError> {
        let tx = self.sign(signer, options, build).await?;
        self.submit_and_wait(&tx, options.timeout).await
    }

    /// Submits a signed transaction and waits for it (see [`NodeClient::send_and_wait`]).
    pub async fn submit_and_wait(
        &self,
        tx: &SignedTx,
        timeout: Duration,
    ) -> Result<Outcome, ClientError> {
        match self.submit(tx).await {
            Ok(hash) => self.wait(hash, timeout).await,
            Err(ClientError::Node { code, message, .. }) => Ok(Outcome::Rejected {
                hash: tx.hash(),
                error: ErrorDetail { code, message },
            }),
            Err(e) => Err(e),
        }
    }
}

/// The next nonce of each account that sends several transactions without waiting for them:
/// read from the node once, then counted here.
#[derive(Debug, Default)]
pub struct Nonces {
    next: HashMap<Address, u64>,
}

impl Nonces {
    pub fn new() -> Nonces {
        Nonces::default()
    }

    /// The nonce for `address`'s next transaction; the one after it is counted from here.
    pub async fn take(&mut self, node: &NodeClient, address: Address) -> Result<u64, ClientError> {
        let nonce = match self.next.get(&address) {
            Some(n) => *n,
            None => node.next_nonce(address).await?,
        };
        self.next.insert(address, nonce + 1);
        Ok(nonce)
    }

    /// Reads `address`'s nonce from the node again next time (after a refusal).
    pub fn forget(&mut self, address: Address) {
        self.next.remove(&address);
    }
}
