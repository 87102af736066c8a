//! Chat prompts: the model's Jinja chat template (`tokenizer.chat_template`) rendered with
//! minijinja, a real template engine, as Hugging Face's `apply_chat_template` does.

use crate::error::{Error, Result};

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// "system", "user" or "assistant".
    pub role: String,
    /// The text.
    pub content: String,
}

impl Message {
    /// A message.
    pub fn new(role: &str, content: &str) -> Message {
        Message {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// Renders `messages` with `template`; `add_generation_prompt` appends the opening of the
/// assistant's turn. `bos`/`eos` are the token texts the template may refer to.
pub fn render(
    template: &str,
    messages: &[Message],
    add_generation_prompt: bool,
    bos: &str,
    eos: &str,
) -> Result<String> {
    let mut env = minijinja::Environment::new();
    env.add_function(
        "raise_exception",
        |msg: String| -> std::result::Result<String, minijinja::Error> {
            Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                msg,
            ))
        },
    );
    env.add_template("chat", template)
        .map_err(|e| Error::InvalidConfig(format!("chat template: {e}")))?;
    let msgs: Vec<minijinja::Value> = messages
        .iter()
        .map(|m| minijinja::context! { role => m.role.clone(), content => m.content.clone() })
        .collect();
    let tmpl = env
        .get_template("chat")
        .map_err(|e| Error::InvalidConfig(format!("chat template: {e}")))?;
    tmpl.render(minijinja::context! {
        messages => msgs,
        add_generation_prompt => add_generation_prompt,
        bos_token => bos,
        eos_token => eos,
    })
    .map_err(|e| Error::InvalidConfig(format!("chat template: {e}")))
}

/// The ChatML template, for models that carry no template of their own.
pub const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/// Gemma's turn format (Hugging Face's Gemma 3 template without the leading `bos_token`, which
/// the tokenizer adds): a system message is folded into the first user turn; the assistant's
/// role is `model`.
pub const GEMMA: &str = "{%- if messages and messages[0]['role'] == 'system' -%}\
{%- set first = messages[0]['content'] + '\n\n' -%}{%- set msgs = messages[1:] -%}\
{%- else -%}{%- set first = '' -%}{%- set msgs = messages -%}{%- endif -%}\
{%- for m in msgs -%}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n\
{{ (first if loop.first else '') + (m['content'] | trim) }}<end_of_turn>\n{% endfor -%}\
{%- if add_generation_prompt %}<start_of_turn>model\n{% endif -%}";

/// The template for a model whose file carries none: Gemma's turn format for a vocabulary with
/// `<start_of_turn>` (the Gemma 3 270M GGUF has no `tokenizer.chat_template`), else ChatML
/// (llama.cpp's default).
pub fn fallback_template(tok: &crate::tokenizer::Tokenizer) -> &'static str {
    if tok.token_id(b"<start_of_turn>").is_some() && tok.token_id(b"<end_of_turn>").is_some() {
        GEMMA
    } else {
        CHATML
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_chatml() {
        let s = render(CHATML, &[Message::new("user", "Hi")], true, "", "").unwrap();
        assert_eq!(s, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    }

    #[test]
    fn loop_first_and_conditions_work() {
        let t = "{% for m in messages %}{% if loop.first and m['role'] != 'system' %}[sys]{% endif %}{{ m.content }}{% endfor %}";
        assert_eq!(
            render(
                t,
                &[Message::new("user", "a"), Message::new("assistant", "b")],
                false,
                "",
                ""
            )
            .unwrap(),
            "[sys]ab"
        );
    }

    #[test]
    fn renders_gemma_turns() {
        let m = [
            Message::new("system", "Be brief."),
            Message::new("user", "Hi "),
            Message::new("assistant", "Hello."),
            Message::new("user", "Bye"),
        ];
        assert_eq!(
            render(GEMMA, &m, true, "", "").unwrap(),
            "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello.<end_of_turn>\n\
             <start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n"
        );
    }

    #[test]
    fn bad_template_is_an_error() {
        assert!(render("{% for %}", &[], false, "", "").is_err());
        assert!(render("{{ raise_exception('no') }}", &[], false, "", "").is_err());
    }
}
