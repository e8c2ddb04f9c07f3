//! Image references as tenants write them: a registry reference that the
//! agent pulls (`nginx:1.25`, `registry.example:5000/team/app@sha256:…`), or
//! the uuid of an image held by Nest, which the service streams to the agent.
//!
//! The parser is hand-written and follows Docker's reference grammar
//! (`distribution/reference`, `reference.go` and `normalize.go`), so that a
//! reference Nest accepts is one the agent's `docker pull` accepts, and a
//! refusal names the part that is wrong. This module only parses: it never
//! normalises (`nginx` stays `nginx`, not `docker.io/library/nginx`) and
//! never looks anything up.
//!
//! A canonical lowercase uuid is always a stored image, although Docker
//! would also accept it as a repository name; `docker.io/library/<uuid>` or
//! `<uuid>:latest` still names such a repository.

use std::fmt;
use std::str::FromStr;

use crate::ErrorKind;
use crate::store::ImageId;

/// Longest repository name (domain and path), as in Docker's
/// `NameTotalLengthMax`.
pub const MAX_NAME_LEN: usize = 255;

/// Longest tag: one leading character plus Docker's `{0,127}`.
pub const MAX_TAG_LEN: usize = 128;

/// Tag that Docker assumes when a reference has neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";

const SHA256_PREFIX: &str = "sha256:";
const SHA256_HEX_LEN: usize = 64;

/// What a tenant's `image:` field names.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ImageRef {
    /// An image held by Nest's image store, named by its id.
    Stored(ImageId),
    /// An image the agent pulls from a registry.
    Registry(RegistryReference),
}

impl ImageRef {
    /// Parses what a tenant wrote.
    ///
    /// A canonical (lowercase, hyphenated) uuid is a stored image; anything
    /// else must be a valid Docker reference.
    ///
    /// ```
    /// use nest_images::{ImageRef, ErrorKind};
    ///
    /// let stored = ImageRef::parse("6f1c1c3e-2b7a-4d7e-9a52-0d1f3c2b1a00").unwrap();
    /// assert!(matches!(stored, ImageRef::Stored(_)));
    ///
    /// let ImageRef::Registry(r) = ImageRef::parse("localhost:5000/team/app").unwrap() else {
    ///     panic!("a registry reference")
    /// };
    /// assert_eq!(r.domain(), Some("localhost:5000"));
    /// assert_eq!(r.to_pull_string(), "localhost:5000/team/app:latest");
    ///
    /// let err = ImageRef::parse("Nginx").unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Invalid);
    /// ```
    ///
    /// # Errors
    ///
    /// [`ReferenceError`] (always [`ErrorKind::Invalid`]) naming the part of
    /// the reference that is wrong.
    pub fn parse(s: &str) -> Result<Self, ReferenceError> {
        if is_uuid_shaped(s) {
            return if s.bytes().any(|b| b.is_ascii_uppercase()) {
                Err(ReferenceError::NonCanonicalImageId)
            } else {
                ImageId::from_str(s)
                    .map(Self::Stored)
                    .map_err(|_| ReferenceError::NonCanonicalImageId)
            };
        }
        RegistryReference::parse(s).map(Self::Registry)
    }
}

impl FromStr for ImageRef {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Stored(id) => id.fmt(f),
            Self::Registry(r) => r.fmt(f),
        }
    }
}

/// A reference to an image in a registry, split into its parts.
///
/// Fields are private so that every value went through the parser; the
/// accessors return the parts exactly as written.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RegistryReference {
    domain: Option<String>,
    path: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl RegistryReference {
    /// Parses a Docker reference: `[domain/]path[:tag][@digest]`.
    ///
    /// # Errors
    ///
    /// [`ReferenceError`] naming the part that breaks Docker's grammar.
    pub fn parse(s: &str) -> Result<Self, ReferenceError> {
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if s.chars().any(char::is_whitespace) {
            return Err(ReferenceError::Whitespace);
        }

        // Neither a name nor a tag may hold '@', so the first one starts the
        // digest (`reference.go`: name, then `:tag`, then `@digest`).
        let (name_and_tag, digest) = match s.split_once('@') {
            Some((before, digest)) => (before, Some(validate_digest(digest)?)),
            None => (s, None),
        };

        // A ':' after the last '/' starts the tag; one before it belongs to
        // the domain's port (`localhost:5000/a`).
        let last_slash = name_and_tag.rfind('/');
        let (name, tag) = match name_and_tag.rfind(':') {
            Some(colon) if last_slash.is_none_or(|slash| colon > slash) => {
                let tag = name_and_tag.get(colon + 1..).unwrap_or_default();
                (
                    name_and_tag.get(..colon).unwrap_or_default(),
                    Some(validate_tag(tag)?),
                )
            }
            _ => (name_and_tag, None),
        };

        if name.is_empty() {
            return Err(ReferenceError::MissingName);
        }
        if name.len() > MAX_NAME_LEN {
            return Err(ReferenceError::NameTooLong { len: name.len() });
        }

        let (domain, path) = split_domain(name);
        if let Some(domain) = domain {
            validate_domain(domain)?;
        }
        validate_path(path)?;

        Ok(Self {
            domain: domain.map(str::to_owned),
            path: path.to_owned(),
            tag: tag.map(str::to_owned),
            digest: digest.map(str::to_owned),
        })
    }

    /// The registry host and optional port (`registry.example:5000`), if the
    /// reference names one; without one Docker uses Docker Hub.
    pub fn domain(&self) -> Option<&str> {
        self.domain.as_deref()
    }

    /// The repository path inside the registry (`team/app`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The tag, if one was written.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest (`sha256:<64 hex>`), if one was written.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// The repository name: `[domain/]path`, without tag or digest.
    pub fn name(&self) -> String {
        match &self.domain {
            Some(domain) => format!("{domain}/{}", self.path),
            None => self.path.clone(),
        }
    }

    /// What the agent passes to `docker pull`: the canonical form, with
    /// `:latest` added when neither tag nor digest was written, so the
    /// agent never pulls every tag of a repository.
    pub fn to_pull_string(&self) -> String {
        if self.tag.is_none() && self.digest.is_none() {
            format!("{}:{DEFAULT_TAG}", self.name())
        } else {
            self.to_string()
        }
    }
}

impl FromStr for RegistryReference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for RegistryReference {
    /// The canonical form, `[domain/]path[:tag][@digest]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(domain) = &self.domain {
            write!(f, "{domain}/")?;
        }
        f.write_str(&self.path)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Why a string is not an image reference.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// Nothing was given.
    #[error("image reference is empty")]
    Empty,
    /// Spaces, tabs or newlines appear anywhere in the reference.
    #[error("image reference must not contain whitespace")]
    Whitespace,
    /// Only a tag or digest was given (`:tag`, `@sha256:…`).
    #[error("image reference has no repository name")]
    MissingName,
    /// A uuid-shaped reference that is not lowercase.
    #[error("image ids are lowercase uuids (like 6f1c1c3e-2b7a-4d7e-9a52-0d1f3c2b1a00)")]
    NonCanonicalImageId,
    /// The repository name is longer than [`MAX_NAME_LEN`].
    #[error("repository name is {len} characters long; at most {MAX_NAME_LEN} are allowed")]
    NameTooLong {
        /// Length of the name as written, in bytes.
        len: usize,
    },
    /// The registry host or port is malformed.
    #[error("registry `{domain}` is not a valid host[:port]")]
    InvalidDomain {
        /// The domain part as written.
        domain: String,
    },
    /// A path component is empty (`a//b`, a leading or trailing `/`).
    #[error("repository path `{path}` has an empty component")]
    EmptyPathComponent {
        /// The whole path as written.
        path: String,
    },
    /// A path component holds an uppercase letter.
    #[error("repository name `{component}` must be lowercase")]
    Uppercase {
        /// The offending path component.
        component: String,
    },
    /// A path component breaks Docker's component grammar.
    #[error(
        "repository name component `{component}` is invalid: use lowercase letters and digits, \
         separated by `.`, `_`, `__` or dashes, starting and ending with a letter or digit"
    )]
    InvalidPathComponent {
        /// The offending path component.
        component: String,
    },
    /// The tag is empty, too long or has a forbidden character.
    #[error(
        "tag `{tag}` is invalid: use up to {MAX_TAG_LEN} letters, digits, `_`, `.` or `-`, \
         not starting with `.` or `-`"
    )]
    InvalidTag {
        /// The tag as written.
        tag: String,
    },
    /// The digest is not `sha256:` followed by 64 lowercase hex digits.
    #[error("digest `{digest}` is invalid: expected sha256: followed by 64 lowercase hex digits")]
    InvalidDigest {
        /// The digest as written.
        digest: String,
    },
}

impl ReferenceError {
    /// How a caller should see this error: a bad reference is always the
    /// caller's mistake.
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::Invalid
    }
}

/// Whether `s` has the shape `8-4-4-4-12` of hex digits in either case.
fn is_uuid_shaped(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// Splits off the domain the way Docker's `splitDockerDomain` does: the
/// first component is a domain when it holds `.` or `:`, is `localhost`, or
/// has an uppercase letter (path components never may).
fn split_domain(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

/// `host[:port]`, where host is a DNS name, an IPv4 address or `[IPv6]`.
fn validate_domain(domain: &str) -> Result<(), ReferenceError> {
    let invalid = || ReferenceError::InvalidDomain {
        domain: domain.to_owned(),
    };
    let (host, port) = if let Some(bracketed) = domain.strip_prefix('[') {
        let (inside, after) = bracketed.split_once(']').ok_or_else(invalid)?;
        if inside.is_empty() || !inside.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return Err(invalid());
        }
        match after {
            "" => (None, None),
            _ => (None, Some(after.strip_prefix(':').ok_or_else(invalid)?)),
        }
    } else {
        match domain.split_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(domain), None),
        }
    };
    if let Some(host) = host {
        let component_ok = |c: &str| {
            let bytes = c.as_bytes();
            match (bytes.first(), bytes.last()) {
                (Some(first), Some(last)) => {
                    first.is_ascii_alphanumeric()
                        && last.is_ascii_alphanumeric()
                        && bytes
                            .iter()
                            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
                }
                _ => false,
            }
        };
        if !host.split('.').all(component_ok) {
            return Err(invalid());
        }
    }
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(invalid());
    }
    Ok(())
}

/// `component ['/' component]*`.
fn validate_path(path: &str) -> Result<(), ReferenceError> {
    for component in path.split('/') {
        if component.is_empty() {
            return Err(ReferenceError::EmptyPathComponent {
                path: path.to_owned(),
            });
        }
        validate_path_component(component)?;
    }
    Ok(())
}

/// `[a-z0-9]+ (separator [a-z0-9]+)*` with separator `.`, `_`, `__` or one
/// or more dashes (current `distribution/reference` allows dash runs).
fn validate_path_component(component: &str) -> Result<(), ReferenceError> {
    if component.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(ReferenceError::Uppercase {
            component: component.to_owned(),
        });
    }
    let invalid = || ReferenceError::InvalidPathComponent {
        component: component.to_owned(),
    };
    let is_alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = component.as_bytes();
    let mut i = 0;
    loop {
        // One alphanumeric run.
        let run_start = i;
        while bytes.get(i).is_some_and(|b| is_alnum(*b)) {
            i += 1;
        }
        if i == run_start {
            return Err(invalid());
        }
        // Then either the end, or a separator followed by another run.
        match bytes.get(i) {
            None => return Ok(()),
            Some(b'.') => i += 1,
            Some(b'_') => {
                i += 1;
                if bytes.get(i) == Some(&b'_') {
                    i += 1;
                }
            }
            Some(b'-') => {
                while bytes.get(i) == Some(&b'-') {
                    i += 1;
                }
            }
            Some(_) => return Err(invalid()),
        }
    }
}

/// `[\w][\w.-]{0,127}`.
fn validate_tag(tag: &str) -> Result<&str, ReferenceError> {
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let ok = match tag.as_bytes().split_first() {
        Some((first, rest)) => {
            tag.len() <= MAX_TAG_LEN
                && is_word(*first)
                && rest.iter().all(|b| is_word(*b) || *b == b'.' || *b == b'-')
        }
        None => false,
    };
    if ok {
        Ok(tag)
    } else {
        Err(ReferenceError::InvalidTag {
            tag: tag.to_owned(),
        })
    }
}

/// `sha256:[0-9a-f]{64}`: the only algorithm registries use in practice.
fn validate_digest(digest: &str) -> Result<&str, ReferenceError> {
    let ok = digest.strip_prefix(SHA256_PREFIX).is_some_and(|hex| {
        hex.len() == SHA256_HEX_LEN
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    });
    if ok {
        Ok(digest)
    } else {
        Err(ReferenceError::InvalidDigest {
            digest: digest.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn registry(s: &str) -> RegistryReference {
        match ImageRef::parse(s) {
            Ok(ImageRef::Registry(r)) => r,
            other => panic!("{s:?} should be a registry reference, got {other:?}"),
        }
    }

    fn parts(s: &str) -> (Option<String>, String, Option<String>, Option<String>) {
        let r = registry(s);
        (
            r.domain().map(str::to_owned),
            r.path().to_owned(),
            r.tag().map(str::to_owned),
            r.digest().map(str::to_owned),
        )
    }

    fn err(s: &str) -> ReferenceError {
        match ImageRef::parse(s) {
            Err(e) => e,
            Ok(r) => panic!("{s:?} should be refused, got {r:?}"),
        }
    }

    fn some(s: &str) -> Option<String> {
        Some(s.to_owned())
    }

    #[test]
    fn canonical_uuid_is_a_stored_image() {
        let s = "6f1c1c3e-2b7a-4d7e-9a52-0d1f3c2b1a00";
        match ImageRef::parse(s).unwrap() {
            ImageRef::Stored(id) => assert_eq!(id.to_string(), s),
            other => panic!("expected a stored image, got {other:?}"),
        }
        assert_eq!(ImageRef::parse(s).unwrap().to_string(), s);
    }

    #[test]
    fn uppercase_uuid_is_refused_with_a_hint() {
        assert_eq!(
            err("6F1C1C3E-2B7A-4D7E-9A52-0D1F3C2B1A00"),
            ReferenceError::NonCanonicalImageId
        );
    }

    #[test]
    fn uuid_with_a_tag_is_a_registry_repository() {
        let (domain, path, tag, _) = parts("6f1c1c3e-2b7a-4d7e-9a52-0d1f3c2b1a00:latest");
        assert_eq!(domain, None);
        assert_eq!(path, "6f1c1c3e-2b7a-4d7e-9a52-0d1f3c2b1a00");
        assert_eq!(tag, some("latest"));
    }

    #[test]
    fn bare_name_has_no_domain_tag_or_digest() {
        assert_eq!(parts("nginx"), (None, "nginx".into(), None, None));
        assert_eq!(registry("nginx").to_pull_string(), "nginx:latest");
        assert_eq!(registry("nginx").to_string(), "nginx");
    }

    #[test]
    fn name_with_tag() {
        assert_eq!(
            parts("nginx:1.25"),
            (None, "nginx".into(), some("1.25"), None)
        );
        assert_eq!(registry("nginx:1.25").to_pull_string(), "nginx:1.25");
    }

    #[test]
    fn domain_with_port_path_and_digest() {
        let s = format!("registry.example:5000/team/app@sha256:{HEX}");
        assert_eq!(
            parts(&s),
            (
                some("registry.example:5000"),
                "team/app".into(),
                None,
                Some(format!("sha256:{HEX}"))
            )
        );
        // A digest pins the image: no `:latest` is added.
        assert_eq!(registry(&s).to_pull_string(), s);
    }

    #[test]
    fn localhost_is_a_domain_even_without_dot_or_port() {
        assert_eq!(
            parts("localhost/x:y"),
            (some("localhost"), "x".into(), some("y"), None)
        );
    }

    #[test]
    fn port_colon_is_not_a_tag() {
        assert_eq!(
            parts("localhost:5000/a"),
            (some("localhost:5000"), "a".into(), None, None)
        );
        assert_eq!(
            registry("localhost:5000/a").to_pull_string(),
            "localhost:5000/a:latest"
        );
    }

    #[test]
    fn lone_localhost_with_port_is_a_tag() {
        // Docker reads `localhost:5000` as repository `localhost`, tag `5000`.
        assert_eq!(
            parts("localhost:5000"),
            (None, "localhost".into(), some("5000"), None)
        );
    }

    #[test]
    fn tag_and_digest_together() {
        let s = format!("a:1.2@sha256:{HEX}");
        assert_eq!(
            parts(&s),
            (None, "a".into(), some("1.2"), Some(format!("sha256:{HEX}")))
        );
        assert_eq!(registry(&s).to_string(), s);
    }

    #[test]
    fn domain_with_port_tag_and_digest() {
        let s = format!("localhost:5000/a/b:v1@sha256:{HEX}");
        assert_eq!(
            parts(&s),
            (
                some("localhost:5000"),
                "a/b".into(),
                some("v1"),
                Some(format!("sha256:{HEX}"))
            )
        );
    }

    #[test]
    fn first_component_without_dot_is_part_of_the_path() {
        assert_eq!(
            parts("library/nginx"),
            (None, "library/nginx".into(), None, None)
        );
        assert_eq!(registry("library/nginx").name(), "library/nginx");
    }

    #[test]
    fn first_component_with_dot_is_a_domain() {
        assert_eq!(
            parts("docker.io/library/nginx:1"),
            (some("docker.io"), "library/nginx".into(), some("1"), None)
        );
    }

    #[test]
    fn ipv4_and_ipv6_domains() {
        assert_eq!(parts("10.0.0.1:5000/a").0, some("10.0.0.1:5000"));
        assert_eq!(parts("[::1]:5000/a").0, some("[::1]:5000"));
        assert_eq!(parts("[fe80::1]/a:t").0, some("[fe80::1]"));
    }

    #[test]
    fn uppercase_first_component_is_a_domain_like_docker() {
        assert_eq!(parts("Registry/app").0, some("Registry"));
    }

    #[test]
    fn separators_are_accepted() {
        for s in ["a.b", "a_b", "a__b", "a-b", "a---b", "x/a.b_c__d-e/f0"] {
            assert_eq!(registry(s).path(), s);
        }
    }

    #[test]
    fn single_component_with_dots_is_a_path_not_a_domain() {
        assert_eq!(
            parts("example.com"),
            (None, "example.com".into(), None, None)
        );
    }

    #[test]
    fn empty_is_refused() {
        assert_eq!(err(""), ReferenceError::Empty);
    }

    #[test]
    fn whitespace_is_refused() {
        for s in [" nginx", "nginx ", "ng inx", "nginx\n", "nginx:\t1"] {
            assert_eq!(err(s), ReferenceError::Whitespace, "{s:?}");
        }
    }

    #[test]
    fn uppercase_repository_is_refused() {
        assert!(
            matches!(err("UPPER"), ReferenceError::Uppercase { component } if component == "UPPER")
        );
        assert!(matches!(err("a/Bc"), ReferenceError::Uppercase { .. }));
        assert!(err("UPPER").to_string().contains("lowercase"));
    }

    #[test]
    fn empty_path_components_are_refused() {
        for s in ["a//b", "/a", "a/", "localhost/", "example.com//a"] {
            assert!(
                matches!(err(s), ReferenceError::EmptyPathComponent { .. }),
                "{s:?}: {:?}",
                err(s)
            );
        }
    }

    #[test]
    fn bad_separators_are_refused() {
        for s in [
            "-a", "a-", ".a", "a.", "_a", "a_", "a..b", "a___b", "a._b", "a/../b", "..", "a$b",
        ] {
            assert!(
                matches!(err(s), ReferenceError::InvalidPathComponent { .. }),
                "{s:?}: {:?}",
                err(s)
            );
        }
    }

    #[test]
    fn missing_name_is_refused() {
        assert_eq!(err(":tag"), ReferenceError::MissingName);
        assert_eq!(err(&format!("@sha256:{HEX}")), ReferenceError::MissingName);
    }

    #[test]
    fn bad_tags_are_refused() {
        let long = "t".repeat(MAX_TAG_LEN + 1);
        for s in ["a:", "a:-x", "a:.x", "a:x+y", "a:x!", &format!("a:{long}")] {
            assert!(
                matches!(err(s), ReferenceError::InvalidTag { .. }),
                "{s:?}: {:?}",
                err(s)
            );
        }
        // The longest tag is fine, as are `_` first and mixed case.
        let longest = "t".repeat(MAX_TAG_LEN);
        assert_eq!(
            registry(&format!("a:{longest}")).tag(),
            Some(longest.as_str())
        );
        assert_eq!(registry("a:_Latest.1-x").tag(), Some("_Latest.1-x"));
    }

    #[test]
    fn bad_digests_are_refused() {
        let upper = HEX.to_uppercase();
        for s in [
            "a@".to_owned(),
            "a@sha256:abc".to_owned(),
            format!("a@sha512:{HEX}"),
            format!("a@sha256:{upper}"),
            format!("a@sha256:{HEX}0"),
            format!("a@sha256:{HEX}@sha256:{HEX}"),
        ] {
            assert!(
                matches!(err(&s), ReferenceError::InvalidDigest { .. }),
                "{s:?}: {:?}",
                err(&s)
            );
        }
    }

    #[test]
    fn bad_domains_are_refused() {
        for s in [
            "a.b:/c",
            "a.b:x1/c",
            "-a.b/c",
            "a..b/c",
            "[::1/c",
            "[]:5000/c",
            "[::1]x/c",
            "a:x/y",
            "a_b.c/d",
        ] {
            assert!(
                matches!(err(s), ReferenceError::InvalidDomain { .. }),
                "{s:?}: {:?}",
                err(s)
            );
        }
    }

    #[test]
    fn name_length_is_capped_at_255() {
        let ok = "a".repeat(MAX_NAME_LEN);
        assert_eq!(registry(&ok).path(), ok);
        // The tag does not count towards the name, as in Docker.
        assert_eq!(registry(&format!("{ok}:t")).tag(), Some("t"));
        let long = "a".repeat(MAX_NAME_LEN + 1);
        assert_eq!(
            err(&long),
            ReferenceError::NameTooLong {
                len: MAX_NAME_LEN + 1
            }
        );
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "nginx",
            "nginx:1.25",
            "localhost/x:y",
            "localhost:5000/a",
            "registry.example:5000/team/app:v1",
            &format!("registry.example:5000/team/app@sha256:{HEX}"),
        ] {
            let parsed = ImageRef::parse(s).unwrap();
            assert_eq!(parsed.to_string(), s);
            assert_eq!(ImageRef::parse(&parsed.to_string()).unwrap(), parsed);
        }
    }

    #[test]
    fn errors_are_invalid_kind() {
        assert_eq!(err("UPPER").kind(), ErrorKind::Invalid);
    }
}
