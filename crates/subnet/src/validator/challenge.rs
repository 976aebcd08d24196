//! Challenges: the requests a validator sends a miner, and the checks of each answer.
//!
//! A challenge is a chat request with a prompt from the shipped set (`crates/subnet/prompts.txt`)
//! or a generated one, seeded sampling with a fresh random seed, and a small `max_tokens`. Every
//! answer's receipt is checked without the model (signature by the miner's hotkey from the
//! metagraph, chain, subnet, model id, determinism profile, the hash of the request the validator
//! sent, token counts); a sample is re-executed locally ([`rerun`]) and its output token hash
//! compared exactly.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use alloy_primitives::{Address, B256};
use mycel_infer::receipt::token_ids_hash;
use mycel_infer::{
    CanonicalRequest, ChatMessage, Model, ReceiptBinding, ReceiptError, ReceiptJson,
    SamplingParams, SignedReceipt,
};
use rand::seq::SliceRandom;
use rand::Rng;
use serde::Serialize;

/// The prompt set shipped with mycel.
pub const SHIPPED_PROMPTS: &str = include_str!("../../prompts.txt");

/// The shipped prompts, without comments and blank lines.
pub fn shipped_prompts() -> Vec<&'static str> {
    SHIPPED_PROMPTS
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

const WORDS: &[&str] = &[
    "river", "lantern", "copper", "meadow", "falcon", "harbor", "violet", "glacier", "pepper",
    "canyon", "orbit", "willow", "marble", "thunder", "saffron", "compass",
];

/// A prompt nobody could have answered in advance: numbers and words drawn at random.
pub fn generated_prompt(rng: &mut impl Rng) -> String {
    let word = |rng: &mut dyn rand::RngCore| WORDS[rng.gen_range(0..WORDS.len())];
    match rng.gen_range(0..4) {
        0 => format!(
            "What is {} plus {}?",
            rng.gen_range(10..10_000),
            rng.gen_range(10..10_000)
        ),
        1 => format!(
            "Write a short sentence using the words {} and {}.",
            word(rng),
            word(rng)
        ),
        2 => format!(
            "Continue this list: {}, {}, {},",
            word(rng),
            word(rng),
            word(rng)
        ),
        _ => format!(
            "Count from {} to {}.",
            rng.gen_range(1..50),
            rng.gen_range(51..100)
        ),
    }
}

/// Builds `count` challenge requests: about half shipped prompts, half generated, each with a
/// fresh seed; greedy and sampled decoding alternate.
pub fn challenge_requests(
    count: usize,
    max_tokens: u32,
    rng: &mut impl Rng,
) -> Vec<CanonicalRequest> {
    let shipped = shipped_prompts();
    (0..count)
        .map(|i| {
            let prompt = match shipped.choose(rng) {
                Some(p) if i % 2 == 0 => (*p).to_string(),
                _ => generated_prompt(rng),
            };
            let params = SamplingParams {
                temperature: if i % 2 == 0 { 0.7 } else { 0.0 },
                top_p: 1.0,
                top_k: 0,
                seed: rng.gen(),
                max_tokens,
                stop: Vec::new(),
            };
            CanonicalRequest::chat(
                vec![ChatMessage {
                    role: "user".into(),
                    content: prompt,
                }],
                &params,
            )
        })
        .collect()
}

/// What the validator expects of every receipt.
#[derive(Debug, Clone)]
pub struct Expected {
    pub chain_id: u64,
    pub netuid: u16,
    /// The miner's hotkey in the metagraph: the only valid signer.
    pub hotkey: Address,
    pub model_id: B256,
}

/// Why an answer earns its miner nothing. Any one of these in a round sets the miner's weight to 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum Fault {
    /// The answer carries no receipt, or one that cannot be read.
    BadReceipt(String),
    /// The receipt is not signed by the miner's hotkey.
    BadSignature(String),
    /// The receipt names another model, chain, subnet or determinism profile.
    WrongModel(String),
    /// The receipt does not bind the request the validator sent, or its counts do not match.
    WrongRequest(String),
    /// The local re-execution gives other tokens or text than the miner returned.
    WrongOutput(String),
}

impl Fault {
    /// The fault's name in reports and metrics: `bad_receipt`, `bad_signature`, `wrong_model`,
    /// `wrong_request`, `wrong_output`.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::BadReceipt(_) => "bad_receipt",
            Fault::BadSignature(_) => "bad_signature",
            Fault::WrongModel(_) => "wrong_model",
            Fault::WrongRequest(_) => "wrong_request",
            Fault::WrongOutput(_) => "wrong_output",
        }
    }
}

/// One challenge's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub prompt: String,
    pub seed: u64,
    /// Milliseconds from sending the request to reading the whole answer.
    pub latency_ms: u64,
    pub output_tokens: u32,
    /// The failure that is not the miner's fault beyond being unavailable (timeout, HTTP error).
    pub error: Option<String>,
    pub fault: Option<Fault>,
    /// Whether this answer was re-executed locally (and matched, unless `fault` says otherwise).
    pub rerun: bool,
    #[serde(skip)]
    pub answer: Option<Answer>,
}

impl Outcome {
    pub fn succeeded(&self) -> bool {
        self.error.is_none() && self.fault.is_none()
    }

    pub fn tokens_per_second(&self) -> Option<f64> {
        (self.succeeded() && self.latency_ms > 0)
            .then(|| f64::from(self.output_tokens) * 1000.0 / self.latency_ms as f64)
    }
}

/// A checked answer, kept for re-execution.
#[derive(Debug, Clone)]
pub struct Answer {
    pub request: CanonicalRequest,
    pub receipt: SignedReceipt,
    pub text: String,
}

/// Sends one challenge to the miner at `endpoint` (`http://host:port`) and checks the answer's
/// receipt against `expected`. Does not re-execute.
pub async fn send_challenge(
    http: &reqwest::Client,
    endpoint: &str,
    model_name: &str,
    request: &CanonicalRequest,
    expected: &Expected,
    timeout: Duration,
) -> Outcome {
    let prompt = request
        .messages
        .first()
        .map(|m| m.content.clone())
        .unwrap_or_default();
    let mut outcome = Outcome {
        prompt,
        seed: request.seed,
        latency_ms: 0,
        output_tokens: 0,
        error: None,
        fault: None,
        rerun: false,
        answer: None,
    };
    let body = serde_json::json!({
        "model": model_name,
        "messages": request.messages,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "top_k": request.top_k,
        "seed": request.seed,
        "max_tokens": request.max_tokens,
    });
    let url = format!("{}/v1/chat/completions", endpoint.trim_end_matches('/'));
    let started = Instant::now();
    let response = http.post(&url).json(&body).timeout(timeout).send().await;
    let response = match response {
        Ok(r) => r,
        Err(e) => {
            outcome.error = Some(format!("no answer from {url}: {e}"));
            return outcome;
        }
    };
    let status = response.status();
    let text = response.text().await;
    outcome.latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let text = match text {
        Ok(t) => t,
        Err(e) => {
            outcome.error = Some(format!("{url}: the answer broke off: {e}"));
            return outcome;
        }
    };
    if !status.is_success() {
        outcome.error = Some(format!("{url} answered {status}: {}", clip(&text)));
        return outcome;
    }
    match check_answer(&text, request, expected) {
        Ok(answer) => {
            outcome.output_tokens = answer.receipt.receipt.outputTokenCount;
            outcome.answer = Some(answer);
        }
        Err(fault) => outcome.fault = Some(fault),
    }
    outcome
}

fn clip(text: &str) -> String {
    let mut clipped: String = text.chars().take(200).collect();
    if clipped.len() < text.len() {
        clipped.push('…');
    }
    clipped
}

/// A completion with its receipt, read: the JSON, the answer's text, the receipt as sent and as
/// signed (its request, if it carries one, checked against the signed request hash).
struct ReadAnswer {
    value: serde_json::Value,
    text: String,
    json: ReceiptJson,
    signed: SignedReceipt,
}

fn read_answer(body: &[u8]) -> Result<ReadAnswer, Fault> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| Fault::BadReceipt(format!("the answer is not JSON: {e}")))?;
    let text = value["choices"][0]["message"]["content"]
        .as_str()
        .ok_or_else(|| Fault::BadReceipt("the answer has no choices[0].message.content".into()))?
        .to_string();
    let receipt_value = value
        .get("receipt")
        .filter(|r| !r.is_null())
        .ok_or_else(|| Fault::BadReceipt("the answer carries no receipt".into()))?;
    let json: ReceiptJson = serde_json::from_value(receipt_value.clone())
        .map_err(|e| Fault::BadReceipt(format!("the receipt cannot be read: {e}")))?;
    let signed = match SignedReceipt::from_json(&json) {
        Ok(signed) => signed,
        Err(e @ ReceiptError::RequestMismatch { .. }) => {
            return Err(Fault::WrongRequest(e.to_string()))
        }
        Err(e) => return Err(Fault::BadReceipt(e.to_string())),
    };
    Ok(ReadAnswer {
        value,
        text,
        json,
        signed,
    })
}

/// The checks that need no model: the body is a completion with a receipt that `expected.hotkey`
/// signed, for this chain, subnet, model and profile, binding exactly `request`.
pub fn check_answer(
    body: &str,
    request: &CanonicalRequest,
    expected: &Expected,
) -> Result<Answer, Fault> {
    let ReadAnswer {
        value,
        text,
        json: _,
        signed,
    } = read_answer(body.as_bytes())?;
    signed
        .check_binding(&ReceiptBinding {
            miner: expected.hotkey,
            chain_id: expected.chain_id,
            netuid: expected.netuid,
            model_id: Some(expected.model_id),
        })
        .map_err(|e| {
            if e.is_signature() {
                Fault::BadSignature(e.to_string())
            } else {
                Fault::WrongModel(e.to_string())
            }
        })?;
    let r = &signed.receipt;
    let sent = request.hash();
    if r.requestHash != sent {
        return Err(Fault::WrongRequest(format!(
            "the receipt binds request {}, the validator sent {sent}",
            r.requestHash
        )));
    }
    if r.outputTokenCount == 0 || r.outputTokenCount > request.max_tokens {
        return Err(Fault::WrongRequest(format!(
            "{} output tokens for max_tokens {}",
            r.outputTokenCount, request.max_tokens
        )));
    }
    let usage = &value["usage"];
    if usage["completion_tokens"].as_u64() != Some(u64::from(r.outputTokenCount))
        || usage["prompt_tokens"].as_u64() != Some(u64::from(r.promptTokenCount))
    {
        return Err(Fault::WrongRequest(format!(
            "usage {usage} disagrees with the receipt's {} prompt and {} output tokens",
            r.promptTokenCount, r.outputTokenCount
        )));
    }
    Ok(Answer {
        request: request.clone(),
        receipt: signed,
        text,
    })
}

/// The checks that need no model for an answer nobody asked this validator for (a validation
/// request, a job's deliverable): a completion whose receipt carries its request, signed by the
/// miner it names, for `model_id` and this determinism profile. The request the receipt binds is
/// the one re-run.
pub fn check_standalone_answer(body: &[u8], model_id: B256) -> Result<Answer, Fault> {
    let ReadAnswer {
        value: _,
        text,
        json,
        signed,
    } = read_answer(body)?;
    let request = json
        .request
        .ok_or_else(|| Fault::BadReceipt("the receipt carries no request to re-run".into()))?;
    let r = &signed.receipt;
    match signed.recover_signer() {
        Ok(signer) if signer == r.miner => {}
        Ok(signer) => {
            return Err(Fault::BadSignature(format!(
                "signed by {signer}, not by the miner {} it names",
                r.miner
            )))
        }
        Err(e) => return Err(Fault::BadSignature(e.to_string())),
    }
    if r.modelId != model_id || r.determinismProfile != mycel_infer::DETERMINISM_PROFILE {
        return Err(Fault::WrongModel(format!(
            "the receipt is for model {} with profile {}; this validator runs {model_id} with {}",
            r.modelId,
            r.determinismProfile,
            mycel_infer::DETERMINISM_PROFILE
        )));
    }
    Ok(Answer {
        request,
        receipt: signed,
        text,
    })
}

/// Re-executes `answer`'s request on `model` and compares prompt and output token hashes and the
/// text exactly.
pub fn rerun(model: &Model, answer: &Answer) -> Result<(), Fault> {
    let generation = model
        .execute(&answer.request, &mut |_| ControlFlow::Continue(()))
        .map_err(|e| Fault::WrongRequest(format!("the request cannot be re-run: {e}")))?;
    let r = &answer.receipt.receipt;
    let prompt_hash = token_ids_hash(&generation.prompt_tokens);
    if prompt_hash != r.promptTokensHash {
        return Err(Fault::WrongOutput(format!(
            "the prompt tokens hash to {prompt_hash} here, the receipt says {}",
            r.promptTokensHash
        )));
    }
    let output_hash = token_ids_hash(&generation.output_tokens);
    if output_hash != r.outputTokensHash
        || generation.output_tokens.len() != r.outputTokenCount as usize
    {
        return Err(Fault::WrongOutput(format!(
            "the re-run gives {} tokens hashing to {output_hash}, the receipt claims {} tokens \
             hashing to {}",
            generation.output_tokens.len(),
            r.outputTokenCount,
            r.outputTokensHash
        )));
    }
    if generation.text != answer.text {
        return Err(Fault::WrongOutput(format!(
            "the re-run's text {:?} differs from the answer's {:?}",
            clip(&generation.text),
            clip(&answer.text)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn prompts_are_shipped_and_challenges_differ() {
        assert!(shipped_prompts().len() >= 20);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let a = challenge_requests(6, 12, &mut rng);
        let b = challenge_requests(6, 12, &mut rng);
        assert_eq!(a.len(), 6);
        assert!(a
            .iter()
            .all(|r| r.max_tokens == 12 && !r.messages.is_empty()));
        // Fresh seeds: no request repeats.
        let hashes: std::collections::BTreeSet<B256> =
            a.iter().chain(&b).map(CanonicalRequest::hash).collect();
        assert_eq!(hashes.len(), 12);
    }

    /// A completion body with a receipt for `request`, signed by `signer` and naming `miner`.
    fn answer_body(
        request: &CanonicalRequest,
        signer: &alloy_signer_local::PrivateKeySigner,
        miner: Address,
        model_id: B256,
        chain_id: u64,
        tweak: impl FnOnce(&mut mycel_infer::InferenceReceipt),
    ) -> String {
        let mut receipt = mycel_infer::InferenceReceipt {
            netuid: 1,
            miner,
            modelId: model_id,
            requestHash: request.hash(),
            promptTokensHash: token_ids_hash(&[1, 2, 3]),
            outputTokensHash: token_ids_hash(&[7, 8]),
            promptTokenCount: 3,
            outputTokenCount: 2,
            determinismProfile: mycel_infer::DETERMINISM_PROFILE.to_string(),
            blockHeight: 5,
        };
        tweak(&mut receipt);
        let signed = SignedReceipt::sign(receipt, chain_id, signer).expect("sign");
        serde_json::json!({
            "choices": [{"message": {"role": "assistant", "content": "hello"}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2},
            "receipt": signed.to_json(Some(request)),
        })
        .to_string()
    }

    #[test]
    fn receipts_are_checked_against_the_metagraph_model_and_request() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let request = challenge_requests(1, 8, &mut rng).remove(0);
        let miner = alloy_signer_local::PrivateKeySigner::random();
        let other = alloy_signer_local::PrivateKeySigner::random();
        let model_id = B256::repeat_byte(9);
        let expected = Expected {
            chain_id: 1337,
            netuid: 1,
            hotkey: miner.address(),
            model_id,
        };
        let ok = answer_body(&request, &miner, miner.address(), model_id, 1337, |_| {});
        let answer = check_answer(&ok, &request, &expected).expect("an honest receipt passes");
        assert_eq!(answer.text, "hello");
        assert_eq!(answer.receipt.receipt.outputTokenCount, 2);

        // Signed by a key that is not the miner's hotkey (naming either of them).
        for named in [miner.address(), other.address()] {
            let body = answer_body(&request, &other, named, model_id, 1337, |_| {});
            assert!(matches!(
                check_answer(&body, &request, &expected),
                Err(Fault::BadSignature(_))
            ));
        }
        // Another model, another chain, another profile.
        let body = answer_body(&request, &miner, miner.address(), B256::ZERO, 1337, |_| {});
        assert!(matches!(
            check_answer(&body, &request, &expected),
            Err(Fault::WrongModel(_))
        ));
        let body = answer_body(&request, &miner, miner.address(), model_id, 1, |_| {});
        assert!(matches!(
            check_answer(&body, &request, &expected),
            Err(Fault::WrongModel(_))
        ));
        let body = answer_body(&request, &miner, miner.address(), model_id, 1337, |r| {
            r.determinismProfile = "fast-simd".into()
        });
        assert!(matches!(
            check_answer(&body, &request, &expected),
            Err(Fault::WrongModel(_))
        ));
        // A receipt for another request (a cached answer), or with counts that disagree.
        let cached = challenge_requests(1, 8, &mut rng).remove(0);
        let body = answer_body(&cached, &miner, miner.address(), model_id, 1337, |_| {});
        assert!(matches!(
            check_answer(&body, &request, &expected),
            Err(Fault::WrongRequest(_))
        ));
        let body = answer_body(&request, &miner, miner.address(), model_id, 1337, |r| {
            r.outputTokenCount = 5
        });
        assert!(matches!(
            check_answer(&body, &request, &expected),
            Err(Fault::WrongRequest(_))
        ));
    }

    #[test]
    fn answers_without_a_valid_receipt_are_faults() {
        let request = challenge_requests(1, 8, &mut rand::thread_rng()).remove(0);
        let expected = Expected {
            chain_id: 1337,
            netuid: 1,
            hotkey: Address::repeat_byte(1),
            model_id: B256::repeat_byte(2),
        };
        let no_receipt = r#"{"choices":[{"message":{"content":"hi"}}],"usage":{}}"#;
        assert!(matches!(
            check_answer(no_receipt, &request, &expected),
            Err(Fault::BadReceipt(_))
        ));
        assert!(matches!(
            check_answer("not json", &request, &expected),
            Err(Fault::BadReceipt(_))
        ));
    }
}
