//! The terminal app's input line: the text being typed and its cursor,
//! the usual editing keys, the lines sent before (Up/Down), Tab
//! completion, and the window of the line shown when it is wider than the
//! terminal. Positions are in characters; widths in terminal columns.

use unicode_width::UnicodeWidthChar;

/// Most lines kept for Up/Down.
const SENT_KEPT: usize = 500;

/// The line being typed.
#[derive(Debug, Default, Clone)]
pub struct Editor {
    chars: Vec<char>,
    cursor: usize,
    /// Lines sent, oldest first.
    sent: Vec<String>,
    /// Which sent line Up/Down shows, and what was typed before.
    browsing: Option<usize>,
    draft: Vec<char>,
}

/// The columns a character takes: 0 for combining marks, 2 for wide ones;
/// a tab is shown as one space.
pub(super) fn char_width(c: char) -> usize {
    if c == '\t' { 1 } else { c.width().unwrap_or(0) }
}

/// The columns `text` takes.
pub fn text_width(text: &str) -> usize {
    text.chars().map(char_width).sum()
}

impl Editor {
    /// The text typed.
    pub fn text(&self) -> String {
        self.chars.iter().collect()
    }

    /// Whether nothing is typed.
    pub fn is_empty(&self) -> bool {
        self.chars.is_empty()
    }

    /// Where the cursor is, in characters from the start.
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// Types `c` at the cursor.
    pub fn insert(&mut self, c: char) {
        self.chars.insert(self.cursor, c);
        self.cursor += 1;
    }

    /// Types `text` at the cursor (a paste). A message is one line (the
    /// relay refuses a member's text holding a line break), so each line
    /// break pasted (`\n`, `\r` or `\r\n`) becomes one space; other
    /// controls but tab are dropped.
    pub fn insert_str(&mut self, text: &str) {
        let mut after_cr = false;
        for c in text.chars() {
            match c {
                '\n' if after_cr => {}
                '\r' | '\n' => self.insert(' '),
                c if c.is_control() && c != '\t' => {}
                c => self.insert(c),
            }
            after_cr = c == '\r';
        }
    }

    /// Deletes the character before the cursor.
    pub fn backspace(&mut self) {
        if self.cursor > 0 {
            self.cursor -= 1;
            self.chars.remove(self.cursor);
        }
    }

    /// Deletes the character under the cursor.
    pub fn delete(&mut self) {
        if self.cursor < self.chars.len() {
            self.chars.remove(self.cursor);
        }
    }

    /// Moves the cursor one character left.
    pub fn left(&mut self) {
        self.cursor = self.cursor.saturating_sub(1);
    }

    /// Moves the cursor one character right.
    pub fn right(&mut self) {
        self.cursor = (self.cursor + 1).min(self.chars.len());
    }

    /// To the start of the line.
    pub fn home(&mut self) {
        self.cursor = 0;
    }

    /// To the end of the line.
    pub fn end(&mut self) {
        self.cursor = self.chars.len();
    }

    fn word_start_before(&self, from: usize) -> usize {
        let mut at = from;
        while at > 0 && self.chars[at - 1].is_whitespace() {
            at -= 1;
        }
        while at > 0 && !self.chars[at - 1].is_whitespace() {
            at -= 1;
        }
        at
    }

    /// Moves the cursor to the start of the word before it.
    pub fn word_left(&mut self) {
        self.cursor = self.word_start_before(self.cursor);
    }

    /// Moves the cursor past the end of the word after it.
    pub fn word_right(&mut self) {
        let len = self.chars.len();
        while self.cursor < len && self.chars[self.cursor].is_whitespace() {
            self.cursor += 1;
        }
        while self.cursor < len && !self.chars[self.cursor].is_whitespace() {
            self.cursor += 1;
        }
    }

    /// Deletes the word before the cursor (Ctrl-W, Alt-Backspace).
    pub fn delete_word(&mut self) {
        let start = self.word_start_before(self.cursor);
        self.chars.drain(start..self.cursor);
        self.cursor = start;
    }

    /// Deletes everything before the cursor (Ctrl-U).
    pub fn delete_to_start(&mut self) {
        self.chars.drain(..self.cursor);
        self.cursor = 0;
    }

    /// Takes the line for sending: `None` if nothing is typed. It joins the
    /// lines Up brings back.
    pub fn take(&mut self) -> Option<String> {
        self.browsing = None;
        if self.chars.is_empty() {
            return None;
        }
        let line = self.text();
        self.chars.clear();
        self.cursor = 0;
        if self.sent.last() != Some(&line) {
            self.sent.push(line.clone());
            if self.sent.len() > SENT_KEPT {
                self.sent.remove(0);
            }
        }
        Some(line)
    }

    fn show(&mut self, chars: Vec<char>) {
        self.chars = chars;
        self.cursor = self.chars.len();
    }

    /// The line sent before the one shown (Up).
    pub fn up(&mut self) {
        let at = match self.browsing {
            None if self.sent.is_empty() => return,
            None => {
                self.draft = self.chars.clone();
                self.sent.len() - 1
            }
            Some(0) => return,
            Some(at) => at - 1,
        };
        self.browsing = Some(at);
        self.show(self.sent[at].chars().collect());
    }

    /// The line sent after the one shown, then what was being typed (Down).
    pub fn down(&mut self) {
        let Some(at) = self.browsing else { return };
        if at + 1 < self.sent.len() {
            self.browsing = Some(at + 1);
            self.show(self.sent[at + 1].chars().collect());
        } else {
            self.browsing = None;
            let draft = std::mem::take(&mut self.draft);
            self.show(draft);
        }
    }

    /// Tab: completes the word before the cursor from `commands` (when it
    /// is the line's first word and starts with `/`) or `names`. A single
    /// match is completed with a space after it (`: ` for a name that starts
    /// the line); several are completed as far as they agree.
    pub fn complete(&mut self, commands: &[&str], names: &[String]) {
        let start = self.word_start_before(self.cursor);
        if start == self.cursor {
            return;
        }
        let word: String = self.chars[start..self.cursor].iter().collect();
        let first = self.chars[..start].iter().all(|c| c.is_whitespace());
        let candidates: Vec<&str> = if first && word.starts_with('/') {
            commands
                .iter()
                .copied()
                .filter(|c| c.starts_with(&word))
                .collect()
        } else {
            let lower = word.to_lowercase();
            names
                .iter()
                .map(String::as_str)
                .filter(|name| name.to_lowercase().starts_with(&lower))
                .collect()
        };
        let Some(first_match) = candidates.first() else {
            return;
        };
        let completion: String = if candidates.len() == 1 {
            let suffix = if first && !word.starts_with('/') {
                ": "
            } else {
                " "
            };
            format!("{first_match}{suffix}")
        } else {
            common_prefix(&candidates)
        };
        if completion.chars().count() < word.chars().count() {
            return;
        }
        self.chars.splice(start..self.cursor, completion.chars());
        self.cursor = start + completion.chars().count();
    }

    /// What to show of the line in `width` columns, and the cursor's
    /// column in it: the whole line if it fits, else a window that keeps
    /// the cursor in view.
    pub fn view(&self, width: usize) -> (String, usize) {
        let width = width.max(1);
        let widths: Vec<usize> = self.chars.iter().map(|&c| char_width(c)).collect();
        // The window starts where the cursor (and one column after it)
        // still fits.
        let mut start = 0;
        let before = |start: usize| widths[start..self.cursor].iter().sum::<usize>();
        while start < self.cursor && before(start) + 1 > width {
            start += 1;
        }
        let mut shown = String::new();
        let mut used = 0;
        for (i, &c) in self.chars.iter().enumerate().skip(start) {
            if used + widths[i] > width {
                break;
            }
            used += widths[i];
            shown.push(if c == '\t' { ' ' } else { c });
        }
        (shown, before(start))
    }
}

fn common_prefix(words: &[&str]) -> String {
    let Some(first) = words.first() else {
        return String::new();
    };
    let mut prefix: Vec<char> = first.chars().collect();
    for word in &words[1..] {
        let common = prefix
            .iter()
            .zip(word.chars())
            .take_while(|(a, b)| a.to_lowercase().eq(b.to_lowercase()))
            .count();
        prefix.truncate(common);
    }
    prefix.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(text: &str) -> Editor {
        let mut editor = Editor::default();
        editor.insert_str(text);
        editor
    }

    #[test]
    fn editing_keys() {
        let mut editor = typed("hello world");
        editor.home();
        editor.insert('>');
        editor.end();
        editor.backspace();
        assert_eq!(editor.text(), ">hello worl");
        editor.delete_word();
        assert_eq!(editor.text(), ">hello ");
        editor.word_left();
        assert_eq!(editor.cursor(), 0);
        editor.word_right();
        editor.delete();
        assert_eq!(editor.text(), ">hello");
        editor.left();
        editor.delete_to_start();
        assert_eq!((editor.text().as_str(), editor.cursor()), ("o", 0));
    }

    #[test]
    fn a_pasted_line_break_becomes_one_space() {
        assert_eq!(
            typed("one\ntwo\r\nthree\rfour").text(),
            "one two three four"
        );
        assert_eq!(typed("bell\x07 esc\x1b tab\t").text(), "bell esc tab\t");
    }

    #[test]
    fn up_and_down_walk_the_lines_sent() {
        let mut editor = typed("one");
        assert_eq!(editor.take().as_deref(), Some("one"));
        editor.insert_str("two");
        editor.take();
        editor.insert_str("draft");
        editor.up();
        assert_eq!(editor.text(), "two");
        editor.up();
        editor.up();
        assert_eq!(editor.text(), "one");
        editor.down();
        editor.down();
        assert_eq!(editor.text(), "draft");
        assert_eq!(Editor::default().take(), None);
    }

    #[test]
    fn tab_completes_commands_and_names() {
        let names = ["alice".to_owned(), "alfred".to_owned(), "bob".to_owned()];
        let commands = ["/join", "/who", "/msg"];
        let mut editor = typed("/jo");
        editor.complete(&commands, &names);
        assert_eq!(editor.text(), "/join ");
        let mut editor = typed("b");
        editor.complete(&commands, &names);
        assert_eq!(editor.text(), "bob: ");
        let mut editor = typed("hi al");
        editor.complete(&commands, &names);
        assert_eq!(editor.text(), "hi al");
        editor.insert('i');
        editor.complete(&commands, &names);
        assert_eq!(editor.text(), "hi alice ");
        let mut editor = typed("/msg B");
        editor.complete(&commands, &names);
        assert_eq!(editor.text(), "/msg bob ");
    }

    #[test]
    fn a_long_line_scrolls_to_keep_the_cursor_in_view() {
        let editor = typed("abcdefghij");
        assert_eq!(editor.view(20), ("abcdefghij".to_owned(), 10));
        assert_eq!(editor.view(5), ("ghij".to_owned(), 4));
        let mut wide = typed("日本語テキスト");
        assert_eq!(text_width(&wide.text()), 14);
        wide.home();
        assert_eq!(wide.view(6), ("日本語".to_owned(), 0));
        wide.end();
        assert_eq!(wide.view(6), ("スト".to_owned(), 4));
    }
}
