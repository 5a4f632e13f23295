//! Names as Gitea validates them (GITEA-COMPAT §3), with shelf's 255-byte cap, the form the
//! audit log keeps of them, and percent-coding: decoding a path segment (one rule for bad
//! escapes: `None`), encoding one for a URL the CLI sends (`encode_component`), and RFC 5987's
//! `filename*` (`percent_encode`). Below every layer that handles names (api, auth, bundle, the
//! commands); imports nothing of the crate.

/// Longest accepted package name, version or file name, in bytes after percent-decoding.
pub const MAX_COMPONENT_BYTES: usize = 255;

/// Gitea's `\A[-_+.\w]+\z` (ASCII `\w`), minus one-character non-alphanumerics and `..`.
pub fn valid_package_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_COMPONENT_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'+' | b'.'))
        && (name.len() > 1 || name.bytes().all(|b| b.is_ascii_alphanumeric()))
        && name != ".."
}

/// Gitea ≥ 1.22's file name charset, no surrounding whitespace, not `.` or `..`.
pub fn valid_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_COMPONENT_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b" -_+=:;.()[]{}~!@#$%^&".contains(&b))
        && name.trim() == name
        && name != "."
        && name != ".."
}

/// Any string that equals itself after Unicode whitespace trimming (Go's `strings.TrimSpace`
/// and Rust's `char::is_whitespace` agree on the White_Space property), non-empty.
pub fn valid_version(version: &str) -> bool {
    !version.is_empty() && version.len() <= MAX_COMPONENT_BYTES && version.trim() == version
}

/// A user (owner) name: 1–40 of `A-Z a-z 0-9 - _ .`, starting and ending alphanumeric (a
/// subset of what Gitea accepts, so every shelf owner is also a valid Gitea owner).
pub fn valid_owner_name(name: &str) -> bool {
    let b = name.as_bytes();
    (1..=40).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// Characters of an invalid name the audit log keeps, as a hint of what was sent.
const AUDIT_PREVIEW_CHARS: usize = 32;

/// A name as the audit log records it: as it is when `valid` accepts it (at most
/// `MAX_COMPONENT_BYTES`), else a marker with its length and a short preview, so that no
/// request, however long its path, writes more than a few bytes of text it chose. `None` (a
/// segment that did not decode) is recorded as such.
pub fn audit_name(name: Option<&str>, valid: fn(&str) -> bool) -> String {
    match name {
        Some(n) if valid(n) => n.to_string(),
        Some(n) => {
            let preview: String = n.chars().take(AUDIT_PREVIEW_CHARS).collect();
            let more = if preview.len() < n.len() { "…" } else { "" };
            format!("(invalid, {} bytes: {preview}{more})", n.len())
        }
        None => "(undecodable)".to_string(),
    }
}

/// Decodes `%XX` escapes of one path segment (`+` stays `+`). `None` for a bad escape or a
/// result that is not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hi = (hex[0] as char).to_digit(16)?;
            let lo = (hex[1] as char).to_digit(16)?;
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Percent-encodes one path segment or query value (everything but RFC 3986 unreserved).
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// RFC 5987 `attr-char` encoding for `filename*`.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_names_as_gitea() {
        for bad in [
            "",
            ".",
            "..",
            "-",
            "_",
            "+",
            "a?b",
            "a b",
            "a/b",
            "é",
            &"a".repeat(256),
        ] {
            assert!(!valid_package_name(bad), "{bad:?} must be invalid");
        }
        for good in [
            "a",
            "1",
            "a-",
            "a_b",
            "c.d+",
            "...",
            ".a",
            "-a",
            &"a".repeat(255),
        ] {
            assert!(valid_package_name(good), "{good:?} must be valid");
        }
    }

    #[test]
    fn file_names_as_gitea_1_22() {
        for bad in [
            "", ".", "..", "a?b", "a/b", " a", "a ", "a\tb", "a\"b", "a,b", "é",
        ] {
            assert!(!valid_file_name(bad), "{bad:?} must be invalid");
        }
        for good in [
            "-",
            "a",
            "1",
            "a-",
            "a_b",
            "a b",
            "c.d+",
            "-_+=:;.()[]{}~!@#$%^& aA1",
            ".hidden",
            "...",
        ] {
            assert!(valid_file_name(good), "{good:?} must be valid");
        }
    }

    #[test]
    fn versions_reject_unicode_padding_only() {
        for bad in [
            "",
            " 1",
            "1 ",
            "\t1",
            "1\n",
            "\u{a0}1",
            "1\u{3000}",
            "\u{2028}1",
            "\u{85}1",
        ] {
            assert!(!valid_version(bad), "{bad:?} must be invalid");
        }
        for good in ["1.0", "1.0.3-te st", "v/1", "日本", "a\u{1}b"] {
            assert!(valid_version(good), "{good:?} must be valid");
        }
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Fb").as_deref(), Some("a/b"));
        assert_eq!(percent_decode("a+b%20c").as_deref(), Some("a+b c"));
        assert_eq!(percent_decode("%e6%97%a5").as_deref(), Some("日"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%ff"), None);
    }

    #[test]
    fn disposition_encoding() {
        assert_eq!(percent_encode("a b[1].bin"), "a%20b%5B1%5D.bin");
    }

    #[test]
    fn audit_names_are_bounded_whatever_was_sent() {
        assert_eq!(audit_name(Some("app"), valid_package_name), "app");
        assert_eq!(audit_name(None, valid_package_name), "(undecodable)");
        let long = "A".repeat(60_000);
        let recorded = audit_name(Some(&long), valid_package_name);
        assert!(recorded.len() < 100, "{recorded}");
        assert!(recorded.starts_with("(invalid, 60000 bytes: AAAA"));
        assert_eq!(
            audit_name(Some("a b"), valid_package_name),
            "(invalid, 3 bytes: a b)"
        );
    }

    #[test]
    fn components() {
        assert_eq!(encode_component("a b/c?#%"), "a%20b%2Fc%3F%23%25");
        assert_eq!(encode_component("Ok-._~1"), "Ok-._~1");
    }
}
