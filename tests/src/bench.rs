//! What the benchmarks share: sample counts from the environment, the
//! statistics they report (nearest-rank median and p99, mean, ratios) and
//! the baseline's docker CLI against an instance's own engine.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};

/// Reads a positive count from `var`, or `default` when it is unset.
///
/// # Errors
/// When the variable is not a whole number from 1 to `u32::MAX`.
pub fn count_from_env(var: &str, default: usize) -> anyhow::Result<usize> {
    let Some(raw) = std::env::var_os(var) else {
        return Ok(default);
    };
    let text = raw
        .to_str()
        .with_context(|| format!("{var} is not valid UTF-8"))?;
    let n: u32 = text
        .trim()
        .parse()
        .with_context(|| format!("{var}={text:?} is not a whole number up to {}", u32::MAX))?;
    if n == 0 {
        bail!("{var} must be at least 1");
    }
    usize::try_from(n).with_context(|| format!("{var} does not fit in memory"))
}

/// Median, p99 and mean of one series of samples.
pub struct Summary {
    /// Nearest-rank 50th percentile.
    pub median: Duration,
    /// Nearest-rank 99th percentile (the maximum below 100 samples).
    pub p99: Duration,
    /// Arithmetic mean.
    pub mean: Duration,
}

impl Summary {
    /// Summarises `samples`, which must not be empty (counts come from
    /// [`count_from_env`], at least 1).
    pub fn of(samples: &[Duration]) -> Self {
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        assert!(!sorted.is_empty(), "a series has at least one sample");
        let rank = |percent: usize| {
            let index = (sorted.len() * percent).div_ceil(100).saturating_sub(1);
            sorted[index.min(sorted.len() - 1)]
        };
        let total: Duration = sorted.iter().sum();
        let count = u32::try_from(sorted.len()).expect("at most a u32 count of samples");
        Self {
            median: rank(50),
            p99: rank(99),
            mean: total / count,
        }
    }
}

/// `a / b`, for reporting one series against its baseline.
pub fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

/// Longest one engine CLI command of a benchmark's setup or baseline may
/// take, unless it says otherwise.
pub const ENGINE_CLI_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `docker -H unix://<engine> <args>` (the docker CLI against an
/// instance's own engine) within `timeout` and returns its stdout.
///
/// # Errors
/// When the CLI cannot run, takes longer than `timeout` or fails; the
/// error carries its stderr.
pub async fn engine_cli_output(
    engine: &Path,
    args: &[&str],
    timeout: Duration,
) -> anyhow::Result<Vec<u8>> {
    let host = format!("unix://{}", engine.display());
    let mut command = tokio::process::Command::new("docker");
    command.arg("-H").arg(&host).args(args).kill_on_drop(true);
    let out = tokio::time::timeout(timeout, command.output())
        .await
        .with_context(|| format!("docker -H {host} {args:?} took over {timeout:?}"))?
        .with_context(|| format!("run docker -H {host} {args:?} (is the docker CLI installed?)"))?;
    if !out.status.success() {
        bail!(
            "docker -H {host} {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

/// [`engine_cli_output`] within [`ENGINE_CLI_TIMEOUT`], as text.
///
/// # Errors
/// As [`engine_cli_output`].
pub async fn engine_cli(engine: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = engine_cli_output(engine, args, ENGINE_CLI_TIMEOUT).await?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<Duration> = (1..=200).map(Duration::from_millis).collect();
        let s = Summary::of(&samples);
        assert_eq!(s.median, Duration::from_millis(100));
        assert_eq!(s.p99, Duration::from_millis(198));
        let few = [Duration::from_millis(3), Duration::from_millis(1)];
        assert_eq!(Summary::of(&few).p99, Duration::from_millis(3));
    }
}
