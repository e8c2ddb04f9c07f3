//! Loading the TOML config file of any Nest binary, and collecting every
//! problem of a parsed config at once, so that errors name the file and
//! the keys the same way in the service, the relay and the agent.

use std::path::{Path, PathBuf};

/// Why a config file (of any Nest binary) cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for this struct.
    #[error("invalid config file {path}")]
    Parse {
        /// The config file.
        path: PathBuf,
        /// What the parser found.
        #[source]
        source: Box<toml::de::Error>,
    },
    /// Values parsed but cannot work together; every problem is listed.
    #[error("invalid configuration: {}", .0.join("; "))]
    Invalid(Vec<String>),
}

/// Reads a TOML config file into `T`.
///
/// # Errors
/// [`ConfigError::Read`] or [`ConfigError::Parse`], naming the file.
pub fn load_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_toml(path, &text)
}

/// Reads a TOML config file into `T` and checks it.
///
/// # Errors
/// [`ConfigError`] naming the file, or every invalid key at once.
pub fn load_valid<T: serde::de::DeserializeOwned + Validate>(
    path: &Path,
) -> Result<T, ConfigError> {
    let config: T = load_toml(path)?;
    config.validate()?;
    Ok(config)
}

/// Parses config text read from `path` (named in the error) into `T`.
///
/// # Errors
/// [`ConfigError::Parse`], naming the file.
pub fn parse_toml<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|source| ConfigError::Parse {
        path: path.to_owned(),
        source: Box::new(source),
    })
}

/// A config that can say everything wrong with it at once.
pub trait Validate {
    /// Adds one line per problem to `problems`, each naming its key.
    fn check(&self, problems: &mut Problems);

    /// Runs [`check`](Self::check).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] listing every problem found.
    fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Problems::default();
        self.check(&mut problems);
        problems.into_result()
    }
}

/// The problems found in one config, each `key: reason`.
#[derive(Debug, Default)]
pub struct Problems(Vec<String>);

impl Problems {
    /// Records that `key` is wrong, and why.
    pub fn push(&mut self, key: &str, reason: impl std::fmt::Display) {
        self.0.push(format!("{key}: {reason}"));
    }

    /// Records the problem unless `ok` holds.
    pub fn require(&mut self, ok: bool, key: &str, reason: impl std::fmt::Display) {
        if !ok {
            self.push(key, reason);
        }
    }

    /// Records that each of these path-valued keys names a file.
    pub fn require_files<'a>(&mut self, paths: impl IntoIterator<Item = (&'a str, &'a Path)>) {
        for (key, path) in paths {
            self.require(!path.as_os_str().is_empty(), key, "must name a file");
        }
    }

    /// Records the problems of a section that checks itself, each key
    /// prefixed with the section's name (`auth.username`).
    pub fn nested(&mut self, prefix: &str, section: &impl Validate) {
        let mut inner = Problems::default();
        section.check(&mut inner);
        self.0
            .extend(inner.0.into_iter().map(|p| format!("{prefix}.{p}")));
    }

    /// Whether nothing was found.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok` when empty, else every problem.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] with the problems, in the order found.
    pub fn into_result(self) -> Result<(), ConfigError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(self.0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Sample {
        port: u16,
        file: PathBuf,
    }

    impl Validate for Sample {
        fn check(&self, problems: &mut Problems) {
            problems.require(self.port != 0, "port", "must not be 0");
            problems.require_files([("file", self.file.as_path())]);
        }
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let err = Sample {
            port: 0,
            file: PathBuf::new(),
        }
        .validate()
        .expect_err("both are wrong")
        .to_string();
        assert_eq!(
            err,
            "invalid configuration: port: must not be 0; file: must name a file"
        );
        assert!(
            Sample {
                port: 1,
                file: "x".into()
            }
            .validate()
            .is_ok()
        );
    }

    #[test]
    fn nested_sections_prefix_their_keys() {
        let mut problems = Problems::default();
        problems.nested(
            "relay",
            &Sample {
                port: 0,
                file: "x".into(),
            },
        );
        assert_eq!(
            problems.into_result().expect_err("port").to_string(),
            "invalid configuration: relay.port: must not be 0"
        );
    }

    #[test]
    fn parse_errors_name_the_file() {
        let err = parse_toml::<toml::Table>(Path::new("/etc/x.toml"), "a = ")
            .expect_err("not toml")
            .to_string();
        assert_eq!(err, "invalid config file /etc/x.toml");
    }
}
