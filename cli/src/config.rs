//! Where and as whom `osc` talks: the `--os-*` flags, else their `OS_*`
//! variables (clap reads both), else `NEST_URL`/`NEST_TOKEN` (the
//! embedded default's nestrc), else the cloud named by `OS_CLOUD` in
//! clouds.yaml, searched where openstacksdk searches.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::args::AuthArgs;
use crate::error::CliError;

/// Everything about the cloud that was given, from whichever source.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CloudSettings {
    /// Keystone v3.
    pub auth_url: Option<String>,
    /// User name.
    pub username: Option<String>,
    /// User id.
    pub user_id: Option<String>,
    /// Password.
    pub password: Option<String>,
    /// Project name.
    pub project_name: Option<String>,
    /// Project id.
    pub project_id: Option<String>,
    /// The user's domain name.
    pub user_domain_name: Option<String>,
    /// The user's domain id.
    pub user_domain_id: Option<String>,
    /// The project's domain name.
    pub project_domain_name: Option<String>,
    /// The project's domain id.
    pub project_domain_id: Option<String>,
    /// Application credential id.
    pub application_credential_id: Option<String>,
    /// Application credential name.
    pub application_credential_name: Option<String>,
    /// Application credential secret.
    pub application_credential_secret: Option<String>,
    /// A token.
    pub token: Option<String>,
    /// Nest's URL.
    pub endpoint: Option<String>,
    /// Catalog region.
    pub region: Option<String>,
    /// Catalog interface.
    pub interface: Option<String>,
    /// CA bundle.
    pub cacert: Option<PathBuf>,
    /// Skip TLS verification.
    pub insecure: bool,
    /// `NEST_PROJECT_ID`: the project of a token used without Keystone
    /// (the embedded default's dev token), for `quota-show`.
    pub direct_project_id: Option<String>,
}

/// How to authenticate, decided from the settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credentials {
    /// A token used as is against a known endpoint (no Keystone).
    Direct {
        /// The token.
        token: String,
        /// Nest's URL.
        endpoint: String,
    },
    /// Keystone's `password` method.
    Password,
    /// Keystone's `application_credential` method.
    ApplicationCredential,
    /// Keystone's `token` method (re-scoped).
    Token,
}

/// Reads the environment for the non-clap fallbacks. Tests pass a map.
pub trait Env {
    /// The variable's value, if set and not empty.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl Env for BTreeMap<&str, &str> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).map(|v| (*v).to_owned())
    }
}

fn nonempty(value: &Option<String>) -> Option<String> {
    value.clone().filter(|v| !v.is_empty())
}

impl CloudSettings {
    /// Merges flags (with their variables), the NEST_* fallbacks and the
    /// named cloud, in that order of precedence.
    pub fn resolve(args: &AuthArgs, env: &dyn Env) -> Result<Self, CliError> {
        let mut settings = Self {
            auth_url: nonempty(&args.auth_url),
            username: nonempty(&args.username),
            user_id: nonempty(&args.user_id),
            password: nonempty(&args.password),
            project_name: nonempty(&args.project_name),
            project_id: nonempty(&args.project_id),
            user_domain_name: nonempty(&args.user_domain_name),
            user_domain_id: nonempty(&args.user_domain_id),
            project_domain_name: nonempty(&args.project_domain_name),
            project_domain_id: nonempty(&args.project_domain_id),
            application_credential_id: nonempty(&args.application_credential_id),
            application_credential_name: nonempty(&args.application_credential_name),
            application_credential_secret: nonempty(&args.application_credential_secret),
            token: nonempty(&args.token).or_else(|| env.var("NEST_TOKEN")),
            endpoint: nonempty(&args.endpoint).or_else(|| env.var("NEST_URL")),
            region: nonempty(&args.region),
            interface: nonempty(&args.interface),
            cacert: args.cacert.clone().filter(|p| !p.as_os_str().is_empty()),
            insecure: args.insecure,
            direct_project_id: env.var("NEST_PROJECT_ID"),
        };
        if let Some(name) = nonempty(&args.cloud) {
            let cloud = find_cloud(&name, env)?;
            settings.fill_from(cloud);
        }
        Ok(settings)
    }

    fn fill_from(&mut self, cloud: CloudEntry) {
        let auth = cloud.auth;
        let fill = |slot: &mut Option<String>, value: Option<String>| {
            if slot.is_none() {
                *slot = value.filter(|v| !v.is_empty());
            }
        };
        fill(&mut self.auth_url, auth.auth_url);
        fill(&mut self.username, auth.username);
        fill(&mut self.user_id, auth.user_id);
        fill(&mut self.password, auth.password);
        fill(
            &mut self.project_name,
            auth.project_name.or(auth.tenant_name),
        );
        fill(&mut self.project_id, auth.project_id.or(auth.tenant_id));
        fill(&mut self.user_domain_name, auth.user_domain_name);
        fill(&mut self.user_domain_id, auth.user_domain_id);
        fill(&mut self.project_domain_name, auth.project_domain_name);
        fill(&mut self.project_domain_id, auth.project_domain_id);
        fill(
            &mut self.application_credential_id,
            auth.application_credential_id,
        );
        fill(
            &mut self.application_credential_name,
            auth.application_credential_name,
        );
        fill(
            &mut self.application_credential_secret,
            auth.application_credential_secret,
        );
        fill(&mut self.token, auth.token);
        fill(
            &mut self.endpoint,
            auth.endpoint.or(cloud.container_endpoint_override),
        );
        fill(&mut self.region, cloud.region_name);
        fill(&mut self.interface, cloud.interface);
        if self.cacert.is_none() {
            self.cacert = cloud.cacert.map(PathBuf::from);
        }
        if cloud.verify == Some(false) {
            self.insecure = true;
        }
    }

    /// Which auth method the settings call for.
    pub fn credentials(&self) -> Result<Credentials, CliError> {
        if let (Some(token), Some(endpoint)) = (&self.token, &self.endpoint)
            && self.username.is_none()
            && self.application_credential_secret.is_none()
        {
            return Ok(Credentials::Direct {
                token: token.clone(),
                endpoint: endpoint.clone(),
            });
        }
        let method = if self.application_credential_secret.is_some()
            || self.application_credential_id.is_some()
        {
            if self.application_credential_secret.is_none() {
                return Err(CliError::IncompleteCredentials(
                    "OS_APPLICATION_CREDENTIAL_ID is set without OS_APPLICATION_CREDENTIAL_SECRET"
                        .into(),
                ));
            }
            if self.application_credential_id.is_none()
                && (self.application_credential_name.is_none()
                    || (self.username.is_none() && self.user_id.is_none()))
            {
                return Err(CliError::IncompleteCredentials(
                    "an application credential needs OS_APPLICATION_CREDENTIAL_ID, or its name \
                     with OS_USERNAME"
                        .into(),
                ));
            }
            (
                "an application credential",
                Credentials::ApplicationCredential,
            )
        } else if self.password.is_some() || self.username.is_some() {
            if self.password.is_none() {
                return Err(CliError::IncompleteCredentials(
                    "OS_USERNAME is set without OS_PASSWORD".into(),
                ));
            }
            if self.username.is_none() && self.user_id.is_none() {
                return Err(CliError::IncompleteCredentials(
                    "OS_PASSWORD is set without OS_USERNAME".into(),
                ));
            }
            if self.project_name.is_none() && self.project_id.is_none() {
                return Err(CliError::IncompleteCredentials(
                    "a password needs a project: set OS_PROJECT_NAME (or OS_PROJECT_ID)".into(),
                ));
            }
            ("a password", Credentials::Password)
        } else if self.token.is_some() {
            ("a token", Credentials::Token)
        } else {
            return Err(CliError::NoCredentials);
        };
        if self.auth_url.is_none() {
            return Err(CliError::NoAuthUrl { what: method.0 });
        }
        Ok(method.1)
    }
}

/// A clouds.yaml file.
#[derive(Debug, Default, Deserialize)]
struct CloudsFile {
    #[serde(default)]
    clouds: BTreeMap<String, CloudEntry>,
}

/// One cloud of clouds.yaml (the keys osc uses; others are ignored).
#[derive(Debug, Default, Deserialize)]
struct CloudEntry {
    #[serde(default)]
    auth: CloudAuth,
    region_name: Option<String>,
    interface: Option<String>,
    cacert: Option<String>,
    verify: Option<bool>,
    container_endpoint_override: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct CloudAuth {
    auth_url: Option<String>,
    username: Option<String>,
    user_id: Option<String>,
    password: Option<String>,
    project_name: Option<String>,
    project_id: Option<String>,
    tenant_name: Option<String>,
    tenant_id: Option<String>,
    user_domain_name: Option<String>,
    user_domain_id: Option<String>,
    project_domain_name: Option<String>,
    project_domain_id: Option<String>,
    application_credential_id: Option<String>,
    application_credential_name: Option<String>,
    application_credential_secret: Option<String>,
    token: Option<String>,
    endpoint: Option<String>,
}

/// openstacksdk's search path: `OS_CLIENT_CONFIG_FILE`, then the current
/// directory, the user's config directory and /etc/openstack.
fn search_path(env: &dyn Env) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    if let Some(file) = env.var("OS_CLIENT_CONFIG_FILE") {
        paths.push(PathBuf::from(file));
    }
    paths.push(PathBuf::from("clouds.yaml"));
    let config_home = env
        .var("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| env.var("HOME").map(|h| Path::new(&h).join(".config")));
    if let Some(dir) = config_home {
        paths.push(dir.join("openstack").join("clouds.yaml"));
    }
    paths.push(PathBuf::from("/etc/openstack/clouds.yaml"));
    paths
}

fn find_cloud(name: &str, env: &dyn Env) -> Result<CloudEntry, CliError> {
    let paths = search_path(env);
    for path in &paths {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(CliError::File {
                    what: "cannot read",
                    path: path.clone(),
                    source,
                });
            }
        };
        let mut file: CloudsFile =
            yaml_serde::from_str(&text).map_err(|e| CliError::CloudsFile {
                path: path.clone(),
                source: Box::new(e),
            })?;
        if let Some(cloud) = file.clouds.remove(name) {
            return Ok(cloud);
        }
    }
    Err(CliError::CloudNotFound {
        name: name.to_owned(),
        searched: paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> AuthArgs {
        AuthArgs::default()
    }

    #[test]
    fn nestrc_variables_make_a_direct_session() {
        let env = BTreeMap::from([("NEST_URL", "http://127.0.0.1:9517"), ("NEST_TOKEN", "t")]);
        let settings = CloudSettings::resolve(&args(), &env).expect("resolves");
        assert_eq!(
            settings.credentials().expect("credentials"),
            Credentials::Direct {
                token: "t".into(),
                endpoint: "http://127.0.0.1:9517".into()
            }
        );
    }

    #[test]
    fn missing_pieces_are_named() {
        let env = BTreeMap::new();
        let none = CloudSettings::resolve(&args(), &env).expect("resolves");
        assert!(matches!(none.credentials(), Err(CliError::NoCredentials)));
        let mut password = args();
        password.username = Some("demo".into());
        let settings = CloudSettings::resolve(&password, &env).expect("resolves");
        let err = settings.credentials().expect_err("no password");
        assert!(err.to_string().contains("OS_PASSWORD"), "{err}");
        password.password = Some("p".into());
        password.project_name = Some("demo".into());
        let settings = CloudSettings::resolve(&password, &env).expect("resolves");
        assert!(matches!(
            settings.credentials(),
            Err(CliError::NoAuthUrl { .. })
        ));
    }

    #[test]
    fn clouds_yaml_fills_what_flags_leave_unset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("clouds.yaml");
        std::fs::write(
            &file,
            "clouds:\n  lab:\n    auth:\n      auth_url: http://k:5000/v3\n      username: demo\n      password: demopass\n      project_name: demo\n      user_domain_name: Default\n      project_domain_name: Default\n    region_name: RegionOne\n    verify: false\n",
        )
        .expect("write");
        let path = file.display().to_string();
        let env = BTreeMap::from([("OS_CLIENT_CONFIG_FILE", path.as_str())]);
        let mut flags = args();
        flags.cloud = Some("lab".into());
        flags.project_name = Some("other".into());
        let settings = CloudSettings::resolve(&flags, &env).expect("resolves");
        assert_eq!(settings.auth_url.as_deref(), Some("http://k:5000/v3"));
        assert_eq!(settings.project_name.as_deref(), Some("other"));
        assert_eq!(settings.region.as_deref(), Some("RegionOne"));
        assert!(settings.insecure);
        assert_eq!(settings.credentials().ok(), Some(Credentials::Password));
        flags.cloud = Some("nowhere".into());
        let err = CloudSettings::resolve(&flags, &env).expect_err("unknown cloud");
        assert!(err.to_string().contains("nowhere"), "{err}");
    }
}
