//! Jobs with escrow (ERC-8183): `GET /v1/jobs` (by client, provider or evaluator, by status,
//! paged) and `GET /v1/jobs/{id}` (docs/agents.md), and the events job transactions write.
//!
//! The event type is also what the state machine records (one definition for both).

use alloy_primitives::{Address, B256};
use serde::{Deserialize, Serialize};

/// Where a job is in ERC-8183's life: Open → Funded → Submitted → Completed / Rejected /
/// Expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Open,
    Funded,
    Submitted,
    Completed,
    Rejected,
    Expired,
}

impl JobStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            JobStatus::Open => "open",
            JobStatus::Funded => "funded",
            JobStatus::Submitted => "submitted",
            JobStatus::Completed => "completed",
            JobStatus::Rejected => "rejected",
            JobStatus::Expired => "expired",
        }
    }

    /// Reads [`as_str`](Self::as_str)'s names.
    pub fn parse(text: &str) -> Option<JobStatus> {
        [
            JobStatus::Open,
            JobStatus::Funded,
            JobStatus::Submitted,
            JobStatus::Completed,
            JobStatus::Rejected,
            JobStatus::Expired,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }

    /// Settled: nothing more can happen to the job.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            JobStatus::Completed | JobStatus::Rejected | JobStatus::Expired
        )
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something a job transaction did (`action` says which).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum JobEvent {
    Created {
        job_id: u64,
        client: Address,
        provider: Option<Address>,
        evaluator: Address,
        expired_at_s: u64,
    },
    ProviderSet {
        job_id: u64,
        provider: Address,
    },
    BudgetSet {
        job_id: u64,
        #[serde(with = "super::amount")]
        budget: u128,
    },
    Funded {
        job_id: u64,
        #[serde(with = "super::amount")]
        escrowed: u128,
    },
    Submitted {
        job_id: u64,
        deliverable: B256,
    },
    /// Paid: `paid` to the provider, `platform_fee` to the platform.
    Completed {
        job_id: u64,
        #[serde(with = "super::amount")]
        paid: u128,
        #[serde(with = "super::amount")]
        platform_fee: u128,
        reason: B256,
    },
    Rejected {
        job_id: u64,
        by: Address,
        #[serde(with = "super::amount")]
        refunded: u128,
        reason: B256,
    },
    Expired {
        job_id: u64,
        #[serde(with = "super::amount")]
        refunded: u128,
    },
    /// The client handed the decision to `validator` (a validator of subnet `netuid`).
    Disputed {
        job_id: u64,
        validator: Address,
        netuid: u16,
    },
}

impl JobEvent {
    pub fn job_id(&self) -> u64 {
        match self {
            JobEvent::Created { job_id, .. }
            | JobEvent::ProviderSet { job_id, .. }
            | JobEvent::BudgetSet { job_id, .. }
            | JobEvent::Funded { job_id, .. }
            | JobEvent::Submitted { job_id, .. }
            | JobEvent::Completed { job_id, .. }
            | JobEvent::Rejected { job_id, .. }
            | JobEvent::Expired { job_id, .. }
            | JobEvent::Disputed { job_id, .. } => *job_id,
        }
    }
}

/// A job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub job_id: u64,
    pub client: Address,
    pub provider: Option<Address>,
    pub evaluator: Address,
    pub description: String,
    /// mUSD base units.
    #[serde(with = "super::amount")]
    pub budget: u128,
    /// Held by the chain now (the budget once funded, 0 once settled).
    #[serde(with = "super::amount")]
    pub escrowed: u128,
    pub status: JobStatus,
    /// Block time (s) after which an unsettled job may be refunded.
    pub expired_at_s: u64,
    pub platform: Option<Address>,
    pub platform_fee_bps: u16,
    pub deliverable: Option<B256>,
    pub deliverable_uri: String,
    /// Seconds after delivery in which the client may dispute (0: no window).
    pub dispute_window_s: u64,
    /// Block time (s) of the delivery.
    pub submitted_at_s: Option<u64>,
    /// The client handed the decision to a validator (now `evaluator`).
    pub disputed: bool,
    pub created_height: u64,
    /// The block of the last change.
    pub updated_height: u64,
}

/// A page of jobs in id order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobList {
    pub jobs: Vec<Job>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<u64>,
    pub height: u64,
}
