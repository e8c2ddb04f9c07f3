//! Turning a [`CloudConfig`] into user-data text and back.
//!
//! The text is `#cloud-config\n` followed by the document as JSON. cloud-init
//! reads cloud-config with PyYAML's `safe_load`, and JSON is YAML, with one
//! catch this module removes: PyYAML refuses or rewrites a few characters
//! when they appear raw (DEL, the C1 controls, U+FFFE/U+FFFF, and NEL, which
//! it folds into a space). So every character from U+007F to U+FFFF is
//! written as a `\uXXXX` escape, which both parsers decode the same way.
//! Characters above U+FFFF stay raw UTF-8, because JSON would escape them as
//! a surrogate pair, which PyYAML does not join.

use std::fmt;

use crate::document::CloudConfig;
use crate::error::{ParseError, RenderError};
use crate::validate::check_path;

/// The first line of every rendered user-data, newline included.
pub const CLOUD_CONFIG_HEADER: &str = "#cloud-config\n";

/// Nova's limit on a server's `user_data`, in bytes of its *base64* form
/// (`maxLength: 65535` on the base64 string in Nova's server-create schema,
/// `nova/api/openstack/compute/schemas/user_data.py`).
pub const NOVA_USER_DATA_MAX_BYTES: usize = 65535;

/// The longest user-data whose base64 form fits
/// [`NOVA_USER_DATA_MAX_BYTES`]: 16383 groups of 3 bytes, 65532 encoded.
pub const MAX_USER_DATA_BYTES: usize = NOVA_USER_DATA_MAX_BYTES / 4 * 3;

/// Length of the padded base64 encoding of `bytes` bytes.
pub const fn base64_len(bytes: usize) -> usize {
    bytes.div_ceil(3) * 4
}

/// Rendered user-data: `#cloud-config` plus the document, ready for Nova's
/// `user_data` (after base64) or for the `local` driver.
///
/// `Debug` shows only the length: the text holds the enrollment token.
#[derive(Clone, PartialEq, Eq)]
pub struct UserData(String);

impl UserData {
    /// The text, for writing to a file or a log-free API call.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text as bytes, for base64-encoding into Nova's `user_data`.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// Length in bytes, before base64.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always `false`: user-data holds at least its header.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Length of the base64 form that Nova stores and limits.
    pub fn base64_len(&self) -> usize {
        base64_len(self.0.len())
    }

    /// The text, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Debug for UserData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserData(<{} bytes>)", self.0.len())
    }
}

impl CloudConfig {
    /// Serializes this document as user-data, exactly as
    /// [`render`](crate::render) does but without its checks on the input:
    /// the inverse of [`parse`].
    ///
    /// Still safe with any strings (each stays inside its own JSON value);
    /// what it does not check is whether the paths and commands make sense.
    /// Nest itself renders through [`render`](crate::render); this exists so
    /// the encoding can be tested on any content.
    ///
    /// # Errors
    ///
    /// [`RenderError::TooLarge`] over Nova's limit; [`RenderError::Json`]
    /// never in practice.
    pub fn to_user_data(&self) -> Result<UserData, RenderError> {
        encode(self)
    }
}

/// Serializes a document and checks the result against Nova's limit.
pub(crate) fn encode(document: &CloudConfig) -> Result<UserData, RenderError> {
    let json = serde_json::to_string_pretty(document).map_err(RenderError::Json)?;
    let mut text = String::with_capacity(CLOUD_CONFIG_HEADER.len() + json.len() + 1);
    text.push_str(CLOUD_CONFIG_HEADER);
    push_yaml_safe(&mut text, &json);
    text.push('\n');

    if text.len() > MAX_USER_DATA_BYTES {
        return Err(RenderError::TooLarge {
            bytes: text.len(),
            encoded: base64_len(text.len()),
        });
    }
    Ok(UserData(text))
}

/// Appends `json`, escaping U+007F..=U+FFFF as `\uXXXX`.
///
/// Sound on serde_json output as a whole: outside strings JSON is plain
/// ASCII, so every such character sits inside a string, where the escape
/// means the same character.
fn push_yaml_safe(out: &mut String, json: &str) {
    for c in json.chars() {
        let code = u32::from(c);
        if (0x7f..=0xffff).contains(&code) {
            out.push_str(&format!("\\u{code:04x}"));
        } else {
            out.push(c);
        }
    }
}

/// Reads back user-data that [`render`](crate::render) produced.
///
/// Accepts only that shape: the exact `#cloud-config` header line, then one
/// JSON object with `write_files` and `runcmd` and nothing else. YAML
/// spellings of the same document are refused, so the `local` driver never
/// interprets something Nova-booted instances would read differently.
///
/// # Errors
///
/// [`ParseError`] naming the first thing that is not what `render` writes,
/// including a `write_files` path that is not plain and absolute.
pub fn parse(user_data: &str) -> Result<CloudConfig, ParseError> {
    if user_data.len() > MAX_USER_DATA_BYTES {
        return Err(ParseError::TooLarge {
            bytes: user_data.len(),
        });
    }
    let body = user_data
        .strip_prefix(CLOUD_CONFIG_HEADER)
        .ok_or(ParseError::MissingHeader)?;
    let document: CloudConfig = serde_json::from_str(body).map_err(ParseError::Body)?;
    for (index, file) in document.write_files.iter().enumerate() {
        check_path(&file.path).map_err(|reason| ParseError::UnsafePath { index, reason })?;
        if !is_owner(&file.owner) {
            return Err(ParseError::Owner { index });
        }
    }
    Ok(document)
}

/// `user:group`, each a conventional Unix name.
fn is_owner(owner: &str) -> bool {
    let name = |n: &str| {
        n.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
            && n.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    };
    owner
        .split_once(':')
        .is_some_and(|(user, group)| name(user) && name(group))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::{Command, FileMode, WriteFile};

    /// Strings that would break a templated YAML document, each put in every
    /// string position of a document.
    const HOSTILE: &[&str] = &[
        "\"\n- path: /etc/shadow\n  content: x\n",
        "x\"}], \"runcmd\": [[\"sh\", \"-c\", \"reboot\"]], \"y\": [{\"a\": \"",
        "a\\\"b\\\\",
        "\nruncmd:\n  - [reboot]\n",
        "#cloud-config\n---\n...\n",
        "no",
        "0755",
        "~",
        "tab\there\r\n",
        "\u{0}\u{1f}\u{7f}\u{80}\u{85}\u{9f}\u{a0}",
        "\u{2028}\u{2029}\u{feff}\u{fffe}\u{ffff}",
        "é ünïcødé 雪",
        "\u{1F600} astral",
        "'; rm -rf / #",
        "{{ template }} ${shell} $(cmd) `cmd` %h",
    ];

    fn hostile_document(s: &str) -> CloudConfig {
        CloudConfig {
            write_files: vec![WriteFile {
                path: "/etc/nest/x".into(),
                content: s.into(),
                permissions: FileMode::OWNER_ONLY,
                owner: "root:root".into(),
            }],
            runcmd: vec![
                Command::try_from(vec!["echo".to_owned(), s.replace('\0', "")])
                    .unwrap_or_else(|_| unreachable!()),
            ],
        }
    }

    #[test]
    fn no_string_can_add_a_key_or_entry() {
        for &s in HOSTILE {
            let document = hostile_document(s);
            let rendered = encode(&document)
                .map(UserData::into_string)
                .unwrap_or_default();
            assert_eq!(parse(&rendered).ok(), Some(document), "{s:?}\n{rendered}");
            // Only the fixed keys, and the hostile text never starts a line.
            let value: serde_json::Value =
                serde_json::from_str(&rendered[CLOUD_CONFIG_HEADER.len()..]).unwrap_or_default();
            let keys: Vec<&String> = value
                .as_object()
                .map(|o| o.keys().collect())
                .unwrap_or_default();
            assert_eq!(keys, ["runcmd", "write_files"], "{s:?}");
            assert_eq!(rendered.lines().count(), 17, "{s:?}\n{rendered}");
        }
    }

    #[test]
    fn output_holds_no_character_pyyaml_reads_differently() {
        for &s in HOSTILE {
            let rendered = encode(&hostile_document(s))
                .map(UserData::into_string)
                .unwrap_or_default();
            let offending: Vec<char> = rendered
                .chars()
                .filter(|&c| {
                    let printable_ascii = (' '..='~').contains(&c) || c == '\n';
                    !(printable_ascii || u32::from(c) > 0xffff)
                })
                .collect();
            assert_eq!(offending, Vec::<char>::new(), "{s:?}");
        }
    }

    #[test]
    fn size_limit_is_nova_base64_limit() {
        assert_eq!(MAX_USER_DATA_BYTES, 49149);
        assert!(base64_len(MAX_USER_DATA_BYTES) <= NOVA_USER_DATA_MAX_BYTES);
        assert!(base64_len(MAX_USER_DATA_BYTES + 1) > NOVA_USER_DATA_MAX_BYTES);
        assert_eq!(
            (base64_len(0), base64_len(1), base64_len(3), base64_len(4)),
            (0, 4, 4, 8)
        );
    }

    #[test]
    fn oversized_document_is_refused() {
        let document = hostile_document(&"a".repeat(MAX_USER_DATA_BYTES));
        match encode(&document) {
            Err(RenderError::TooLarge { bytes, encoded }) => {
                assert!(bytes > MAX_USER_DATA_BYTES);
                assert_eq!(encoded, base64_len(bytes));
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }

    #[test]
    fn document_just_under_the_limit_is_accepted() {
        let overhead = encode(&hostile_document(""))
            .map(|u| u.len())
            .unwrap_or_default();
        let fill = (MAX_USER_DATA_BYTES - overhead) / 2;
        let Ok(user_data) = encode(&hostile_document(&"a".repeat(fill))) else {
            panic!("a document under the limit must encode");
        };
        assert!(user_data.len() <= MAX_USER_DATA_BYTES);
        assert!(user_data.base64_len() <= NOVA_USER_DATA_MAX_BYTES);
    }

    #[test]
    fn parse_refuses_what_render_never_writes() {
        let good = encode(&hostile_document("x"))
            .map(UserData::into_string)
            .unwrap_or_default();
        let body = &good[CLOUD_CONFIG_HEADER.len()..];
        let cases: Vec<(String, &str)> = vec![
            (body.to_owned(), "MissingHeader"),
            (format!("#cloud-config\r\n{body}"), "MissingHeader"),
            (format!(" #cloud-config\n{body}"), "MissingHeader"),
            (
                "#cloud-config\nwrite_files: []\nruncmd: []\n".to_owned(),
                "Body",
            ),
            (
                "#cloud-config\n{\"write_files\": [], \"runcmd\": [], \"bootcmd\": []}".to_owned(),
                "Body",
            ),
            ("#cloud-config\n{\"write_files\": []}".to_owned(), "Body"),
            (
                "#cloud-config\n{\"write_files\": [], \"runcmd\": [\"reboot\"]}".to_owned(),
                "Body",
            ),
            (good.replace("\"0600\"", "\"600\""), "Body"),
            (good.replace("\"0600\"", "384"), "Body"),
            (
                good.replace("\"owner\"", "\"encoding\": \"b64\", \"owner\""),
                "Body",
            ),
            (good.replace("/etc/nest/x", "etc/nest/x"), "UnsafePath"),
            (good.replace("/etc/nest/x", "/etc/../root/x"), "UnsafePath"),
            (good.replace("root:root", "root"), "Owner"),
            (good.replace("root:root", "root:root\\nx"), "Owner"),
            (
                format!("{CLOUD_CONFIG_HEADER}{}", " ".repeat(MAX_USER_DATA_BYTES)),
                "TooLarge",
            ),
        ];
        for (text, expected) in cases {
            let got = match parse(&text) {
                Ok(_) => "Ok",
                Err(ParseError::MissingHeader) => "MissingHeader",
                Err(ParseError::Body(_)) => "Body",
                Err(ParseError::UnsafePath { .. }) => "UnsafePath",
                Err(ParseError::Owner { .. }) => "Owner",
                Err(ParseError::TooLarge { .. }) => "TooLarge",
            };
            assert_eq!(got, expected, "{text:?}");
        }
    }

    #[test]
    fn user_data_debug_shows_only_length() {
        let Ok(user_data) = encode(&hostile_document("secret-value")) else {
            panic!("must encode");
        };
        let printed = format!("{user_data:?}");
        assert_eq!(printed, format!("UserData(<{} bytes>)", user_data.len()));
        assert!(!user_data.is_empty());
        assert_eq!(user_data.as_bytes(), user_data.as_str().as_bytes());
    }
}
