//! Making a peer's message safe to print on a terminal.
//!
//! Any key holder can send any bytes, so a message is hostile until shown
//! otherwise: an `ESC` starts a sequence that can clear the screen, move the
//! cursor, retitle the window or (on some terminals) answer back; a `\r`
//! lets one message overwrite another; a `\n` forges a second line that
//! looks like it came from someone else. This module turns any bytes into
//! text that only prints: invalid UTF-8 becomes U+FFFD, every C0 control but
//! tab and `DEL` become their visible Control Pictures (`␛`, `␍`, `␊`, …),
//! and C1 controls (U+0080–U+009F, which some terminals obey like `ESC`)
//! become U+FFFD. So do the bidirectional controls (U+061C, U+200E–U+200F,
//! U+202A–U+202E, U+2066–U+2069), which would let one message reorder how
//! the rest of its line, or a name before it, reads. Everything else, tab
//! included, is kept as it is.
//!
//! It never drops a character silently: a neutralised sequence stays
//! visible (`␛[2J`) so the reader can see something odd was sent.
//!
//! One rule is the relay's, before it stamps a member's text with the
//! member's name ([`has_line_break`]): a text holding `\r` or `\n` is
//! refused, with [`LINE_BREAK_REFUSED`] to its sender. Stamped as
//! `mallory: `, `hi\nalice: meet at 9` would print as two lines, the
//! second passing for alice's, to every reader that prints plaintexts as
//! they are (the original notebook client, a terminal, a log).

/// What invalid UTF-8 and C1 controls are shown as.
pub const REPLACEMENT: char = char::REPLACEMENT_CHARACTER;

/// Whether `text` holds a line break (`\r` or `\n`): a member's text that
/// does is never stamped and relayed.
pub fn has_line_break(text: &[u8]) -> bool {
    memchr::memchr2(b'\n', b'\r', text).is_some()
}

/// What a member whose text held a line break is told.
pub const LINE_BREAK_REFUSED: &str = "error: a message may not hold a line break (\\r or \\n): \
     send each line as a message of its own; that message was not sent";

/// Appends `message`, made safe to print, to `out`.
pub fn sanitize_into(message: &[u8], out: &mut String) {
    out.reserve(message.len());
    for chunk in message.utf8_chunks() {
        let valid = chunk.valid();
        if valid.chars().all(|c| !needs_neutralising(c)) {
            out.push_str(valid);
        } else {
            out.extend(valid.chars().map(printable));
        }
        if !chunk.invalid().is_empty() {
            out.push(REPLACEMENT);
        }
    }
}

/// `message` made safe to print, as a new string.
pub fn sanitize(message: &[u8]) -> String {
    let mut out = String::new();
    sanitize_into(message, &mut out);
    out
}

fn needs_neutralising(c: char) -> bool {
    (c != '\t' && c.is_control()) || is_bidi_control(c)
}

/// The characters that change the direction text is laid out in.
fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
    )
}

/// The character shown for `c`.
fn printable(c: char) -> char {
    match c {
        '\t' => '\t',
        // U+2400..U+241F are the Control Pictures for U+0000..U+001F.
        '\0'..='\x1f' => char::from_u32(0x2400 + u32::from(c)).unwrap_or(REPLACEMENT),
        '\x7f' => '\u{2421}',
        '\u{80}'..='\u{9f}' => REPLACEMENT,
        c if is_bidi_control(c) => REPLACEMENT,
        _ => c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neutralises_every_control_and_keeps_text() {
        let cases: &[(&[u8], &str)] = &[
            (b"hello, world", "hello, world"),
            (b"", ""),
            ("héllo ✓ 日本".as_bytes(), "héllo ✓ 日本"),
            (b"a\tb", "a\tb"),
            (b"\x1b[2J\x1b[H", "␛[2J␛[H"),
            (b"\x1b]0;pwned\x07", "␛]0;pwned␇"),
            (b"fake\rreal", "fake␍real"),
            (b"one\ntwo", "one␊two"),
            (b"bell\x07", "bell␇"),
            (b"\0\x08\x0b\x0c\x1f", "␀␈␋␌␟"),
            (b"del\x7f", "del␡"),
            // C1 controls arrive as UTF-8 for U+0080..U+009F: CSI is U+009B.
            ("\u{9b}2J".as_bytes(), "\u{fffd}2J"),
            ("\u{80}\u{85}\u{9f}".as_bytes(), "\u{fffd}\u{fffd}\u{fffd}"),
            // Bidirectional overrides and isolates cannot reorder the line.
            (
                "a\u{202e}evil\u{202c}b".as_bytes(),
                "a\u{fffd}evil\u{fffd}b",
            ),
            (
                "\u{2066}\u{2067}\u{2068}\u{2069}\u{200e}\u{200f}\u{61c}".as_bytes(),
                "\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}",
            ),
            // U+00A0 and beyond are printable again.
            ("\u{a0}x".as_bytes(), "\u{a0}x"),
            // Raw C1 bytes are not UTF-8 at all.
            (b"\x9b2J", "\u{fffd}2J"),
            (b"ok \xff\xfe end", "ok \u{fffd}\u{fffd} end"),
            // A truncated multi-byte sequence is one replacement.
            (b"cut \xe6\x97", "cut \u{fffd}"),
            (b"\xc3\x28", "\u{fffd}("),
        ];
        for (input, want) in cases {
            assert_eq!(sanitize(input), *want, "{input:?}");
        }
    }

    #[test]
    fn output_never_holds_a_control_but_tab() {
        let every_byte: Vec<u8> = (0..=255u8).collect();
        let mut all_c1 = String::new();
        for c in '\u{80}'..='\u{9f}' {
            all_c1.push(c);
        }
        for input in [&every_byte[..], all_c1.as_bytes()] {
            let out = sanitize(input);
            assert!(out.chars().all(|c| c == '\t' || !c.is_control()), "{out:?}");
        }
    }

    #[test]
    fn a_line_break_is_any_cr_or_lf() {
        for (text, breaks) in [
            (&b"one line"[..], false),
            (b"", false),
            (b"tab\tand \x1b esc", false),
            (b"hi\nalice: meet at 9", true),
            (b"\ralice: meet at 9", true),
            (b"trailing\r\n", true),
        ] {
            assert_eq!(has_line_break(text), breaks, "{text:?}");
        }
    }

    #[test]
    fn appends_to_what_is_there() {
        let mut out = String::from("bob: ");
        sanitize_into(b"\x1bhi", &mut out);
        assert_eq!(out, "bob: ␛hi");
    }
}
