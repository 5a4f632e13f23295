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

/// A name validated once, at the edge: `parse` is the only way to make one from outside
/// data, so a function that takes one never validates again.
pub trait Name: Sized + std::ops::Deref<Target = str> {
    /// The name when `s` is valid under its rule, else `None`.
    fn parse(s: &str) -> Option<Self>;
}

macro_rules! name_type {
    ($(#[$doc:meta])* $t:ident, $valid:path) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $t(String);

        impl $t {
            /// The name when `s` is valid, else `None`.
            pub fn parse(s: &str) -> Option<$t> {
                $valid(s).then(|| $t(s.to_string()))
            }

            /// A name for a test. Panics on an invalid one.
            #[cfg(test)]
            pub(crate) fn of(s: &str) -> $t {
                $t::parse(s).expect("an invalid name in a test")
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl Name for $t {
            fn parse(s: &str) -> Option<$t> {
                $t::parse(s)
            }
        }

        impl std::ops::Deref for $t {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

name_type!(
    /// An owner (user or organization) name, under `valid_owner_name`.
    Owner,
    valid_owner_name
);
name_type!(
    /// A package name, under `valid_package_name`.
    PackageName,
    valid_package_name
);
name_type!(
    /// A package version, under `valid_version`.
    Version,
    valid_version
);
name_type!(
    /// A file name, under `valid_file_name`.
    FileName,
    valid_file_name
);

impl Owner {
    /// `admin`, the site admin shelf creates on an empty database.
    pub fn site_admin() -> Owner {
        Owner("admin".to_string())
    }
}

impl Version {
    /// A version the store reads back from its own rows, which only a parsed one wrote.
    pub(crate) fn stored(s: String) -> Version {
        Version(s)
    }
}

/// A decoded path segment that names a `T`: valid, or the text that was sent. Routes carry
/// these because Gitea checks names after credentials and permission, not while routing:
/// an upload answers an invalid name with 400 only once the caller may write, and a read or
/// a delete with an invalid name simply finds nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment<T> {
    Valid(T),
    Invalid(String),
}

impl<T: Name> Segment<T> {
    pub fn new(decoded: String) -> Segment<T> {
        match T::parse(&decoded) {
            Some(t) => Segment::Valid(t),
            None => Segment::Invalid(decoded),
        }
    }

    /// The text as decoded from the path, valid or not.
    pub fn raw(&self) -> &str {
        match self {
            Segment::Valid(t) => t,
            Segment::Invalid(s) => s,
        }
    }

    pub fn valid(&self) -> Option<&T> {
        match self {
            Segment::Valid(t) => Some(t),
            Segment::Invalid(_) => None,
        }
    }

    /// The segment as the audit log records it (see `audit_text`).
    pub fn audit(&self) -> String {
        match self {
            Segment::Valid(t) => t.to_string(),
            Segment::Invalid(s) => audit_text(s),
        }
    }
}

/// Characters of an invalid name the audit log keeps, as a hint of what was sent.
const AUDIT_PREVIEW_CHARS: usize = 32;

/// An invalid name as the audit log records it: a marker with its length and a short
/// preview, so that no request, however long its path, writes more than a few bytes of text
/// it chose. (A valid name is recorded as it is: at most `MAX_COMPONENT_BYTES`.)
pub fn audit_text(name: &str) -> String {
    let preview: String = name.chars().take(AUDIT_PREVIEW_CHARS).collect();
    let more = if preview.len() < name.len() {
        "…"
    } else {
        ""
    };
    format!("(invalid, {} bytes: {preview}{more})", name.len())
}

/// The first query parameter `name`, form-decoded (`+` is a space here, unlike in paths).
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_decode(&v.replace('+', " ")))?
    })
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
        let seg = |s: &str| Segment::<PackageName>::new(s.to_string()).audit();
        assert_eq!(seg("app"), "app");
        let long = "A".repeat(60_000);
        let recorded = seg(&long);
        assert!(recorded.len() < 100, "{recorded}");
        assert!(recorded.starts_with("(invalid, 60000 bytes: AAAA"));
        assert_eq!(seg("a b"), "(invalid, 3 bytes: a b)");
    }

    #[test]
    fn segments_keep_what_was_sent() {
        let good = Segment::<Version>::new("1.0".to_string());
        assert_eq!(good.valid().map(Version::as_str), Some("1.0"));
        assert_eq!(good.raw(), "1.0");
        let bad = Segment::<FileName>::new("a/b".to_string());
        assert_eq!(bad.valid(), None);
        assert_eq!(bad.raw(), "a/b");
        assert!(PackageName::parse("..").is_none());
        assert!(Owner::parse("-x").is_none());
        assert_eq!(
            Owner::parse("Acme").map(Owner::into_string).as_deref(),
            Some("Acme")
        );
        assert_eq!(Owner::parse("admin"), Some(Owner::site_admin()));
    }

    #[test]
    fn components() {
        assert_eq!(encode_component("a b/c?#%"), "a%20b%2Fc%3F%23%25");
        assert_eq!(encode_component("Ok-._~1"), "Ok-._~1");
    }
}
