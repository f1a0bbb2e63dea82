//! Small helpers shared by several modules.

use std::borrow::Cow;
use std::time::Duration;

/// `850ms`, `3s`, `1.5s`, `2m`, `2m30s`: how durations appear in messages.
pub fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    if ms < 60_000 {
        let s = d.as_secs_f64();
        return if ms.is_multiple_of(1000) {
            format!("{}s", ms / 1000)
        } else {
            format!("{s:.1}s")
        };
    }
    let total = d.as_secs();
    let (h, m, s) = (total / 3600, (total % 3600) / 60, total % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// Seconds with one decimal, as in `41 attempts in 30.0s`.
pub fn fmt_secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// Cut a string to at most `max` characters for one-line messages, marking the cut.
pub fn truncate(s: &str, max: usize) -> String {
    let one_line: String = s
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    if one_line.chars().count() <= max {
        return one_line;
    }
    let mut out: String = one_line.chars().take(max).collect();
    out.push('…');
    out
}

/// Characters of a value quoted in a message; a longer value is cut, its size named.
pub const QUOTE_MAX: usize = 200;

/// A value quoted for a message (with Rust string escapes), cut to [`QUOTE_MAX`]
/// characters: a 10 MB value costs one short line.
pub fn quoted(s: &str) -> String {
    match s.char_indices().nth(QUOTE_MAX) {
        None => format!("{s:?}"),
        Some((cut, _)) => {
            let head = format!("{:?}", &s[..cut]);
            format!("{}…\" ({} bytes)", &head[..head.len() - 1], s.len())
        }
    }
}

/// Text from a suite (a key, a path) named in a message unquoted, cut like [`quoted`]
/// values: a huge one costs one short line.
pub fn shown(s: &str) -> std::borrow::Cow<'_, str> {
    match s.char_indices().nth(QUOTE_MAX) {
        None => s.into(),
        Some((cut, _)) => format!("{}… ({} bytes)", &s[..cut], s.len()).into(),
    }
}

/// A path named in a message, cut like [`shown`].
pub fn shown_path(p: &std::path::Path) -> String {
    shown(&p.display().to_string()).into_owned()
}

/// Longest message of one error; past it the message is cut (a last resort: values and
/// names in messages are cut where they are written, see [`quoted`] and [`shown`]).
pub const MESSAGE_MAX: usize = 2000;

/// `message`, cut to [`MESSAGE_MAX`] bytes with its size named.
pub fn cut_message(mut message: String) -> String {
    if message.len() <= MESSAGE_MAX {
        return message;
    }
    let len = message.len();
    let mut at = MESSAGE_MAX;
    while !message.is_char_boundary(at) {
        at -= 1;
    }
    message.truncate(at);
    message.push_str(&format!("… (message cut: {len} bytes)"));
    message
}

/// `n` random lowercase letters and digits (namespace suffixes, `${unique}`).
pub fn random_suffix(n: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..n)
        .map(|_| CHARS[fastrand::usize(..CHARS.len())] as char)
        .collect()
}

/// A new directory for a unit test's files: `gwtest-<name>-<pid>-<random>` in the system's
/// temp directory.
#[cfg(test)]
pub fn test_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "gwtest-{name}-{}-{}",
        std::process::id(),
        random_suffix(6)
    ));
    std::fs::create_dir_all(&d).expect("creating a test directory");
    d
}

/// `a, b, c`, or `none` for an empty list (what a message lists as known or present).
pub fn list_or_none(items: &[&str]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

/// An error and its causes on one line, each cause once.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut src = e.source();
    while let Some(s) = src {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        src = s.source();
    }
    parts.join(": ")
}

/// Quote a word for a POSIX shell, only when it needs it.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Whether `c` must not reach a terminal (or a report) as itself: C0 controls but newline and
/// tab, DEL, C1 controls, and the bidirectional overrides that make text read differently
/// from what it is.
fn hidden(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Text from outside gwtest (a response body, an exec's output, an object's field) with its
/// control characters and escape sequences made visible: ESC `[31m` prints as the six
/// characters `\x1b[31m`, never as a colour change, a cleared screen or a rewritten line.
pub fn visible_controls(s: &str) -> Cow<'_, str> {
    if !s.chars().any(hidden) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\r' => out.push_str("\\r"),
            c if hidden(c) && (c as u32) < 0x100 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if hidden(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_the_suite_language() {
        assert_eq!(fmt_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(fmt_duration(Duration::from_secs(3)), "3s");
        assert_eq!(fmt_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(fmt_duration(Duration::from_secs(150)), "2m30s");
        assert_eq!(fmt_secs(Duration::from_millis(30_040)), "30.0s");
    }

    #[test]
    fn control_characters_are_made_visible() {
        assert!(matches!(
            visible_controls("plain\n\ttext"),
            Cow::Borrowed(_)
        ));
        assert_eq!(
            visible_controls("\u{1b}[31mred\u{1b}[0m\r\u{7}\u{9b}2J\u{202e}txt"),
            "\\x1b[31mred\\x1b[0m\\r\\x07\\x9b2J\\u{202e}txt"
        );
    }

    #[test]
    fn truncate_marks_the_cut() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("abcdef", 3), "abc…");
        assert_eq!(truncate("a\nb", 5), "a b");
    }
}
