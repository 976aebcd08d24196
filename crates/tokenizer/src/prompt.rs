//! From a request to prompt tokens: a model's tokenizer, chat template and context length — the
//! part of a GGUF model a gateway needs to count (and price) a prompt exactly as a miner will feed
//! it, without loading the weights.
//!
//! The rule, part of mycel's inference protocol (docs/receipts.md):
//! - chat: BOS if the model asks for it (Gemma does), then the chat template's pieces
//!   ([`ChatTemplate::pieces`]): its markup as special tokens, every other piece — roles and
//!   message contents — tokenized as text (special-token text in a message stays text);
//! - completions: BOS if the model asks for it, then the prompt tokenized as text.
//!
//! Tokenizing is bounded ([`PromptFormat::chat_tokens`] and friends take a limit): a prompt with
//! more tokens than the limit is refused after work proportional to the limit, not to the text.

use std::path::Path;

use mycel_types::receipt::{CanonicalRequest, ChatMessage, Endpoint};

use crate::chat::{ChatPiece, ChatTemplate, END_OF_TURN, START_OF_TURN};
use crate::error::TokenizerError;
use crate::gguf::{read_header_file, sha256_file, Metadata, ModelId};
use crate::tokenizer::{Tokenizer, TooManyTokens};

/// `general.architecture` values whose prompts this crate can build.
pub const SUPPORTED_ARCHITECTURES: [&str; 2] = ["llama", "gemma3"];

/// What turns messages or a prompt into the tokens a model is fed.
#[derive(Debug, Clone)]
pub struct PromptFormat {
    id: ModelId,
    tokenizer: Tokenizer,
    chat_template: Option<ChatTemplate>,
    context_length: usize,
}

impl PromptFormat {
    /// Builds the format from a GGUF file's metadata, and `id` (the file's SHA-256).
    pub fn from_metadata(id: ModelId, md: &Metadata) -> Result<Self, TokenizerError> {
        let architecture = md.field("general.architecture").string()?;
        if !SUPPORTED_ARCHITECTURES.contains(&architecture) {
            return Err(TokenizerError::UnsupportedArchitecture(
                architecture.to_string(),
            ));
        }
        let tokenizer = Tokenizer::from_gguf_metadata(md)?;
        let has = |text: &str| tokenizer.token_id(text).is_some();
        let chat_template = match md.field("tokenizer.chat_template").opt_string()? {
            Some(jinja) => match ChatTemplate::from_jinja(jinja) {
                Ok(template) => Some(template),
                Err(e) => {
                    tracing::warn!(error = %e, "chat completions are unavailable for this model");
                    None
                }
            },
            None if has("<|im_start|>") => Some(ChatTemplate::chatml()),
            // Gemma 3 GGUF files carry no template; their turn tokens say which it is.
            None if has(START_OF_TURN) && has(END_OF_TURN) => Some(ChatTemplate::gemma()),
            None => None,
        };
        let context_length =
            usize::try_from(md.field(&format!("{architecture}.context_length")).u64()?)
                .unwrap_or(usize::MAX);
        Ok(Self {
            id,
            tokenizer,
            chat_template,
            context_length,
        })
    }

    /// Reads a GGUF file's metadata (not its tensors) and hashes the file for its id.
    pub fn from_gguf_file(path: &Path) -> Result<Self, TokenizerError> {
        let id = ModelId(sha256_file(path, &mut |_, _| {})?);
        Self::from_metadata(id, &read_header_file(path)?.metadata)
    }

    /// The model's id: the SHA-256 of its GGUF file.
    pub fn model_id(&self) -> ModelId {
        self.id
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    pub fn chat_template(&self) -> Option<&ChatTemplate> {
        self.chat_template.as_ref()
    }

    /// Most tokens (prompt and output together) one generation can hold.
    pub fn context_length(&self) -> usize {
        self.context_length
    }

    /// The prompt tokens of a chat, refused with [`TokenizerError::PromptOverLimit`] past `limit`.
    pub fn chat_tokens(
        &self,
        messages: &[ChatMessage],
        limit: usize,
    ) -> Result<Vec<u32>, TokenizerError> {
        let template = self
            .chat_template
            .as_ref()
            .ok_or(TokenizerError::UnsupportedChatTemplate)?;
        let mut tokens = self.start();
        let over = |_: TooManyTokens| TokenizerError::PromptOverLimit { limit };
        for piece in template.pieces(messages, true) {
            match piece {
                ChatPiece::Special(markup) => {
                    let id = self
                        .tokenizer
                        .token_id(markup)
                        .ok_or(TokenizerError::UnsupportedChatTemplate)?;
                    tokens.push(id);
                    if tokens.len() > limit {
                        return Err(TokenizerError::PromptOverLimit { limit });
                    }
                }
                ChatPiece::Text(text) => self
                    .tokenizer
                    .encode_within(&text, false, &mut tokens, limit)
                    .map_err(over)?,
            }
        }
        Ok(tokens)
    }

    /// The prompt tokens of a plain completion, refused past `limit`.
    pub fn completion_tokens(
        &self,
        prompt: &str,
        limit: usize,
    ) -> Result<Vec<u32>, TokenizerError> {
        let mut tokens = self.start();
        self.tokenizer
            .encode_within(prompt, false, &mut tokens, limit)
            .map_err(|_| TokenizerError::PromptOverLimit { limit })?;
        Ok(tokens)
    }

    /// The prompt tokens a canonical request feeds the model: [`PromptFormat::chat_tokens`] of
    /// its messages (chat) or [`PromptFormat::completion_tokens`] of its prompt (completions),
    /// refused past `limit`.
    pub fn request_tokens(
        &self,
        request: &CanonicalRequest,
        limit: usize,
    ) -> Result<Vec<u32>, TokenizerError> {
        match request.endpoint {
            Endpoint::ChatCompletions => self.chat_tokens(&request.messages, limit),
            Endpoint::Completions => self.completion_tokens(&request.prompt, limit),
        }
    }

    fn start(&self) -> Vec<u32> {
        let mut tokens = Vec::new();
        if self.tokenizer.add_bos() {
            tokens.extend(self.tokenizer.bos_token_id());
        }
        tokens
    }
}
