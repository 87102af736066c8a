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
    fn bad_template_is_an_error() {
        assert!(render("{% for %}", &[], false, "", "").is_err());
        assert!(render("{{ raise_exception('no') }}", &[], false, "", "").is_err());
    }
}
