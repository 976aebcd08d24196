//! Cutting a text at the special tokens written in it, as llama.cpp's `tokenizer_st_partition`
//! does, without its cost of one scan of the text per special token (a 262,144-token SentencePiece
//! vocabulary has thousands of control and user-defined tokens).
//!
//! llama.cpp's rule: the special tokens are taken longest first (equal lengths by id here); each
//! claims every occurrence of its text, left to right, that lies wholly in text no earlier token
//! has claimed. The same outcome in one pass over the text:
//! 1. a byte trie of the special tokens' texts finds every occurrence of every eligible token
//!    (at most the trie's depth per position);
//! 2. the occurrences are taken in llama.cpp's order (token priority, then position) and an
//!    occurrence is accepted when none of its bytes is claimed yet. Every claimed region is at
//!    least as long as the occurrence being tested (tokens come longest first), so it overlaps a
//!    claimed region exactly when its first or its last byte is claimed: an O(1) test.

use std::collections::HashMap;

use crate::tokenizer::TokenType;

/// One piece of a text cut at its special tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fragment<'t> {
    Text(&'t str),
    Special(u32),
}

/// The special tokens of a vocabulary (control, user-defined and unknown tokens), in a trie.
#[derive(Debug, Clone, Default)]
pub(crate) struct SpecialTokens {
    /// (node, next byte) -> child node; node 0 is the root.
    edges: HashMap<(u32, u8), u32>,
    /// The token that ends at a node: (priority, id, type). Priority 0 is taken first.
    ends: HashMap<u32, (u32, u32, TokenType)>,
    nodes: u32,
    count: usize,
    /// (text length, id) of each token, by priority.
    by_priority: Vec<(u32, u32)>,
}

impl SpecialTokens {
    /// Builds the trie from `(text, id, type)` of every special token; empty texts are ignored.
    pub(crate) fn new<'a>(tokens: impl Iterator<Item = (&'a str, u32, TokenType)>) -> Self {
        let mut sorted: Vec<(&str, u32, TokenType)> =
            tokens.filter(|(text, _, _)| !text.is_empty()).collect();
        // llama.cpp: longest text first (its sort leaves equal lengths unordered; here by id).
        sorted.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
        let mut trie = Self {
            nodes: 1,
            count: sorted.len(),
            ..Self::default()
        };
        trie.by_priority = sorted
            .iter()
            .map(|&(text, id, _)| (text.len() as u32, id))
            .collect();
        for (priority, (text, id, ty)) in sorted.into_iter().enumerate() {
            let mut node = 0u32;
            for &byte in text.as_bytes() {
                let next = trie.nodes;
                node = *trie.edges.entry((node, byte)).or_insert_with(|| next);
                if node == next {
                    trie.nodes += 1;
                }
            }
            // Two tokens with the same text: llama.cpp's text lookup keeps one; the first here.
            trie.ends.entry(node).or_insert((priority as u32, id, ty));
        }
        trie
    }

    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// Calls `found(priority, start)` for every occurrence of an eligible token in `bytes`, in
    /// text order: at most the trie's depth per position.
    fn for_each_occurrence(
        &self,
        bytes: &[u8],
        parse_special: bool,
        mut found: impl FnMut(u32, usize),
    ) {
        if self.count == 0 {
            return;
        }
        for start in 0..bytes.len() {
            let mut node = 0u32;
            for byte in &bytes[start..] {
                let Some(&next) = self.edges.get(&(node, *byte)) else {
                    break;
                };
                node = next;
                if let Some(&(priority, _, ty)) = self.ends.get(&node) {
                    if parse_special || ty == TokenType::UserDefined {
                        found(priority, start);
                    }
                }
            }
        }
    }

    /// Cuts `text` at the special tokens written in it. Without `parse_special`, only
    /// user-defined tokens are cut out (llama.cpp's rule); control and unknown tokens stay text.
    pub(crate) fn split<'t>(&self, text: &'t str, parse_special: bool) -> Vec<Fragment<'t>> {
        let bytes = text.as_bytes();
        // Occurrences bucketed by token priority (a counting sort: one pass counts, a second
        // fills), each bucket in text order: one word per occurrence, no comparison sort.
        let mut counts = vec![0usize; self.count + 1];
        self.for_each_occurrence(bytes, parse_special, |priority, _| {
            counts[priority as usize + 1] += 1
        });
        if counts.iter().all(|&c| c == 0) {
            return if text.is_empty() {
                Vec::new()
            } else {
                vec![Fragment::Text(text)]
            };
        }
        for i in 1..counts.len() {
            counts[i] += counts[i - 1];
        }
        let mut starts = vec![0usize; counts[self.count]];
        let mut fill = counts.clone();
        self.for_each_occurrence(bytes, parse_special, |priority, start| {
            starts[fill[priority as usize]] = start;
            fill[priority as usize] += 1;
        });
        let mut claimed = vec![false; bytes.len()];
        // (start, end, id) of the accepted occurrences.
        let mut accepted: Vec<(usize, usize, u32)> = Vec::new();
        for (priority, &(len, id)) in self.by_priority.iter().enumerate() {
            let bucket = &starts[counts[priority]..counts[priority + 1]];
            for &start in bucket {
                let end = start + len as usize;
                if claimed[start] || claimed[end - 1] {
                    continue;
                }
                claimed[start..end].iter_mut().for_each(|c| *c = true);
                accepted.push((start, end, id));
            }
        }
        accepted.sort_unstable();
        let mut fragments = Vec::with_capacity(accepted.len() * 2 + 1);
        let mut at = 0;
        for (start, end, id) in accepted {
            if start > at {
                fragments.push(Fragment::Text(&text[at..start]));
            }
            fragments.push(Fragment::Special(id));
            at = end;
        }
        if at < text.len() {
            fragments.push(Fragment::Text(&text[at..]));
        }
        fragments
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// llama.cpp's algorithm as written: one scan of the fragments per special token.
    fn reference<'t>(
        specials: &[(&str, u32, TokenType)],
        text: &'t str,
        parse_special: bool,
    ) -> Vec<Fragment<'t>> {
        let mut sorted = specials.to_vec();
        sorted.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
        let mut fragments = vec![Fragment::Text(text)];
        for (special, id, ty) in sorted {
            if !parse_special && ty != TokenType::UserDefined {
                continue;
            }
            let mut next = Vec::new();
            for fragment in fragments {
                let Fragment::Text(mut rest) = fragment else {
                    next.push(fragment);
                    continue;
                };
                while let Some(at) = rest.find(special) {
                    if at > 0 {
                        next.push(Fragment::Text(&rest[..at]));
                    }
                    next.push(Fragment::Special(id));
                    rest = &rest[at + special.len()..];
                }
                if !rest.is_empty() {
                    next.push(Fragment::Text(rest));
                }
            }
            fragments = next;
        }
        fragments
    }

    #[test]
    fn one_pass_equals_llama_cpps_scan_per_token() {
        use TokenType::*;
        let specials = [
            ("\n", 1, UserDefined),
            ("\n\n", 2, UserDefined),
            ("\n\n\n", 3, UserDefined),
            ("  ", 4, UserDefined),
            ("   ", 5, UserDefined),
            ("<s>", 6, Control),
            ("abc", 7, Control),
            ("xa", 8, UserDefined),
            ("ca", 9, Control),
            ("bca", 10, UserDefined),
            ("<s>\n", 11, Control),
        ];
        let trie = SpecialTokens::new(specials.iter().copied());
        // Every string up to length 6 over an alphabet that makes the tokens overlap.
        let alphabet = ["\n", " ", "a", "b", "c", "x", "<s>"];
        let mut texts = vec![String::new()];
        for _ in 0..5 {
            let longer: Vec<String> = texts
                .iter()
                .flat_map(|t| alphabet.map(|l| format!("{t}{l}")))
                .collect();
            texts.extend(longer);
            texts.sort();
            texts.dedup();
        }
        texts.push("\n".repeat(100) + &" ".repeat(77) + "xabcabca<s>\n\n");
        for text in &texts {
            for parse_special in [false, true] {
                assert_eq!(
                    trie.split(text, parse_special),
                    reference(&specials, text, parse_special),
                    "{text:?} parse_special={parse_special}"
                );
            }
        }
    }
}
