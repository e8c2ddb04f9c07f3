//! Checks an [`AgentBootstrap`] and reports every problem at once.
//!
//! Serialization already keeps every value inside its own JSON string, so
//! these checks are not what makes the user-data safe. They exist because
//! some values leave JSON on the instance: the agent path becomes part of a
//! systemd `ExecStart=` line (where spaces, quotes, `%` and `$` mean
//! something), the URL and checksum become program arguments, and a wrong
//! relay address or token only fails minutes later, inside a VM, where nobody
//! sees it. Refusing them here turns that into an immediate, named error.
//!
//! Messages name the field and the rule, never the value: the token is a
//! secret, and the other values may hold anything.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::bootstrap::{AgentBootstrap, AgentSource};

/// Longest accepted `instance_id`, in characters. Nova ids are 36.
pub const MAX_INSTANCE_ID_LEN: usize = 64;

/// Longest accepted path, in bytes (Linux's `PATH_MAX` less the NUL).
pub const MAX_PATH_LEN: usize = 4095;

/// Longest accepted download URL, in bytes.
pub const MAX_URL_LEN: usize = 2048;

/// Length of the enrollment token, in hex characters (32 random bytes).
pub const ENROLLMENT_TOKEN_LEN: usize = 64;

const PEM_BEGIN: &str = "-----BEGIN CERTIFICATE-----";
const PEM_END: &str = "-----END CERTIFICATE-----";

/// One thing wrong with an [`AgentBootstrap`], naming its field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// `instance_id` is empty, too long, or has a character outside the set.
    #[error("instance_id must be 1 to {MAX_INSTANCE_ID_LEN} characters from A-Z a-z 0-9 . _ -")]
    InstanceId,
    /// `relay_addr` is not `host:port`.
    #[error("relay_addr must be host:port: {reason}")]
    RelayAddr {
        /// What exactly is wrong.
        reason: &'static str,
    },
    /// `relay_server_name` is neither a DNS name nor an IP address.
    #[error("relay_server_name must be a DNS name or an IP address")]
    RelayServerName,
    /// `ca_certificate_pem` is not a list of PEM certificates.
    #[error("ca_certificate_pem must be one or more PEM CERTIFICATE blocks: {reason}")]
    CaCertificate {
        /// What exactly is wrong.
        reason: &'static str,
    },
    /// `enrollment_token` is not 64 lowercase hex characters.
    #[error("enrollment_token must be {ENROLLMENT_TOKEN_LEN} lowercase hexadecimal characters")]
    EnrollmentToken,
    /// A path (`agent_source.path` or `docker_socket`) is unsafe to use.
    #[error("{field} must be a plain absolute path: {reason}")]
    Path {
        /// Which field holds the path.
        field: &'static str,
        /// What exactly is wrong.
        reason: &'static str,
    },
    /// `agent_source.url` is not an acceptable `https://` URL.
    #[error("agent_source.url must be an https:// URL: {reason}")]
    DownloadUrl {
        /// What exactly is wrong.
        reason: &'static str,
    },
    /// `agent_source.sha256` is not 64 hex characters.
    #[error("agent_source.sha256 must be 64 hexadecimal characters")]
    Sha256,
}

/// Every problem found in an [`AgentBootstrap`]; never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    problems: Vec<Problem>,
}

impl ValidationError {
    /// The problems, in field order.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid agent bootstrap: ")?;
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationError {}

/// An [`AgentBootstrap`] that passed every check, with values normalized for
/// rendering. Only [`AgentBootstrap::check`] makes one.
#[derive(Debug)]
pub(crate) struct Validated<'a> {
    pub(crate) instance_id: &'a str,
    pub(crate) relay_addr: &'a str,
    pub(crate) relay_server_name: Option<&'a str>,
    /// The certificate blocks, one PEM line per line, ending in a newline.
    pub(crate) ca_certificate_pem: String,
    pub(crate) enrollment_token: &'a str,
    pub(crate) docker_socket: Option<&'a str>,
    pub(crate) agent_source: ValidSource<'a>,
}

/// A checked [`AgentSource`].
#[derive(Debug)]
pub(crate) enum ValidSource<'a> {
    Baked {
        path: &'a str,
    },
    Download {
        url: &'a str,
        /// Lowercase, as `sha256sum` prints it.
        sha256: String,
    },
}

impl ValidSource<'_> {
    /// The path systemd starts the agent from.
    pub(crate) fn installed_path(&self) -> &str {
        match self {
            ValidSource::Baked { path } => path,
            ValidSource::Download { .. } => crate::paths::DEFAULT_AGENT_BINARY_PATH,
        }
    }
}

impl AgentBootstrap {
    /// Checks every field and reports all problems at once.
    ///
    /// [`render`](crate::render) calls this itself; call it directly to
    /// check configuration before any instance is booted.
    ///
    /// # Errors
    ///
    /// [`ValidationError`] listing each field that breaks its rule.
    pub fn validate(&self) -> Result<(), ValidationError> {
        self.check().map(|_| ())
    }

    /// Checks every field and returns the normalized values.
    pub(crate) fn check(&self) -> Result<Validated<'_>, ValidationError> {
        let mut problems = Vec::new();

        if !is_instance_id(&self.instance_id) {
            problems.push(Problem::InstanceId);
        }
        if let Err(reason) = check_host_port(&self.relay_addr) {
            problems.push(Problem::RelayAddr { reason });
        }
        if let Some(name) = &self.relay_server_name
            && !(is_dns_name(name) || name.parse::<IpAddr>().is_ok())
        {
            problems.push(Problem::RelayServerName);
        }
        let ca_certificate_pem = match normalize_pem(&self.ca_certificate_pem) {
            Ok(pem) => pem,
            Err(reason) => {
                problems.push(Problem::CaCertificate { reason });
                String::new()
            }
        };
        if !is_enrollment_token(self.enrollment_token.expose()) {
            problems.push(Problem::EnrollmentToken);
        }
        if let Some(socket) = &self.docker_socket
            && let Err(reason) = check_path(socket)
        {
            problems.push(Problem::Path {
                field: "docker_socket",
                reason,
            });
        }
        let agent_source = match &self.agent_source {
            AgentSource::Baked { path } => {
                if let Err(reason) = check_path(path) {
                    problems.push(Problem::Path {
                        field: "agent_source.path",
                        reason,
                    });
                }
                ValidSource::Baked { path }
            }
            AgentSource::Download { url, sha256 } => {
                if let Err(reason) = check_https_url(url) {
                    problems.push(Problem::DownloadUrl { reason });
                }
                if !(sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit())) {
                    problems.push(Problem::Sha256);
                }
                ValidSource::Download {
                    url,
                    sha256: sha256.to_ascii_lowercase(),
                }
            }
        };

        if !problems.is_empty() {
            return Err(ValidationError { problems });
        }
        Ok(Validated {
            instance_id: &self.instance_id,
            relay_addr: &self.relay_addr,
            relay_server_name: self.relay_server_name.as_deref(),
            ca_certificate_pem,
            enrollment_token: self.enrollment_token.expose(),
            docker_socket: self.docker_socket.as_deref(),
            agent_source,
        })
    }
}

fn is_instance_id(id: &str) -> bool {
    (1..=MAX_INSTANCE_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn is_enrollment_token(token: &str) -> bool {
    token.len() == ENROLLMENT_TOKEN_LEN
        && token
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A hostname per RFC 1123: dot-separated labels of letters, digits and
/// inner hyphens, and a last label that is not all digits (so `300.1.1.1`
/// is not taken for a name).
fn is_dns_name(name: &str) -> bool {
    let labels_ok = (1..=253).contains(&name.len())
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    labels_ok
        && name
            .rsplit('.')
            .next()
            .is_some_and(|last| !last.bytes().all(|b| b.is_ascii_digit()))
}

pub(crate) fn check_host_port(addr: &str) -> Result<(), &'static str> {
    let port = if let Some(rest) = addr.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or("an IPv6 host must be closed with ]")?;
        if host.parse::<Ipv6Addr>().is_err() {
            return Err("the bracketed host is not an IPv6 address");
        }
        after.strip_prefix(':').ok_or("the port is missing")?
    } else {
        let (host, port) = addr.rsplit_once(':').ok_or("the port is missing")?;
        if host.contains(':') {
            return Err("an IPv6 host must be written in brackets, as [addr]:port");
        }
        if !(host.parse::<Ipv4Addr>().is_ok() || is_dns_name(host)) {
            return Err("the host is not a DNS name or an IP address");
        }
        port
    };
    // `u16::from_str` would also take "+80"; only plain digits are a port.
    let valid_port = (1..=5).contains(&port.len())
        && port.bytes().all(|b| b.is_ascii_digit())
        && port.parse::<u16>().is_ok_and(|p| p != 0);
    if valid_port {
        Ok(())
    } else {
        Err("the port must be a number from 1 to 65535")
    }
}

/// Checks a PEM bundle and returns it with whitespace and `\r` trimmed from
/// each line, blank lines dropped and a final newline.
///
/// This only checks the shape; the agent parses the certificates. Anything
/// but `CERTIFICATE` blocks is refused, which also catches a private key
/// pasted by mistake before it is sent to a tenant's instance.
pub(crate) fn normalize_pem(pem: &str) -> Result<String, &'static str> {
    let mut out = String::with_capacity(pem.len() + 1);
    let mut blocks = 0_usize;
    // `Some(n)` inside a block, with `n` base64 characters seen so far.
    let mut body: Option<usize> = None;
    let mut padded = false;
    for line in pem.lines().map(str::trim).filter(|line| !line.is_empty()) {
        match body {
            None if line == PEM_BEGIN => {
                body = Some(0);
                padded = false;
            }
            None if line.starts_with("-----BEGIN ") => {
                return Err(
                    "it holds a PEM block other than CERTIFICATE (never send a private key)",
                );
            }
            None => return Err("it has text outside the BEGIN/END CERTIFICATE lines"),
            Some(0) if line == PEM_END => return Err("a certificate block is empty"),
            Some(n) if line == PEM_END => {
                if n % 4 != 0 {
                    return Err("a certificate body is not whole base64");
                }
                body = None;
                blocks += 1;
            }
            Some(n) => {
                for b in line.bytes() {
                    match b {
                        b'=' => padded = true,
                        _ if padded => {
                            return Err("a certificate body has text after its = padding");
                        }
                        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' => {}
                        _ => return Err("a certificate body has a character outside base64"),
                    }
                }
                body = Some(n + line.len());
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    if body.is_some() {
        return Err("a BEGIN CERTIFICATE line has no END CERTIFICATE line");
    }
    if blocks == 0 {
        return Err("it holds no BEGIN CERTIFICATE line");
    }
    Ok(out)
}

/// A path safe to put in a systemd `ExecStart=` line, a TOML string and an
/// argv: absolute, normalized, and made of characters no consumer treats
/// specially.
pub(crate) fn check_path(path: &str) -> Result<(), &'static str> {
    let relative = path.strip_prefix('/').ok_or("it does not start with /")?;
    if path.len() > MAX_PATH_LEN {
        return Err("it is longer than 4095 bytes");
    }
    if !path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_' | b'-' | b'+'))
    {
        return Err("it may use only A-Z a-z 0-9 . _ - + /");
    }
    for component in relative.split('/') {
        match component {
            "" => return Err("it has an empty component (// or a trailing /)"),
            "." | ".." => return Err("it has a . or .. component"),
            _ => {}
        }
    }
    Ok(())
}

/// An `https://` URL with a host, made only of characters RFC 3986 allows
/// unescaped. It only ever travels as one argv element to curl.
fn check_https_url(url: &str) -> Result<(), &'static str> {
    let rest = url
        .strip_prefix("https://")
        .ok_or("it does not start with https://")?;
    if url.len() > MAX_URL_LEN {
        return Err("it is longer than 2048 bytes");
    }
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=%".contains(&b);
    if !url.bytes().all(allowed) {
        return Err("it has a character a URL must percent-encode");
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    if host.is_empty() || host.starts_with(':') {
        return Err("it has no host");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bootstrap::EnrollmentToken;
    use crate::testing::{SAMPLE_CA_PEM, sample_bootstrap};

    fn problems_of(bootstrap: &AgentBootstrap) -> Vec<Problem> {
        match bootstrap.validate() {
            Ok(()) => Vec::new(),
            Err(e) => e.problems().to_vec(),
        }
    }

    #[test]
    fn sample_is_valid() {
        assert_eq!(problems_of(&sample_bootstrap()), vec![]);
    }

    #[test]
    fn instance_id_outside_charset_or_length_is_refused() {
        for id in ["", "a b", "a/b", "a\nb", "é", "a:b", &"x".repeat(65)] {
            let mut b = sample_bootstrap();
            b.instance_id = id.to_owned();
            assert_eq!(problems_of(&b), vec![Problem::InstanceId], "{id:?}");
        }
        for id in ["no", "0755", "null", "a.b_c-D", &"x".repeat(64)] {
            let mut b = sample_bootstrap();
            b.instance_id = id.to_owned();
            assert_eq!(problems_of(&b), vec![], "{id:?}");
        }
    }

    #[test]
    fn relay_addr_must_be_host_and_port() {
        let bad = [
            ("relay.example", "the port is missing"),
            (
                "relay.example:0",
                "the port must be a number from 1 to 65535",
            ),
            (
                "relay.example:65536",
                "the port must be a number from 1 to 65535",
            ),
            (
                "relay.example:+80",
                "the port must be a number from 1 to 65535",
            ),
            (
                "relay.example:",
                "the port must be a number from 1 to 65535",
            ),
            (":7443", "the host is not a DNS name or an IP address"),
            (
                "relay_1:7443",
                "the host is not a DNS name or an IP address",
            ),
            ("-relay:7443", "the host is not a DNS name or an IP address"),
            (
                "300.1.1.1:7443",
                "the host is not a DNS name or an IP address",
            ),
            ("a b:7443", "the host is not a DNS name or an IP address"),
            (
                "relay\"\n- x:7443",
                "the host is not a DNS name or an IP address",
            ),
            (
                "2001:db8::1:7443",
                "an IPv6 host must be written in brackets, as [addr]:port",
            ),
            ("[2001:db8::1:7443", "an IPv6 host must be closed with ]"),
            ("[relay]:7443", "the bracketed host is not an IPv6 address"),
            ("[2001:db8::1]", "the port is missing"),
        ];
        for (addr, reason) in bad {
            let mut b = sample_bootstrap();
            b.relay_addr = addr.to_owned();
            assert_eq!(
                problems_of(&b),
                vec![Problem::RelayAddr { reason }],
                "{addr:?}"
            );
        }
        for addr in [
            "relay.example:7443",
            "10.0.0.5:1",
            "[2001:db8::1]:65535",
            "localhost:7443",
        ] {
            assert_eq!(check_host_port(addr), Ok(()), "{addr:?}");
        }
    }

    #[test]
    fn relay_server_name_must_be_dns_name_or_ip() {
        for name in ["", "bad name", "x:1", "a..b", "-a"] {
            let mut b = sample_bootstrap();
            b.relay_server_name = Some(name.to_owned());
            assert_eq!(problems_of(&b), vec![Problem::RelayServerName], "{name:?}");
        }
        for name in ["relay.nest.internal", "10.1.2.3", "2001:db8::1"] {
            let mut b = sample_bootstrap();
            b.relay_server_name = Some(name.to_owned());
            assert_eq!(problems_of(&b), vec![], "{name:?}");
        }
    }

    #[test]
    fn ca_certificate_must_be_certificate_blocks_only() {
        let key = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n";
        let bad = [
            ("", "it holds no BEGIN CERTIFICATE line"),
            (
                "hello",
                "it has text outside the BEGIN/END CERTIFICATE lines",
            ),
            (
                key,
                "it holds a PEM block other than CERTIFICATE (never send a private key)",
            ),
            (
                "-----BEGIN CERTIFICATE-----\nMIIB\n",
                "a BEGIN CERTIFICATE line has no END CERTIFICATE line",
            ),
            (
                "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----",
                "a certificate block is empty",
            ),
            (
                "-----BEGIN CERTIFICATE-----\nMII\n-----END CERTIFICATE-----",
                "a certificate body is not whole base64",
            ),
            (
                "-----BEGIN CERTIFICATE-----\nMI\"B\n-----END CERTIFICATE-----",
                "a certificate body has a character outside base64",
            ),
            (
                "-----BEGIN CERTIFICATE-----\nMI=B\n-----END CERTIFICATE-----",
                "a certificate body has text after its = padding",
            ),
        ];
        for (pem, reason) in bad {
            let mut b = sample_bootstrap();
            b.ca_certificate_pem = pem.to_owned();
            assert_eq!(
                problems_of(&b),
                vec![Problem::CaCertificate { reason }],
                "{pem:?}"
            );
        }
        let with_text = format!("subject=CN = Nest CA\n{SAMPLE_CA_PEM}");
        assert!(normalize_pem(&with_text).is_err());
    }

    #[test]
    fn pem_is_normalized_to_trimmed_lf_lines() {
        let crlf = format!("\r\n  {}  \r\n\r\n", SAMPLE_CA_PEM.replace('\n', "\r\n"));
        let bundle = format!("{SAMPLE_CA_PEM}\n{SAMPLE_CA_PEM}");
        assert_eq!(normalize_pem(&crlf).as_deref(), Ok(SAMPLE_CA_PEM));
        assert_eq!(
            normalize_pem(&bundle),
            Ok(format!("{SAMPLE_CA_PEM}{SAMPLE_CA_PEM}"))
        );
    }

    #[test]
    fn enrollment_token_must_be_64_lowercase_hex() {
        let ok = "0123456789abcdef".repeat(4);
        for token in [
            ok.to_uppercase(),
            ok[1..].to_owned(),
            format!("{ok}0"),
            format!("{}\"", &ok[1..]),
        ] {
            let mut b = sample_bootstrap();
            b.enrollment_token = EnrollmentToken::new(token.clone());
            assert_eq!(problems_of(&b), vec![Problem::EnrollmentToken]);
        }
    }

    #[test]
    fn paths_must_be_plain_and_absolute() {
        let bad = [
            ("nest-agent", "it does not start with /"),
            ("/usr/bin/../bin/nest-agent", "it has a . or .. component"),
            ("/usr/./bin", "it has a . or .. component"),
            (
                "/usr//bin",
                "it has an empty component (// or a trailing /)",
            ),
            (
                "/usr/bin/",
                "it has an empty component (// or a trailing /)",
            ),
            ("/", "it has an empty component (// or a trailing /)"),
            (
                "/usr/bin/nest agent",
                "it may use only A-Z a-z 0-9 . _ - + /",
            ),
            (
                "/usr/bin/nest-agent\nExecStartPre=/bin/sh",
                "it may use only A-Z a-z 0-9 . _ - + /",
            ),
            ("/opt/%h/agent", "it may use only A-Z a-z 0-9 . _ - + /"),
            ("/opt/$HOME/agent", "it may use only A-Z a-z 0-9 . _ - + /"),
        ];
        for (path, reason) in bad {
            let mut b = sample_bootstrap();
            b.agent_source = AgentSource::Baked {
                path: path.to_owned(),
            };
            b.docker_socket = Some(path.to_owned());
            assert_eq!(
                problems_of(&b),
                vec![
                    Problem::Path {
                        field: "docker_socket",
                        reason
                    },
                    Problem::Path {
                        field: "agent_source.path",
                        reason
                    },
                ],
                "{path:?}"
            );
        }
        let long = format!("/{}", "a".repeat(MAX_PATH_LEN));
        assert_eq!(check_path(&long), Err("it is longer than 4095 bytes"));
        assert_eq!(check_path("/run/docker.sock"), Ok(()));
    }

    #[test]
    fn download_needs_https_url_and_sha256() {
        let bad_urls = [
            (
                "http://example.com/nest-agent",
                "it does not start with https://",
            ),
            (
                "HTTPS://example.com/nest-agent",
                "it does not start with https://",
            ),
            ("file:///etc/passwd", "it does not start with https://"),
            ("https://", "it has no host"),
            ("https:///nest-agent", "it has no host"),
            ("https://user@:443/x", "it has no host"),
            (
                "https://example.com/nest agent",
                "it has a character a URL must percent-encode",
            ),
            (
                "https://example.com/\"x",
                "it has a character a URL must percent-encode",
            ),
            (
                "https://example.com/x\n",
                "it has a character a URL must percent-encode",
            ),
        ];
        for (url, reason) in bad_urls {
            let mut b = sample_bootstrap();
            b.agent_source = AgentSource::Download {
                url: url.to_owned(),
                sha256: "a".repeat(64),
            };
            assert_eq!(
                problems_of(&b),
                vec![Problem::DownloadUrl { reason }],
                "{url:?}"
            );
        }
        let too_long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert_eq!(
            check_https_url(&too_long),
            Err("it is longer than 2048 bytes")
        );

        for sha256 in [
            "a".repeat(63),
            "a".repeat(65),
            format!("{}g", "a".repeat(63)),
            String::new(),
        ] {
            let mut b = sample_bootstrap();
            b.agent_source = AgentSource::Download {
                url: "https://example.com/nest-agent?v=1&x=%20".to_owned(),
                sha256,
            };
            assert_eq!(problems_of(&b), vec![Problem::Sha256]);
        }
    }

    #[test]
    fn every_problem_is_reported_at_once_without_values() {
        let b = AgentBootstrap {
            instance_id: String::new(),
            relay_addr: "nope".into(),
            relay_server_name: Some("bad name".into()),
            ca_certificate_pem: "x".into(),
            enrollment_token: EnrollmentToken::new("secret-token-value"),
            docker_socket: Some("relative".into()),
            agent_source: AgentSource::Download {
                url: "http://x".into(),
                sha256: "y".into(),
            },
        };
        let err = b
            .validate()
            .err()
            .map(|e| (e.problems().len(), e.to_string()));
        let (count, message) = err.unwrap_or_default();
        assert_eq!(count, 8, "{message}");
        assert!(
            message.starts_with("invalid agent bootstrap: instance_id must be"),
            "{message}"
        );
        assert!(!message.contains("secret-token-value"), "{message}");
        assert!(!message.contains("bad name"), "{message}");
    }
}
