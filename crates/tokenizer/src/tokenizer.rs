//! A GGUF file's own tokenizer, matching llama.cpp: GPT-2 style byte-level BPE
//! (`tokenizer.ggml.model = gpt2`, SmolLM2) or SentencePiece-style BPE (`llama`, Gemma; see
//! `spm.rs`). Other tokenizer models are refused with a message naming them.
//!
//! Encoding, in llama.cpp's order:
//! 1. If special tokens are parsed, the text is cut at every occurrence of a control,
//!    user-defined or unknown token's text, longest tokens first; each such piece becomes its id.
//!    (User-defined tokens are always parsed.) See `special.rs`.
//! 2. SentencePiece: each remaining piece is merged by token scores (`spm.rs`).
//!    Byte-level BPE: each remaining piece is pre-tokenized. `smollm` (and the other StarCoder-family names) first
//!    isolates every `\p{N}` character, then applies the GPT-2 split
//!    `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`.
//!    `gpt2`/`default` apply the GPT-2 split alone. No prefix space is ever added.
//! 3. Each word's UTF-8 bytes are mapped to GPT-2's printable byte alphabet and merged by BPE:
//!    repeatedly merge the adjacent pair with the lowest merge rank, leftmost first.
//!
//! Decoding maps normal tokens back through the byte alphabet (byte-level BPE) or turns `▁` into
//! spaces and `<0xNN>` tokens into their bytes (SentencePiece), and writes control and
//! user-defined tokens as their text.

use std::collections::HashMap;

use unicode_general_category::{get_general_category, GeneralCategory};

use crate::error::TokenizerError;
use crate::gguf::{Metadata, Value};
use crate::special::{Fragment, SpecialTokens};
use crate::spm::{byte_of_token, SpmVocab};

/// llama.cpp's token types (`tokenizer.ggml.token_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenType {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

impl TokenType {
    fn from_gguf(code: i64) -> Self {
        match code {
            2 => Self::Unknown,
            3 => Self::Control,
            4 => Self::UserDefined,
            5 => Self::Unused,
            6 => Self::Byte,
            _ => Self::Normal,
        }
    }

    /// Tokens whose text is matched literally in the input when special tokens are parsed.
    fn is_special(self) -> bool {
        matches!(self, Self::Control | Self::UserDefined | Self::Unknown)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PreTokenizer {
    /// GPT-2 split only.
    Gpt2,
    /// Every `\p{N}` isolated, then the GPT-2 split (llama.cpp: smollm, starcoder, refact, ...).
    DigitsThenGpt2,
}

/// Which of llama.cpp's tokenizers a vocabulary uses (`tokenizer.ggml.model`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenizerKind {
    /// `gpt2`: GPT-2 style byte-level BPE with ranked merges (SmolLM2).
    ByteLevelBpe,
    /// `llama`: SentencePiece-style BPE with token scores and byte fallback (Gemma).
    SentencePiece,
}

/// The merge step of one of the two tokenizers.
#[derive(Debug, Clone)]
enum Algorithm {
    Bpe(Box<BpeVocab>),
    Spm(Box<SpmVocab>),
}

/// What byte-level BPE needs besides the vocabulary's text → id map.
#[derive(Debug, Clone)]
struct BpeVocab {
    /// (left id, right id) -> (rank, merged id)
    merges: HashMap<(u32, u32), (u32, u32)>,
    pre: PreTokenizer,
    byte_to_char: [char; 256],
    char_to_byte: HashMap<char, u8>,
}

/// A tokenizer read from GGUF metadata.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    tokens: Vec<String>,
    token_types: Vec<TokenType>,
    token_to_id: HashMap<String, u32>,
    /// Control, user-defined and unknown tokens, matched in the input.
    specials: SpecialTokens,
    algorithm: Algorithm,
    bos: Option<u32>,
    eos: Option<u32>,
    eot: Option<u32>,
    add_bos: bool,
    /// The longest token, in bytes of the text it stands for: a text of `n` bytes becomes at least
    /// `n / longest_token_bytes` tokens, which lets [`Tokenizer::encode_within`] refuse an
    /// over-long text before running BPE on it.
    longest_token_bytes: usize,
}

/// The text has more tokens than the limit it was encoded within.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the text has more than {limit} tokens")]
pub struct TooManyTokens {
    pub limit: usize,
}

impl Tokenizer {
    /// Builds the tokenizer from GGUF metadata: byte-level BPE for `tokenizer.ggml.model =
    /// gpt2`, SentencePiece for `llama`; any other model is refused.
    pub fn from_gguf_metadata(md: &Metadata) -> Result<Self, TokenizerError> {
        let kind = match md.field("tokenizer.ggml.model").string()? {
            "gpt2" => TokenizerKind::ByteLevelBpe,
            "llama" => TokenizerKind::SentencePiece,
            other => return Err(TokenizerError::UnsupportedTokenizer(other.to_string())),
        };
        let tokens: Vec<String> = md
            .field("tokenizer.ggml.tokens")
            .string_array()?
            .into_iter()
            .map(str::to_string)
            .collect();
        let token_types: Vec<TokenType> = match md.field("tokenizer.ggml.token_type").opt_array()? {
            None => vec![TokenType::Normal; tokens.len()],
            Some(types) => {
                if types.len() != tokens.len() {
                    return Err(TokenizerError::BadMetadata {
                        key: "tokenizer.ggml.token_type".into(),
                        reason: format!("{} types for {} tokens", types.len(), tokens.len()),
                    });
                }
                types
                    .iter()
                    .map(|v| v.as_i64().map(TokenType::from_gguf))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| TokenizerError::BadMetadata {
                        key: "tokenizer.ggml.token_type".into(),
                        reason: "not an integer array".into(),
                    })?
            }
        };
        let vocab_size = u32::try_from(tokens.len()).map_err(|_| TokenizerError::BadMetadata {
            key: "tokenizer.ggml.tokens".into(),
            reason: "too many tokens".into(),
        })?;
        let mut token_to_id = HashMap::with_capacity(tokens.len());
        for (id, text) in tokens.iter().enumerate() {
            // On duplicates llama.cpp keeps the last id; do the same.
            token_to_id.insert(text.clone(), id as u32);
        }
        let algorithm = match kind {
            TokenizerKind::ByteLevelBpe => {
                Algorithm::Bpe(Box::new(BpeVocab::from_gguf_metadata(md, &token_to_id)?))
            }
            TokenizerKind::SentencePiece => {
                Algorithm::Spm(Box::new(spm_vocab(md, &tokens, &token_to_id)?))
            }
        };
        let specials = SpecialTokens::new(
            tokens
                .iter()
                .zip(&token_types)
                .enumerate()
                .filter(|(_, (_, ty))| ty.is_special())
                .map(|(id, (text, ty))| (text.as_str(), id as u32, *ty)),
        );

        let check = |key: &str, id: Option<u32>| -> Result<Option<u32>, TokenizerError> {
            match id {
                Some(id) if id >= vocab_size => Err(TokenizerError::BadMetadata {
                    key: key.into(),
                    reason: format!("token id {id} is outside the vocabulary of {vocab_size}"),
                }),
                other => Ok(other),
            }
        };
        let bos = check(
            "tokenizer.ggml.bos_token_id",
            md.field("tokenizer.ggml.bos_token_id").opt_u32()?,
        )?;
        let eos = check(
            "tokenizer.ggml.eos_token_id",
            md.field("tokenizer.ggml.eos_token_id").opt_u32()?,
        )?;
        let eot = check(
            "tokenizer.ggml.eot_token_id",
            md.field("tokenizer.ggml.eot_token_id").opt_u32()?,
        )?;
        // llama.cpp's default: SentencePiece vocabularies add BOS unless told not to.
        let add_bos = md
            .field("tokenizer.ggml.add_bos_token")
            .opt_bool()?
            .unwrap_or(kind == TokenizerKind::SentencePiece);
        // Normal tokens are stored one char per byte (byte-level BPE) or as UTF-8 with a 3-byte
        // `▁` per space (SentencePiece), special ones as their UTF-8 text: either way a token
        // stands for at most this many bytes of input.
        let longest_token_bytes = tokens
            .iter()
            .map(|text| text.chars().count().max(text.len()))
            .max()
            .unwrap_or(1)
            .max(1);
        tracing::debug!(
            vocab = tokens.len(),
            ?kind,
            specials = specials.len(),
            "tokenizer built from GGUF metadata"
        );
        Ok(Self {
            tokens,
            token_types,
            token_to_id,
            specials,
            algorithm,
            bos,
            eos,
            eot,
            add_bos,
            longest_token_bytes,
        })
    }

    /// Reads only the metadata of a GGUF file (not its tensors) and builds the tokenizer.
    pub fn from_gguf_file(path: &std::path::Path) -> Result<Self, TokenizerError> {
        Self::from_gguf_metadata(&crate::gguf::read_header_file(path)?.metadata)
    }

    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    pub fn bos_token_id(&self) -> Option<u32> {
        self.bos
    }

    pub fn eos_token_id(&self) -> Option<u32> {
        self.eos
    }

    /// Whether the model asks for a BOS token before the prompt (`tokenizer.ggml.add_bos_token`;
    /// without the key: yes for SentencePiece, as in llama.cpp, and no for byte-level BPE).
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// The id of a token given by its exact text, e.g. `"<|im_end|>"`.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.token_to_id.get(text).copied()
    }

    /// The token's text as stored in the vocabulary (byte-level alphabet for byte-level BPE's
    /// normal tokens, `▁` for a space in SentencePiece's; decode to get the bytes).
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    pub fn token_type(&self, id: u32) -> Option<TokenType> {
        self.token_types.get(id as usize).copied()
    }

    /// Which tokenizer the vocabulary uses.
    pub fn kind(&self) -> TokenizerKind {
        match self.algorithm {
            Algorithm::Bpe(_) => TokenizerKind::ByteLevelBpe,
            Algorithm::Spm(_) => TokenizerKind::SentencePiece,
        }
    }

    /// Tokens that end a generation: EOS, EOT and, for chat models, the end-of-turn tokens
    /// llama.cpp also stops at (`<|im_end|>`, `<|endoftext|>`, `<|eot_id|>`, Gemma's
    /// `<end_of_turn>`, `<eos>`) when they are control tokens. Sorted, no duplicates.
    pub fn end_of_generation_ids(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = [self.eos, self.eot].into_iter().flatten().collect();
        for text in [
            "<|im_end|>",
            "<|endoftext|>",
            "<|eot_id|>",
            "<end_of_turn>",
            "<eos>",
        ] {
            if let Some(id) = self.token_id(text) {
                if self.token_type(id) == Some(TokenType::Control) {
                    ids.push(id);
                }
            }
        }
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Encodes `text` to token ids. With `parse_special`, the text of control tokens (e.g.
    /// `<|im_start|>`) becomes their id; without it, only user-defined tokens are matched. Never adds
    /// BOS; use [`Tokenizer::add_bos`] to decide.
    pub fn encode(&self, text: &str, parse_special: bool) -> Vec<u32> {
        let mut out = Vec::new();
        // Without a limit nothing can be refused.
        let _ = self.encode_within(text, parse_special, &mut out, usize::MAX);
        out
    }

    /// Appends the tokens of `text` to `out` (as [`Tokenizer::encode`]), giving up as soon as
    /// `out` would hold more than `limit` tokens. The work is bounded by the limit, not by the
    /// text: a text far too long is refused from its length alone, and BPE (whose cost grows
    /// with a word's length) never runs on a word that cannot fit. Priced and rate-limited
    /// servers tokenize untrusted prompts with this.
    pub fn encode_within(
        &self,
        text: &str,
        parse_special: bool,
        out: &mut Vec<u32>,
        limit: usize,
    ) -> Result<(), TooManyTokens> {
        let too_many = TooManyTokens { limit };
        let room = |out: &Vec<u32>| limit.saturating_sub(out.len());
        if text.len().div_ceil(self.longest_token_bytes) > room(out) {
            return Err(too_many);
        }
        // SentencePiece puts its space prefix (if any) at the start and after special tokens.
        let mut after_special = true;
        for fragment in self.specials.split(text, parse_special) {
            match fragment {
                Fragment::Special(id) => out.push(id),
                Fragment::Text(piece) => self.encode_text(piece, after_special, out, limit)?,
            }
            after_special = matches!(fragment, Fragment::Special(_));
            if out.len() > limit {
                return Err(too_many);
            }
        }
        Ok(())
    }

    /// Decodes ids to bytes: normal tokens through the byte alphabet (byte-level BPE) or with
    /// `▁` as a space (SentencePiece), `<0xNN>` byte tokens as their byte, others as their text.
    /// With `skip_special`, control tokens are left out.
    pub fn decode_bytes(&self, ids: &[u32], skip_special: bool) -> Result<Vec<u8>, TokenizerError> {
        let mut out = Vec::new();
        for &id in ids {
            self.append_token_bytes(id, skip_special, &mut out)?;
        }
        Ok(out)
    }

    /// Decodes ids to text, replacing invalid UTF-8 (e.g. a cut multi-byte character) with U+FFFD.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String, TokenizerError> {
        Ok(String::from_utf8_lossy(&self.decode_bytes(ids, skip_special)?).into_owned())
    }

    /// Appends the bytes of one token to `out`.
    pub fn append_token_bytes(
        &self,
        id: u32,
        skip_special: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), TokenizerError> {
        let text = self
            .token_text(id)
            .ok_or(TokenizerError::UnknownTokenId(id))?;
        let bpe = match &self.algorithm {
            Algorithm::Bpe(bpe) => bpe,
            Algorithm::Spm(_) => {
                append_spm_token_bytes(text, self.token_types[id as usize], skip_special, out);
                return Ok(());
            }
        };
        match self.token_types[id as usize] {
            TokenType::Control | TokenType::Unknown if skip_special => {}
            TokenType::Normal | TokenType::Byte | TokenType::Unused => {
                for c in text.chars() {
                    match bpe.char_to_byte.get(&c) {
                        Some(&b) => out.push(b),
                        None => {
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                        }
                    }
                }
            }
            _ => out.extend_from_slice(text.as_bytes()),
        }
        Ok(())
    }

    /// Appends the tokens of a piece of text without special tokens, refusing before the merge
    /// when the piece cannot fit.
    fn encode_text(
        &self,
        text: &str,
        after_special: bool,
        out: &mut Vec<u32>,
        limit: usize,
    ) -> Result<(), TooManyTokens> {
        match &self.algorithm {
            Algorithm::Bpe(bpe) => self.encode_bpe_text(bpe, text, out, limit),
            Algorithm::Spm(spm) => {
                // SentencePiece merges the whole piece at once: refuse first if it cannot fit.
                let at_least = text.len().div_ceil(self.longest_token_bytes);
                if out.len().saturating_add(at_least) > limit {
                    return Err(TooManyTokens { limit });
                }
                spm.encode_fragment(&self.token_to_id, text, after_special, out);
                match out.len() > limit {
                    true => Err(TooManyTokens { limit }),
                    false => Ok(()),
                }
            }
        }
    }

    fn encode_bpe_text(
        &self,
        bpe: &BpeVocab,
        text: &str,
        out: &mut Vec<u32>,
        limit: usize,
    ) -> Result<(), TooManyTokens> {
        let chars: Vec<char> = text.chars().collect();
        let mut words: Vec<(usize, usize)> = Vec::new();
        match bpe.pre {
            PreTokenizer::Gpt2 => gpt2_split(&chars, 0, chars.len(), &mut words),
            PreTokenizer::DigitsThenGpt2 => {
                let mut start = 0;
                for (i, &c) in chars.iter().enumerate() {
                    if flags(c).number {
                        gpt2_split(&chars, start, i, &mut words);
                        words.push((i, i + 1));
                        start = i + 1;
                    }
                }
                gpt2_split(&chars, start, chars.len(), &mut words);
            }
        }
        let mut word = String::new();
        for (start, end) in words {
            word.clear();
            let mut buf = [0u8; 4];
            for c in &chars[start..end] {
                for b in c.encode_utf8(&mut buf).bytes() {
                    word.push(bpe.byte_to_char[b as usize]);
                }
            }
            // Each char of `word` stands for one byte; this word alone needs at least this many.
            let at_least = word.chars().count().div_ceil(self.longest_token_bytes);
            if out.len().saturating_add(at_least) > limit {
                return Err(TooManyTokens { limit });
            }
            self.bpe_word(bpe, &word, out);
            if out.len() > limit {
                return Err(TooManyTokens { limit });
            }
        }
        Ok(())
    }

    /// Merges one word's byte symbols: repeatedly the adjacent pair with the lowest merge rank,
    /// leftmost first (llama.cpp's order). A heap of candidate pairs over a linked list of
    /// symbols keeps it O(n log n) in the word's length; a pair whose symbols changed since it
    /// was queued is skipped when it comes up.
    fn bpe_word(&self, bpe: &BpeVocab, word: &str, out: &mut Vec<u32>) {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;

        // llama.cpp runs the merges even when the whole word is a token (its shortcut is only
        // for vocabularies flagged `ignore_merges`), so this does too.
        let mut symbols: Vec<u32> = Vec::with_capacity(word.len());
        let mut buf = [0u8; 4];
        for c in word.chars() {
            let s = c.encode_utf8(&mut buf);
            match self.token_to_id.get(&*s) {
                Some(&id) => symbols.push(id),
                None => {
                    tracing::warn!(symbol = %s, "byte symbol missing from the vocabulary; dropped");
                }
            }
        }
        const NONE: usize = usize::MAX;
        let n = symbols.len();
        let mut next: Vec<usize> = (1..=n).map(|i| if i == n { NONE } else { i }).collect();
        let mut prev: Vec<usize> = (0..n).map(|i| i.checked_sub(1).unwrap_or(NONE)).collect();
        let mut alive = vec![true; n];
        // (rank, left position, left id, right id); positions keep their order as symbols merge.
        let mut queue: BinaryHeap<Reverse<(u32, usize, u32, u32)>> = BinaryHeap::new();
        let pair = |symbols: &[u32], left: usize, right: usize| {
            bpe.merges
                .get(&(symbols[left], symbols[right]))
                .map(|&(rank, _)| Reverse((rank, left, symbols[left], symbols[right])))
        };
        for i in 1..n {
            queue.extend(pair(&symbols, i - 1, i));
        }
        while let Some(Reverse((_, left, left_id, right_id))) = queue.pop() {
            let right = next[left];
            if !alive[left]
                || right == NONE
                || symbols[left] != left_id
                || symbols[right] != right_id
            {
                continue;
            }
            let Some(&(_, merged)) = bpe.merges.get(&(left_id, right_id)) else {
                continue;
            };
            symbols[left] = merged;
            alive[right] = false;
            next[left] = next[right];
            if next[right] != NONE {
                prev[next[right]] = left;
            }
            if prev[left] != NONE {
                queue.extend(pair(&symbols, prev[left], left));
            }
            if next[left] != NONE {
                queue.extend(pair(&symbols, left, next[left]));
            }
        }
        let mut at = if n == 0 { NONE } else { 0 };
        while at != NONE {
            out.push(symbols[at]);
            at = next[at];
        }
    }
}

impl BpeVocab {
    /// The pre-tokenizer (`tokenizer.ggml.pre`) and ranked merges (`tokenizer.ggml.merges`).
    fn from_gguf_metadata(
        md: &Metadata,
        token_to_id: &HashMap<String, u32>,
    ) -> Result<Self, TokenizerError> {
        let pre_name = md
            .field("tokenizer.ggml.pre")
            .opt_string()?
            .unwrap_or("default");
        let pre = match pre_name {
            "default" | "gpt-2" | "gpt2" => PreTokenizer::Gpt2,
            "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone"
            | "minerva-7b" => PreTokenizer::DigitsThenGpt2,
            other => return Err(TokenizerError::UnsupportedPreTokenizer(other.to_string())),
        };
        let mut merges = HashMap::new();
        for (rank, line) in md
            .field("tokenizer.ggml.merges")
            .string_array()?
            .into_iter()
            .enumerate()
        {
            // A merge is "left right"; the split is at the first space after the first character
            // (llama.cpp: `word.find(' ', 1)`).
            let Some((left, right)) = split_merge(line) else {
                return Err(TokenizerError::BadMetadata {
                    key: "tokenizer.ggml.merges".into(),
                    reason: format!("merge {rank} ({line:?}) has no space"),
                });
            };
            let (Some(&l), Some(&r), Some(&m)) = (
                token_to_id.get(left),
                token_to_id.get(right),
                token_to_id.get(&format!("{left}{right}")),
            ) else {
                tracing::debug!(
                    rank,
                    line,
                    "merge refers to tokens outside the vocabulary; ignored"
                );
                continue;
            };
            merges.entry((l, r)).or_insert((rank as u32, m));
        }
        let byte_to_char = gpt2_byte_alphabet();
        let char_to_byte = byte_to_char
            .iter()
            .enumerate()
            .map(|(b, &c)| (c, b as u8))
            .collect();
        tracing::debug!(merges = merges.len(), pre = pre_name, "byte-level BPE");
        Ok(Self {
            merges,
            pre,
            byte_to_char,
            char_to_byte,
        })
    }
}

/// The scores (`tokenizer.ggml.scores`), byte tokens and space-prefix flag of a SentencePiece
/// vocabulary.
fn spm_vocab(
    md: &Metadata,
    tokens: &[String],
    token_to_id: &HashMap<String, u32>,
) -> Result<SpmVocab, TokenizerError> {
    let key = "tokenizer.ggml.scores";
    let scores = md
        .field(key)
        .array()?
        .iter()
        .map(|v| match v {
            Value::F32(score) => Some(*score),
            Value::F64(score) => Some(*score as f32),
            _ => None,
        })
        .collect::<Option<Vec<f32>>>()
        .ok_or_else(|| TokenizerError::BadMetadata {
            key: key.into(),
            reason: "not a float array".into(),
        })?;
    if scores.len() != tokens.len() {
        return Err(TokenizerError::BadMetadata {
            key: key.into(),
            reason: format!("{} scores for {} tokens", scores.len(), tokens.len()),
        });
    }
    let mut byte_tokens = [None; 256];
    for (byte, slot) in byte_tokens.iter_mut().enumerate() {
        // llama.cpp's `byte_to_token`: `<0xNN>`, else the token of the byte itself.
        *slot = token_to_id
            .get(&format!("<0x{byte:02X}>"))
            .or_else(|| {
                char::from_u32(byte as u32)
                    .filter(|c| c.is_ascii())
                    .and_then(|c| token_to_id.get(&c.to_string()))
            })
            .copied();
    }
    let unknown = md.field("tokenizer.ggml.unknown_token_id").opt_u32()?;
    Ok(SpmVocab {
        scores,
        byte_tokens,
        // llama.cpp's default for SentencePiece vocabularies is to add the prefix.
        add_space_prefix: md
            .field("tokenizer.ggml.add_space_prefix")
            .opt_bool()?
            .unwrap_or(true),
        unknown: unknown.filter(|&id| (id as usize) < tokens.len()),
    })
}

/// One SentencePiece token's bytes, as llama.cpp's `token_to_piece` writes them: `▁` is a space,
/// a byte token its byte, control and user-defined tokens their text, unused tokens nothing.
fn append_spm_token_bytes(text: &str, ty: TokenType, skip_special: bool, out: &mut Vec<u8>) {
    match ty {
        TokenType::Control | TokenType::Unknown if skip_special => {}
        TokenType::Normal => out.extend_from_slice(text.replace('▁', " ").as_bytes()),
        TokenType::Byte => match byte_of_token(text) {
            Some(byte) => out.push(byte),
            None => out.extend_from_slice(text.as_bytes()),
        },
        TokenType::Unused => {}
        TokenType::Control | TokenType::Unknown | TokenType::UserDefined => {
            out.extend_from_slice(text.as_bytes())
        }
    }
}

fn split_merge(line: &str) -> Option<(&str, &str)> {
    let first_len = line.chars().next()?.len_utf8();
    let at = line[first_len..].find(' ')? + first_len;
    Some((&line[..at], &line[at + 1..]))
}

#[derive(Clone, Copy, Default)]
struct Flags {
    letter: bool,
    number: bool,
    whitespace: bool,
    /// The code point is assigned (llama.cpp gives unassigned code points no flags at all).
    defined: bool,
}

fn flags(c: char) -> Flags {
    use GeneralCategory as G;
    let category = get_general_category(c);
    Flags {
        letter: matches!(
            category,
            G::UppercaseLetter
                | G::LowercaseLetter
                | G::TitlecaseLetter
                | G::ModifierLetter
                | G::OtherLetter
        ),
        number: matches!(
            category,
            G::DecimalNumber | G::LetterNumber | G::OtherNumber
        ),
        whitespace: c.is_whitespace(),
        defined: category != G::Unassigned,
    }
}

/// llama.cpp's hand-written GPT-2 splitter (`unicode_regex_split_custom_gpt2`) over
/// `chars[start..end]`, pushing word ranges.
fn gpt2_split(chars: &[char], start: usize, end: usize, words: &mut Vec<(usize, usize)>) {
    let get = |i: usize| if i < end { Some(chars[i]) } else { None };
    let get_flags = |i: usize| get(i).map(flags).unwrap_or_default();
    let mut pos = start;
    while pos < end {
        let word_start = pos;
        let c = chars[pos];
        let f = flags(c);
        // 's|'t|'re|'ve|'m|'ll|'d
        if c == '\'' && pos + 1 < end {
            let next = chars[pos + 1];
            if matches!(next, 's' | 't' | 'm' | 'd') {
                words.push((pos, pos + 2));
                pos += 2;
                continue;
            }
            if let Some(next2) = get(pos + 2) {
                if matches!((next, next2), ('r', 'e') | ('v', 'e') | ('l', 'l')) {
                    words.push((pos, pos + 3));
                    pos += 3;
                    continue;
                }
            }
        }
        let f2 = if c == ' ' { get_flags(pos + 1) } else { f };
        // ' ?\p{L}+'
        if f2.letter {
            pos += usize::from(c == ' ');
            while get_flags(pos).letter {
                pos += 1;
            }
            words.push((word_start, pos));
            continue;
        }
        // ' ?\p{N}+'
        if f2.number {
            pos += usize::from(c == ' ');
            while get_flags(pos).number {
                pos += 1;
            }
            words.push((word_start, pos));
            continue;
        }
        // ' ?[^\s\p{L}\p{N}]+'
        let is_punct = |f: Flags| f.defined && !(f.whitespace || f.letter || f.number);
        if is_punct(f2) {
            pos += usize::from(c == ' ');
            while is_punct(get_flags(pos)) {
                pos += 1;
            }
            words.push((word_start, pos));
            continue;
        }
        let mut spaces = 0;
        while get_flags(pos + spaces).whitespace {
            spaces += 1;
        }
        // '\s+(?!\S)'
        if spaces > 1 && get(pos + spaces).is_some() {
            pos += spaces - 1;
            words.push((word_start, pos));
            continue;
        }
        // '\s+'
        if spaces > 0 {
            pos += spaces;
            words.push((word_start, pos));
            continue;
        }
        // no match: the character stands alone
        pos += 1;
        words.push((word_start, pos));
    }
}

/// GPT-2's `bytes_to_unicode`: printable bytes map to themselves, the others to U+0100 onwards.
fn gpt2_byte_alphabet() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut next = 256u32;
    for b in 0..=255u8 {
        let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        table[b as usize] = if printable {
            char::from(b)
        } else {
            let c = char::from_u32(next).unwrap_or('\u{FFFD}');
            next += 1;
            c
        };
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::Value;

    fn words(text: &str, digits: bool) -> Vec<String> {
        let chars: Vec<char> = text.chars().collect();
        let mut ranges = Vec::new();
        if digits {
            let mut start = 0;
            for (i, &c) in chars.iter().enumerate() {
                if flags(c).number {
                    gpt2_split(&chars, start, i, &mut ranges);
                    ranges.push((i, i + 1));
                    start = i + 1;
                }
            }
            gpt2_split(&chars, start, chars.len(), &mut ranges);
        } else {
            gpt2_split(&chars, 0, chars.len(), &mut ranges);
        }
        ranges
            .into_iter()
            .map(|(s, e)| chars[s..e].iter().collect())
            .collect()
    }

    #[test]
    fn gpt2_split_matches_the_regex() {
        assert_eq!(words("Hello world", false), ["Hello", " world"]);
        assert_eq!(
            words("I'm   here  ", false),
            ["I", "'m", "  ", " here", "  "]
        );
        assert_eq!(words("a\n\nb", false), ["a", "\n", "\n", "b"]);
        assert_eq!(words("x=1+22;", false), ["x", "=", "1", "+", "22", ";"]);
        assert_eq!(words("they'll", false), ["they", "'ll"]);
    }

    #[test]
    fn smollm_isolates_digits() {
        assert_eq!(words("abc 123", true), ["abc", " ", "1", "2", "3"]);
        assert_eq!(words("v2.0", true), ["v", "2", ".", "0"]);
    }

    #[test]
    fn byte_alphabet_is_a_bijection() {
        let table = gpt2_byte_alphabet();
        assert_eq!(table[b' ' as usize], 'Ġ');
        assert_eq!(table[b'\n' as usize], 'Ċ');
        let mut seen: Vec<char> = table.to_vec();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 256);
    }

    #[test]
    fn merge_lines_split_after_the_first_character() {
        assert_eq!(split_merge("Ġ t"), Some(("Ġ", "t")));
        assert_eq!(split_merge("  a"), Some((" ", "a")));
    }

    /// A tokenizer over the letters a, b, c with merges that overlap and chain.
    fn tiny() -> Tokenizer {
        let tokens = [
            "a", "b", "c", "aa", "ab", "bc", "aaa", "abc", "ca", "aab", "cab",
        ];
        let merges = ["a a", "a b", "b c", "aa a", "ab c", "c a", "aa b", "c ab"];
        let strings = |items: &[&str]| {
            Value::Array(items.iter().map(|s| Value::String(s.to_string())).collect())
        };
        let metadata = Metadata::from_iter([
            (
                "tokenizer.ggml.model".to_string(),
                Value::String("gpt2".into()),
            ),
            ("tokenizer.ggml.tokens".to_string(), strings(&tokens)),
            ("tokenizer.ggml.merges".to_string(), strings(&merges)),
        ]);
        Tokenizer::from_gguf_metadata(&metadata).expect("tiny tokenizer")
    }

    fn bpe(tokenizer: &Tokenizer) -> &BpeVocab {
        match &tokenizer.algorithm {
            Algorithm::Bpe(bpe) => bpe,
            Algorithm::Spm(_) => panic!("not byte-level BPE"),
        }
    }

    /// The textbook quadratic BPE: merge the lowest-ranked adjacent pair, leftmost first.
    fn reference_bpe(tokenizer: &Tokenizer, word: &str) -> Vec<u32> {
        let mut symbols: Vec<u32> = word
            .chars()
            .map(|c| tokenizer.token_id(&c.to_string()).expect("a letter"))
            .collect();
        loop {
            let mut best: Option<(u32, usize, u32)> = None;
            for i in 0..symbols.len().saturating_sub(1) {
                if let Some(&(rank, merged)) =
                    bpe(tokenizer).merges.get(&(symbols[i], symbols[i + 1]))
                {
                    if best.is_none_or(|(r, _, _)| rank < r) {
                        best = Some((rank, i, merged));
                    }
                }
            }
            let Some((_, i, merged)) = best else { break };
            symbols[i] = merged;
            symbols.remove(i + 1);
        }
        symbols
    }

    #[test]
    fn heap_bpe_equals_the_quadratic_reference() {
        let tokenizer = tiny();
        // Every word over {a, b, c} up to length 8, and some long ones.
        let mut words: Vec<String> = vec![String::new()];
        for _ in 0..8 {
            let longer: Vec<String> = words
                .iter()
                .flat_map(|w| ["a", "b", "c"].map(|l| format!("{w}{l}")))
                .collect();
            words.extend(longer);
            words.sort();
            words.dedup();
        }
        words.push("a".repeat(1001));
        words.push("cab".repeat(333) + "aab");
        for word in &words {
            let mut heap = Vec::new();
            tokenizer.bpe_word(bpe(&tokenizer), word, &mut heap);
            assert_eq!(heap, reference_bpe(&tokenizer, word), "{word}");
        }
    }

    #[test]
    fn other_tokenizer_models_are_refused_by_name() {
        let metadata = Metadata::from_iter([(
            "tokenizer.ggml.model".to_string(),
            Value::String("bert".into()),
        )]);
        let error = Tokenizer::from_gguf_metadata(&metadata).unwrap_err();
        assert!(matches!(&error, TokenizerError::UnsupportedTokenizer(m) if m == "bert"));
        assert!(error.to_string().contains("`bert`"), "{error}");
    }

    /// A SentencePiece vocabulary: byte tokens, a control token, a user-defined one, pieces.
    fn tiny_spm(add_space_prefix: Option<bool>) -> Tokenizer {
        let mut tokens: Vec<(String, f32, i32)> = vec![
            ("<unk>".into(), 0.0, 2),
            ("<s>".into(), 0.0, 3),
            ("</s>".into(), 0.0, 3),
            ("<end_of_turn>".into(), 0.0, 3),
            ("\n".into(), 0.0, 4),
        ];
        tokens.extend((0..=255u8).map(|b| (format!("<0x{b:02X}>"), 0.0, 6)));
        for (text, score) in [
            ("▁", -1.0),
            ("a", -2.0),
            ("b", -2.0),
            ("▁a", -1.5),
            ("ab", -3.0),
        ] {
            tokens.push((text.into(), score, 1));
        }
        let mut entries = vec![
            (
                "tokenizer.ggml.model".to_string(),
                Value::String("llama".into()),
            ),
            (
                "tokenizer.ggml.tokens".to_string(),
                Value::Array(tokens.iter().map(|t| Value::String(t.0.clone())).collect()),
            ),
            (
                "tokenizer.ggml.scores".to_string(),
                Value::Array(tokens.iter().map(|t| Value::F32(t.1)).collect()),
            ),
            (
                "tokenizer.ggml.token_type".to_string(),
                Value::Array(tokens.iter().map(|t| Value::I32(t.2)).collect()),
            ),
            ("tokenizer.ggml.bos_token_id".to_string(), Value::U32(1)),
            ("tokenizer.ggml.eos_token_id".to_string(), Value::U32(2)),
        ];
        if let Some(prefix) = add_space_prefix {
            entries.push((
                "tokenizer.ggml.add_space_prefix".to_string(),
                Value::Bool(prefix),
            ));
        }
        Tokenizer::from_gguf_metadata(&Metadata::from_iter(entries)).expect("tiny SentencePiece")
    }

    #[test]
    fn sentencepiece_prefixes_a_space_at_the_start_and_after_special_tokens() {
        // llama.cpp's default for `llama` vocabularies: space prefix and BOS.
        let tokenizer = tiny_spm(None);
        assert_eq!(tokenizer.kind(), TokenizerKind::SentencePiece);
        assert!(tokenizer.add_bos());
        let id = |text: &str| tokenizer.token_id(text).unwrap();
        assert_eq!(
            tokenizer.encode("a</s>a b", true),
            [id("▁a"), id("</s>"), id("▁a"), id("▁"), id("b")]
        );
        // The user-defined newline is cut out even without special parsing, and counts as a
        // special token for the prefix (llama.cpp: any token fragment); `</s>` stays text.
        assert_eq!(
            tokenizer.encode("a\na</s>", false),
            [id("▁a"), id("\n"), id("▁a"), id("<0x3C>"), id("<0x2F>")]
                .into_iter()
                .chain("s>".bytes().map(|b| id(&format!("<0x{b:02X}>"))))
                .collect::<Vec<_>>()
        );
        assert_eq!(tokenizer.end_of_generation_ids(), [2, 3]);

        let tokenizer = tiny_spm(Some(false));
        let id = |text: &str| tokenizer.token_id(text).unwrap();
        assert_eq!(tokenizer.encode("ab", true), [id("ab")]);
        assert_eq!(tokenizer.encode(" ab", true), [id("▁a"), id("b")]);
    }

    #[test]
    fn sentencepiece_decodes_spaces_bytes_and_special_tokens() {
        let tokenizer = tiny_spm(Some(false));
        let text = " ab\né</s>\u{0}";
        let ids = tokenizer.encode(text, true);
        assert_eq!(tokenizer.decode(&ids, false).unwrap(), text);
        assert_eq!(
            tokenizer.decode(&ids, true).unwrap(),
            " ab\né\u{0}",
            "control tokens skipped"
        );
        // A byte token alone is one byte: half a character decodes to U+FFFD.
        let first_half = tokenizer.token_id("<0xC3>").unwrap();
        assert_eq!(
            tokenizer.decode_bytes(&[first_half], false).unwrap(),
            [0xC3]
        );
    }

    #[test]
    fn encoding_within_a_limit_stops_early_and_agrees_below_it() {
        let tokenizer = tiny();
        let text = "abcaab".repeat(50);
        let all = tokenizer.encode(&text, false);
        let mut out = Vec::new();
        tokenizer
            .encode_within(&text, false, &mut out, all.len())
            .expect("fits exactly");
        assert_eq!(out, all);
        let mut out = Vec::new();
        assert_eq!(
            tokenizer.encode_within(&text, false, &mut out, all.len() - 1),
            Err(TooManyTokens {
                limit: all.len() - 1
            })
        );
        // Far too long for the limit: refused from its length alone, nothing encoded.
        let mut out = Vec::new();
        assert!(tokenizer
            .encode_within(&"a".repeat(10_000), false, &mut out, 10)
            .is_err());
        assert!(out.is_empty());
    }
}
