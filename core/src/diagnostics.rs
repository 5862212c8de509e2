//! Errors found in a spec, each naming where it is and what to do about it.

use std::fmt;

/// One problem in a spec: `path` is a dotted path into the document, such as
/// `workflows.train.nodes.fit.inputs.x`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub path: String,
    pub message: String,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic { path: clipped(&path.into()), message: clipped(&message.into()), hint: None }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// The longest word (a run without spaces: a name, a path, a value) a message shows whole.
pub const MAX_WORD_CHARS: usize = 120;

/// `text` with every word longer than [`MAX_WORD_CHARS`] shortened to its start and
/// end around the count of what was left out: a 200,000-character task name makes a
/// readable error, not a 400 KB one.
pub fn clipped(text: &str) -> String {
    if text.len() <= MAX_WORD_CHARS {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len().min(4 * MAX_WORD_CHARS));
    let mut rest = text;
    while !rest.is_empty() {
        let word_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let (word, after) = rest.split_at(word_end);
        let count = word.chars().count();
        if count > MAX_WORD_CHARS {
            let head: String = word.chars().take(80).collect();
            let tail: String = word.chars().skip(count - 20).collect();
            out.push_str(&format!("{head}…({} characters more)…{tail}", count - 100));
        } else {
            out.push_str(word);
        }
        let space_end = after.find(|c: char| !c.is_whitespace()).unwrap_or(after.len());
        out.push_str(&after[..space_end]);
        rest = &after[space_end..];
    }
    out
}

/// Text as a person can read it: characters that print as nothing or move the
/// cursor (controls, a byte-order mark, zero-width and bidirectional marks) are
/// written as `\u{feff}`, so `name` and `name\u{200b}` never look alike in an error.
pub fn visible(text: &str) -> String {
    let invisible = |c: char| {
        (c.is_control() && c != '\n' && c != '\t')
            || matches!(
                c,
                '\u{ad}' | '\u{34f}' | '\u{61c}' | '\u{115f}' | '\u{1160}' | '\u{180e}' | '\u{3164}' | '\u{feff}'
            )
            || ('\u{200b}'..='\u{200f}').contains(&c)
            || ('\u{202a}'..='\u{202e}').contains(&c)
            || ('\u{2060}'..='\u{206f}').contains(&c)
            || ('\u{fe00}'..='\u{fe0f}').contains(&c)
            || ('\u{fff0}'..='\u{fffb}').contains(&c)
            || ('\u{e0000}'..='\u{e0fff}').contains(&c)
    };
    if !text.chars().any(invisible) {
        return text.to_string();
    }
    text.chars().map(|c| if invisible(c) { format!("\\u{{{:x}}}", c as u32) } else { c.to_string() }).collect()
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (path, message) = (visible(&self.path), visible(&self.message));
        if path.is_empty() {
            write!(f, "{message}")?;
        } else {
            write!(f, "{path}: {message}")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Every problem found in one document. Validation keeps going after the first
/// problem so that a user can fix them all in one pass.
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.0.push(diagnostic);
    }

    pub fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.push(Diagnostic::new(path, message));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }

    /// `Ok(value)` when nothing was reported.
    pub fn into_result<T>(self, value: T) -> Result<T, Diagnostics> {
        if self.is_empty() { Ok(value) } else { Err(self) }
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Self {
        Diagnostics(vec![d])
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// Joins a parent path and a child key.
pub fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() { key.to_string() } else { format!("{parent}.{key}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invisible_characters_are_escaped() {
        assert_eq!(visible("\u{feff}Pregnancies"), "\\u{feff}Pregnancies");
        assert_eq!(visible("fit\u{200b}"), "fit\\u{200b}");
        assert_eq!(visible("a\u{1b}[31mred"), "a\\u{1b}[31mred");
        assert_eq!(visible("line one\n\tline two é 漢"), "line one\n\tline two é 漢");
        let shown = Diagnostic::new("workflows.w.nodes.fit\u{200b}", "bad").to_string();
        assert_eq!(shown, "workflows.w.nodes.fit\\u{200b}: bad");
    }

    #[test]
    fn a_huge_name_is_shortened_in_messages_and_short_words_are_kept() {
        let name = "n".repeat(200_000);
        let d = Diagnostic::new(format!("tasks.{name}.command"), format!("task {name} has no command"));
        let shown = d.to_string();
        assert!(shown.len() < 600, "{} bytes", shown.len());
        assert!(shown.contains("…(199900 characters more)…"), "{shown}");
        assert!(shown.ends_with(" has no command"), "{shown}");
        assert_eq!(clipped("a short message, kept  as  is"), "a short message, kept  as  is");
    }
}
