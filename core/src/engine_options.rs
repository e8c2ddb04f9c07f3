//! How the engine runs a container beyond its process, as the docker CLI
//! asks (`--stop-signal`, `--stop-timeout`, `--add-host`): the service's
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
