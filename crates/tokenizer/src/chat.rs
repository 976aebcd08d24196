//! The chat templates: ChatML, as SmolLM2 and many small models use it, and Gemma's.
//!
//! mycel does not run Jinja. It recognises a ChatML or Gemma template in `tokenizer.chat_template`
//! (or, without one, the model's turn tokens) and renders it itself, byte for byte as the
//! template would. ChatML:
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
//! Gemma ([`ChatDialect::Gemma`], as llama.cpp's built-in `gemma` template renders it; Gemma has
//! no system role):
//!
//! ```text
//! <start_of_turn>{role}\n{system}\n\n{content}<end_of_turn>\n   (for every message; `assistant` is
//!                                                            written `model`; the system messages'
//!                                                            contents, joined, go before the
//!                                                            first non-model turn's content)
//! <start_of_turn>model\n                                     (the generation prompt)
//! ```
//!
//! Contents (and system contents) are trimmed of ASCII whitespace at both ends, as llama.cpp
//! and Gemma's Jinja template (`| trim`) do. The model's BOS comes before it all (add_bos).
//!
//! Special tokens come only from the template: [`ChatTemplate::pieces`] gives the markup
//! (`<|im_start|>`, `<|im_end|>`; `<start_of_turn>`, `<end_of_turn>`) apart from the text between
//! it, and the text — roles and message contents — is tokenized as plain text. A message that
//! contains the string `<|im_start|>` gets the tokens of those characters, never the control
//! token, so no message can open a turn of another role (OpenAI treats such strings as text too).

use mycel_types::receipt::ChatMessage;
use serde::Serialize;

use crate::error::TokenizerError;

/// A chat template: ChatML with an optional default system prompt, or Gemma's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatTemplate {
    /// ChatML only: the system turn put first when the conversation has none.
    pub default_system_prompt: Option<String>,
    pub dialect: ChatDialect,
}

/// The layout of a conversation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatDialect {
    /// `<|im_start|>{role}\n{content}<|im_end|>\n`
    #[default]
    ChatMl,
    /// `<start_of_turn>{role}\n{content}<end_of_turn>\n`, `assistant` written `model`, no
    /// system role.
    Gemma,
}

const IM_START: &str = "<|im_start|>";
const IM_END: &str = "<|im_end|>";
/// Gemma's turn markup.
pub const START_OF_TURN: &str = "<start_of_turn>";
pub const END_OF_TURN: &str = "<end_of_turn>";

impl ChatTemplate {
    /// Recognises a ChatML or Gemma Jinja template and extracts a ChatML template's default
    /// system prompt, if any.
    pub fn from_jinja(template: &str) -> Result<Self, TokenizerError> {
        // llama.cpp's detection order: a template with `<start_of_turn>` is Gemma's.
        if template.contains(START_OF_TURN) && !template.contains(IM_START) {
            return Ok(Self::gemma());
        }
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
            dialect: ChatDialect::ChatMl,
        })
    }

    /// Plain ChatML with no default system prompt, for models without a template.
    pub fn chatml() -> Self {
        Self {
            default_system_prompt: None,
            dialect: ChatDialect::ChatMl,
        }
    }

    /// Gemma's template (Gemma 3 GGUF files carry no `tokenizer.chat_template`).
    pub fn gemma() -> Self {
        Self {
            default_system_prompt: None,
            dialect: ChatDialect::Gemma,
        }
    }

    /// The special tokens the template's markup needs from the vocabulary.
    pub fn markup(&self) -> [&'static str; 2] {
        match self.dialect {
            ChatDialect::ChatMl => [IM_START, IM_END],
            ChatDialect::Gemma => [START_OF_TURN, END_OF_TURN],
        }
    }

    /// The conversation as the template lays it out: its markup as [`ChatPiece::Special`] and
    /// everything else (roles, contents, newlines) as [`ChatPiece::Text`], adjacent text joined.
    /// With `add_generation_prompt`, it ends with the assistant's header.
    pub fn pieces(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Vec<ChatPiece> {
        match self.dialect {
            ChatDialect::ChatMl => self.chatml_pieces(messages, add_generation_prompt),
            ChatDialect::Gemma => gemma_pieces(messages, add_generation_prompt),
        }
    }

    fn chatml_pieces(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Vec<ChatPiece> {
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

/// llama.cpp's `gemma` template (llama-chat.cpp), piece by piece.
fn gemma_pieces(messages: &[ChatMessage], add_generation_prompt: bool) -> Vec<ChatPiece> {
    let mut pieces = Vec::with_capacity(messages.len() * 4 + 2);
    let mut system = String::new();
    for message in messages {
        if message.role == "system" {
            // Several system messages are joined as they come, each trimmed.
            system.push_str(trim_ascii_space(&message.content));
            continue;
        }
        let role = match message.role.as_str() {
            "assistant" => "model",
            other => other,
        };
        pieces.push(ChatPiece::Special(START_OF_TURN));
        let mut text = format!("{role}\n");
        if !system.is_empty() && role != "model" {
            text.push_str(&system);
            text.push_str("\n\n");
            system.clear();
        }
        text.push_str(trim_ascii_space(&message.content));
        pieces.push(ChatPiece::Text(text));
        pieces.push(ChatPiece::Special(END_OF_TURN));
        pieces.push(ChatPiece::Text("\n".into()));
    }
    if add_generation_prompt {
        pieces.push(ChatPiece::Special(START_OF_TURN));
        pieces.push(ChatPiece::Text("model\n".into()));
    }
    pieces
}

/// C's `isspace` trim, as llama.cpp's template code does it: space, \t, \n, \v, \f, \r.
fn trim_ascii_space(text: &str) -> &str {
    text.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\x0B' | '\x0C' | '\r'))
}

/// One piece of a rendered conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatPiece {
    /// Template markup that is one special token (`<|im_start|>`, `<|im_end|>`,
    /// `<start_of_turn>`, `<end_of_turn>`).
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
    fn gemma_turns_merge_the_system_prompt_into_the_first_user_turn() {
        let template = ChatTemplate::gemma();
        let text = template.render(
            &[
                ChatMessage::system("  Be brief. "),
                ChatMessage::user(" Hi\n"),
                ChatMessage::assistant("Hello!"),
                ChatMessage::user("Bye"),
            ],
            true,
        );
        assert_eq!(
            text,
            "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n\
             <start_of_turn>model\nHello!<end_of_turn>\n\
             <start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n"
        );
        // A system message waits for a turn that is not the model's.
        let text = template.render(
            &[
                ChatMessage::assistant("A"),
                ChatMessage::system("S"),
                ChatMessage::system("T"),
                ChatMessage::assistant("B"),
                ChatMessage::user("U"),
            ],
            false,
        );
        assert_eq!(
            text,
            "<start_of_turn>model\nA<end_of_turn>\n<start_of_turn>model\nB<end_of_turn>\n\
             <start_of_turn>user\nST\n\nU<end_of_turn>\n"
        );
        assert_eq!(
            template.pieces(&[ChatMessage::user("x")], true),
            vec![
                ChatPiece::Special(START_OF_TURN),
                ChatPiece::Text("user\nx".into()),
                ChatPiece::Special(END_OF_TURN),
                ChatPiece::Text("\n".into()),
                ChatPiece::Special(START_OF_TURN),
                ChatPiece::Text("model\n".into()),
            ]
        );
    }

    #[test]
    fn gemma_jinja_is_recognised() {
        let jinja = "{{ bos_token }}{% for message in loop_messages %}{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}{{ message['content'] | trim }}{{ '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}";
        assert_eq!(
            ChatTemplate::from_jinja(jinja).unwrap(),
            ChatTemplate::gemma()
        );
    }

    #[test]
    fn non_chatml_is_rejected() {
        assert!(ChatTemplate::from_jinja("{{ bos_token }}[INST] {{ x }} [/INST]").is_err());
    }
}
