//! How the engine runs a container beyond its process, as the docker CLI
//! asks (`--stop-signal`, `--stop-timeout`, `--add-host`, `--health-*`),
//! and the health the engine reports back: the service's
//! Docker door and the agent check the same rules, from here, so that what
//! one refuses the other refuses too. The callers name the field.

use std::net::IpAddr;

/// Longest stop timeout, seconds: an hour, past which a stop is a hang.
pub const MAX_STOP_TIMEOUT_SECONDS: u32 = 3600;
/// Most extra `/etc/hosts` entries one container may be given.
pub const MAX_EXTRA_HOSTS: usize = 64;
/// The address word the engine turns into its host's gateway address.
pub const HOST_GATEWAY: &str = "host-gateway";
/// Longest host name of an extra host: a DNS name.
pub const MAX_HOST_NAME_BYTES: usize = 253;

/// Most words of a healthcheck's test (`CMD-SHELL`, `CMD` and its argv).
pub const MAX_HEALTHCHECK_WORDS: usize = 64;
/// Longest word of a healthcheck's test, bytes.
pub const MAX_HEALTHCHECK_WORD_BYTES: usize = 4096;
/// Shortest healthcheck interval, timeout or start period the engine takes
/// (other than 0, the image's): 1 ms, in nanoseconds.
pub const MIN_HEALTHCHECK_NANOS: u64 = 1_000_000;
/// Longest of them: a day, in nanoseconds.
pub const MAX_HEALTHCHECK_NANOS: u64 = 86_400 * 1_000_000_000;
/// Most retries before a container counts as unhealthy.
pub const MAX_HEALTHCHECK_RETRIES: u32 = 1000;

/// Why an engine option cannot be honoured.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EngineOptionError {
    /// A signal number outside 1-64.
    #[error("signal number {0} is out of range 1-64")]
    SignalNumber(u64),
    /// Neither a signal number nor a signal name.
    #[error("{0:?} is not a signal name or number")]
    Signal(String),
    /// A stop timeout over [`MAX_STOP_TIMEOUT_SECONDS`].
    #[error("at most {MAX_STOP_TIMEOUT_SECONDS} seconds are allowed")]
    StopTimeout,
    /// More entries than [`MAX_EXTRA_HOSTS`].
    #[error("at most {MAX_EXTRA_HOSTS} extra hosts are allowed")]
    TooManyHosts,
    /// A host name that is not a DNS name.
    #[error("{0:?} is not a host name")]
    HostName(String),
    /// An address that is neither an IP address nor `host-gateway`.
    #[error("{0:?} is not an IP address or host-gateway")]
    HostAddress(String),
    /// A test that is not `NONE`, `CMD args...` or `CMD-SHELL command`.
    #[error(
        "the test must be [\"NONE\"], [\"CMD\", args...] or [\"CMD-SHELL\", command], \
         at most {MAX_HEALTHCHECK_WORDS} words of {MAX_HEALTHCHECK_WORD_BYTES} bytes without NUL"
    )]
    HealthTest,
    /// An interval, timeout or start period out of range.
    #[error("{0} must be 0 (the image's) or from 1ms to 24h")]
    HealthDuration(&'static str),
    /// Too many retries.
    #[error("retries must be at most {MAX_HEALTHCHECK_RETRIES}")]
    HealthRetries,
}

/// Normalises a signal: `term`, `SIGTERM` and `TERM` are `SIGTERM`, `15`
/// stays `15`.
///
/// # Errors
/// [`EngineOptionError::SignalNumber`] or [`EngineOptionError::Signal`].
pub fn normalize_signal(signal: &str) -> Result<String, EngineOptionError> {
    if !signal.is_empty() && signal.bytes().all(|b| b.is_ascii_digit()) {
        let n: u64 = signal.parse().unwrap_or(u64::MAX);
        return if (1..=64).contains(&n) {
            Ok(n.to_string())
        } else {
            Err(EngineOptionError::SignalNumber(n))
        };
    }
    let upper = signal.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if name.is_empty()
        || name.len() > 16
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '+')
    {
        return Err(EngineOptionError::Signal(signal.to_owned()));
    }
    Ok(format!("SIG{name}"))
}

/// Checks a stop timeout.
///
/// # Errors
/// [`EngineOptionError::StopTimeout`].
pub fn check_stop_timeout(seconds: u32) -> Result<(), EngineOptionError> {
    if seconds > MAX_STOP_TIMEOUT_SECONDS {
        return Err(EngineOptionError::StopTimeout);
    }
    Ok(())
}

/// Checks how many extra hosts there are.
///
/// # Errors
/// [`EngineOptionError::TooManyHosts`].
pub fn check_extra_host_count(count: usize) -> Result<(), EngineOptionError> {
    if count > MAX_EXTRA_HOSTS {
        return Err(EngineOptionError::TooManyHosts);
    }
    Ok(())
}

/// Checks one extra host: a DNS name (labels of letters, digits, `-` and
/// `_`, joined by dots) and an IP address or `host-gateway`. Both become
/// an engine argument, `host:address`.
///
/// # Errors
/// [`EngineOptionError::HostName`] or [`EngineOptionError::HostAddress`].
pub fn check_extra_host(host: &str, address: &str) -> Result<(), EngineOptionError> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if host.len() > MAX_HOST_NAME_BYTES || !host.split('.').all(label_ok) {
        return Err(EngineOptionError::HostName(host.to_owned()));
    }
    if address != HOST_GATEWAY && address.parse::<IpAddr>().is_err() {
        return Err(EngineOptionError::HostAddress(address.to_owned()));
    }
    Ok(())
}

/// Checks a healthcheck: its test (empty is the image's) and its timing
/// (0 is the image's).
///
/// # Errors
/// [`EngineOptionError::HealthTest`], [`EngineOptionError::HealthDuration`]
/// naming the field, or [`EngineOptionError::HealthRetries`].
pub fn check_healthcheck(
    test: &[String],
    interval_ns: u64,
    timeout_ns: u64,
    start_period_ns: u64,
    retries: u32,
) -> Result<(), EngineOptionError> {
    let well_formed = match test.first().map(String::as_str) {
        None => true,
        Some("NONE") => test.len() == 1,
        Some("CMD-SHELL") => test.len() == 2 && !test[1].is_empty(),
        Some("CMD") => test.len() >= 2 && !test[1].is_empty(),
        Some(_) => false,
    };
    if !well_formed
        || test.len() > MAX_HEALTHCHECK_WORDS
        || test
            .iter()
            .any(|w| w.len() > MAX_HEALTHCHECK_WORD_BYTES || w.contains('\0'))
    {
        return Err(EngineOptionError::HealthTest);
    }
    for (name, nanos) in [
        ("interval", interval_ns),
        ("timeout", timeout_ns),
        ("start period", start_period_ns),
    ] {
        if nanos != 0 && !(MIN_HEALTHCHECK_NANOS..=MAX_HEALTHCHECK_NANOS).contains(&nanos) {
            return Err(EngineOptionError::HealthDuration(name));
        }
    }
    if retries > MAX_HEALTHCHECK_RETRIES {
        return Err(EngineOptionError::HealthRetries);
    }
    Ok(())
}

/// How the engine runs a container beyond its process; the default is the
/// engine's. The service's domain and the agent's model both hold this
/// one type.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EngineOptions {
    /// The signal a stop sends first, normalised (`SIGINT`, `15`).
    pub stop_signal: Option<String>,
    /// Seconds a stop waits before killing, when the caller does not say.
    pub stop_timeout: Option<u32>,
    /// An init process as PID 1 that reaps zombies.
    pub init: bool,
    /// A read-only root filesystem.
    pub read_only: bool,
    /// Extra `/etc/hosts` lines: (host name, IP address or `host-gateway`).
    pub extra_hosts: Vec<(String, String)>,
    /// The engine's healthcheck; `None` is the image's.
    pub healthcheck: Option<HealthCheck>,
}

/// A healthcheck as the engine runs it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HealthCheck {
    /// `NONE`, `CMD args...` or `CMD-SHELL command`; empty is the image's.
    pub test: Vec<String>,
    /// Between checks, ns; 0 is the image's.
    pub interval_ns: u64,
    /// Before a check counts as hung, ns; 0 is the image's.
    pub timeout_ns: u64,
    /// Before failures count, ns; 0 is the image's.
    pub start_period_ns: u64,
    /// Failures in a row before unhealthy; 0 is the image's.
    pub retries: u32,
}

/// Which option an [`EngineOptions::checked`] refusal is about; each door
/// names it in its own protocol's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptionField {
    /// `stop_signal`.
    StopSignal,
    /// `stop_timeout`.
    StopTimeout,
    /// `extra_hosts` (its count, or the entry at this index).
    ExtraHosts(Option<usize>),
    /// `healthcheck`.
    Healthcheck,
}

impl EngineOptions {
    /// Whether every option is the engine's default.
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// Whether one of the options that came before healthchecks is set
    /// (what an agent's `engine-options` feature covers).
    pub fn sets_runtime_options(&self) -> bool {
        self.stop_signal.is_some()
            || self.stop_timeout.is_some()
            || self.init
            || self.read_only
            || !self.extra_hosts.is_empty()
    }

    /// Checks every option and normalises the stop signal.
    ///
    /// # Errors
    /// The first refused option, with why.
    pub fn checked(mut self) -> Result<Self, (OptionField, EngineOptionError)> {
        if let Some(signal) = self.stop_signal.as_deref() {
            self.stop_signal =
                Some(normalize_signal(signal).map_err(|e| (OptionField::StopSignal, e))?);
        }
        if let Some(seconds) = self.stop_timeout {
            check_stop_timeout(seconds).map_err(|e| (OptionField::StopTimeout, e))?;
        }
        check_extra_host_count(self.extra_hosts.len())
            .map_err(|e| (OptionField::ExtraHosts(None), e))?;
        for (i, (host, address)) in self.extra_hosts.iter().enumerate() {
            check_extra_host(host, address).map_err(|e| (OptionField::ExtraHosts(Some(i)), e))?;
        }
        if let Some(h) = &self.healthcheck {
            check_healthcheck(
                &h.test,
                h.interval_ns,
                h.timeout_ns,
                h.start_period_ns,
                h.retries,
            )
            .map_err(|e| (OptionField::Healthcheck, e))?;
        }
        Ok(self)
    }
}

/// A container's health as the engine reports it, from its healthcheck.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Health {
    /// Checks have not passed yet.
    Starting,
    /// The last check passed.
    Healthy,
    /// The checks failed as many times in a row as the retries allow.
    Unhealthy,
}

impl Health {
    /// The engine's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Healthy => "healthy",
            Self::Unhealthy => "unhealthy",
        }
    }

    /// Reads the engine's word; `None` for anything else (`none`, empty).
    pub fn parse(word: &str) -> Option<Self> {
        match word {
            "starting" => Some(Self::Starting),
            "healthy" => Some(Self::Healthy),
            "unhealthy" => Some(Self::Unhealthy),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_are_normalised_as_the_engine_names_them() {
        assert_eq!(normalize_signal("term").as_deref(), Ok("SIGTERM"));
        assert_eq!(normalize_signal("SIGINT").as_deref(), Ok("SIGINT"));
        assert_eq!(normalize_signal("RTMIN+3").as_deref(), Ok("SIGRTMIN+3"));
        assert_eq!(normalize_signal("9").as_deref(), Ok("9"));
        assert_eq!(
            normalize_signal("65"),
            Err(EngineOptionError::SignalNumber(65))
        );
        assert_eq!(
            normalize_signal("99999999999999999999999"),
            Err(EngineOptionError::SignalNumber(u64::MAX))
        );
        for bad in ["", "SIG", "-1", "SIG TERM", "TERM;rm", "ABCDEFGHIJKLMNOPQ"] {
            assert!(normalize_signal(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn healthchecks_are_the_engines_forms_within_bounds() {
        let words = |w: &[&str]| w.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let ok = |test: &[&str]| check_healthcheck(&words(test), 0, 0, 0, 0);
        assert_eq!(ok(&[]), Ok(()));
        assert_eq!(ok(&["NONE"]), Ok(()));
        assert_eq!(ok(&["CMD-SHELL", "test -f /ready"]), Ok(()));
        assert_eq!(ok(&["CMD", "/bin/check", "--fast"]), Ok(()));
        for bad in [
            &["NONE", "x"][..],
            &["CMD-SHELL"],
            &["CMD-SHELL", "a", "b"],
            &["CMD"],
            &["CMD", ""],
            &["SHELL", "x"],
            &["CMD", "a\0b"],
        ] {
            assert_eq!(ok(bad), Err(EngineOptionError::HealthTest), "{bad:?}");
        }
        let test = words(&["CMD", "true"]);
        assert_eq!(
            check_healthcheck(&test, 1_000_000_000, 5_000_000, 0, 3),
            Ok(())
        );
        assert_eq!(
            check_healthcheck(&test, 999, 0, 0, 0),
            Err(EngineOptionError::HealthDuration("interval"))
        );
        assert_eq!(
            check_healthcheck(&test, 0, MAX_HEALTHCHECK_NANOS + 1, 0, 0),
            Err(EngineOptionError::HealthDuration("timeout"))
        );
        assert_eq!(
            check_healthcheck(&test, 0, 0, 0, MAX_HEALTHCHECK_RETRIES + 1),
            Err(EngineOptionError::HealthRetries)
        );
        for health in [Health::Starting, Health::Healthy, Health::Unhealthy] {
            assert_eq!(Health::parse(health.as_str()), Some(health));
        }
        assert_eq!(Health::parse("none"), None);
    }

    #[test]
    fn options_are_checked_together_naming_the_first_refused() {
        let set = EngineOptions {
            stop_signal: Some("quit".into()),
            extra_hosts: vec![("db".into(), "10.0.0.1".into())],
            ..EngineOptions::default()
        };
        let checked = set.clone().checked().expect("accepted");
        assert_eq!(checked.stop_signal.as_deref(), Some("SIGQUIT"));
        assert!(checked.sets_runtime_options() && !EngineOptions::default().sets_runtime_options());
        let bad_host = EngineOptions {
            extra_hosts: vec![
                ("db".into(), "10.0.0.1".into()),
                ("x".into(), "nope".into()),
            ],
            ..EngineOptions::default()
        };
        assert_eq!(
            bad_host.checked().map_err(|(field, _)| field),
            Err(OptionField::ExtraHosts(Some(1)))
        );
        let bad_check = EngineOptions {
            healthcheck: Some(HealthCheck {
                test: vec!["CMD".into()],
                ..HealthCheck::default()
            }),
            ..EngineOptions::default()
        };
        assert_eq!(
            bad_check.checked(),
            Err((OptionField::Healthcheck, EngineOptionError::HealthTest))
        );
    }

    #[test]
    fn stop_timeouts_and_extra_hosts_are_bounded() {
        assert_eq!(check_stop_timeout(0), Ok(()));
        assert_eq!(check_stop_timeout(MAX_STOP_TIMEOUT_SECONDS), Ok(()));
        assert_eq!(
            check_stop_timeout(MAX_STOP_TIMEOUT_SECONDS + 1),
            Err(EngineOptionError::StopTimeout)
        );
        assert_eq!(check_extra_host_count(MAX_EXTRA_HOSTS), Ok(()));
        assert_eq!(
            check_extra_host_count(MAX_EXTRA_HOSTS + 1),
            Err(EngineOptionError::TooManyHosts)
        );
        assert_eq!(check_extra_host("db.internal", "10.0.0.5"), Ok(()));
        assert_eq!(check_extra_host("v6_host", "fd00::1"), Ok(()));
        assert_eq!(check_extra_host("gw", HOST_GATEWAY), Ok(()));
        for host in ["", "a..b", "a b", "a:b", "-x\n", &"a".repeat(64)] {
            assert!(check_extra_host(host, "10.0.0.5").is_err(), "{host:?}");
        }
        for address in ["", "10.0.0", "example.com", "10.0.0.5 x"] {
            assert!(check_extra_host("db", address).is_err(), "{address:?}");
        }
    }
}
