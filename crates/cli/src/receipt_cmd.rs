//! `mycel receipt verify`: check an inference receipt's signature and, with `--rerun`, re-execute
//! its request locally and compare the output token hash (docs/receipts.md).

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use mycel_infer::receipt::token_ids_hash;
use mycel_infer::{ReceiptJson, SignedReceipt, DETERMINISM_PROFILE};

#[derive(Debug, Subcommand)]
pub enum ReceiptCommand {
    /// Check a receipt: the miner's signature, the request hash, and with --rerun the output.
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
#[command(
    after_help = "FILE is a receipt's JSON form, or a whole (non-streamed) completion \
    response from a miner, which carries the receipt in its `receipt` field; - reads standard input.\n\n\
    Exit status 0: the receipt is valid (and with --rerun, the output reproduced exactly).\n\
    Exit status 1: it is not, or it could not be checked; the last line says why.\n\n\
    Examples:\n  \
      curl -s http://127.0.0.1:8000/v1/chat/completions -H 'content-type: application/json' \\\n    \
      -d '{\"model\": \"SmolLM2-135M-Instruct.Q4_1\", \"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"max_tokens\": 8}' > answer.json\n  \
      mycel receipt verify answer.json --rerun"
)]
pub struct VerifyArgs {
    /// The receipt (or completion response) JSON file; - for standard input.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Re-run the request with the local model and compare the prompt and output token hashes.
    #[arg(long)]
    pub rerun: bool,
    /// The GGUF model to re-run with [default: the pinned model the receipt names (SmolLM2 or
    /// Gemma 3 270M, fetched on first use)]. Its SHA-256 must be the receipt's modelId.
    #[arg(long, env = "MYCEL_MODEL", value_name = "GGUF")]
    pub model: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(command: ReceiptCommand) -> Result<()> {
    match command {
        ReceiptCommand::Verify(args) => verify(args),
    }
}

fn read_input(file: &Path) -> Result<String> {
    if file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the receipt from standard input")?;
        return Ok(text);
    }
    std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))
}

/// Finds the receipt: the document itself, or its `receipt` field (a completion response).
fn parse_receipt(text: &str, file: &Path) -> Result<ReceiptJson> {
    let value: serde_json::Value =
        serde_json::from_str(text).with_context(|| format!("{} is not JSON", file.display()))?;
    let receipt = match value.get("receipt") {
        Some(inner) if value.get("type").is_none() => inner.clone(),
        _ => value,
    };
    serde_json::from_value(receipt).map_err(|e| {
        anyhow!(
            "{} holds no receipt ({e}): expected {{\"chainId\", \"type\": \"InferenceReceipt\", \
             \"message\", \"signature\"}} or a completion response with a `receipt` field",
            file.display()
        )
    })
}

/// The outcome of each check, for the report and --json.
#[derive(Default, serde::Serialize)]
struct Report {
    valid: bool,
    chain_id: u64,
    netuid: u16,
    miner: String,
    signer: Option<String>,
    block_height: u64,
    model_id: String,
    determinism_profile: String,
    checks: Vec<Check>,
    verdict: String,
}

#[derive(serde::Serialize)]
struct Check {
    name: &'static str,
    ok: bool,
    detail: String,
}

impl Report {
    fn check(&mut self, name: &'static str, ok: bool, detail: impl Into<String>) -> bool {
        self.checks.push(Check {
            name,
            ok,
            detail: detail.into(),
        });
        ok
    }
}

fn verify(args: VerifyArgs) -> Result<()> {
    let text = read_input(&args.file)?;
    let json = parse_receipt(&text, &args.file)?;
    let mut report = Report {
        chain_id: json.chain_id,
        ..Report::default()
    };
    let outcome = run_checks(&args, &json, &mut report);
    let outcome = match outcome {
        Ok(()) if report.checks.iter().all(|c| c.ok) => {
            report.valid = true;
            report.verdict = if args.rerun {
                "VALID: signed by the miner it names, and a local re-run reproduces the output exactly"
                    .into()
            } else {
                "VALID: signed by the miner it names (output not re-run; add --rerun to check it)"
                    .into()
            };
            Ok(())
        }
        Ok(()) => {
            let failed: Vec<String> = report
                .checks
                .iter()
                .filter(|c| !c.ok)
                .map(|c| format!("{}: {}", c.name, c.detail))
                .collect();
            report.verdict = format!("INVALID: {}", failed.join("; "));
            Err(anyhow!("{}", report.verdict))
        }
        Err(e) => {
            report.verdict = format!("INVALID: {e:#}");
            Err(e)
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    outcome
}

fn run_checks(args: &VerifyArgs, json: &ReceiptJson, report: &mut Report) -> Result<()> {
    // A request that does not hash to the signed requestHash is reported as a failed check, with the
    // rest of the receipt still read.
    let (signed, request_ok) = match SignedReceipt::from_json(json) {
        Ok(signed) => (signed, json.request.is_some()),
        Err(mycel_infer::ReceiptError::RequestMismatch { signed, actual }) => {
            let mut without = json.clone();
            without.request = None;
            let receipt = SignedReceipt::from_json(&without)?;
            report.check(
                "request",
                false,
                format!(
                    "the request hashes to {actual}, but the miner signed {signed}: it was altered"
                ),
            );
            (receipt, false)
        }
        Err(e) => return Err(e.into()),
    };
    let r = &signed.receipt;
    report.netuid = r.netuid;
    report.miner = r.miner.to_checksum(None);
    report.block_height = r.blockHeight;
    report.model_id = r.modelId.to_string();
    report.determinism_profile = r.determinismProfile.clone();

    match signed.recover_signer() {
        Ok(signer) => {
            report.signer = Some(signer.to_checksum(None));
            let ok = signer == r.miner;
            report.check(
                "signature",
                ok,
                if ok {
                    format!("signed by the miner {}", r.miner.to_checksum(None))
                } else {
                    format!(
                        "signed by {}, not by the miner {} it names: forged or altered after signing",
                        signer.to_checksum(None),
                        r.miner.to_checksum(None)
                    )
                },
            );
        }
        Err(e) => {
            report.check("signature", false, e.to_string());
        }
    }
    if request_ok {
        report.check(
            "request",
            true,
            "the request hashes to the signed requestHash",
        );
    }
    if !args.rerun {
        return Ok(());
    }

    let Some(request) = &json.request else {
        bail!(
            "the receipt carries no `request`, so it cannot be re-run: use the whole completion \
             response (or a receipt JSON with its request) from the miner"
        );
    };
    if !report.checks.iter().all(|c| c.ok) {
        // Re-running a request whose receipt is already invalid proves nothing more.
        return Ok(());
    }
    if r.determinismProfile != DETERMINISM_PROFILE {
        report.check(
            "profile",
            false,
            format!(
                "the receipt was made with determinism profile `{}`, this mycel runs `{DETERMINISM_PROFILE}`: \
                 re-run it with a mycel of that profile",
                r.determinismProfile
            ),
        );
        return Ok(());
    }
    // Without --model: the pinned model the receipt names, if it is one (fetched on first use).
    let say = crate::logging::Say::Console;
    let path = match &args.model {
        Some(path) => Some(path.clone()),
        None => crate::miner_cmd::pinned_model_file(r.modelId, &say)?,
    };
    let model = crate::miner_cmd::load_model(path.as_ref(), &say)?;
    let local_id = alloy_primitives::B256::from(model.id().0);
    if local_id != r.modelId {
        bail!(
            "the receipt's model is {}, but the local model {} is {local_id}: pass the same GGUF file with --model",
            r.modelId,
            model.info().path
        );
    }
    let generation = model
        .execute(request, &mut |_| std::ops::ControlFlow::Continue(()))
        .context("re-running the request")?;
    let prompt_hash = token_ids_hash(&generation.prompt_tokens);
    report.check(
        "prompt tokens",
        prompt_hash == r.promptTokensHash
            && generation.prompt_tokens.len() == r.promptTokenCount as usize,
        format!(
            "{} tokens, hash {prompt_hash} (receipt: {} tokens, {})",
            generation.prompt_tokens.len(),
            r.promptTokenCount,
            r.promptTokensHash
        ),
    );
    let output_hash = token_ids_hash(&generation.output_tokens);
    let output_ok = output_hash == r.outputTokensHash
        && generation.output_tokens.len() == r.outputTokenCount as usize;
    report.check(
        "output tokens",
        output_ok,
        if output_ok {
            format!(
                "{} tokens, hash {output_hash}, identical",
                generation.output_tokens.len()
            )
        } else {
            format!(
                "the re-run gives {} tokens with hash {output_hash}, the receipt claims {} tokens with \
                 hash {}: the miner's output is not what this model computes for this request",
                generation.output_tokens.len(),
                r.outputTokenCount,
                r.outputTokensHash
            )
        },
    );
    Ok(())
}

fn print_report(report: &Report) {
    println!(
        "receipt    chain {}, subnet {}, block {}, profile {}",
        report.chain_id, report.netuid, report.block_height, report.determinism_profile
    );
    println!("model      {}", report.model_id);
    println!("miner      {}", report.miner);
    for check in &report.checks {
        let mark = if check.ok { "ok  " } else { "FAIL" };
        println!("{mark}       {}: {}", check.name, check.detail);
    }
    println!("{}", report.verdict);
}
