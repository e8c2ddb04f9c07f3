//! What can go wrong in `osc`, each with the exit code it ends with and,
//! where there is one, what to do next. The codes are documented in
//! docs/osc.md; scripts may rely on them.

use std::path::PathBuf;
use std::process::ExitCode;

/// Exit codes (docs/osc.md, "Exit codes").
pub mod exit {
    /// The service refused or failed the request.
    pub const FAILED: u8 = 1;
    /// Bad usage (clap's own code too).
    pub const USAGE: u8 = 2;
    /// Missing or refused credentials, or the service cannot be located.
    pub const AUTH: u8 = 3;
    /// No such container, image or instance (in the caller's project).
    pub const NOT_FOUND: u8 = 4;
    /// Over quota, or not allowed.
    pub const FORBIDDEN: u8 = 5;
    /// Wrong state or a name already taken.
    pub const CONFLICT: u8 = 6;
    /// The service or Keystone could not be reached, or a wait timed out.
    pub const UNREACHABLE: u8 = 7;
}

/// An `osc` failure.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Nothing to authenticate with.
    #[error(
        "no credentials: set OS_CLOUD, or OS_AUTH_URL with OS_USERNAME/OS_PASSWORD (or OS_APPLICATION_CREDENTIAL_ID/_SECRET), or OS_TOKEN with OS_ENDPOINT"
    )]
    NoCredentials,
    /// Credentials without a place to use them.
    #[error(
        "{what} is set but neither OS_AUTH_URL nor OS_ENDPOINT (or NEST_URL) says where to use it"
    )]
    NoAuthUrl {
        /// What was given.
        what: &'static str,
    },
    /// A password without a user, or similar.
    #[error("incomplete credentials: {0}")]
    IncompleteCredentials(String),
    /// `OS_CLOUD` names a cloud no clouds.yaml has.
    #[error("cloud {name:?} is in no clouds.yaml (looked in {searched})")]
    CloudNotFound {
        /// The cloud's name.
        name: String,
        /// Where we looked.
        searched: String,
    },
    /// A clouds.yaml that does not parse.
    #[error("cannot read {path}")]
    CloudsFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Keystone said no.
    #[error("Keystone at {auth_url} refused the credentials ({status}): {message}")]
    KeystoneRefused {
        /// Where.
        auth_url: String,
        /// HTTP status.
        status: u16,
        /// Keystone's message.
        message: String,
    },
    /// Nest is not in the catalog.
    #[error(
        "no `container` service in the catalog (interface {interface}{region}); the catalog has: {found}"
    )]
    NotInCatalog {
        /// The interface looked for.
        interface: String,
        /// `, region R` when one was asked for.
        region: String,
        /// The service types present.
        found: String,
    },
    /// The service rejected the token.
    #[error("the service refused the token: {0}")]
    Unauthenticated(String),
    /// A URL that does not parse.
    #[error("invalid URL {url:?}")]
    InvalidUrl {
        /// The text.
        url: String,
        /// Why.
        #[source]
        source: url::ParseError,
    },
    /// A request that never got an answer.
    #[error("cannot reach {url}")]
    Unreachable {
        /// Where.
        url: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// An error answer of the API.
    #[error("{message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Zun's code (`container.container-not-found`), if any.
        code: String,
        /// The detail.
        message: String,
        /// The request id to quote.
        request_id: Option<String>,
    },
    /// An answer that is not what the API documents.
    #[error("unexpected answer from {url} ({status})")]
    BadAnswer {
        /// Where.
        url: String,
        /// HTTP status.
        status: u16,
        /// Why it did not parse.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A command-line value the service would refuse anyway.
    #[error("{0}")]
    Usage(String),
    /// A local file.
    #[error("{what} {path}")]
    File {
        /// What was done (`cannot read`, `cannot write`).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The terminal.
    #[error("terminal")]
    Terminal(#[source] std::io::Error),
    /// The console websocket.
    #[error("console session with {url}")]
    Console {
        /// The websocket's URL, without its token.
        url: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A console session that the service ended with a failure.
    #[error("the console session failed: {0}")]
    ConsoleFailed(String),
    /// A container that ended in `Error`.
    #[error("container {id} failed: {reason}")]
    ContainerFailed {
        /// Its uuid.
        id: String,
        /// Its status reason.
        reason: String,
    },
    /// `--wait` ran out of time.
    #[error("gave up after {seconds} s: container {id} is still {status}")]
    WaitTimedOut {
        /// Its uuid.
        id: String,
        /// Its status then.
        status: String,
        /// How long we waited.
        seconds: u64,
    },
    /// Making the docker-env key or CSR.
    #[error("cannot make a key and certificate request")]
    Csr(#[source] rcgen::Error),
    /// The TLS settings (`OS_CACERT`).
    #[error("TLS settings")]
    Tls(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl CliError {
    /// The exit code this failure ends `osc` with.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::NoCredentials
            | Self::NoAuthUrl { .. }
            | Self::IncompleteCredentials(_)
            | Self::CloudNotFound { .. }
            | Self::CloudsFile { .. }
            | Self::KeystoneRefused { .. }
            | Self::NotInCatalog { .. }
            | Self::Unauthenticated(_)
            | Self::Tls(_) => exit::AUTH,
            Self::Unreachable { .. } | Self::WaitTimedOut { .. } => exit::UNREACHABLE,
            Self::Usage(_) | Self::InvalidUrl { .. } => exit::USAGE,
            Self::Api { status, .. } => match status {
                404 => exit::NOT_FOUND,
                403 => exit::FORBIDDEN,
                409 => exit::CONFLICT,
                401 => exit::AUTH,
                _ => exit::FAILED,
            },
            Self::BadAnswer { .. }
            | Self::File { .. }
            | Self::Terminal(_)
            | Self::Console { .. }
            | Self::ConsoleFailed(_)
            | Self::ContainerFailed { .. }
            | Self::Csr(_) => exit::FAILED,
        }
    }

    /// What the user can do about it, when we know.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::NoCredentials | Self::NoAuthUrl { .. } => Some(
                "source your project's openrc (or . /var/lib/nest/nestrc on a machine set up \
                 with scripts/nest-up.sh); see `osc --help` for the --os-* flags"
                    .into(),
            ),
            Self::NotInCatalog { .. } => Some(
                "ask your operator to register Nest (`openstack endpoint create container \
                 public URL`), or name it with OS_ENDPOINT / --os-endpoint"
                    .into(),
            ),
            Self::KeystoneRefused { .. } | Self::Unauthenticated(_) => Some(
                "check OS_USERNAME, OS_PASSWORD and OS_PROJECT_NAME (or get a new token)".into(),
            ),
            Self::Unreachable { .. } => {
                Some("check the URL, and OS_CACERT or --insecure for a private CA".into())
            }
            Self::Api {
                status: 404, code, ..
            } if code.contains("image") => {
                Some("`osc image-list` shows the images stored for your project".into())
            }
            Self::Api { status: 404, .. } => Some(
                "names and uuids are those of your own project's; `osc container-list` lists them"
                    .into(),
            ),
            Self::Api { code, .. } if code.ends_with("over-quota") => Some(
                "delete containers you no longer need, or ask for a larger quota \
                 (`osc quota-show` shows the limits)"
                    .into(),
            ),
            Self::ContainerFailed { reason, .. } if reason.to_lowercase().contains("image") => {
                Some("`osc image-list` shows the images stored for your project".into())
            }
            Self::WaitTimedOut { id, .. } => {
                Some(format!("it may still start: `osc container-show {id}`"))
            }
            _ => None,
        }
    }

    /// Prints the error (with its causes and hint) to stderr; answers the
    /// exit code.
    pub fn report(&self) -> ExitCode {
        let mut text = format!("osc: {self}");
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            text.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        if let Self::Api {
            request_id: Some(id),
            ..
        } = self
        {
            text.push_str(&format!(" (request {id})"));
        }
        eprintln!("{text}");
        if let Some(hint) = self.hint() {
            eprintln!("hint: {hint}");
        }
        ExitCode::from(self.exit_code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, code: &str, message: &str) -> CliError {
        CliError::Api {
            status,
            code: code.into(),
            message: message.into(),
            request_id: Some("req-1".into()),
        }
    }

    #[test]
    fn each_failure_has_its_documented_code_and_hint() {
        let quota = api(
            403,
            "container.over-quota",
            "Quota exceeded for cores: Requested 2, but already used 20 of 20 cores",
        );
        assert_eq!(quota.exit_code(), exit::FORBIDDEN);
        assert!(quota.to_string().contains("already used 20 of 20 cores"));
        assert!(quota.hint().is_some_and(|h| h.contains("quota-show")));
        let missing = api(
            404,
            "container.container-not-found",
            "container web could not be found",
        );
        assert_eq!(missing.exit_code(), exit::NOT_FOUND);
        assert!(missing.hint().is_some_and(|h| h.contains("container-list")));
        assert_eq!(
            api(409, "container.conflict", "x").exit_code(),
            exit::CONFLICT
        );
        assert_eq!(api(500, "", "x").exit_code(), exit::FAILED);
        assert_eq!(CliError::NoCredentials.exit_code(), exit::AUTH);
        assert!(
            CliError::NoCredentials
                .hint()
                .is_some_and(|h| h.contains("openrc"))
        );
        let image = CliError::ContainerFailed {
            id: "c".into(),
            reason: "image store: image 0b7c not found".into(),
        };
        assert!(image.hint().is_some_and(|h| h.contains("image-list")));
    }
}
