//! Fuzz target `commands`: `eaxchat_proto::commands::parse` on arbitrary bytes.
//!
//! Input: `[max_text, plaintext..]`. Checked: parsing never panics; text is
//! never a command's (a plaintext starting with a single `/` is never
//! `Input::Text`); `Input::Text` re-escaped with `escape_text` gives back
//! the plaintext; a text argument stays within `max_text`; every error has
//! a reply that starts with `error: ` and holds only printable ASCII.

#![no_main]

use eaxchat_proto::commands::{Command, Input, escape_text, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&max_text, plaintext)) = data.split_first() else {
        return;
    };
    let max_text = usize::from(max_text);
    match parse(plaintext, max_text) {
        Ok(Input::Text(text)) => {
            let mut escaped = Vec::new();
            escape_text(text, &mut escaped);
            assert_eq!(escaped, plaintext);
        }
        Ok(Input::Command(command)) => {
            assert!(plaintext.starts_with(b"/") && !plaintext.starts_with(b"//"));
            if let Command::Me(text) | Command::Msg { text, .. } = command {
                assert!(!text.is_empty() && text.len() <= max_text);
            }
        }
        Err(error) => {
            let reply = error.to_string();
            assert!(reply.starts_with("error: "));
            assert!(reply.bytes().all(|b| b == b' ' || b.is_ascii_graphic()));
        }
    }
});
