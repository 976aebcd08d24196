//! Admission on the real default model: prompt tokens, the context rule, and the body a gateway
//! forwards.

use std::sync::OnceLock;

use mycel_openai::{parse_chat, parse_completion, Limits};
use mycel_tokenizer::{default_cache_dir, ensure_default_model, PromptFormat};
use mycel_types::receipt::Endpoint;

fn format() -> &'static PromptFormat {
    static FORMAT: OnceLock<PromptFormat> = OnceLock::new();
    FORMAT.get_or_init(|| {
        let cache = default_cache_dir().expect("a model cache directory");
        let path = ensure_default_model(&cache, &mut |_| {}).expect("the default model");
        PromptFormat::from_gguf_file(&path).expect("its metadata")
    })
}

const LIMITS: Limits = Limits {
    max_tokens: 8192,
    default_chat_max_tokens: 256,
};

fn words(n: usize) -> String {
    "word ".repeat(n)
}

#[test]
fn prompt_and_output_must_fit_the_context() {
    let context = format().context_length();
    assert_eq!(context, 8192, "SmolLM2-135M's context");
    // A prompt of ~8,100 words (the attack: priced as one token, it held a miner for minutes).
    let body = serde_json::json!({
        "model": "m", "max_tokens": 1,
        "messages": [{"role": "user", "content": words(8100)}],
    });
    let admitted = parse_chat(body.to_string().as_bytes(), &LIMITS)
        .unwrap()
        .admit(format())
        .expect("8,100 words and 1 token fit");
    assert!(
        admitted.prompt_tokens.len() > 8100,
        "{}",
        admitted.prompt_tokens.len()
    );
    assert_eq!(admitted.request.max_tokens, 1);

    // The same prompt with 100 output tokens does not fit: refused before any work.
    let body = serde_json::json!({
        "model": "m", "max_tokens": 100,
        "messages": [{"role": "user", "content": words(8100)}],
    });
    let error = parse_chat(body.to_string().as_bytes(), &LIMITS)
        .unwrap()
        .admit(format())
        .expect_err("does not fit");
    assert_eq!(error.code, Some("context_length_exceeded"));
    assert_eq!(error.param.as_deref(), Some("messages"));
    assert!(error.message.contains("8192"), "{}", error.message);

    // Without max_tokens the default is cut to the room the prompt leaves.
    let body = serde_json::json!({
        "model": "m", "messages": [{"role": "user", "content": words(8100)}],
    });
    let admitted = parse_chat(body.to_string().as_bytes(), &LIMITS)
        .unwrap()
        .admit(format())
        .expect("fits with a smaller output");
    assert_eq!(
        admitted.prompt_tokens.len() + admitted.request.max_tokens as usize,
        context
    );

    // A prompt that fills the context alone is refused, and a megabyte one quickly.
    for n in [8200, 200_000] {
        let body = serde_json::json!({"model": "m", "prompt": words(n)});
        let error = parse_completion(body.to_string().as_bytes(), &LIMITS)
            .unwrap()
            .admit(format())
            .expect_err("too long");
        assert_eq!(error.code, Some("context_length_exceeded"));
        assert_eq!(error.param.as_deref(), Some("prompt"));
    }
}

#[test]
fn the_admitted_request_is_what_a_miner_runs() {
    let body = br#"{"model": "m", "max_completion_tokens": 7, "temperature": 0,
                    "messages": [{"role": "user", "content": "Hi"}]}"#;
    let admitted = parse_chat(body, &LIMITS).unwrap().admit(format()).unwrap();
    assert_eq!(admitted.request.endpoint, Endpoint::ChatCompletions);
    assert_eq!(admitted.request.max_tokens, 7);
    assert_eq!(
        admitted.prompt_tokens,
        format()
            .request_tokens(&admitted.request, usize::MAX)
            .unwrap()
    );
    // The body forwarded upstream names the limit explicitly, under one name.
    let forwarded: serde_json::Value =
        serde_json::from_slice(&admitted.forward_body(body)).unwrap();
    assert_eq!(forwarded["max_tokens"], 7);
    assert!(forwarded.get("max_completion_tokens").is_none());
    assert_eq!(forwarded["messages"][0]["content"], "Hi");
    // A server with other defaults reads the forwarded body into the same canonical request.
    let other = Limits {
        max_tokens: 100,
        default_chat_max_tokens: 3,
    };
    let again = parse_chat(&admitted.forward_body(body), &other)
        .unwrap()
        .admit(format())
        .unwrap();
    assert_eq!(again.request, admitted.request);
    assert_eq!(again.request.hash(), admitted.request.hash());

    // Completions default to 16 tokens; forwarded explicitly.
    let body = br#"{"model": "m", "prompt": "Once upon a time"}"#;
    let admitted = parse_completion(body, &LIMITS)
        .unwrap()
        .admit(format())
        .unwrap();
    assert_eq!(admitted.request.max_tokens, 16);
    let forwarded: serde_json::Value =
        serde_json::from_slice(&admitted.forward_body(body)).unwrap();
    assert_eq!(forwarded["max_tokens"], 16);
}
