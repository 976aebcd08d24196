//! Reading requests: the body into a [`ParsedRequest`], then its admission on a model.
//!
//! Defaults follow OpenAI's API where it has one (temperature 1, top_p 1, `max_tokens` 16 for
//! `/v1/completions`); mycel adds `top_k` (default 0, off) and fills `seed` with 0 when none is
//! given, so that every request is reproducible and its receipt re-runnable.

use mycel_tokenizer::{PromptFormat, TokenizerError};
use mycel_types::receipt::{CanonicalRequest, ChatMessage, Endpoint, SamplingParams};
use serde::Deserialize;

use crate::error::ApiError;

/// Whether a parameter's value is its no-op (the value at which mycel may accept it).
type IsNoOp = fn(&serde_json::Value) -> bool;

/// The most stop sequences a request may give (OpenAI's limit).
pub const MAX_STOP_SEQUENCES: usize = 4;

/// OpenAI's default `max_tokens` for `/v1/completions`.
pub const DEFAULT_COMPLETION_MAX_TOKENS: u32 = 16;

/// Limits a server puts on requests.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest `max_tokens` accepted.
    pub max_tokens: u32,
    /// `max_tokens` of a chat request that gives none (cut to what the context has left).
    pub default_chat_max_tokens: u32,
}

/// A request read from the wire, before its prompt is tokenized.
#[derive(Debug, Clone)]
pub struct ParsedRequest {
    pub model: String,
    pub endpoint: Endpoint,
    /// The chat messages (empty for completions).
    pub messages: Vec<ChatMessage>,
    /// The prompt text (empty for chat).
    pub prompt: String,
    /// Every sampling setting; `max_tokens` is the requested one or the default.
    pub sampling: SamplingParams,
    /// Whether the client asked for a number of tokens (else `sampling.max_tokens` is a default,
    /// cut to the context's room on admission).
    pub max_tokens_requested: bool,
    pub stream: bool,
    /// `stream_options.include_usage`: send a last chunk with the token usage.
    pub include_usage: bool,
}

/// A request admitted on a model: its canonical form (what runs and what the receipt binds) and
/// its prompt tokens.
#[derive(Debug, Clone)]
pub struct Admitted {
    pub model: String,
    pub request: CanonicalRequest,
    pub prompt_tokens: Vec<u32>,
    pub stream: bool,
    pub include_usage: bool,
}

impl ParsedRequest {
    /// Tokenizes the prompt with the model's `format` and decides the answer's token limit:
    /// the request's own if prompt and output fit the context (else 400
    /// `context_length_exceeded`), or the default cut to the context's room.
    pub fn admit(self, format: &PromptFormat) -> Result<Admitted, ApiError> {
        let context = format.context_length();
        let param = match self.endpoint {
            Endpoint::ChatCompletions => "messages",
            Endpoint::Completions => "prompt",
        };
        let requested = self.sampling.max_tokens as usize;
        let room_for_prompt = if self.max_tokens_requested {
            context.saturating_sub(requested)
        } else {
            context.saturating_sub(1)
        };
        let mut request = match self.endpoint {
            Endpoint::ChatCompletions => CanonicalRequest::chat(self.messages, &self.sampling),
            Endpoint::Completions => CanonicalRequest::completion(self.prompt, &self.sampling),
        };
        let prompt_tokens = format
            .request_tokens(&request, room_for_prompt)
            .map_err(|error| match error {
                TokenizerError::PromptOverLimit { .. } if self.max_tokens_requested => {
                    ApiError::invalid(
                        Some(param),
                        "context_length_exceeded",
                        format!(
                            "This model's maximum context length is {context} tokens. However, \
                             you requested more: over {room_for_prompt} tokens in the {param} and \
                             {requested} in the completion. Please reduce the length of the \
                             {param} or max_tokens."
                        ),
                    )
                }
                TokenizerError::PromptOverLimit { .. } => ApiError::invalid(
                    Some(param),
                    "context_length_exceeded",
                    format!(
                        "This model's maximum context length is {context} tokens, and the \
                         {param} alone have more than {room_for_prompt}. Please reduce the \
                         length of the {param}."
                    ),
                ),
                TokenizerError::UnsupportedChatTemplate => ApiError::invalid(
                    Some("messages"),
                    "unsupported_model",
                    "This model has no ChatML chat template; use /v1/completions.",
                ),
                other => ApiError::internal(format!("the prompt cannot be tokenized: {other}")),
            })?;
        if !self.max_tokens_requested {
            let room = context.saturating_sub(prompt_tokens.len());
            request.max_tokens = request
                .max_tokens
                .min(u32::try_from(room).unwrap_or(u32::MAX));
        }
        Ok(Admitted {
            model: self.model,
            request,
            prompt_tokens,
            stream: self.stream,
            include_usage: self.include_usage,
        })
    }
}

impl Admitted {
    /// `body` (the request as the client sent it) with the output limit written explicitly:
    /// `max_tokens` set to what was admitted, `max_completion_tokens` removed. A gateway sends
    /// this upstream, so the server it forwards to generates at most what was priced.
    pub fn forward_body(&self, body: &[u8]) -> Vec<u8> {
        let Ok(serde_json::Value::Object(mut fields)) = serde_json::from_slice(body) else {
            return body.to_vec();
        };
        fields.remove("max_completion_tokens");
        fields.insert("max_tokens".into(), self.request.max_tokens.into());
        serde_json::to_vec(&fields).unwrap_or_else(|_| body.to_vec())
    }
}

/// The output limit a body asks for: `max_completion_tokens` or `max_tokens` (OpenAI's newer and
/// older names); both given with different values is an error, since a server reading one and a
/// gateway pricing the other would disagree.
fn requested(fields: &Fields) -> Result<Option<u32>, ApiError> {
    let newer = fields.get::<u32>("max_completion_tokens")?;
    let older = fields.get::<u32>("max_tokens")?;
    match (newer, older) {
        (Some(a), Some(b)) if a != b => Err(ApiError::invalid(
            Some("max_tokens"),
            "invalid_value",
            format!("max_tokens ({b}) and max_completion_tokens ({a}) disagree; give one of them."),
        )),
        (Some(a), _) => Ok(Some(a)),
        (None, b) => Ok(b),
    }
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct ContentPart {
    #[serde(rename = "type")]
    part_type: String,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Deserialize)]
struct WireMessage {
    role: String,
    #[serde(default)]
    content: Option<Content>,
}

/// The fields of a JSON object body, read one by one so that an error names its parameter.
struct Fields(serde_json::Map<String, serde_json::Value>);

impl Fields {
    /// Parses the body as a JSON object.
    fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
            ApiError::invalid(
                None,
                "invalid_json",
                format!(
                    "The request body is not valid JSON ({e}). Send a JSON object with \
                     Content-Type: application/json."
                ),
            )
        })?;
        match value {
            serde_json::Value::Object(map) => Ok(Self(map)),
            _ => Err(ApiError::invalid(
                None,
                "invalid_json",
                "The request body must be a JSON object.",
            )),
        }
    }

    /// The field `name`; absent and `null` are `None`.
    fn get<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<Option<T>, ApiError> {
        let value = match self.0.get(name) {
            None | Some(serde_json::Value::Null) => return Ok(None),
            Some(value) => value.clone(),
        };
        serde_path_to_error::deserialize(value)
            .map(Some)
            .map_err(|e| {
                let inner = e.path().to_string();
                let param = if inner == "." {
                    name.to_string()
                } else if inner.starts_with('[') {
                    format!("{name}{inner}")
                } else {
                    format!("{name}.{inner}")
                };
                ApiError::invalid(
                    Some(&param),
                    "invalid_type",
                    format!("Invalid value for `{param}`: {}", e.inner()),
                )
            })
    }

    /// Refuses every field that is not in `supported` or given at its no-op value in
    /// `no_op_unless` (a parameter mycel does not implement is refused, never ignored).
    fn check_known(
        &self,
        supported: &[&str],
        no_op_unless: &[(&str, IsNoOp)],
    ) -> Result<(), ApiError> {
        for (name, value) in &self.0 {
            if supported.contains(&name.as_str()) {
                continue;
            }
            match no_op_unless.iter().find(|(known, _)| known == name) {
                Some((_, is_no_op)) if value.is_null() || is_no_op(value) => {}
                Some(_) => {
                    return Err(ApiError::invalid(
                        Some(name),
                        "unsupported_parameter",
                        format!(
                            "`{name}` is not supported by mycel miners (answers are plain text \
                             from a deterministic sampler); remove it from the request."
                        ),
                    ))
                }
                None => {
                    return Err(ApiError::invalid(
                        Some(name),
                        "unknown_parameter",
                        format!("Unrecognized request argument supplied: {name}"),
                    ))
                }
            }
        }
        Ok(())
    }
}

fn is_zero(v: &serde_json::Value) -> bool {
    v.as_f64() == Some(0.0)
}
fn is_empty(v: &serde_json::Value) -> bool {
    v.as_array().is_some_and(Vec::is_empty) || v.as_object().is_some_and(|o| o.is_empty())
}
fn is_none_choice(v: &serde_json::Value) -> bool {
    v.as_str() == Some("none")
}
fn is_text_format(v: &serde_json::Value) -> bool {
    v.get("type").and_then(serde_json::Value::as_str) == Some("text")
}
fn is_text_modality(v: &serde_json::Value) -> bool {
    v.as_array()
        .is_some_and(|m| m.iter().all(|x| x.as_str() == Some("text")))
}
fn is_bool(v: &serde_json::Value) -> bool {
    v.is_boolean()
}
fn never(_: &serde_json::Value) -> bool {
    false
}

/// Settings both endpoints take, and the ones they accept only as no-ops.
const SHARED: &[&str] = &[
    "model",
    "temperature",
    "top_p",
    "top_k",
    "seed",
    "max_tokens",
    "stop",
    "n",
    "stream",
    "stream_options",
    "logprobs",
    "user",
];
type NoOp = (&'static str, fn(&serde_json::Value) -> bool);
const SHARED_NO_OPS: &[NoOp] = &[
    ("frequency_penalty", is_zero),
    ("presence_penalty", is_zero),
    ("logit_bias", is_empty),
];
const CHAT: &[&str] = &[
    "messages",
    "max_completion_tokens",
    // Bookkeeping for OpenAI's own platform; nothing to do here.
    "metadata",
    "store",
    "service_tier",
    "safety_identifier",
    "prompt_cache_key",
];
const CHAT_NO_OPS: &[NoOp] = &[
    ("tools", is_empty),
    ("tool_choice", is_none_choice),
    ("functions", is_empty),
    ("function_call", is_none_choice),
    ("parallel_tool_calls", is_bool),
    ("response_format", is_text_format),
    ("top_logprobs", is_zero),
    ("modalities", is_text_modality),
    ("audio", never),
    ("prediction", never),
    ("reasoning_effort", never),
    ("verbosity", never),
    ("web_search_options", never),
];
const COMPLETION: &[&str] = &["prompt", "echo", "suffix", "best_of"];

/// Settings both endpoints share.
struct WireSampling {
    temperature: Option<f64>,
    top_p: Option<f64>,
    top_k: Option<u32>,
    seed: Option<u64>,
    stop: Option<Stop>,
    n: Option<u32>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
}

impl WireSampling {
    fn read(fields: &Fields) -> Result<Self, ApiError> {
        Ok(Self {
            temperature: fields.get("temperature")?,
            top_p: fields.get("top_p")?,
            top_k: fields.get("top_k")?,
            seed: fields.get("seed")?,
            stop: fields.get("stop")?,
            n: fields.get("n")?,
            stream: fields.get("stream")?,
            stream_options: fields.get("stream_options")?,
        })
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Prompt {
    One(String),
    Many(Vec<serde_json::Value>),
}

fn model_name(model: Option<String>) -> Result<String, ApiError> {
    match model {
        Some(m) if !m.is_empty() => Ok(m),
        _ => Err(ApiError::invalid(
            Some("model"),
            "missing_required_parameter",
            "You must provide a model parameter (GET /v1/models lists the served model).",
        )),
    }
}

fn sampling(
    wire: &WireSampling,
    max_tokens: Option<u32>,
    default_max_tokens: u32,
    limits: &Limits,
) -> Result<SamplingParams, ApiError> {
    if let Some(n) = wire.n {
        if n != 1 {
            return Err(ApiError::invalid(
                Some("n"),
                "unsupported_value",
                format!("n = {n} is not supported: a miner returns exactly one choice (n = 1)."),
            ));
        }
    }
    let temperature = wire.temperature.unwrap_or(1.0);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(ApiError::invalid(
            Some("temperature"),
            "invalid_value",
            format!("temperature must be between 0 and 2, got {temperature}."),
        ));
    }
    let top_p = wire.top_p.unwrap_or(1.0);
    if !(top_p > 0.0 && top_p <= 1.0) {
        return Err(ApiError::invalid(
            Some("top_p"),
            "invalid_value",
            format!("top_p must be greater than 0 and at most 1, got {top_p}."),
        ));
    }
    let max_tokens = max_tokens.unwrap_or(default_max_tokens.min(limits.max_tokens));
    if max_tokens == 0 {
        return Err(ApiError::invalid(
            Some("max_tokens"),
            "invalid_value",
            "max_tokens must be at least 1.",
        ));
    }
    if max_tokens > limits.max_tokens {
        return Err(ApiError::invalid(
            Some("max_tokens"),
            "max_tokens_exceeded",
            format!(
                "max_tokens is {max_tokens}, but this server generates at most {} tokens per \
                 request. Lower max_tokens.",
                limits.max_tokens
            ),
        ));
    }
    let stop = match &wire.stop {
        None => Vec::new(),
        Some(Stop::One(s)) => vec![s.clone()],
        Some(Stop::Many(v)) => v.clone(),
    };
    if stop.len() > MAX_STOP_SEQUENCES {
        return Err(ApiError::invalid(
            Some("stop"),
            "invalid_value",
            format!(
                "At most {MAX_STOP_SEQUENCES} stop sequences are allowed, got {}.",
                stop.len()
            ),
        ));
    }
    if stop.iter().any(String::is_empty) {
        return Err(ApiError::invalid(
            Some("stop"),
            "invalid_value",
            "Stop sequences must not be empty strings.",
        ));
    }
    Ok(SamplingParams {
        // The sampler works in binary32; the receipt binds exactly these values.
        temperature: temperature as f32,
        top_p: top_p as f32,
        top_k: wire.top_k.unwrap_or(0),
        seed: wire.seed.unwrap_or(0),
        max_tokens,
        stop,
    })
}

fn stream_flags(wire: &WireSampling) -> (bool, bool) {
    let stream = wire.stream.unwrap_or(false);
    let usage = wire
        .stream_options
        .as_ref()
        .and_then(|o| o.include_usage)
        .unwrap_or(false);
    (stream, usage)
}

fn known(endpoint: &[&'static str]) -> Vec<&'static str> {
    SHARED.iter().chain(endpoint).copied().collect()
}

/// Reads a `POST /v1/chat/completions` body.
pub fn parse_chat(body: &[u8], limits: &Limits) -> Result<ParsedRequest, ApiError> {
    let fields = Fields::parse(body)?;
    let no_ops: Vec<NoOp> = SHARED_NO_OPS.iter().chain(CHAT_NO_OPS).copied().collect();
    fields.check_known(&known(CHAT), &no_ops)?;
    let model = model_name(fields.get("model")?)?;
    let sampling_fields = WireSampling::read(&fields)?;
    let wire_messages: Vec<WireMessage> = fields.get("messages")?.ok_or_else(|| {
        ApiError::invalid(
            Some("messages"),
            "missing_required_parameter",
            "You must provide messages: a non-empty array of {role, content}.",
        )
    })?;
    if wire_messages.is_empty() {
        return Err(ApiError::invalid(
            Some("messages"),
            "empty_array",
            "messages must not be empty: give at least one message.",
        ));
    }
    if fields.get::<bool>("logprobs")? == Some(true) {
        return Err(ApiError::invalid(
            Some("logprobs"),
            "unsupported_value",
            "logprobs are not supported by mycel miners.",
        ));
    }
    let mut messages = Vec::with_capacity(wire_messages.len());
    for (i, m) in wire_messages.into_iter().enumerate() {
        messages.push(ChatMessage::new(role(i, m.role)?, content(i, m.content)?));
    }
    let requested = requested(&fields)?;
    let params = sampling(
        &sampling_fields,
        requested,
        limits.default_chat_max_tokens,
        limits,
    )?;
    let (stream, include_usage) = stream_flags(&sampling_fields);
    Ok(ParsedRequest {
        model,
        endpoint: Endpoint::ChatCompletions,
        messages,
        prompt: String::new(),
        sampling: params,
        max_tokens_requested: requested.is_some(),
        stream,
        include_usage,
    })
}

fn role(i: usize, role: String) -> Result<String, ApiError> {
    match role.as_str() {
        "system" | "user" | "assistant" => Ok(role),
        // OpenAI's newer name for the system role.
        "developer" => Ok("system".to_string()),
        other => Err(ApiError::invalid(
            Some(&format!("messages[{i}].role")),
            "invalid_value",
            format!("Role `{other}` is not supported; use system, developer, user or assistant."),
        )),
    }
}

fn content(i: usize, content: Option<Content>) -> Result<String, ApiError> {
    Ok(match content {
        None => String::new(),
        Some(Content::Text(text)) => text,
        Some(Content::Parts(parts)) => {
            let mut text = String::new();
            for (j, part) in parts.into_iter().enumerate() {
                match (part.part_type.as_str(), part.text) {
                    ("text", Some(t)) => text.push_str(&t),
                    _ => {
                        return Err(ApiError::invalid(
                            Some(&format!("messages[{i}].content[{j}]")),
                            "invalid_value",
                            "Only text content parts ({\"type\": \"text\", \"text\": ...}) are \
                             supported.",
                        ))
                    }
                }
            }
            text
        }
    })
}

/// Reads a `POST /v1/completions` body.
pub fn parse_completion(body: &[u8], limits: &Limits) -> Result<ParsedRequest, ApiError> {
    let fields = Fields::parse(body)?;
    fields.check_known(&known(COMPLETION), SHARED_NO_OPS)?;
    let model = model_name(fields.get("model")?)?;
    let sampling_fields = WireSampling::read(&fields)?;
    let prompt = match fields.get::<Prompt>("prompt")? {
        Some(Prompt::One(p)) => p,
        Some(Prompt::Many(items)) => match items.as_slice() {
            [serde_json::Value::String(p)] => p.clone(),
            _ => {
                return Err(ApiError::invalid(
                    Some("prompt"),
                    "unsupported_value",
                    "prompt must be a string (or an array holding one string); batches and \
                     token arrays are not supported.",
                ))
            }
        },
        None => {
            return Err(ApiError::invalid(
                Some("prompt"),
                "missing_required_parameter",
                "You must provide a prompt.",
            ))
        }
    };
    if prompt.is_empty() {
        return Err(ApiError::invalid(
            Some("prompt"),
            "invalid_value",
            "prompt must not be empty.",
        ));
    }
    if fields.get::<bool>("echo")? == Some(true) {
        return Err(ApiError::invalid(
            Some("echo"),
            "unsupported_value",
            "echo is not supported.",
        ));
    }
    if fields
        .get::<String>("suffix")?
        .is_some_and(|s| !s.is_empty())
    {
        return Err(ApiError::invalid(
            Some("suffix"),
            "unsupported_value",
            "suffix is not supported.",
        ));
    }
    if fields.get::<u32>("best_of")?.is_some_and(|b| b != 1) {
        return Err(ApiError::invalid(
            Some("best_of"),
            "unsupported_value",
            "best_of must be 1.",
        ));
    }
    if fields.get::<serde_json::Value>("logprobs")?.is_some() {
        return Err(ApiError::invalid(
            Some("logprobs"),
            "unsupported_value",
            "logprobs are not supported by mycel miners.",
        ));
    }
    let requested = fields.get::<u32>("max_tokens")?;
    let params = sampling(
        &sampling_fields,
        requested,
        DEFAULT_COMPLETION_MAX_TOKENS,
        limits,
    )?;
    let (stream, include_usage) = stream_flags(&sampling_fields);
    Ok(ParsedRequest {
        model,
        endpoint: Endpoint::Completions,
        messages: Vec::new(),
        prompt,
        sampling: params,
        max_tokens_requested: requested.is_some(),
        stream,
        include_usage,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    const LIMITS: Limits = Limits {
        max_tokens: 64,
        default_chat_max_tokens: 32,
    };

    fn chat(body: serde_json::Value) -> Result<ParsedRequest, ApiError> {
        parse_chat(body.to_string().as_bytes(), &LIMITS)
    }

    #[track_caller]
    fn rejects(result: Result<ParsedRequest, ApiError>, param: Option<&str>, code: &str) {
        let error = result.expect_err("the request should be rejected");
        assert_eq!(error.status, StatusCode::BAD_REQUEST, "{}", error.message);
        assert_eq!(error.param.as_deref(), param, "{}", error.message);
        assert_eq!(error.code, Some(code), "{}", error.message);
    }

    #[test]
    fn defaults_are_filled_in() {
        let parsed = chat(
            serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .unwrap();
        assert_eq!(parsed.endpoint, Endpoint::ChatCompletions);
        assert_eq!(parsed.messages, vec![ChatMessage::user("hi")]);
        let s = &parsed.sampling;
        assert_eq!((s.temperature, s.top_p, s.top_k, s.seed), (1.0, 1.0, 0, 0));
        assert_eq!(s.max_tokens, 32);
        assert!(!parsed.max_tokens_requested);
        assert!(s.stop.is_empty() && !parsed.stream);
    }

    #[test]
    fn every_setting_is_read() {
        let parsed = chat(serde_json::json!({
            "model": "m",
            "messages": [{"role": "developer", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                         {"role": "user", "content": "q"}],
            "temperature": 0.2, "top_p": 0.5, "top_k": 7, "seed": 99, "max_completion_tokens": 9,
            "stop": "END", "stream": true, "stream_options": {"include_usage": true}, "user": "ignored",
            "tools": [], "logit_bias": {}, "response_format": {"type": "text"}, "frequency_penalty": 0
        }))
        .unwrap();
        assert_eq!(parsed.messages[0], ChatMessage::system("ab"));
        let s = &parsed.sampling;
        assert_eq!(s.temperature, 0.2f32);
        assert_eq!(s.top_p, 0.5f32);
        assert_eq!((s.top_k, s.seed, s.max_tokens), (7, 99, 9));
        assert!(parsed.max_tokens_requested);
        assert_eq!(s.stop, vec!["END".to_string()]);
        assert!(parsed.stream && parsed.include_usage);
    }

    #[test]
    fn the_two_names_of_the_output_limit_are_read_by_one_rule() {
        let user = serde_json::json!([{"role": "user", "content": "hi"}]);
        let limit = |body: serde_json::Value| chat(body).map(|p| p.sampling.max_tokens);
        assert_eq!(
            limit(serde_json::json!({"model": "m", "messages": user, "max_tokens": 5})).unwrap(),
            5
        );
        assert_eq!(
            limit(serde_json::json!({"model": "m", "messages": user, "max_completion_tokens": 6}))
                .unwrap(),
            6
        );
        assert_eq!(
            limit(serde_json::json!({"model": "m", "messages": user, "max_tokens": 7, "max_completion_tokens": 7}))
                .unwrap(),
            7
        );
        rejects(
            chat(
                serde_json::json!({"model": "m", "messages": user, "max_tokens": 1, "max_completion_tokens": 300}),
            ),
            Some("max_tokens"),
            "invalid_value",
        );
        // Completions know only max_tokens, default 16.
        let parsed = parse_completion(br#"{"model": "m", "prompt": "x"}"#, &LIMITS).unwrap();
        assert_eq!(parsed.sampling.max_tokens, DEFAULT_COMPLETION_MAX_TOKENS);
        assert!(!parsed.max_tokens_requested);
    }

    #[test]
    fn parameters_that_would_be_ignored_are_refused_by_name() {
        let user = serde_json::json!([{"role": "user", "content": "hi"}]);
        for (name, value) in [
            (
                "tools",
                serde_json::json!([{"type": "function", "function": {"name": "f"}}]),
            ),
            ("tool_choice", serde_json::json!("auto")),
            (
                "response_format",
                serde_json::json!({"type": "json_object"}),
            ),
            ("logit_bias", serde_json::json!({"123": 5})),
            ("frequency_penalty", serde_json::json!(0.5)),
            ("presence_penalty", serde_json::json!(-1)),
            ("top_logprobs", serde_json::json!(3)),
            ("audio", serde_json::json!({"voice": "alloy"})),
            ("reasoning_effort", serde_json::json!("high")),
        ] {
            let mut body = serde_json::json!({"model": "m", "messages": user});
            body[name] = value;
            rejects(chat(body), Some(name), "unsupported_parameter");
        }
        rejects(
            chat(serde_json::json!({"model": "m", "messages": user, "temprature": 0.1})),
            Some("temprature"),
            "unknown_parameter",
        );
        rejects(
            parse_completion(
                br#"{"model": "m", "prompt": "x", "logit_bias": {"1": 2}}"#,
                &LIMITS,
            ),
            Some("logit_bias"),
            "unsupported_parameter",
        );
        rejects(
            parse_completion(br#"{"model": "m", "prompt": "x", "messages": []}"#, &LIMITS),
            Some("messages"),
            "unknown_parameter",
        );
    }

    #[test]
    fn bad_chat_requests_name_the_parameter() {
        let user = serde_json::json!([{"role": "user", "content": "hi"}]);
        assert_eq!(
            parse_chat(b"{not json", &LIMITS).unwrap_err().code,
            Some("invalid_json")
        );
        rejects(
            chat(serde_json::json!({"messages": user})),
            Some("model"),
            "missing_required_parameter",
        );
        rejects(
            chat(serde_json::json!({"model": "m", "messages": []})),
            Some("messages"),
            "empty_array",
        );
        rejects(
            chat(serde_json::json!({"model": "m"})),
            Some("messages"),
            "missing_required_parameter",
        );
        rejects(
            chat(serde_json::json!({"model": "m", "messages": user, "max_tokens": 65})),
            Some("max_tokens"),
            "max_tokens_exceeded",
        );
        rejects(
            chat(serde_json::json!({"model": "m", "messages": user, "temperature": 2.5})),
            Some("temperature"),
            "invalid_value",
        );
        rejects(
            chat(serde_json::json!({"model": "m", "messages": user, "top_p": 0})),
            Some("top_p"),
            "invalid_value",
        );
        rejects(
            chat(serde_json::json!({"model": "m", "messages": user, "n": 2})),
            Some("n"),
            "unsupported_value",
        );
        rejects(
            chat(serde_json::json!({"model": "m", "messages": user, "temperature": "hot"})),
            Some("temperature"),
            "invalid_type",
        );
        rejects(
            chat(serde_json::json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]})),
            Some("messages[0].role"),
            "invalid_value",
        );
        rejects(
            chat(
                serde_json::json!({"model": "m", "messages": user, "stop": ["a", "b", "c", "d", "e"]}),
            ),
            Some("stop"),
            "invalid_value",
        );
    }

    #[test]
    fn completions_follow_openai_defaults() {
        let parsed =
            parse_completion(br#"{"model": "m", "prompt": ["Once upon"]}"#, &LIMITS).unwrap();
        assert_eq!(parsed.endpoint, Endpoint::Completions);
        assert_eq!(parsed.prompt, "Once upon");
        assert_eq!(parsed.sampling.max_tokens, DEFAULT_COMPLETION_MAX_TOKENS);
        rejects(
            parse_completion(br#"{"model": "m"}"#, &LIMITS),
            Some("prompt"),
            "missing_required_parameter",
        );
        rejects(
            parse_completion(br#"{"model": "m", "prompt": [1, 2]}"#, &LIMITS),
            Some("prompt"),
            "unsupported_value",
        );
        rejects(
            parse_completion(br#"{"model": "m", "prompt": "x", "echo": true}"#, &LIMITS),
            Some("echo"),
            "unsupported_value",
        );
    }
}
