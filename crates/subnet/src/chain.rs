//! What goes wrong when a role works on chain. The roles read and send through `mycel-client`
//! ([`NodeClient`](mycel_client::NodeClient)); what each sends is in [`crate::miner::chain`] and
//! [`crate::validator::chain`].

use mycel_client::{ClientError, Outcome};

/// Why a role's chain operation failed. Each message says what to check.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("there is no subnet {0} on this chain: create it first (`mycel subnet create`), or pass the netuid of an existing one")]
    NoSubnet(u16),
    #[error("the {0} transaction was finalized, but the hotkey is not in the metagraph")]
    NotInMetagraph(&'static str),
    #[error(transparent)]
    Node(#[from] ClientError),
}

impl ChainError {
    /// The node's code of a refused or failed transaction (`reveal_too_early`, …), if any.
    pub fn code(&self) -> Option<&str> {
        match self {
            ChainError::Node(e) => e.code(),
            _ => None,
        }
    }

    /// The node could not be reached, or a transaction was not final in time: worth trying
    /// again later.
    pub fn is_transient(&self) -> bool {
        match self {
            ChainError::Node(ClientError::Unreachable { .. }) => true,
            ChainError::Node(ClientError::NotApplied(outcome)) => {
                matches!(**outcome, Outcome::TimedOut { .. })
            }
            _ => false,
        }
    }
}

/// `ClientError` from reading subnet `netuid`, with "no such subnet" said as such.
pub(crate) fn subnet_error(netuid: u16) -> impl Fn(ClientError) -> ChainError {
    move |e| {
        if e.is_code(mycel_client::api::code::UNKNOWN_SUBNET) {
            ChainError::NoSubnet(netuid)
        } else {
            ChainError::Node(e)
        }
    }
}
