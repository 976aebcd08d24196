//! The OpenAI wire format: reading requests into canonical requests, and errors in OpenAI's shape.
//!
//! Defaults follow OpenAI's API where it has one (temperature 1, top_p 1, `max_tokens` 16 for
//! `/v1/completions`); mycel adds `top_k` (default 0, off) and fills `seed` with 0 when none is
//! given, so that every request is reproducible and its receipt re-runnable.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use mycel_infer::{CanonicalRequest, ChatMessage, SamplingParams};
use serde::Deserialize;

/// The most stop sequences a request may give (OpenAI's limit).
pub const MAX_STOP_SEQUENCES: usize = 4;

/// An error answered in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub error_type: &'static str,
    pub param: Option<String>,
    pub code: Option<&'static str>,
    /// Seconds, sent as `Retry-After`.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// A 400 `invalid_request_error` about `param`.
    pub fn invalid(param: Option<&str>, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            error_type: "invalid_request_error",
            param: param.map(str::to_string),
            code: Some(code),
            retry_after: None,
        }
    }

    pub fn model_not_found(model: &str, served: &str) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: format!(
                "The model `{model}` does not exist on this miner. It serves `{served}` \
                 (GET /v1/models lists it)."
            ),
            error_type: "invalid_request_error",
            param: Some("model".into()),
            code: Some("model_not_found"),
            retry_after: None,
        }
    }

    pub fn queue_full(retry_after: u64) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: format!(
                "The miner is busy: every worker is decoding and the queue is full. \
                 Retry after {retry_after} s."
            ),
            error_type: "rate_limit_error",
            param: None,
            code: Some("queue_full"),
            retry_after: Some(retry_after),
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
            error_type: "server_error",
            param: None,
            code: Some("internal_error"),
            retry_after: None,
        }
    }

    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// Limits a miner puts on requests.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest `max_tokens` accepted.
    pub max_tokens: u32,
    /// `max_tokens` of a chat request that gives none.
    pub default_chat_max_tokens: u32,
}

/// A request read from the wire: what to run and how to answer.
#[derive(Debug, Clone)]
pub struct ParsedRequest {
    pub model: String,
    pub request: CanonicalRequest,
    pub stream: bool,
    /// `stream_options.include_usage`: send a last chunk with the token usage.
    pub include_usage: bool,
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
}

/// Settings both endpoints share.
struct WireSampling {
    temperature: Option<f64>,
    top_p: Option<f64>,
    top_k: Option<u32>,
    seed: Option<u64>,
    max_tokens: Option<u32>,
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
            max_tokens: fields.get("max_tokens")?,
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
                "max_tokens is {max_tokens}, but this miner generates at most {} tokens per \
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

/// Reads a `POST /v1/chat/completions` body.
pub fn parse_chat(body: &[u8], limits: &Limits) -> Result<ParsedRequest, ApiError> {
    let fields = Fields::parse(body)?;
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
        let role = match m.role.as_str() {
            "system" | "user" | "assistant" => m.role,
            // OpenAI's newer name for the system role.
            "developer" => "system".to_string(),
            other => {
                return Err(ApiError::invalid(
                    Some(&format!("messages[{i}].role")),
                    "invalid_value",
                    format!(
                        "Role `{other}` is not supported; use system, developer, user or assistant."
                    ),
                ))
            }
        };
        let content =
            match m.content {
                None => String::new(),
                Some(Content::Text(text)) => text,
                Some(Content::Parts(parts)) => {
                    let mut text = String::new();
                    for (j, part) in parts.into_iter().enumerate() {
                        match (part.part_type.as_str(), part.text) {
                            ("text", Some(t)) => text.push_str(&t),
                            _ => return Err(ApiError::invalid(
                                Some(&format!("messages[{i}].content[{j}]")),
                                "invalid_value",
                                "Only text content parts ({\"type\": \"text\", \"text\": ...}) \
                                 are supported.",
                            )),
                        }
                    }
                    text
                }
            };
        messages.push(ChatMessage::new(role, content));
    }
    let max_tokens = fields
        .get::<u32>("max_completion_tokens")?
        .or(sampling_fields.max_tokens);
    let params = sampling(
        &sampling_fields,
        max_tokens,
        limits.default_chat_max_tokens,
        limits,
    )?;
    let (stream, include_usage) = stream_flags(&sampling_fields);
    Ok(ParsedRequest {
        model,
        request: CanonicalRequest::chat(messages, &params),
        stream,
        include_usage,
    })
}

/// OpenAI's default `max_tokens` for `/v1/completions`.
pub const DEFAULT_COMPLETION_MAX_TOKENS: u32 = 16;

/// Reads a `POST /v1/completions` body.
pub fn parse_completion(body: &[u8], limits: &Limits) -> Result<ParsedRequest, ApiError> {
    let fields = Fields::parse(body)?;
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
    let params = sampling(
        &sampling_fields,
        sampling_fields.max_tokens,
        DEFAULT_COMPLETION_MAX_TOKENS,
        limits,
    )?;
    let (stream, include_usage) = stream_flags(&sampling_fields);
    Ok(ParsedRequest {
        model,
        request: CanonicalRequest::completion(prompt, &params),
        stream,
        include_usage,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mycel_infer::Endpoint;

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
        let r = &parsed.request;
        assert_eq!(r.endpoint, Endpoint::ChatCompletions);
        assert_eq!(r.messages, vec![ChatMessage::user("hi")]);
        assert_eq!((r.temperature, r.top_p, r.top_k, r.seed), (1.0, 1.0, 0, 0));
        assert_eq!(r.max_tokens, 32);
        assert!(r.stop.is_empty() && !parsed.stream);
    }

    #[test]
    fn every_setting_is_read() {
        let parsed = chat(serde_json::json!({
            "model": "m",
            "messages": [{"role": "developer", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                         {"role": "user", "content": "q"}],
            "temperature": 0.2, "top_p": 0.5, "top_k": 7, "seed": 99, "max_completion_tokens": 9,
            "stop": "END", "stream": true, "stream_options": {"include_usage": true}, "user": "ignored"
        }))
        .unwrap();
        let r = &parsed.request;
        assert_eq!(r.messages[0], ChatMessage::system("ab"));
        assert_eq!(r.temperature, 0.2f32);
        assert_eq!(r.top_p, 0.5f32);
        assert_eq!((r.top_k, r.seed, r.max_tokens), (7, 99, 9));
        assert_eq!(r.stop, vec!["END".to_string()]);
        assert!(parsed.stream && parsed.include_usage);
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
        assert_eq!(parsed.request.endpoint, Endpoint::Completions);
        assert_eq!(parsed.request.prompt, "Once upon");
        assert_eq!(parsed.request.max_tokens, DEFAULT_COMPLETION_MAX_TOKENS);
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
