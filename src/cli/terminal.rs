//! Text for a terminal: every human-readable line the CLI prints passes what came from the
//! store or a server (names, audit targets, messages) through `printable`, so a value cannot
//! end a line early, forge the next one, move the cursor or reorder what is shown. The `--json`
//! outputs are already escaped by JSON and stay exact. Knows nothing of the rest of shelf.

use std::borrow::Cow;
use std::fmt::Write;

/// `n` and the noun that agrees with it: `1 file`, `2 files`, `0 files`.
pub fn count(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `s` with every character a terminal would act on instead of showing written as an escape:
/// C0 controls and DEL (`\n`, `\r`, `\t`, `\x1b`, …), C1 controls (`\u{9b}`), the bidi
/// controls (U+061C, U+200E/F, U+202A–U+202E, U+2066–U+2069), zero-width characters
/// (U+200B–U+200D, U+2060, U+FEFF) and the line and paragraph separators (U+2028/9).
/// Backslashes stay as they are (patterns are shown as written), so the text is for reading,
/// not for parsing back. Borrowed when there is nothing to escape (the usual case).
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) && (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control() // C0, DEL and C1
        || matches!(
            c,
            '\u{061c}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'
                | '\u{2066}'..='\u{2069}'
                | '\u{feff}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        for s in ["", "alice/app/1.0", "ünïcödé 名前", r"2\.0-rc\d+", "a b"] {
            assert!(matches!(printable(s), Cow::Borrowed(b) if b == s), "{s:?}");
        }
    }

    #[test]
    fn controls_bidi_and_separators_are_escaped() {
        let cases = [
            ("a\nb", r"a\nb"),
            ("x\r\ty", r"x\r\ty"),
            ("\x1b[2J", r"\x1b[2J"),
            ("\0\x07\x7f", r"\x00\x07\x7f"),
            ("c1\u{9b}31m\u{85}", r"c1\u{9b}31m\u{85}"),
            ("evil\u{202e}txt.exe", r"evil\u{202e}txt.exe"),
            (
                "\u{2066}\u{2069}\u{200f}\u{061c}",
                r"\u{2066}\u{2069}\u{200f}\u{61c}",
            ),
            ("line\u{2028}para\u{2029}", r"line\u{2028}para\u{2029}"),
            ("zero\u{200b}width\u{feff}", r"zero\u{200b}width\u{feff}"),
        ];
        for (raw, shown) in cases {
            let got = printable(raw);
            assert_eq!(got, shown, "{raw:?}");
            assert!(!got.chars().any(needs_escape), "{got:?}");
        }
    }

    #[test]
    fn padding_applies_to_the_escaped_text() {
        assert_eq!(format!("[{:<6}]", printable("a\nb")), "[a\\nb  ]");
    }
}
