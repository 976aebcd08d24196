//! The chat template: ChatML, as SmolLM2 and many small models use it.
//!
//! mycel does not run Jinja. It recognises a ChatML template in `tokenizer.chat_template` and renders
//! it itself, byte for byte as the Jinja template would:
//!
//! ```text
//! <|im_start|>system\n{default system prompt}<|im_end|>\n     (only if the first message is not a system message
//!                                                             and the template has a default)
//! <|im_start|>{role}\n{content}<|im_end|>\n                   (for every message)
//! <|im_start|>assistant\n                                     (the generation prompt)
//! ```
//!
//! The default system prompt is read from the template text itself.
//!
//! Special tokens come only from the template: [`ChatTemplate::pieces`] gives the markup
//! (`<|im_start|>`, `<|im_end|>`) apart from the text between it, and the text — roles and message
//! contents — is tokenized as plain text. A message that contains the string `<|im_start|>` gets
//! the tokens of those characters, never the control token, so no message can open a turn of
//! another role (OpenAI treats such strings as text too).

use mycel_types::receipt::ChatMessage;
use serde::Serialize;

use crate::error::TokenizerError;

/// A ChatML template with an optional default system prompt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatTemplate {
    pub default_system_prompt: Option<String>,
}

const IM_START: &str = "<|im_start|>";
const IM_END: &str = "<|im_end|>";

impl ChatTemplate {
    /// Recognises a ChatML Jinja template and extracts its default system prompt, if any.
    pub fn from_jinja(template: &str) -> Result<Self, TokenizerError> {
        if !template.contains(IM_START) || !template.contains(IM_END) {
            return Err(TokenizerError::UnsupportedChatTemplate);
        }
        let marker = format!("{IM_START}system");
        let default_system_prompt = template.find(&marker).and_then(|at| {
            let rest = &template[at + marker.len()..];
            // The newline after the role is either a real newline or an escaped one in a Jinja
            // string literal.
            let rest = rest
                .strip_prefix('\n')
                .or_else(|| rest.strip_prefix("\\n"))?;
            let end = rest.find(IM_END)?;
            let prompt = &rest[..end];
            // A system block built from a variable (`' + message['content'] + '`) is no default.
            if prompt.contains('\'') || prompt.contains("{{") || prompt.contains('+') {
                return None;
            }
            Some(prompt.replace("\\n", "\n"))
        });
        Ok(Self {
            default_system_prompt,
        })
    }

    /// Plain ChatML with no default system prompt, for models without a template.
    pub fn chatml() -> Self {
        Self {
            default_system_prompt: None,
        }
    }

    /// The conversation as the template lays it out: its markup as [`ChatPiece::Special`] and
    /// everything else (roles, contents, newlines) as [`ChatPiece::Text`], adjacent text joined.
    /// With `add_generation_prompt`, it ends with the assistant's header.
    pub fn pieces(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Vec<ChatPiece> {
        let mut pieces = Vec::with_capacity(messages.len() * 4 + 6);
        let turn = |pieces: &mut Vec<ChatPiece>, role: &str, content: Option<&str>| {
            pieces.push(ChatPiece::Special(IM_START));
            let mut text = format!("{role}\n");
            if let Some(content) = content {
                text.push_str(content);
                pieces.push(ChatPiece::Text(text));
                pieces.push(ChatPiece::Special(IM_END));
                pieces.push(ChatPiece::Text("\n".into()));
            } else {
                pieces.push(ChatPiece::Text(text));
            }
        };
        let first_is_system = messages.first().is_some_and(|m| m.role == "system");
        if !first_is_system && !messages.is_empty() {
            if let Some(system) = &self.default_system_prompt {
                turn(&mut pieces, "system", Some(system));
            }
        }
        for message in messages {
            turn(&mut pieces, &message.role, Some(&message.content));
        }
        if add_generation_prompt {
            turn(&mut pieces, "assistant", None);
        }
        pieces
    }

    /// Renders the conversation as one string (what the Jinja template would print); for
    /// display. Tokenize [`ChatTemplate::pieces`] instead, so that text stays text.
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> String {
        self.pieces(messages, add_generation_prompt)
            .iter()
            .map(|piece| match piece {
                ChatPiece::Special(markup) => markup,
                ChatPiece::Text(text) => text.as_str(),
            })
            .collect()
    }
}

/// One piece of a rendered conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatPiece {
    /// Template markup that is one special token (`<|im_start|>`, `<|im_end|>`).
    Special(&'static str),
    /// Text: tokenized as text, whatever characters it holds.
    Text(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn smollm2_default_system_prompt() {
        let template = ChatTemplate::from_jinja(SMOLLM2).unwrap();
        assert_eq!(
            template.default_system_prompt.as_deref(),
            Some("You are a helpful AI assistant named SmolLM, trained by Hugging Face")
        );
        let text = template.render(&[ChatMessage::user("Hi")], true);
        assert_eq!(
            text,
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
             <|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn explicit_system_prompt_replaces_the_default() {
        let template = ChatTemplate::from_jinja(SMOLLM2).unwrap();
        let text = template.render(
            &[ChatMessage::system("Be brief."), ChatMessage::user("Hi")],
            false,
        );
        assert_eq!(
            text,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        );
    }

    #[test]
    fn non_chatml_is_rejected() {
        assert!(ChatTemplate::from_jinja("{{ bos_token }}[INST] {{ x }} [/INST]").is_err());
    }
}
