//! What can go wrong talking to a node.

use crate::send::Outcome;

/// Why a call to the node failed. Each message names the node and what to check.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The node URL cannot be used.
    #[error("'{url}' is not a node URL: {reason} (use e.g. http://127.0.0.1:8545)")]
    BadUrl { url: String, reason: String },
    /// No connection, or no answer in time.
    #[error("cannot reach the node at {url} ({path}): {reason}")]
    Unreachable {
        url: String,
        path: String,
        reason: String,
        /// The node accepted the connection but did not answer in time.
        timed_out: bool,
    },
    /// The node refused: `{"error": {"code", "message"}}` with an HTTP status.
    #[error("the node answered: {message} [{code}, HTTP {status}]")]
    Node {
        status: u16,
        code: String,
        message: String,
    },
    /// Something answered that is not the node API this client speaks.
    #[error(
        "the node at {url} answered {path} with {reason}: is it a mycel node of this version?"
    )]
    Unexpected {
        url: String,
        path: String,
        reason: String,
    },
    /// A transaction could not be signed.
    #[error("cannot sign the {tx_type} transaction: {reason}")]
    Signing { tx_type: String, reason: String },
    /// A submitted transaction did not end up applied in a finalized block.
    #[error("{0}")]
    NotApplied(Box<Outcome>),
}

impl ClientError {
    /// The node's error code: of a refusal, or of a transaction rejected or failed in a block.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Node { code, .. } => Some(code),
            ClientError::NotApplied(outcome) => outcome.error().map(|e| e.code.as_str()),
            _ => None,
        }
    }

    /// True if the node refused (or the transaction failed) with `code`.
    pub fn is_code(&self, code: &str) -> bool {
        self.code() == Some(code)
    }
}
