//! A loaded model and its decode loop.

use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::ops::ControlFlow;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use mycel_tokenizer::gguf::{read_header, sha256_file};
use mycel_tokenizer::{
    ensure_default_model, ensure_model, ChatTemplate, FetchProgress, ModelId, PinnedSplitModel,
    PromptFormat, TokenType, Tokenizer, TokenizerError, DEFAULT_MODEL,
};
use mycel_types::receipt::{CanonicalRequest, ChatMessage};

use crate::error::InferError;
use crate::forward::{KvCache, Transformer};
use crate::gguf::{model_info, ModelInfo};
use crate::sampling::{Sampler, SamplingParams};

/// A GGUF llama model ready to generate. Generations share the weights and never share state:
/// each one starts from an empty KV cache.
#[derive(Debug)]
pub struct Model {
    llama: Transformer,
    format: PromptFormat,
    info: ModelInfo,
    end_of_generation: Vec<u32>,
    context_limit: usize,
}

/// One sequence being decoded: the model and a KV cache. Feed it tokens, get the logits of the
/// last one. The logits of a token depend only on the tokens before it, not on how they were
/// grouped into [`Decoder::feed`] calls (see [`crate::forward`]).
#[derive(Debug)]
pub struct Decoder<'m> {
    model: &'m Model,
    cache: KvCache,
}

impl Decoder<'_> {
    /// Runs `tokens` at the next positions; returns the logits (one per vocabulary entry) after
    /// the last of them.
    pub fn feed(&mut self, tokens: &[u32]) -> Result<Vec<f32>, InferError> {
        self.feed_cancellable(tokens, &|| false)
    }

    /// [`Decoder::feed`], giving up with [`InferError::Cancelled`] when `cancelled` answers true
    /// between two layers. The decoder is unusable afterwards (its cache holds part of a pass).
    pub fn feed_cancellable(
        &mut self,
        tokens: &[u32],
        cancelled: &dyn Fn() -> bool,
    ) -> Result<Vec<f32>, InferError> {
        if tokens.is_empty() {
            return Err(InferError::EmptyPrompt);
        }
        let vocab = self.model.llama.config.vocab;
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= vocab) {
            return Err(TokenizerError::UnknownTokenId(bad).into());
        }
        let total = self.cache.len() + tokens.len();
        if total > self.model.context_limit {
            return Err(InferError::PromptTooLong {
                tokens: total,
                limit: self.model.context_limit,
            });
        }
        self.model
            .llama
            .forward(&mut self.cache, tokens, cancelled)
            .ok_or(InferError::Cancelled)
    }

    /// Tokens fed so far (the position of the next one).
    pub fn position(&self) -> usize {
        self.cache.len()
    }
}

/// One sampled token, as streamed to the caller.
#[derive(Debug, Clone, Serialize)]
pub struct TokenEvent {
    /// 0 for the first generated token.
    pub index: usize,
    pub token: u32,
    /// Text released by this token. Empty while a multi-byte character or a possible stop
    /// sequence is incomplete; the held text is released with a later token.
    pub text: String,
}

/// Why a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model produced an end-of-generation token.
    EndOfGeneration,
    /// The text reached one of the stop sequences.
    StopSequence,
    /// `max_tokens` tokens were sampled.
    MaxTokens,
    /// The context window is full.
    ContextFull,
    /// The streaming callback asked to stop.
    Cancelled,
}

/// The result of one generation.
#[derive(Debug, Clone, Serialize)]
pub struct Generation {
    pub prompt_tokens: Vec<u32>,
    /// Every sampled token in order, including a final end-of-generation token and the tokens that
    /// completed a stop sequence.
    pub output_tokens: Vec<u32>,
    /// The output text: control tokens left out, cut before a stop sequence.
    pub text: String,
    pub finish_reason: FinishReason,
    /// Time of the prompt's forward pass (up to the first sampled token).
    pub prefill_time: Duration,
    /// Time of the forward passes of the tokens after the first.
    pub decode_time: Duration,
}

impl Generation {
    /// Tokens per second after the first token; `None` when fewer than two were sampled.
    pub fn decode_tokens_per_second(&self) -> Option<f64> {
        let n = self.output_tokens.len().checked_sub(1)?;
        let secs = self.decode_time.as_secs_f64();
        (n > 0 && secs > 0.0).then(|| n as f64 / secs)
    }
}

impl Model {
    /// Loads a llama or gemma3 GGUF file. Hashes the whole file to compute the model id.
    pub fn load(path: &Path) -> Result<Self, InferError> {
        let started = Instant::now();
        let digest = sha256_file(path, &mut |_, _| {})?;
        let id = ModelId(digest);
        let file = File::open(path).map_err(|e| InferError::io("open", path, e))?;
        let file_size = file
            .metadata()
            .map_err(|e| InferError::io("read the size of", path, e))?
            .len();
        let mut reader = BufReader::new(file);
        // The metadata by mycel's bounded reader (the prompt side is read exactly as a gateway
        // reads it), then candle's reading of the tensor descriptions for the weights.
        let header = read_header(&mut reader, file_size).map_err(|error| TokenizerError::Gguf {
            path: path.to_path_buf(),
            error,
        })?;
        reader
            .seek(SeekFrom::Start(0))
            .map_err(|e| InferError::io("read", path, e))?;
        let content = crate::gguf::read_content(path, &mut reader)?;
        let format = PromptFormat::from_metadata(id, &header.metadata)?;
        let tokenizer = format.tokenizer();
        let info = model_info(
            &header.metadata,
            &content,
            id,
            path,
            file_size,
            tokenizer.vocab_size(),
        )?;
        let context_limit = usize::try_from(info.context_length).unwrap_or(usize::MAX);
        // The metadata's copies (262,144 vocabulary strings for Gemma) are not kept while the
        // weights are read: peak memory is the weights and the tokenizer.
        drop(header);
        let mut content = content;
        content
            .metadata
            .retain(|key, _| !key.starts_with("tokenizer."));
        let llama = Transformer::load(&content, &mut reader)?;
        drop(content);
        if llama.config.vocab < tokenizer.vocab_size() {
            return Err(InferError::BadMetadata {
                key: "token_embd.weight".into(),
                reason: format!(
                    "{} embedding rows for a vocabulary of {} tokens",
                    llama.config.vocab,
                    tokenizer.vocab_size()
                ),
            });
        }
        let end_of_generation = tokenizer.end_of_generation_ids();
        tracing::info!(
            model = %id,
            path = %path.display(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "model loaded"
        );
        Ok(Self {
            llama,
            format,
            info,
            end_of_generation,
            context_limit,
        })
    }

    /// Loads the pinned default model from `cache_dir`, fetching it on first use, and checks that
    /// the file's hash is the pinned one.
    pub fn load_default(
        cache_dir: &Path,
        progress: &mut dyn FnMut(FetchProgress),
    ) -> Result<Self, InferError> {
        let path = ensure_default_model(cache_dir, progress)?;
        let model = Self::load(&path)?;
        if model.id() != DEFAULT_MODEL.id() {
            return Err(TokenizerError::ChecksumMismatch {
                path,
                expected: DEFAULT_MODEL.sha256.into(),
                actual: model.id().to_hex(),
            }
            .into());
        }
        Ok(model)
    }

    /// Loads a pinned split model (e.g. [`mycel_tokenizer::GEMMA3_270M`]) from `cache_dir`,
    /// fetching it on first use, and checks that the file's hash is the pinned one.
    pub fn load_pinned(
        pinned: &PinnedSplitModel,
        cache_dir: &Path,
        progress: &mut dyn FnMut(FetchProgress),
    ) -> Result<Self, InferError> {
        let path = ensure_model(pinned, cache_dir, progress)?;
        let model = Self::load(&path)?;
        if model.id() != pinned.id() {
            return Err(TokenizerError::ChecksumMismatch {
                path,
                expected: pinned.sha256.into(),
                actual: model.id().to_hex(),
            }
            .into());
        }
        Ok(model)
    }

    pub fn id(&self) -> ModelId {
        self.info.id
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        self.format.tokenizer()
    }

    pub fn chat_template(&self) -> Option<&ChatTemplate> {
        self.format.chat_template()
    }

    /// How requests become this model's prompt tokens.
    pub fn prompt_format(&self) -> &PromptFormat {
        &self.format
    }

    /// Most tokens (prompt and output together) one generation can hold.
    pub fn context_limit(&self) -> usize {
        self.context_limit
    }

    /// A fresh sequence (empty KV cache) for step-by-step decoding; [`Model::generate`] is the
    /// protocol's schedule on top of it.
    pub fn decoder(&self) -> Decoder<'_> {
        Decoder {
            model: self,
            cache: KvCache::new(&self.llama.config),
        }
    }

    /// Token ids that end a generation.
    pub fn end_of_generation_ids(&self) -> &[u32] {
        &self.end_of_generation
    }

    /// The prompt tokens of a chat ([`PromptFormat::chat_tokens`]): the template's markup as
    /// special tokens, message text as text, BOS first if the model asks for it.
    pub fn chat_prompt_tokens(&self, messages: &[ChatMessage]) -> Result<Vec<u32>, InferError> {
        Ok(self.format.chat_tokens(messages, usize::MAX)?)
    }

    /// Generates a chat completion; see [`Model::generate`].
    pub fn complete_chat(
        &self,
        messages: &[ChatMessage],
        params: &SamplingParams,
        on_token: &mut dyn FnMut(&TokenEvent) -> ControlFlow<()>,
    ) -> Result<Generation, InferError> {
        let prompt = self.chat_prompt_tokens(messages)?;
        self.generate(&prompt, params, on_token)
    }

    /// Runs a canonical request with the protocol's decode schedule: its prompt tokens
    /// ([`PromptFormat::request_tokens`]), then [`Model::generate`] with its sampling settings.
    /// This is what a miner serves and what a verifier re-runs.
    pub fn execute(
        &self,
        request: &CanonicalRequest,
        on_token: &mut dyn FnMut(&TokenEvent) -> ControlFlow<()>,
    ) -> Result<Generation, InferError> {
        let prompt = self.format.request_tokens(request, usize::MAX)?;
        self.generate(&prompt, &request.sampling(), on_token)
    }

    /// Generates from prompt token ids with mycel's fixed decode schedule: one forward pass over
    /// the whole prompt at position 0, then one pass per sampled token at the next position.
    /// `on_token` is called after every sampled token; returning `Break` ends the generation.
    pub fn generate(
        &self,
        prompt: &[u32],
        params: &SamplingParams,
        on_token: &mut dyn FnMut(&TokenEvent) -> ControlFlow<()>,
    ) -> Result<Generation, InferError> {
        self.generate_cancellable(prompt, params, &|| false, on_token)
    }

    /// [`Model::generate`], asking `cancelled` between the layers of every forward pass (a long
    /// prompt's prefill included): once it answers true the generation ends with
    /// [`InferError::Cancelled`] within one layer's work. A server passes "the client went away".
    pub fn generate_cancellable(
        &self,
        prompt: &[u32],
        params: &SamplingParams,
        cancelled: &dyn Fn() -> bool,
        on_token: &mut dyn FnMut(&TokenEvent) -> ControlFlow<()>,
    ) -> Result<Generation, InferError> {
        if prompt.is_empty() {
            return Err(InferError::EmptyPrompt);
        }
        if prompt.len() >= self.context_limit {
            return Err(InferError::PromptTooLong {
                tokens: prompt.len(),
                limit: self.context_limit,
            });
        }
        if let Some(&bad) = prompt
            .iter()
            .find(|&&t| t as usize >= self.format.tokenizer().vocab_size())
        {
            return Err(TokenizerError::UnknownTokenId(bad).into());
        }
        let mut sampler = Sampler::new(params.clone())?;
        let mut decoder = self.decoder();
        let mut text = TextAssembler::new(&params.stop);
        let mut output: Vec<u32> = Vec::new();

        let started = Instant::now();
        let mut logits = decoder.feed_cancellable(prompt, cancelled)?;
        let prefill_time = started.elapsed();
        let decode_started = Instant::now();
        let finish_reason = loop {
            let token = sampler.sample(&logits);
            output.push(token);
            let index = output.len() - 1;
            if self.end_of_generation.contains(&token) {
                break FinishReason::EndOfGeneration;
            }
            let (delta, stopped) = text.push_token(self.format.tokenizer(), token)?;
            let event = TokenEvent {
                index,
                token,
                text: delta,
            };
            let flow = on_token(&event);
            if stopped {
                break FinishReason::StopSequence;
            }
            if flow.is_break() {
                break FinishReason::Cancelled;
            }
            if output.len() >= params.max_tokens as usize {
                break FinishReason::MaxTokens;
            }
            let position = prompt.len() + index;
            if position + 1 >= self.context_limit {
                break FinishReason::ContextFull;
            }
            logits = decoder.feed_cancellable(&[token], cancelled)?;
        };
        let decode_time = if output.len() > 1 {
            decode_started.elapsed()
        } else {
            Duration::ZERO
        };
        let tail = text.finish();
        if !tail.is_empty() && finish_reason != FinishReason::StopSequence {
            // The held-back tail of a stop-sequence prefix that never completed.
            let event = TokenEvent {
                index: output.len().saturating_sub(1),
                token: *output.last().unwrap_or(&0),
                text: tail.clone(),
            };
            let _ = on_token(&event);
        }
        Ok(Generation {
            prompt_tokens: prompt.to_vec(),
            output_tokens: output,
            text: text.text,
            finish_reason,
            prefill_time,
            decode_time,
        })
    }
}

/// Turns sampled tokens into text: completes multi-byte characters across tokens, watches for stop
/// sequences, and holds back any tail that could still become one.
struct TextAssembler<'s> {
    stop: &'s [String],
    text: String,
    pending: Vec<u8>,
    released: usize,
    stopped: bool,
}

impl<'s> TextAssembler<'s> {
    fn new(stop: &'s [String]) -> Self {
        Self {
            stop,
            text: String::new(),
            pending: Vec::new(),
            released: 0,
            stopped: false,
        }
    }

    /// Adds a token; returns the newly released text and whether a stop sequence was reached.
    fn push_token(
        &mut self,
        tokenizer: &Tokenizer,
        token: u32,
    ) -> Result<(String, bool), InferError> {
        if tokenizer.token_type(token) == Some(TokenType::Control) {
            return Ok((String::new(), false));
        }
        let mut bytes = Vec::new();
        tokenizer.append_token_bytes(token, true, &mut bytes)?;
        Ok(self.push_bytes(&bytes))
    }

    fn push_bytes(&mut self, bytes: &[u8]) -> (String, bool) {
        self.pending.extend_from_slice(bytes);
        self.drain_pending(false);
        if let Some(at) = self.find_stop() {
            self.text.truncate(at);
            self.stopped = true;
            let delta = self.text[self.released..].to_string();
            self.released = self.text.len();
            return (delta, true);
        }
        let hold = self.held_tail();
        let end = self.text.len() - hold;
        let delta = self.text[self.released..end].to_string();
        self.released = end;
        (delta, false)
    }

    fn drain_pending(&mut self, at_end: bool) {
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(valid) => {
                    self.text.push_str(valid);
                    self.pending.clear();
                    return;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    // Safe: the prefix up to `valid_up_to` is valid UTF-8.
                    self.text
                        .push_str(&String::from_utf8_lossy(&self.pending[..valid]));
                    match e.error_len() {
                        Some(bad) => {
                            self.text.push('\u{FFFD}');
                            self.pending.drain(..valid + bad);
                        }
                        None if at_end => {
                            self.text.push('\u{FFFD}');
                            self.pending.clear();
                            return;
                        }
                        None => {
                            self.pending.drain(..valid);
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Byte offset of the earliest stop sequence starting at or after the released text.
    fn find_stop(&self) -> Option<usize> {
        let search = &self.text[self.released..];
        self.stop
            .iter()
            .filter_map(|s| search.find(s.as_str()))
            .min()
            .map(|at| self.released + at)
    }

    /// Length of the longest unreleased suffix that is a proper prefix of a stop sequence.
    fn held_tail(&self) -> usize {
        let unreleased = &self.text[self.released..];
        let mut hold = 0;
        for stop in self.stop {
            for k in (1..stop.len()).rev() {
                if k <= hold {
                    break;
                }
                if stop.is_char_boundary(k) && unreleased.ends_with(&stop[..k]) {
                    hold = k;
                    break;
                }
            }
        }
        hold
    }

    /// Releases whatever is still held (the generation is over).
    fn finish(&mut self) -> String {
        if !self.stopped {
            self.drain_pending(true);
        }
        let tail = self.text[self.released..].to_string();
        self.released = self.text.len();
        tail
    }
}

#[cfg(test)]
mod tests {
    use super::TextAssembler;

    fn stream(stop: &[&str], pieces: &[&[u8]]) -> (Vec<String>, bool, String) {
        let stop: Vec<String> = stop.iter().map(|s| s.to_string()).collect();
        let mut text = TextAssembler::new(&stop);
        let mut deltas = Vec::new();
        let mut stopped = false;
        for piece in pieces {
            let (delta, hit) = text.push_bytes(piece);
            deltas.push(delta);
            if hit {
                stopped = true;
                break;
            }
        }
        let tail = text.finish();
        deltas.push(tail);
        (deltas, stopped, text.text)
    }

    #[test]
    fn multi_byte_characters_wait_for_their_last_byte() {
        let euro = "€".as_bytes();
        let (deltas, _, text) = stream(&[], &[b"a", &euro[..1], &euro[1..], b"b"]);
        assert_eq!(deltas, ["a", "", "€", "b", ""]);
        assert_eq!(text, "a€b");
    }

    #[test]
    fn a_possible_stop_sequence_is_held_back_and_cut() {
        let (deltas, stopped, text) = stream(&["END"], &[b"one E", b"N", b"D two"]);
        assert!(stopped);
        assert_eq!(deltas, ["one ", "", "", ""]);
        assert_eq!(text, "one ");
    }

    #[test]
    fn a_stop_prefix_that_does_not_complete_is_released() {
        let (deltas, stopped, text) = stream(&["END"], &[b"one E", b"Nx", b"!"]);
        assert!(!stopped);
        assert_eq!(deltas.concat(), "one ENx!");
        assert_eq!(deltas[0], "one ");
        assert_eq!(text, "one ENx!");
    }

    #[test]
    fn a_dangling_byte_at_the_end_becomes_a_replacement_character() {
        let (_, _, text) = stream(&[], &[b"ok", &"€".as_bytes()[..2]]);
        assert_eq!(text, "ok\u{FFFD}");
    }
}
