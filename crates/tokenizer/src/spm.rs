//! SentencePiece-style BPE as llama.cpp runs it for `tokenizer.ggml.model = llama`
//! (`llm_tokenizer_spm`): Gemma, Llama 1/2, Mistral and others.
//!
//! For one text fragment (special tokens are cut out before):
//! 1. a space is put in front if the vocabulary asks for it (`add_space_prefix`) and the fragment
//!    starts the text or follows a special token; every space becomes U+2581 `▁`;
//! 2. every character is a symbol; any two adjacent symbols whose joined text is a token of the
//!    vocabulary (of any type) are a candidate, scored by that token's score;
//! 3. the best candidate is merged, repeatedly: highest score first, equal scores leftmost first;
//! 4. every final symbol that is a token becomes it; any other is written as its bytes' `<0xNN>`
//!    tokens (byte fallback).
//!
//! A heap of candidates over a linked list of symbols keeps it O(n log n) in the fragment's
//! length; a candidate whose symbols changed since it was queued is skipped when it comes up.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

/// What the SentencePiece merge needs besides the vocabulary's text → id map.
#[derive(Debug, Clone)]
pub(crate) struct SpmVocab {
    /// `tokenizer.ggml.scores`, one per token.
    pub(crate) scores: Vec<f32>,
    /// The `<0xNN>` token of every byte (else the token whose text is that single byte).
    pub(crate) byte_tokens: [Option<u32>; 256],
    /// `tokenizer.ggml.add_space_prefix`.
    pub(crate) add_space_prefix: bool,
    /// The unknown token, written for a byte that has no token (a vocabulary without byte
    /// fallback; llama.cpp aborts there).
    pub(crate) unknown: Option<u32>,
}

/// Two adjacent symbols whose joined text is a token.
#[derive(Debug, Clone, Copy)]
struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    /// Bytes of the joined text: a symbol that has changed since changes the sum.
    size: usize,
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Bigram {}

impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Bigram {
    /// The greatest comes out of the heap first: the highest score, then the leftmost
    /// (llama.cpp's `llm_bigram_spm::comparator`; scores compare as floats do there, so -0 = 0).
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .partial_cmp(&other.score)
            .unwrap_or(Ordering::Equal)
            .then(other.left.cmp(&self.left))
    }
}

/// A run of the escaped text: `start..start + len`; `len == 0` once merged into its left.
#[derive(Debug, Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

impl SpmVocab {
    /// Appends the tokens of one text fragment to `out`. `after_special`: the fragment starts the
    /// text or follows a special token (where a space prefix goes).
    pub(crate) fn encode_fragment(
        &self,
        token_to_id: &HashMap<String, u32>,
        fragment: &str,
        after_special: bool,
        out: &mut Vec<u32>,
    ) {
        let mut text = String::with_capacity(fragment.len() + 3);
        if self.add_space_prefix && after_special {
            text.push('▁');
        }
        for c in fragment.chars() {
            text.push(if c == ' ' { '▁' } else { c });
        }
        let mut symbols: Vec<Symbol> = Vec::with_capacity(text.len());
        for (start, c) in text.char_indices() {
            let index = symbols.len();
            symbols.push(Symbol {
                start,
                len: c.len_utf8(),
                prev: index.checked_sub(1),
                next: None,
            });
            if index > 0 {
                symbols[index - 1].next = Some(index);
            }
        }
        let mut queue = BinaryHeap::new();
        let candidate = |symbols: &[Symbol], left: Option<usize>, right: Option<usize>| {
            let (left, right) = (left?, right?);
            let (l, r) = (symbols[left], symbols[right]);
            let joined = &text[l.start..r.start + r.len];
            let &id = token_to_id.get(joined)?;
            Some(Bigram {
                score: *self.scores.get(id as usize)?,
                left,
                right,
                size: joined.len(),
            })
        };
        for right in 1..symbols.len() {
            queue.extend(candidate(&symbols, Some(right - 1), Some(right)));
        }
        while let Some(bigram) = queue.pop() {
            let (l, r) = (symbols[bigram.left], symbols[bigram.right]);
            if l.len == 0 || r.len == 0 || l.len + r.len != bigram.size {
                continue;
            }
            symbols[bigram.left].len += r.len;
            symbols[bigram.right].len = 0;
            symbols[bigram.left].next = r.next;
            if let Some(next) = r.next {
                symbols[next].prev = Some(bigram.left);
            }
            queue.extend(candidate(&symbols, l.prev, Some(bigram.left)));
            queue.extend(candidate(&symbols, Some(bigram.left), r.next));
        }
        let mut at = if symbols.is_empty() { None } else { Some(0) };
        while let Some(index) = at {
            let symbol = symbols[index];
            let piece = &text[symbol.start..symbol.start + symbol.len];
            // A merged symbol is always a token (only tokens are merged); a single character
            // may not be, and falls back to its bytes.
            match token_to_id.get(piece) {
                Some(&id) => out.push(id),
                None => {
                    for &byte in piece.as_bytes() {
                        match self.byte_tokens[byte as usize].or(self.unknown) {
                            Some(id) => out.push(id),
                            None => tracing::warn!(byte, "no token for a byte; dropped"),
                        }
                    }
                }
            }
            at = symbol.next;
        }
    }
}

/// The byte a `<0xNN>` token stands for.
pub(crate) fn byte_of_token(text: &str) -> Option<u8> {
    let hex = text.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A vocabulary with scores: `(text, score)`; ids are positions.
    fn vocab(tokens: &[(&str, f32)]) -> (SpmVocab, HashMap<String, u32>) {
        let token_to_id: HashMap<String, u32> = tokens
            .iter()
            .enumerate()
            .map(|(id, (text, _))| (text.to_string(), id as u32))
            .collect();
        let mut byte_tokens = [None; 256];
        for (b, slot) in byte_tokens.iter_mut().enumerate() {
            *slot = token_to_id.get(&format!("<0x{b:02X}>")).copied();
        }
        let spm = SpmVocab {
            scores: tokens.iter().map(|&(_, s)| s).collect(),
            byte_tokens,
            add_space_prefix: false,
            unknown: None,
        };
        (spm, token_to_id)
    }

    fn encode(spm: &SpmVocab, ids: &HashMap<String, u32>, text: &str) -> Vec<u32> {
        let mut out = Vec::new();
        spm.encode_fragment(ids, text, true, &mut out);
        out
    }

    /// The textbook quadratic SentencePiece merge: join the best-scored adjacent pair, leftmost
    /// on ties, until none joins into a token.
    fn reference(spm: &SpmVocab, ids: &HashMap<String, u32>, text: &str) -> Vec<u32> {
        let text = text.replace(' ', "▁");
        let mut symbols: Vec<String> = text.chars().map(String::from).collect();
        loop {
            let mut best: Option<(f32, usize)> = None;
            for i in 0..symbols.len().saturating_sub(1) {
                if let Some(&id) = ids.get(&format!("{}{}", symbols[i], symbols[i + 1])) {
                    let score = spm.scores[id as usize];
                    if best.is_none_or(|(s, _)| score > s) {
                        best = Some((score, i));
                    }
                }
            }
            let Some((_, i)) = best else { break };
            let right = symbols.remove(i + 1);
            symbols[i].push_str(&right);
        }
        let mut out = Vec::new();
        for s in symbols {
            match ids.get(&s) {
                Some(&id) => out.push(id),
                None => out.extend(s.bytes().map(|b| spm.byte_tokens[b as usize].unwrap())),
            }
        }
        out
    }

    fn letters_vocab() -> (SpmVocab, HashMap<String, u32>) {
        let mut tokens: Vec<(String, f32)> =
            (0..=255u8).map(|b| (format!("<0x{b:02X}>"), 0.0)).collect();
        for (text, score) in [
            ("a", -1.0),
            ("b", -1.0),
            ("c", -1.0),
            ("▁", -1.0),
            ("ab", -2.0),
            ("bc", -2.0),
            ("aa", -3.0),
            ("abc", -1.5),
            ("ca", -2.0),
            ("▁a", -2.5),
            ("▁ab", -4.0),
            ("aaa", -2.0),
            ("cab", -5.0),
            ("bb", -2.0),
        ] {
            tokens.push((text.into(), score));
        }
        let borrowed: Vec<(&str, f32)> = tokens.iter().map(|(t, s)| (t.as_str(), *s)).collect();
        vocab(&borrowed)
    }

    #[test]
    fn heap_merge_equals_the_quadratic_reference() {
        let (spm, ids) = letters_vocab();
        let mut texts: Vec<String> = vec![String::new()];
        for _ in 0..7 {
            let longer: Vec<String> = texts
                .iter()
                .flat_map(|w| ["a", "b", "c", " ", "é"].map(|l| format!("{w}{l}")))
                .collect();
            texts.extend(longer);
            texts.sort();
            texts.dedup();
        }
        texts.push("a".repeat(1001));
        texts.push("cab ".repeat(333) + "bb");
        for text in &texts {
            assert_eq!(
                encode(&spm, &ids, text),
                reference(&spm, &ids, text),
                "{text:?}"
            );
        }
    }

    #[test]
    fn unknown_characters_fall_back_to_bytes() {
        let (spm, ids) = letters_vocab();
        let e_acute = [ids["<0xC3>"], ids["<0xA9>"]];
        assert_eq!(encode(&spm, &ids, "é"), e_acute);
        assert_eq!(encode(&spm, &ids, "aé"), [ids["a"], e_acute[0], e_acute[1]]);
        // "ab" (-2) merges first, then "▁" + "ab" is a token too.
        assert_eq!(encode(&spm, &ids, " ab"), [ids["▁ab"]]);
        assert_eq!(encode(&spm, &ids, " c"), [ids["▁"], ids["c"]]);
    }

    #[test]
    fn space_prefix_only_where_asked() {
        let (mut spm, ids) = letters_vocab();
        spm.add_space_prefix = true;
        let mut out = Vec::new();
        spm.encode_fragment(&ids, "a", true, &mut out);
        assert_eq!(out, [ids["▁a"]]);
        out.clear();
        spm.encode_fragment(&ids, "a", false, &mut out);
        assert_eq!(out, [ids["a"]]);
    }

    #[test]
    fn byte_tokens_parse() {
        assert_eq!(byte_of_token("<0x0A>"), Some(b'\n'));
        assert_eq!(byte_of_token("<0xFF>"), Some(0xff));
        assert_eq!(byte_of_token("<0xF>"), None);
        assert_eq!(byte_of_token("a"), None);
    }
}
