//! [`SessionConfig`]: how a Keystone session is configured, in the flat
//! shape of `clouds.yaml`'s `auth:` section and the `OS_*` variables
//! (`auth_url`, `auth_type`, `username`, `application_credential_id`, ...),
//! so that an operator can copy what `openstack` already uses.
//!
//! Parsing is strict (unknown keys are refused); [`Validate::check`] then
//! reports every key that cannot work, at once, before anything connects.
//! The typed form the session uses is [`AuthMethod`].

use std::path::PathBuf;
use std::time::Duration;

use nest_core::Secret;
use nest_core::config::{Problems, Validate};
use nest_core::duration::HumanDuration;
use url::Url;

use crate::auth::{AuthMethod, NamedUser, Scope};
use crate::error::OpenStackError;

/// Default domain of users and projects, as Keystone names it.
pub const DEFAULT_DOMAIN_NAME: &str = "Default";
/// Default time one call to OpenStack may take, connection included.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Which Keystone auth method a session uses, spelled as keystoneauth's
/// `auth_type` (`OS_AUTH_TYPE`), with its `v3…` aliases.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthType {
    /// `username`, `password`, and a project scope. The default.
    #[default]
    #[serde(alias = "v3password")]
    Password,
    /// `application_credential_id` and `application_credential_secret`.
    #[serde(alias = "v3applicationcredential")]
    ApplicationCredential,
    /// An existing `token`, and a project scope.
    #[serde(alias = "v3token")]
    Token,
}

impl AuthType {
    /// The name as configuration spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::ApplicationCredential => "application_credential",
            Self::Token => "token",
        }
    }
}

/// Settings of one Keystone v3 session.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionConfig {
    /// Keystone's identity endpoint, e.g. `http://127.0.0.1:5000/v3`. A URL
    /// without the trailing `/v3` gets it appended, since `OS_AUTH_URL` is
    /// written both ways. Required.
    pub auth_url: String,
    /// The auth method. Default: `password`.
    #[serde(default)]
    pub auth_type: AuthType,
    /// The user that logs in. Required with `password`.
    #[serde(default)]
    pub username: Option<String>,
    /// That user's password. Required with `password`; never logged.
    #[serde(default)]
    pub password: Option<Secret<String>>,
    /// Domain of the user. Default: `Default`.
    #[serde(default = "default_domain")]
    pub user_domain_name: String,
    /// Project the tokens are scoped to. Required with `password` and
    /// `token` (an application credential's project is its own).
    #[serde(default)]
    pub project_name: Option<String>,
    /// Domain of that project. Default: `Default`.
    #[serde(default = "default_domain")]
    pub project_domain_name: String,
    /// The application credential's id. Required with
    /// `application_credential`.
    #[serde(default)]
    pub application_credential_id: Option<String>,
    /// The application credential's secret. Required with
    /// `application_credential`; never logged.
    #[serde(default)]
    pub application_credential_secret: Option<Secret<String>>,
    /// An existing token to exchange. Required with `token`; never logged.
    /// The session stops working when this token expires.
    #[serde(default)]
    pub token: Option<Secret<String>>,
    /// Time one call to Keystone (and, by default, to any OpenStack
    /// service) may take, from connecting to the end of the body.
    /// Default: 10s.
    #[serde(default = "default_request_timeout")]
    pub request_timeout: HumanDuration,
    /// PEM file of the CAs that sign the cloud's certificates, for private
    /// clouds (keystoneauth's `cacert`, `OS_CACERT`). When set, only these
    /// CAs are trusted; when not, the system's. Default: none.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

fn default_domain() -> String {
    DEFAULT_DOMAIN_NAME.to_owned()
}
fn default_request_timeout() -> HumanDuration {
    HumanDuration(DEFAULT_REQUEST_TIMEOUT)
}

/// What a checked [`SessionConfig`] resolves to.
pub(crate) struct Resolved {
    /// The identity endpoint, its path ending in `/v3`.
    pub(crate) identity: Url,
    /// The credentials and scope.
    pub(crate) method: AuthMethod,
}

impl SessionConfig {
    /// A `password` session of `username` scoped to `project_name`, both in
    /// the default domain, with the defaults for everything else.
    pub fn password(
        auth_url: impl Into<String>,
        username: impl Into<String>,
        password: Secret<String>,
        project_name: impl Into<String>,
    ) -> Self {
        Self {
            auth_url: auth_url.into(),
            auth_type: AuthType::Password,
            username: Some(username.into()),
            password: Some(password),
            user_domain_name: default_domain(),
            project_name: Some(project_name.into()),
            project_domain_name: default_domain(),
            application_credential_id: None,
            application_credential_secret: None,
            token: None,
            request_timeout: default_request_timeout(),
            ca_file: None,
        }
    }

    /// An `application_credential` session, with the defaults for
    /// everything else.
    pub fn application_credential(
        auth_url: impl Into<String>,
        id: impl Into<String>,
        secret: Secret<String>,
    ) -> Self {
        Self {
            auth_type: AuthType::ApplicationCredential,
            username: None,
            password: None,
            project_name: None,
            application_credential_id: Some(id.into()),
            application_credential_secret: Some(secret),
            ..Self::password(auth_url, "", Secret::new(String::new()), "")
        }
    }

    /// Checks the config and resolves it to what the session uses.
    ///
    /// # Errors
    /// [`OpenStackError::Config`] listing every problem.
    pub(crate) fn resolve(&self) -> Result<Resolved, OpenStackError> {
        self.validate().map_err(OpenStackError::Config)?;
        let identity = self
            .identity_url()
            .map_err(|reason| config_error("auth_url", reason))?;
        let user = || NamedUser {
            name: self.username.clone().unwrap_or_default(),
            domain_name: self.user_domain_name.clone(),
        };
        let scope = || Scope::Project {
            name: self.project_name.clone().unwrap_or_default(),
            domain_name: self.project_domain_name.clone(),
        };
        let secret =
            |s: &Option<Secret<String>>| s.clone().unwrap_or_else(|| Secret::new(String::new()));
        let method = match self.auth_type {
            AuthType::Password => AuthMethod::Password {
                user: user(),
                password: secret(&self.password),
                scope: scope(),
            },
            AuthType::ApplicationCredential => AuthMethod::ApplicationCredential {
                id: self.application_credential_id.clone().unwrap_or_default(),
                secret: secret(&self.application_credential_secret),
            },
            AuthType::Token => AuthMethod::Token {
                token: secret(&self.token),
                scope: scope(),
            },
        };
        Ok(Resolved { identity, method })
    }

    /// The identity endpoint: `auth_url` with its path ending in `/v3`.
    fn identity_url(&self) -> Result<Url, String> {
        let mut url = match Url::parse(self.auth_url.trim()) {
            Ok(url) if !matches!(url.scheme(), "http" | "https") => {
                return Err("must be an http or https URL".to_owned());
            }
            Ok(url) if url.query().is_some() || url.fragment().is_some() => {
                return Err("must not have a query or fragment".to_owned());
            }
            Ok(url) => url,
            Err(e) => return Err(format!("not a URL: {e}")),
        };
        let base = url.path().trim_end_matches('/');
        let path = if base.ends_with("/v3") {
            base.to_owned()
        } else {
            format!("{base}/v3")
        };
        url.set_path(&path);
        Ok(url)
    }
}

impl Validate for SessionConfig {
    /// Keys are relative to the section that holds the session.
    fn check(&self, problems: &mut Problems) {
        if let Err(reason) = self.identity_url() {
            problems.push("auth_url", reason);
        }
        let auth_type = self.auth_type;
        let mut required = |key: &str, value: Option<&str>| match value {
            None => problems.push(
                key,
                format!("required with auth_type {:?}", auth_type.as_str()),
            ),
            Some("") => problems.push(key, "must not be empty"),
            Some(_) => {}
        };
        fn secret(s: &Option<Secret<String>>) -> Option<&str> {
            s.as_ref().map(|s| s.expose().as_str())
        }
        match auth_type {
            AuthType::Password => {
                required("username", self.username.as_deref());
                required("password", secret(&self.password));
                required("project_name", self.project_name.as_deref());
            }
            AuthType::ApplicationCredential => {
                required(
                    "application_credential_id",
                    self.application_credential_id.as_deref(),
                );
                required(
                    "application_credential_secret",
                    secret(&self.application_credential_secret),
                );
            }
            AuthType::Token => {
                required("token", secret(&self.token));
                required("project_name", self.project_name.as_deref());
            }
        }
        // A key the chosen method ignores is a mistake: the operator meant
        // another method, or forgot to remove a secret.
        let unused: &[(&str, bool)] = match auth_type {
            AuthType::Password => &[
                (
                    "application_credential_id",
                    self.application_credential_id.is_some(),
                ),
                (
                    "application_credential_secret",
                    self.application_credential_secret.is_some(),
                ),
                ("token", self.token.is_some()),
            ],
            AuthType::ApplicationCredential => &[
                ("username", self.username.is_some()),
                ("password", self.password.is_some()),
                ("project_name", self.project_name.is_some()),
                ("token", self.token.is_some()),
            ],
            AuthType::Token => &[
                ("username", self.username.is_some()),
                ("password", self.password.is_some()),
                (
                    "application_credential_id",
                    self.application_credential_id.is_some(),
                ),
                (
                    "application_credential_secret",
                    self.application_credential_secret.is_some(),
                ),
            ],
        };
        for (key, _) in unused.iter().filter(|(_, set)| *set) {
            problems.push(
                key,
                format!("not used with auth_type {:?}", auth_type.as_str()),
            );
        }
        if auth_type != AuthType::ApplicationCredential {
            for (key, value) in [
                ("user_domain_name", &self.user_domain_name),
                ("project_domain_name", &self.project_domain_name),
            ] {
                problems.require(!value.is_empty(), key, "must not be empty");
            }
        }
        problems.require(
            !self.request_timeout.get().is_zero(),
            "request_timeout",
            "must be greater than zero",
        );
        if let Some(path) = &self.ca_file {
            problems.require_files([("ca_file", path.as_path())]);
        }
    }
}

fn config_error(key: &str, reason: impl std::fmt::Display) -> OpenStackError {
    OpenStackError::Config(nest_core::config::ConfigError::Invalid(vec![format!(
        "{key}: {reason}"
    )]))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn problems(config: &SessionConfig) -> String {
        config
            .validate()
            .map(|()| String::new())
            .unwrap_or_else(|e| e.to_string())
    }

    #[test]
    fn a_password_config_parses_with_defaults_and_redacts_the_password() {
        let config: SessionConfig = serde_json::from_value(json!({
            "auth_url": "http://127.0.0.1:5000/v3",
            "username": "nest",
            "password": "hunter2-secret",
            "project_name": "service",
        }))
        .expect("valid config");
        assert_eq!(config.auth_type, AuthType::Password);
        assert_eq!(config.user_domain_name, "Default");
        assert_eq!(config.project_domain_name, "Default");
        assert_eq!(config.request_timeout.get(), DEFAULT_REQUEST_TIMEOUT);
        assert_eq!(config.ca_file, None);
        config.validate().expect("and valid");
        let printed = format!("{config:?}");
        assert!(printed.contains("<redacted>"), "{printed}");
        assert!(!printed.contains("hunter2"), "{printed}");

        let unknown = serde_json::from_value::<SessionConfig>(json!({
            "auth_url": "http://k:5000", "username": "n", "password": "p",
            "project_name": "s", "insecure": true,
        }))
        .expect_err("an unknown key");
        assert!(unknown.to_string().contains("insecure"), "{unknown}");
    }

    #[test]
    fn auth_url_is_accepted_with_or_without_v3() {
        let url = |auth_url: &str| {
            SessionConfig::password(auth_url, "n", Secret::new("p".to_owned()), "s")
                .resolve()
                .map(|r| r.identity.to_string())
                .unwrap_or_else(|e| panic!("{auth_url}: {e}"))
        };
        let expected = "http://k:5000/v3";
        assert_eq!(url("http://k:5000/v3"), expected);
        assert_eq!(url("http://k:5000/v3/"), expected);
        assert_eq!(url("http://k:5000"), expected);
        assert_eq!(url("https://k/identity/"), "https://k/identity/v3");
    }

    #[test]
    fn each_auth_type_names_what_it_lacks_and_what_it_does_not_use() {
        let mut config = SessionConfig::password("ftp://k", "", Secret::new(String::new()), "s");
        config.request_timeout = HumanDuration(Duration::ZERO);
        config.token = Some(Secret::new("t".into()));
        let text = problems(&config);
        for expected in [
            "auth_url: must be an http or https URL",
            "username: must not be empty",
            "password: must not be empty",
            "token: not used with auth_type \"password\"",
            "request_timeout: must be greater than zero",
        ] {
            assert!(text.contains(expected), "{expected:?} missing from {text}");
        }

        let app: SessionConfig = serde_json::from_value(json!({
            "auth_url": "https://k/v3", "auth_type": "v3applicationcredential",
            "username": "nest",
        }))
        .expect("parses");
        assert_eq!(app.auth_type, AuthType::ApplicationCredential);
        let text = problems(&app);
        for expected in [
            "application_credential_id: required with auth_type \"application_credential\"",
            "application_credential_secret: required",
            "username: not used",
        ] {
            assert!(text.contains(expected), "{expected:?} missing from {text}");
        }
        assert!(!text.contains("password"), "{text}");

        let token: SessionConfig = serde_json::from_value(json!({
            "auth_url": "https://k/v3", "auth_type": "token", "token": "gAAAA",
        }))
        .expect("parses");
        assert_eq!(
            problems(&token),
            "invalid configuration: project_name: required with auth_type \"token\""
        );
    }

    #[test]
    fn an_application_credential_resolves_without_a_scope() {
        let config =
            SessionConfig::application_credential("http://k:5000", "ac", Secret::new("s".into()));
        let resolved = config.resolve().expect("valid");
        assert_eq!(
            resolved.method,
            AuthMethod::ApplicationCredential {
                id: "ac".into(),
                secret: Secret::new("s".into())
            }
        );
    }
}
