//! One line of a view's scrollback ([`Entry`]) and how it looks
//! ([`Look`]), and what counts as a mention of us ([`mentions`]). Pure
//! data: no terminal, no relay; the text in an entry is already sanitised.

/// What kind of line an entry is, for its style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Look {
    /// Someone's message (or `/me` action), live.
    Message,
    /// Sent as history (on joining, or a page asked for by scrolling up).
    History,
    /// A private message, to us or from us.
    Private,
    /// What we sent.
    Own,
    /// What the relay says: presence, replies.
    Notice,
    /// A command refused, or a connection problem.
    Error,
}

/// One line of the scrollback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `HH:MM`, local time, when known.
    pub time: Option<String>,
    /// Who said it, for the name's colour (`None`: the relay, or no name).
    pub from: Option<String>,
    /// The text after the name: already safe to show.
    pub text: String,
    /// `* NAME ACTION` rather than `NAME: TEXT`.
    pub action: bool,
    /// How it looks.
    pub look: Look,
    /// It names us: highlighted.
    pub mention: bool,
    /// The message's number in its room on the relay (`None`: not a
    /// message the relay numbered, or a relay that does not number them).
    pub id: Option<u64>,
}

impl Entry {
    /// A line from the relay or the app itself.
    pub fn notice(look: Look, text: impl Into<String>) -> Entry {
        Entry {
            time: None,
            from: None,
            text: text.into(),
            action: false,
            look,
            mention: false,
            id: None,
        }
    }

    /// Whether it is someone's message, the kind that counts as unread.
    pub fn is_message(&self) -> bool {
        matches!(self.look, Look::Message | Look::Private)
    }
}

/// Whether `text` names `name`: the name as a whole word, any case (a
/// name character — letter, digit, `_`, `-`, `.` — on neither side).
pub fn mentions(name: &str, text: &str) -> bool {
    if name.is_empty() {
        return false;
    }
    let name = name.to_lowercase();
    let text = text.to_lowercase();
    let is_name_char = |c: char| c.is_alphanumeric() || "_-.".contains(c);
    text.match_indices(&name).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + name.len()..].chars().next();
        !before.is_some_and(is_name_char) && !after.is_some_and(is_name_char)
    })
}

#[cfg(test)]
mod tests {
    use super::mentions;

    #[test]
    fn a_mention_is_the_name_as_a_whole_word_in_any_case() {
        for (text, want) in [
            ("hi Bob!", true),
            ("bob", true),
            ("BOB: look", true),
            ("@bob?", true),
            ("bobby is not you", false),
            ("jim-bob is not you", false),
            ("bob.smith is not you", false),
            ("nothing here", false),
        ] {
            assert_eq!(mentions("bob", text), want, "{text}");
        }
        assert!(!mentions("", "anything"));
    }
}
