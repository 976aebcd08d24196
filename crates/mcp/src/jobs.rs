//! Job tools (ERC-8183 jobs with escrow, docs/agents.md): hire an agent for a job and pay it
//! through escrow — create (with its budget), fund, and as the evaluator complete or reject; as
//! the provider, submit the deliverable. Every amount in mUSD; each step waits until final.

use crate::{answer, applied_json, parse, refusal, Progress, Server, ToolResult};
use alloy_primitives::{Address, B256, U256};
use mycel_types::tx::{CompleteJob, CreateJob, FundJob, RejectJob, SetJobBudget, SubmitJob};
use mycel_types::{api::JobEvent, parse_amount, Token, TxKind};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::service::RequestContext;
use rmcp::{tool, tool_router, RoleServer};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

/// A job's life when none is given: a day.
const DEFAULT_EXPIRY_S: u64 = 86_400;

#[derive(Debug, Deserialize, JsonSchema)]
pub struct CreateJobArgs {
    /// What is to be done.
    pub description: String,
    /// Who decides the job (completes or rejects it; 0x address). Often the client itself.
    pub evaluator: String,
    /// Who does it (0x address: an agent's wallet); can be set later.
    pub provider: Option<String>,
    /// The budget to propose, in mUSD (e.g. "2.5"); fund_job then escrows it.
    pub budget: Option<String>,
    /// Seconds until the job expires (default 86400); after it an unsettled escrow is refunded.
    pub expires_in_s: Option<u64>,
    /// Seconds after delivery in which the client may hand the decision to a subnet
    /// validator's re-execution (default 0: none).
    pub dispute_window_s: Option<u64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct FundJobArgs {
    pub job_id: u64,
    /// The budget being escrowed, in mUSD: refused if the job's budget is not this (a budget
    /// changed under the client is not paid).
    pub budget: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct SubmitJobArgs {
    pub job_id: u64,
    /// The deliverable's hash (0x + 32 bytes; for an inference job the receipt's EIP-712 hash).
    pub deliverable: String,
    /// Where the deliverable can be fetched.
    pub deliverable_uri: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct DecideJobArgs {
    pub job_id: u64,
    /// A 0x + 32-byte reason (e.g. the hash of a report); zero if absent.
    pub reason: Option<String>,
}

fn musd(what: &str, text: &str) -> Result<u128, ToolResult> {
    parse_amount(text, Token::Musd)
        .map_err(|e| refusal("bad_argument", format!("{what} '{text}': {e}")))
}

fn address(what: &str, text: Option<&str>) -> Result<Address, ToolResult> {
    match text {
        None => Ok(Address::ZERO),
        Some(t) => parse(what, t).map_err(Ok),
    }
}

fn reason(text: Option<&str>) -> Result<B256, ToolResult> {
    match text {
        None => Ok(B256::ZERO),
        Some(t) => parse("reason", t).map_err(Ok),
    }
}

#[tool_router(router = job_router, vis = "pub(crate)")]
impl Server {
    #[tool(
        description = "Create a job with escrow (ERC-8183) as its client (needs the server's \
                          key): a description, the evaluator who decides it, optionally the \
                          provider and the budget in mUSD. Returns the job id; then fund_job \
                          escrows the budget."
    )]
    async fn create_job(
        &self,
        Parameters(a): Parameters<CreateJobArgs>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        let progress = Progress::of(&context);
        let evaluator: Address = match parse("evaluator", &a.evaluator) {
            Ok(v) => v,
            Err(e) => return Ok(e),
        };
        let provider = match address("provider", a.provider.as_deref()) {
            Ok(v) => v,
            Err(e) => return e,
        };
        let budget = match a.budget.as_deref().map(|b| musd("budget", b)).transpose() {
            Ok(v) => v,
            Err(e) => return e,
        };
        let now = match self.node.latest_block().await {
            Ok(b) => b.timestamp_ms / 1000,
            Err(e) => return crate::node_refusal(e),
        };
        let expired_at = now + a.expires_in_s.unwrap_or(DEFAULT_EXPIRY_S);
        let description = a.description;
        let dispute_window = a.dispute_window_s.unwrap_or(0);
        let created = match self
            .send_applied(&progress, |f| {
                TxKind::CreateJob(CreateJob {
                    from: f.from,
                    provider,
                    evaluator,
                    expiredAt: expired_at,
                    disputeWindow: dispute_window,
                    description,
                    platform: Address::ZERO,
                    platformFeeBps: 0,
                    nonce: f.nonce,
                    fee: f.fee,
                })
            })
            .await
        {
            Ok(applied) => applied,
            Err(refused) => return refused,
        };
        let Some(job_id) = created
            .receipt
            .events
            .iter()
            .cloned()
            .filter_map(mycel_types::api::Event::into_job)
            .find_map(|e| match e {
                JobEvent::Created { job_id, .. } => Some(job_id),
                _ => None,
            })
        else {
            return refusal("not_created", "the receipt has no job Created event");
        };
        let budgeted = match budget {
            Some(amount) => match self
                .send_applied(&progress, |f| {
                    TxKind::SetJobBudget(SetJobBudget {
                        from: f.from,
                        jobId: job_id,
                        amount: U256::from(amount),
                        nonce: f.nonce,
                        fee: f.fee,
                    })
                })
                .await
            {
                Ok(applied) => Some(applied_json(&applied)),
                Err(refused) => return refused,
            },
            None => None,
        };
        answer(json!({"job_id": job_id, "created": applied_json(&created),
                      "budget_set": budgeted}))
    }

    #[tool(
        description = "Fund a job: move its budget (mUSD) from the server's key into escrow. \
                          Refused, nothing moved, if the job's budget is not the one given."
    )]
    async fn fund_job(
        &self,
        Parameters(a): Parameters<FundJobArgs>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        let budget = match musd("budget", &a.budget) {
            Ok(v) => v,
            Err(e) => return e,
        };
        self.send(&Progress::of(&context), |f| {
            TxKind::FundJob(FundJob {
                from: f.from,
                jobId: a.job_id,
                expectedBudget: U256::from(budget),
                nonce: f.nonce,
                fee: f.fee,
            })
        })
        .await
    }

    #[tool(
        description = "As a job's provider, deliver it: the deliverable's hash and where to \
                          fetch it (needs the provider's key)."
    )]
    async fn submit_job(
        &self,
        Parameters(a): Parameters<SubmitJobArgs>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        let deliverable: B256 = match parse("deliverable", &a.deliverable) {
            Ok(v) => v,
            Err(e) => return Ok(e),
        };
        self.send(&Progress::of(&context), |f| {
            TxKind::SubmitJob(SubmitJob {
                from: f.from,
                jobId: a.job_id,
                deliverable,
                deliverableURI: a.deliverable_uri,
                nonce: f.nonce,
                fee: f.fee,
            })
        })
        .await
    }

    #[tool(
        description = "As a job's evaluator, accept the delivered work: the escrow pays the \
                          provider (needs the evaluator's key)."
    )]
    async fn complete_job(
        &self,
        Parameters(a): Parameters<DecideJobArgs>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        self.decide(
            a,
            &Progress::of(&context),
            |from, job_id, reason, nonce, fee| {
                TxKind::CompleteJob(CompleteJob {
                    from,
                    jobId: job_id,
                    reason,
                    nonce,
                    fee,
                })
            },
        )
        .await
    }

    #[tool(
        description = "As a job's evaluator, reject it (the client is refunded from escrow); \
                          as its client, cancel a job not yet funded."
    )]
    async fn reject_job(
        &self,
        Parameters(a): Parameters<DecideJobArgs>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        self.decide(
            a,
            &Progress::of(&context),
            |from, job_id, reason, nonce, fee| {
                TxKind::RejectJob(RejectJob {
                    from,
                    jobId: job_id,
                    reason,
                    nonce,
                    fee,
                })
            },
        )
        .await
    }
}

impl Server {
    /// Completes or rejects a job (`build` makes which) with the reason given.
    async fn decide(
        &self,
        a: DecideJobArgs,
        progress: &Progress,
        build: impl FnOnce(Address, u64, B256, u64, U256) -> TxKind,
    ) -> ToolResult {
        let reason = match reason(a.reason.as_deref()) {
            Ok(v) => v,
            Err(e) => return e,
        };
        self.send(progress, |f| {
            build(f.from, a.job_id, reason, f.nonce, f.fee)
        })
        .await
    }
}
