//! The canonical request a receipt binds: which API, the messages or prompt, and every sampling
//! setting with its default filled in.

use alloy_primitives::B256;
use alloy_sol_types::SolStruct;
use serde::{Deserialize, Serialize};

use super::{eip712, receipt_domain};
use crate::eip712::typed_data_types;

/// One chat message. `role` is free text (`system`, `user`, `assistant`, ...), as in ChatML.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }

    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }

    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }

    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
}

/// Decoding settings of one request. Every field is part of what a receipt must bind; the model
/// runtime's sampler (crates/infer) gives them their meaning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplingParams {
    /// 0 means greedy.
    pub temperature: f32,
    /// Nucleus sampling mass in (0, 1]; 1 disables it.
    pub top_p: f32,
    /// Keep only the k most likely tokens; 0 disables it.
    pub top_k: u32,
    pub seed: u64,
    /// Most tokens to sample (the end-of-generation token counts).
    pub max_tokens: u32,
    /// Generation ends when the text contains one of these; the text is cut before it.
    pub stop: Vec<String>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 0.0,
            top_p: 1.0,
            top_k: 0,
            seed: 0,
            max_tokens: 256,
            stop: Vec::new(),
        }
    }
}

/// A sampling setting outside its range; the message names it and the value given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidSampling(pub String);

impl SamplingParams {
    /// Greedy decoding of at most `max_tokens` tokens.
    pub fn greedy(max_tokens: u32) -> Self {
        Self {
            max_tokens,
            ..Self::default()
        }
    }

    pub fn validate(&self) -> Result<(), InvalidSampling> {
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(InvalidSampling(format!(
                "temperature must be a finite number >= 0, got {}",
                self.temperature
            )));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(InvalidSampling(format!(
                "top_p must be in (0, 1], got {}",
                self.top_p
            )));
        }
        if self.stop.iter().any(String::is_empty) {
            return Err(InvalidSampling("stop sequences must not be empty".into()));
        }
        Ok(())
    }
}

/// Which API a request came through; it decides how the prompt is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Endpoint {
    /// `POST /v1/chat/completions`: the messages rendered with the model's chat template.
    #[serde(rename = "chat.completions")]
    ChatCompletions,
    /// `POST /v1/completions`: the prompt text as it is.
    #[serde(rename = "completions")]
    Completions,
}

impl Endpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "chat.completions",
            Endpoint::Completions => "completions",
        }
    }
}

/// A request with every setting explicit: what a miner executes and a verifier re-executes.
///
/// JSON form (the `request` field of a receipt's JSON):
/// `{"endpoint": "chat.completions", "messages": [{"role", "content"}], "prompt": "",
///   "temperature": 0.7, "top_p": 1.0, "top_k": 0, "seed": 42, "max_tokens": 16, "stop": []}`.
/// The floats are binary32 values; their JSON text is the shortest that reads back to the same bits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanonicalRequest {
    pub endpoint: Endpoint,
    /// The chat messages (empty for `completions`).
    pub messages: Vec<ChatMessage>,
    /// The prompt text (empty for `chat.completions`).
    pub prompt: String,
    pub temperature: f32,
    pub top_p: f32,
    pub top_k: u32,
    pub seed: u64,
    pub max_tokens: u32,
    pub stop: Vec<String>,
}

impl CanonicalRequest {
    /// A chat request with these messages and settings.
    pub fn chat(messages: Vec<ChatMessage>, params: &SamplingParams) -> Self {
        Self::new(Endpoint::ChatCompletions, messages, String::new(), params)
    }

    /// A plain-text completion request.
    pub fn completion(prompt: String, params: &SamplingParams) -> Self {
        Self::new(Endpoint::Completions, Vec::new(), prompt, params)
    }

    fn new(
        endpoint: Endpoint,
        messages: Vec<ChatMessage>,
        prompt: String,
        params: &SamplingParams,
    ) -> Self {
        Self {
            endpoint,
            messages,
            prompt,
            temperature: params.temperature,
            top_p: params.top_p,
            top_k: params.top_k,
            seed: params.seed,
            max_tokens: params.max_tokens,
            stop: params.stop.clone(),
        }
    }

    pub fn sampling(&self) -> SamplingParams {
        SamplingParams {
            temperature: self.temperature,
            top_p: self.top_p,
            top_k: self.top_k,
            seed: self.seed,
            max_tokens: self.max_tokens,
            stop: self.stop.clone(),
        }
    }

    /// The request as the EIP-712 struct whose `hashStruct` is the receipt's `requestHash`.
    pub fn to_eip712(&self) -> eip712::InferenceRequest {
        eip712::InferenceRequest {
            endpoint: self.endpoint.as_str().to_string(),
            messages: self
                .messages
                .iter()
                .map(|m| eip712::Message {
                    role: m.role.clone(),
                    content: m.content.clone(),
                })
                .collect(),
            prompt: self.prompt.clone(),
            temperature: self.temperature.to_bits(),
            topP: self.top_p.to_bits(),
            topK: self.top_k,
            seed: self.seed,
            maxTokens: self.max_tokens,
            stop: self.stop.clone(),
        }
    }

    /// `hashStruct(InferenceRequest)` as EIP-712 defines it.
    pub fn hash(&self) -> B256 {
        self.to_eip712().eip712_hash_struct()
    }

    /// The EIP-712 typed-data JSON of the request (domain of `chain_id`), so a library that only
    /// exposes "hash typed data" can compute `hashStruct` through it.
    pub fn typed_data(&self, chain_id: u64) -> serde_json::Value {
        serde_json::json!({
            "domain": super::domain_json(chain_id),
            "types": typed_data_types::<eip712::InferenceRequest>(&receipt_domain(chain_id)),
            "primaryType": "InferenceRequest",
            "message": {
                "endpoint": self.endpoint.as_str(),
                "messages": self.messages.iter()
                    .map(|m| serde_json::json!({"role": m.role, "content": m.content}))
                    .collect::<Vec<_>>(),
                "prompt": self.prompt,
                "temperature": self.temperature.to_bits(),
                "topP": self.top_p.to_bits(),
                "topK": self.top_k,
                "seed": self.seed,
                "maxTokens": self.max_tokens,
                "stop": self.stop,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_settings_are_rejected() {
        assert!(SamplingParams::default().validate().is_ok());
        for bad in [
            SamplingParams {
                top_p: 0.0,
                ..SamplingParams::default()
            },
            SamplingParams {
                temperature: -1.0,
                ..SamplingParams::default()
            },
            SamplingParams {
                temperature: f32::NAN,
                ..SamplingParams::default()
            },
            SamplingParams {
                stop: vec![String::new()],
                ..SamplingParams::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sampling_settings_round_trip() {
        let params = SamplingParams {
            temperature: 0.7,
            top_p: 0.9,
            top_k: 40,
            seed: 42,
            max_tokens: 16,
            stop: vec!["\n\n".into()],
        };
        let request = CanonicalRequest::completion("x".into(), &params);
        assert_eq!(request.sampling(), params);
        assert_eq!(request.endpoint, Endpoint::Completions);
        assert!(request.messages.is_empty());
    }
}
