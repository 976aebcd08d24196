//! Jobs with escrow (ERC-8183): a client hires a provider for a budget in mUSD that the chain
//! holds until an evaluator decides.
//!
//! Rules (status Open → Funded → Submitted → Completed / Rejected / Expired):
//! - `CreateJob` (client): an evaluator (not zero), an expiry in the future (block time, seconds,
//!   at most [`MAX_JOB_LIFETIME_S`] ahead), a description of at most [`MAX_DESCRIPTION_BYTES`], an
//!   optional provider, and an optional platform with a fee of at most [`MAX_PLATFORM_FEE_BPS`].
//!   Ids are 1, 2, ….
//! - `SetJobProvider` (client): while Open and without a provider.
//! - `SetJobBudget` (client or provider): while Open.
//! - `FundJob` (client): while Open, with a provider, a budget above zero equal to
//!   `expectedBudget` (so a budget changed under the client is refused), before the expiry;
//!   moves the budget from the client into escrow.
//! - `SubmitJob` (provider): while Funded and before the expiry.
//! - `CompleteJob` (evaluator): while Submitted; pays the provider the budget less the platform
//!   fee, and the platform its fee (`budget × bps / 10000`, rounded down).
//! - `RejectJob`: the evaluator while Funded or Submitted (the escrow goes back to the client),
//!   or the client while Open (nothing was escrowed).
//! - `ClaimJobRefund` (anyone): once the block time is past the expiry, while Funded or
//!   Submitted; the escrow goes back to the client. Reject and expiry are final.
//! - Beyond ERC-8183, a dispute window (`disputeWindow` seconds, at most
//!   [`MAX_DISPUTE_WINDOW_S`], fixed at creation): for that long after delivery the evaluator may
//!   reject but not complete, and the client may `DisputeJob`, naming a validator that holds a
//!   validator permit in a subnet; that validator becomes the evaluator and decides by re-running
//!   the deliverable (`mycel validator` does). Once the window closes undisputed, the evaluator
//!   decides as before.
//!
//! Escrow is in the books: `mUSD issued = balances + channel escrow + job escrow`, asserted after
//! every block. Each refusal has its own code; a refused transaction changes nothing.
//!
//! State root: every applied job transaction extends a running digest, `d' = keccak(0x0a ‖ d ‖
//! tx hash)`, folded in as `keccak(0x09 ‖ root ‖ d)` once any job transaction applied.

use crate::{bank, Account, State, TxError};
use alloy_primitives::{Address, B256, U256};
use mycel_types::api::{JobEvent, JobStatus};
use mycel_types::{genesis::amount_string, Amount, Token, TxKind};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The longest description in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 1024;
/// The longest deliverable URI in bytes.
pub const MAX_DELIVERABLE_URI_BYTES: usize = 512;
/// The highest platform fee: 10%.
pub const MAX_PLATFORM_FEE_BPS: u16 = 1000;
/// How far ahead a job may expire: 365 days.
pub const MAX_JOB_LIFETIME_S: u64 = 365 * 24 * 3600;
/// The longest dispute window: 7 days.
pub const MAX_DISPUTE_WINDOW_S: u64 = 7 * 24 * 3600;

/// One job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub client: Address,
    pub provider: Option<Address>,
    pub evaluator: Address,
    pub description: String,
    #[serde(with = "amount_string")]
    pub budget: Amount,
    #[serde(with = "amount_string")]
    pub escrowed: Amount,
    pub status: JobStatus,
    pub expired_at_s: u64,
    pub platform: Option<Address>,
    pub platform_fee_bps: u16,
    pub deliverable: Option<B256>,
    pub deliverable_uri: String,
    #[serde(default)]
    pub dispute_window_s: u64,
    #[serde(default)]
    pub submitted_at_s: Option<u64>,
    #[serde(default)]
    pub disputed: bool,
    pub created_height: u64,
    pub updated_height: u64,
}

/// Every job, who is in which, and the digest of everything done to them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jobs {
    jobs: BTreeMap<u64, Job>,
    /// The jobs each address is client, provider or evaluator of (for listing by party).
    by_party: BTreeMap<Address, BTreeSet<u64>>,
    digest: crate::merkle::RunningDigest,
}

impl Jobs {
    pub fn job(&self, id: u64) -> Option<&Job> {
        self.jobs.get(&id)
    }

    /// Jobs created so far (ids are 1..=count).
    pub fn count(&self) -> u64 {
        self.jobs.len() as u64
    }

    /// Jobs from id `from`, in id order.
    pub fn jobs_from(&self, from: u64) -> impl Iterator<Item = (u64, &Job)> {
        self.jobs.range(from..).map(|(id, j)| (*id, j))
    }

    /// Jobs `party` is client, provider or evaluator of, from id `from`, in id order.
    pub fn jobs_of(&self, party: &Address, from: u64) -> impl Iterator<Item = (u64, &Job)> {
        self.by_party
            .get(party)
            .into_iter()
            .flat_map(move |ids| ids.range(from..))
            .filter_map(|id| Some((*id, self.jobs.get(id)?)))
    }

    /// mUSD held in escrow by all jobs.
    pub fn escrowed(&self) -> Amount {
        self.jobs.values().map(|j| j.escrowed).fold(0u128, |a, b| {
            a.checked_add(b).expect("job escrow overflows")
        })
    }

    pub(crate) fn put(&mut self, id: u64, job: Job, tx_hash: B256) {
        for party in [Some(job.client), job.provider, Some(job.evaluator)]
            .into_iter()
            .flatten()
        {
            self.by_party.entry(party).or_default().insert(id);
        }
        self.jobs.insert(id, job);
        self.digest.extend(0x0a, tx_hash);
    }

    pub(crate) fn fold_root(&self, root: B256) -> B256 {
        self.digest.fold(0x09, root)
    }
}

/// Why a job transaction was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum JobError {
    #[error("no job {job_id}")]
    UnknownJob { job_id: u64 },
    #[error("{sender} is not the client of job {job_id}")]
    NotClient { job_id: u64, sender: Address },
    #[error("{sender} is not the provider of job {job_id}")]
    NotProvider { job_id: u64, sender: Address },
    #[error("{sender} is not the evaluator of job {job_id}")]
    NotEvaluator { job_id: u64, sender: Address },
    #[error("{sender} is neither the client nor the provider of job {job_id}")]
    NotParty { job_id: u64, sender: Address },
    #[error("job {job_id} is {status}; this needs it {expected}")]
    WrongStatus {
        job_id: u64,
        status: JobStatus,
        expected: String,
    },
    #[error("job {job_id} has no provider yet (SetJobProvider first)")]
    NoProvider { job_id: u64 },
    #[error("job {job_id} already has a provider")]
    ProviderAlreadySet { job_id: u64 },
    #[error("the budget of job {job_id} is {budget}, not the {expected} expected")]
    BudgetChanged {
        job_id: u64,
        budget: String,
        expected: String,
    },
    #[error("job {job_id} has no budget to fund")]
    ZeroBudget { job_id: u64 },
    #[error("job {job_id} expired at {expired_at} s; block time is {now} s")]
    Expired {
        job_id: u64,
        expired_at: u64,
        now: u64,
    },
    #[error("job {job_id} expires at {expired_at} s; block time is {now} s")]
    NotExpired {
        job_id: u64,
        expired_at: u64,
        now: u64,
    },
    #[error(
        "expiry {expired_at} s is not after the block time {now} s, or more than a year ahead"
    )]
    BadExpiry { expired_at: u64, now: u64 },
    #[error("a job needs an evaluator (not the zero address)")]
    NoEvaluator,
    #[error("platform fee {bps} bps is over the {max} bps limit, or set without a platform")]
    BadPlatformFee { bps: u16, max: u16 },
    #[error("{field} is {size} bytes, over the {max}-byte limit")]
    FieldTooLong {
        field: String,
        size: usize,
        max: usize,
    },
    #[error("dispute window {got} s is over the {max} s limit")]
    DisputeWindowTooLong { got: u64, max: u64 },
    #[error("job {job_id}'s client may dispute until block time {until} s: the evaluator completes after that")]
    DisputeWindowOpen { job_id: u64, until: u64 },
    #[error("job {job_id}'s dispute window {detail}")]
    DisputeWindowClosed { job_id: u64, detail: String },
    #[error("job {job_id} is already disputed")]
    AlreadyDisputed { job_id: u64 },
    #[error("{validator} holds no validator permit in subnet {netuid}")]
    NotAValidator { validator: Address, netuid: u16 },
}

impl JobError {
    pub fn code(&self) -> &'static str {
        match self {
            JobError::UnknownJob { .. } => "job_unknown",
            JobError::NotClient { .. } => "job_not_client",
            JobError::NotProvider { .. } => "job_not_provider",
            JobError::NotEvaluator { .. } => "job_not_evaluator",
            JobError::NotParty { .. } => "job_not_party",
            JobError::WrongStatus { .. } => "job_wrong_status",
            JobError::NoProvider { .. } => "job_no_provider",
            JobError::ProviderAlreadySet { .. } => "job_provider_already_set",
            JobError::BudgetChanged { .. } => "job_budget_changed",
            JobError::ZeroBudget { .. } => "job_zero_budget",
            JobError::Expired { .. } => "job_expired",
            JobError::NotExpired { .. } => "job_not_expired",
            JobError::BadExpiry { .. } => "job_bad_expiry",
            JobError::NoEvaluator => "job_no_evaluator",
            JobError::BadPlatformFee { .. } => "job_bad_platform_fee",
            JobError::FieldTooLong { .. } => "job_field_too_long",
            JobError::DisputeWindowTooLong { .. } => "job_dispute_window_too_long",
            JobError::DisputeWindowOpen { .. } => "job_dispute_window_open",
            JobError::DisputeWindowClosed { .. } => "job_dispute_window_closed",
            JobError::AlreadyDisputed { .. } => "job_already_disputed",
            JobError::NotAValidator { .. } => "job_not_a_validator",
        }
    }
}

fn err(e: JobError) -> TxError {
    TxError::Job(e)
}

/// What a job transaction writes: accounts (the sender's fee and nonce included), the job, and
/// its event.
pub(crate) struct JobPlan {
    pub(crate) writes: Vec<(Address, Account)>,
    pub(crate) event: JobEvent,
    pub(crate) job: (u64, Job),
}

fn existing(state: &State, id: u64) -> Result<Job, TxError> {
    state
        .jobs()
        .job(id)
        .cloned()
        .ok_or(err(JobError::UnknownJob { job_id: id }))
}

fn status_is(job: &Job, id: u64, allowed: &[JobStatus]) -> Result<(), TxError> {
    if allowed.contains(&job.status) {
        return Ok(());
    }
    Err(err(JobError::WrongStatus {
        job_id: id,
        status: job.status,
        expected: allowed
            .iter()
            .map(JobStatus::as_str)
            .collect::<Vec<_>>()
            .join(" or "),
    }))
}

fn check_len(field: &str, value: &str, max: usize) -> Result<(), TxError> {
    if value.len() > max {
        return Err(err(JobError::FieldTooLong {
            field: field.into(),
            size: value.len(),
            max,
        }));
    }
    Ok(())
}

/// The stateful checks of a job transaction and what it would write. `payer` is the sender's
/// account after its fee and nonce.
pub(crate) fn plan_tx(
    state: &State,
    sender: Address,
    payer: Account,
    kind: &TxKind,
) -> Result<JobPlan, TxError> {
    let now = state.last_block_time_ms() / 1000;
    let height = state.height() + 1;
    let mut accounts = bank::Touched::new(state, sender, payer);
    let (id, job, event) = match kind {
        TxKind::CreateJob(t) => {
            if t.evaluator == Address::ZERO {
                return Err(err(JobError::NoEvaluator));
            }
            if t.expiredAt <= now || t.expiredAt > now.saturating_add(MAX_JOB_LIFETIME_S) {
                return Err(err(JobError::BadExpiry {
                    expired_at: t.expiredAt,
                    now,
                }));
            }
            if t.platformFeeBps > MAX_PLATFORM_FEE_BPS
                || (t.platformFeeBps > 0 && t.platform == Address::ZERO)
            {
                return Err(err(JobError::BadPlatformFee {
                    bps: t.platformFeeBps,
                    max: MAX_PLATFORM_FEE_BPS,
                }));
            }
            check_len("description", &t.description, MAX_DESCRIPTION_BYTES)?;
            if t.disputeWindow > MAX_DISPUTE_WINDOW_S {
                return Err(err(JobError::DisputeWindowTooLong {
                    got: t.disputeWindow,
                    max: MAX_DISPUTE_WINDOW_S,
                }));
            }
            let id = state.jobs().count() + 1;
            let provider = (t.provider != Address::ZERO).then_some(t.provider);
            let job = Job {
                client: sender,
                provider,
                evaluator: t.evaluator,
                description: t.description.clone(),
                budget: 0,
                escrowed: 0,
                status: JobStatus::Open,
                expired_at_s: t.expiredAt,
                platform: (t.platform != Address::ZERO).then_some(t.platform),
                platform_fee_bps: t.platformFeeBps,
                deliverable: None,
                deliverable_uri: String::new(),
                dispute_window_s: t.disputeWindow,
                submitted_at_s: None,
                disputed: false,
                created_height: height,
                updated_height: height,
            };
            let event = JobEvent::Created {
                job_id: id,
                client: sender,
                provider,
                evaluator: t.evaluator,
                expired_at_s: t.expiredAt,
            };
            (id, job, event)
        }
        TxKind::SetJobProvider(t) => {
            let mut job = existing(state, t.jobId)?;
            if job.client != sender {
                return Err(err(JobError::NotClient {
                    job_id: t.jobId,
                    sender,
                }));
            }
            status_is(&job, t.jobId, &[JobStatus::Open])?;
            if job.provider.is_some() {
                return Err(err(JobError::ProviderAlreadySet { job_id: t.jobId }));
            }
            job.provider = Some(t.provider);
            let event = JobEvent::ProviderSet {
                job_id: t.jobId,
                provider: t.provider,
            };
            (t.jobId, job, event)
        }
        TxKind::SetJobBudget(t) => {
            let mut job = existing(state, t.jobId)?;
            if job.client != sender && job.provider != Some(sender) {
                return Err(err(JobError::NotParty {
                    job_id: t.jobId,
                    sender,
                }));
            }
            status_is(&job, t.jobId, &[JobStatus::Open])?;
            job.budget = u128::try_from(t.amount)
                .map_err(|_| TxError::AmountTooLarge(t.amount.to_string()))?;
            let event = JobEvent::BudgetSet {
                job_id: t.jobId,
                budget: job.budget,
            };
            (t.jobId, job, event)
        }
        TxKind::FundJob(t) => {
            let mut job = existing(state, t.jobId)?;
            if job.client != sender {
                return Err(err(JobError::NotClient {
                    job_id: t.jobId,
                    sender,
                }));
            }
            status_is(&job, t.jobId, &[JobStatus::Open])?;
            if job.provider.is_none() {
                return Err(err(JobError::NoProvider { job_id: t.jobId }));
            }
            if U256::from(job.budget) != t.expectedBudget {
                return Err(err(JobError::BudgetChanged {
                    job_id: t.jobId,
                    budget: job.budget.to_string(),
                    expected: t.expectedBudget.to_string(),
                }));
            }
            if job.budget == 0 {
                return Err(err(JobError::ZeroBudget { job_id: t.jobId }));
            }
            not_expired(&job, t.jobId, now)?;
            accounts.debit(sender, Token::Musd, job.budget)?;
            job.escrowed = job.budget;
            job.status = JobStatus::Funded;
            let event = JobEvent::Funded {
                job_id: t.jobId,
                escrowed: job.budget,
            };
            (t.jobId, job, event)
        }
        TxKind::SubmitJob(t) => {
            let mut job = existing(state, t.jobId)?;
            if job.provider != Some(sender) {
                return Err(err(JobError::NotProvider {
                    job_id: t.jobId,
                    sender,
                }));
            }
            status_is(&job, t.jobId, &[JobStatus::Funded])?;
            not_expired(&job, t.jobId, now)?;
            check_len(
                "deliverableURI",
                &t.deliverableURI,
                MAX_DELIVERABLE_URI_BYTES,
            )?;
            job.deliverable = Some(t.deliverable);
            job.deliverable_uri = t.deliverableURI.clone();
            job.submitted_at_s = Some(now);
            job.status = JobStatus::Submitted;
            let event = JobEvent::Submitted {
                job_id: t.jobId,
                deliverable: t.deliverable,
            };
            (t.jobId, job, event)
        }
        TxKind::CompleteJob(t) => {
            let mut job = existing(state, t.jobId)?;
            if job.evaluator != sender {
                return Err(err(JobError::NotEvaluator {
                    job_id: t.jobId,
                    sender,
                }));
            }
            status_is(&job, t.jobId, &[JobStatus::Submitted])?;
            if let Some(until) = dispute_until(&job).filter(|until| !job.disputed && now < *until) {
                return Err(err(JobError::DisputeWindowOpen {
                    job_id: t.jobId,
                    until,
                }));
            }
            // bps ≤ 1000, so the product fits: budget < 2^128 / 2^10 is not needed with U256.
            let platform_fee = (U256::from(job.escrowed) * U256::from(job.platform_fee_bps)
                / U256::from(10_000u64))
            .to::<u128>();
            let paid = job.escrowed - platform_fee;
            let provider = job.provider.expect("a submitted job has a provider");
            accounts.credit(provider, Token::Musd, paid)?;
            if let Some(platform) = job.platform.filter(|_| platform_fee > 0) {
                accounts.credit(platform, Token::Musd, platform_fee)?;
            }
            job.escrowed = 0;
            job.status = JobStatus::Completed;
            let event = JobEvent::Completed {
                job_id: t.jobId,
                paid,
                platform_fee,
                reason: t.reason,
            };
            (t.jobId, job, event)
        }
        TxKind::RejectJob(t) => {
            let mut job = existing(state, t.jobId)?;
            if job.status == JobStatus::Open {
                if job.client != sender {
                    return Err(err(JobError::NotClient {
                        job_id: t.jobId,
                        sender,
                    }));
                }
            } else {
                if job.evaluator != sender {
                    return Err(err(JobError::NotEvaluator {
                        job_id: t.jobId,
                        sender,
                    }));
                }
                status_is(&job, t.jobId, &[JobStatus::Funded, JobStatus::Submitted])?;
            }
            let refunded = job.escrowed;
            if refunded > 0 {
                accounts.credit(job.client, Token::Musd, refunded)?;
            }
            job.escrowed = 0;
            job.status = JobStatus::Rejected;
            let event = JobEvent::Rejected {
                job_id: t.jobId,
                by: sender,
                refunded,
                reason: t.reason,
            };
            (t.jobId, job, event)
        }
        TxKind::ClaimJobRefund(t) => {
            let mut job = existing(state, t.jobId)?;
            status_is(&job, t.jobId, &[JobStatus::Funded, JobStatus::Submitted])?;
            if now <= job.expired_at_s {
                return Err(err(JobError::NotExpired {
                    job_id: t.jobId,
                    expired_at: job.expired_at_s,
                    now,
                }));
            }
            let refunded = job.escrowed;
            accounts.credit(job.client, Token::Musd, refunded)?;
            job.escrowed = 0;
            job.status = JobStatus::Expired;
            let event = JobEvent::Expired {
                job_id: t.jobId,
                refunded,
            };
            (t.jobId, job, event)
        }
        TxKind::DisputeJob(t) => {
            let mut job = existing(state, t.jobId)?;
            if job.client != sender {
                return Err(err(JobError::NotClient {
                    job_id: t.jobId,
                    sender,
                }));
            }
            status_is(&job, t.jobId, &[JobStatus::Submitted])?;
            if job.disputed {
                return Err(err(JobError::AlreadyDisputed { job_id: t.jobId }));
            }
            match dispute_until(&job) {
                None => {
                    return Err(err(JobError::DisputeWindowClosed {
                        job_id: t.jobId,
                        detail: "is 0: the job cannot be disputed".into(),
                    }))
                }
                Some(until) if now > until => {
                    return Err(err(JobError::DisputeWindowClosed {
                        job_id: t.jobId,
                        detail: format!("closed at block time {until} s; it is {now} s"),
                    }))
                }
                Some(_) => {}
            }
            let permitted = state.subnets().get(t.netuid).is_some_and(|s| {
                s.neurons
                    .iter()
                    .any(|n| n.hotkey == t.validator && n.validator_permit)
            });
            if !permitted {
                return Err(err(JobError::NotAValidator {
                    validator: t.validator,
                    netuid: t.netuid,
                }));
            }
            job.evaluator = t.validator;
            job.disputed = true;
            let event = JobEvent::Disputed {
                job_id: t.jobId,
                validator: t.validator,
                netuid: t.netuid,
            };
            (t.jobId, job, event)
        }
        other => unreachable!("{} is not a job transaction", other.type_name()),
    };
    let mut job = job;
    job.updated_height = height;
    Ok(JobPlan {
        writes: accounts.writes(),
        event,
        job: (id, job),
    })
}

/// The end of a delivered job's dispute window (block time, s); `None` without one.
fn dispute_until(job: &Job) -> Option<u64> {
    (job.dispute_window_s > 0)
        .then(|| {
            job.submitted_at_s
                .map(|at| at.saturating_add(job.dispute_window_s))
        })
        .flatten()
}

fn not_expired(job: &Job, id: u64, now: u64) -> Result<(), TxError> {
    if now > job.expired_at_s {
        return Err(err(JobError::Expired {
            job_id: id,
            expired_at: job.expired_at_s,
            now,
        }));
    }
    Ok(())
}

#[cfg(test)]
#[path = "jobs_tests.rs"]
mod tests;
