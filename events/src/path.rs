//! Namespace paths: the one validated, normalised spelling of a location in a member's namespace.
//!
//! A path is accepted only in canonical form instead of being silently normalised, so that the
//! string a client sent, the string in the event log and the key in the projections are always
//! the same bytes: `/a/./b` or `/a//b` is a client bug to report, not something to guess about.

use std::fmt;

/// Longest name of one entry, in bytes (the common Linux `NAME_MAX`, so a FUSE mount never meets
/// a name it cannot show).
pub const NAME_BYTES_MAX: usize = 255;
/// Longest whole path, in bytes (the common Linux `PATH_MAX`).
pub const PATH_BYTES_MAX: usize = 4096;

/// Why a string is not a namespace path. Every message names the offending part.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path is empty")]
    Empty,
    #[error("path {path:?} is not absolute (it must start with '/')")]
    NotAbsolute { path: String },
    #[error("path is {bytes} bytes long, more than the limit of {PATH_BYTES_MAX}")]
    PathTooLong { bytes: usize },
    #[error("path {path:?} ends with '/' (only the root may)")]
    TrailingSlash { path: String },
    #[error("path {path:?} has an empty component ('//')")]
    EmptyComponent { path: String },
    #[error("path {path:?} has a '.' component (paths must be normalised)")]
    DotComponent { path: String },
    #[error("path {path:?} has a '..' component (paths must be normalised)")]
    DotDotComponent { path: String },
    #[error("path {path:?} contains control character {character:?} at byte {offset}")]
    ControlCharacter {
        path: String,
        character: char,
        offset: usize,
    },
    #[error("name {name_prefix:?}... is {bytes} bytes long, more than the limit of {NAME_BYTES_MAX}")]
    NameTooLong { name_prefix: String, bytes: usize },
}

/// A validated, canonical, absolute namespace path (`/` or `/a/b`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NamespacePath(String);

impl NamespacePath {
    /// The namespace root `/`.
    pub fn root() -> Self {
        Self("/".to_owned())
    }

    /// Validates `path`; see [`PathError`] for every rule.
    pub fn parse(path: &str) -> Result<Self, PathError> {
        validate(path)?;
        Ok(Self(path.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0 == "/"
    }

    /// The names from the root down; empty for the root.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        components(&self.0)
    }

    /// The parent path and the last name, or `None` for the root.
    pub fn split_parent(&self) -> Option<(NamespacePath, &str)> {
        if self.is_root() {
            return None;
        }
        // Validation guarantees a leading '/' and a non-empty last name.
        let cut = self.0.rfind('/')?;
        let parent = if cut == 0 { "/" } else { &self.0[..cut] };
        Some((NamespacePath(parent.to_owned()), &self.0[cut + 1..]))
    }

    /// The last name, or `None` for the root.
    pub fn name(&self) -> Option<&str> {
        self.split_parent().map(|(_, name)| name)
    }

    /// This path with `name` appended, validated again (the result may exceed a limit).
    pub fn join(&self, name: &str) -> Result<NamespacePath, PathError> {
        let joined = if self.is_root() {
            format!("/{name}")
        } else {
            format!("{}/{name}", self.0)
        };
        NamespacePath::parse(&joined)
    }

    /// Whether `self` is `other` or lies below it.
    pub fn starts_with(&self, other: &NamespacePath) -> bool {
        other.is_root()
            || self.0 == other.0
            || (self.0.starts_with(&other.0) && self.0.as_bytes().get(other.0.len()) == Some(&b'/'))
    }
}

impl fmt::Display for NamespacePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for NamespacePath {
    type Err = PathError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl AsRef<str> for NamespacePath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Checks `path` against every rule without allocating the result.
pub fn validate(path: &str) -> Result<(), PathError> {
    if path.is_empty() {
        return Err(PathError::Empty);
    }
    // Length first, so the messages below never quote an enormous string.
    if path.len() > PATH_BYTES_MAX {
        return Err(PathError::PathTooLong { bytes: path.len() });
    }
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute {
            path: path.to_owned(),
        });
    }
    if let Some((offset, character)) = path.char_indices().find(|(_, c)| c.is_control()) {
        return Err(PathError::ControlCharacter {
            path: path.escape_debug().to_string(),
            character,
            offset,
        });
    }
    if path == "/" {
        return Ok(());
    }
    if path.ends_with('/') {
        return Err(PathError::TrailingSlash {
            path: path.to_owned(),
        });
    }
    for name in path[1..].split('/') {
        match name {
            "" => {
                return Err(PathError::EmptyComponent {
                    path: path.to_owned(),
                });
            }
            "." => {
                return Err(PathError::DotComponent {
                    path: path.to_owned(),
                });
            }
            ".." => {
                return Err(PathError::DotDotComponent {
                    path: path.to_owned(),
                });
            }
            _ if name.len() > NAME_BYTES_MAX => {
                return Err(PathError::NameTooLong {
                    name_prefix: prefix(name, 32),
                    bytes: name.len(),
                });
            }
            _ => {}
        }
    }
    Ok(())
}

/// The names of an already validated path.
fn components(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|name| !name.is_empty())
}

/// At most `bytes` bytes of `s`, cut on a character boundary.
fn prefix(s: &str, bytes: usize) -> String {
    let mut end = bytes.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    /// Whether an error is the one a table row expects.
    type Expect = fn(&PathError) -> bool;

    #[test]
    fn accepts_canonical_paths() {
        for p in [
            "/",
            "/a",
            "/a/b",
            "/media/movies/Film (2020).mkv",
            "/é/ü",
            "/.hidden",
            "/a...b",
        ] {
            assert_eq!(
                NamespacePath::parse(p).map(|p| p.to_string()),
                Ok(p.to_owned()),
                "{p}"
            );
        }
    }

    #[test]
    fn rejects_each_rule() {
        let long_name = format!("/{}", "n".repeat(NAME_BYTES_MAX + 1));
        let long_path = "/abcdefg".repeat(PATH_BYTES_MAX / 8 + 1);
        let cases: &[(&str, Expect)] = &[
            ("", |e| matches!(e, PathError::Empty)),
            ("a/b", |e| matches!(e, PathError::NotAbsolute { .. })),
            ("/a/", |e| matches!(e, PathError::TrailingSlash { .. })),
            ("/a//b", |e| matches!(e, PathError::EmptyComponent { .. })),
            ("/a/./b", |e| matches!(e, PathError::DotComponent { .. })),
            ("/a/..", |e| matches!(e, PathError::DotDotComponent { .. })),
            ("/a\0b", |e| {
                matches!(e, PathError::ControlCharacter { offset: 2, .. })
            }),
            ("/a\nb", |e| {
                matches!(e, PathError::ControlCharacter { character: '\n', .. })
            }),
            ("/a\u{7f}", |e| matches!(e, PathError::ControlCharacter { .. })),
            (long_name.as_str(), |e| {
                matches!(e, PathError::NameTooLong { bytes: 256, .. })
            }),
            (long_path.as_str(), |e| matches!(e, PathError::PathTooLong { .. })),
        ];
        for (input, expected) in cases {
            let err = NamespacePath::parse(input).expect_err(input);
            assert!(expected(&err), "{input:?} gave {err:?}");
            assert!(!err.to_string().is_empty());
        }
    }

    #[test]
    fn name_of_exactly_the_limit_is_accepted() {
        let name = "n".repeat(NAME_BYTES_MAX);
        assert!(NamespacePath::parse(&format!("/{name}")).is_ok());
    }

    #[test]
    fn splits_parent_and_name() {
        let p = NamespacePath::parse("/a/b/c").unwrap();
        let (parent, name) = p.split_parent().unwrap();
        assert_eq!((parent.as_str(), name), ("/a/b", "c"));
        let top = NamespacePath::parse("/a").unwrap();
        let (parent, name) = top.split_parent().unwrap();
        assert_eq!((parent.as_str(), name), ("/", "a"));
        assert_eq!(NamespacePath::root().split_parent(), None);
        assert_eq!(p.components().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(NamespacePath::root().components().count(), 0);
    }

    #[test]
    fn starts_with_respects_name_boundaries() {
        let p = |s| NamespacePath::parse(s).unwrap();
        assert!(p("/a/b").starts_with(&p("/a")));
        assert!(p("/a").starts_with(&p("/a")));
        assert!(p("/a").starts_with(&NamespacePath::root()));
        assert!(!p("/ab").starts_with(&p("/a")));
        assert!(!p("/a").starts_with(&p("/a/b")));
    }

    #[test]
    fn join_validates() {
        let root = NamespacePath::root();
        assert_eq!(root.join("x").unwrap().as_str(), "/x");
        assert_eq!(root.join("x").unwrap().join("y").unwrap().as_str(), "/x/y");
        assert!(root.join("..").is_err());
        assert!(root.join("a/").is_err());
    }

    proptest::proptest! {
        #[test]
        fn joined_names_round_trip(names in proptest::collection::vec("[^/\\p{Cc}]{1,20}", 0..8)) {
            proptest::prop_assume!(names.iter().all(|n| n != "." && n != ".."));
            let text = format!("/{}", names.join("/"));
            let path = NamespacePath::parse(&text).unwrap();
            proptest::prop_assert_eq!(path.components().collect::<Vec<_>>(), names.clone());
            proptest::prop_assert_eq!(path.to_string(), text);
        }

        #[test]
        fn parse_never_panics(text in "\\PC{0,40}|[/a.]{0,12}") {
            if let Ok(path) = NamespacePath::parse(&text) {
                proptest::prop_assert_eq!(path.as_str(), text.as_str());
            }
        }
    }
}
