//! Benchmark (not a test) of streaming a container's logs through Nest,
//! next to reading the same bytes straight from the instance's own engine,
//! in the same run.
//!
//! It starts the real `nest-service` (local driver, Docker endpoint on),
//! loads the test image with `docker load` through Nest and runs two
//! containers on one instance, each of which writes `NEST_BENCH_LOG_MIB`
//! MiB to stdout and then sleeps:
//! - short lines: `yes`-style lines of `SHORT_LINE_BYTES` (one engine frame
//!   per line, the worst case for per-frame costs);
//! - long lines: lines of `LONG_LINE_BYTES`.
//!
//! Once the engine holds every byte, it interleaves, round by round (the
//! order rotates, so that machine noise hits every series alike):
//! - `docker logs NAME` with `DOCKER_HOST` at Nest's Docker endpoint (TLS,
//!   client certificate), timed as a whole CLI command;
//! - Zun `GET /v1/containers/NAME/logs?stdout=true&follow=true`, timed from
//!   the request to the last expected byte (the follow never ends by
//!   itself: the container still runs);
//! - the baseline: `docker logs nest-UUID` with `-H unix://` the instance's
//!   own dockerd socket, timed as a whole CLI command.
//!
//! Every read must return exactly the bytes written. It reports median,
//! p99 and mean per series, the rate and the ratios to the baseline.
//! Nothing is asserted: timings depend on the machine.
//!
//! ```text
//! cargo build --release --workspace --bins
//! cargo bench -p nest-tests --bench logs_stream
//! ```
//!
//! Needs root, the docker CLI, a Docker engine (for the test image) and
//! busybox-static, like the end-to-end tests. `NEST_BENCH_ITERATIONS` sets
//! the number of measured rounds (default `DEFAULT_ITERATIONS`),
//! `NEST_BENCH_LOG_MIB` the size of each log (default `DEFAULT_LOG_MIB`).

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nest_tests::bench::{Summary, count_from_env, engine_cli_output, ratio};
use nest_tests::docker::{self, TEST_IMAGE};
use nest_tests::docker_client::{Auth, DockerCli};
use nest_tests::service::{ALPHA, ServiceOptions, ServiceProcess};

/// Measured rounds unless `NEST_BENCH_ITERATIONS` says otherwise.
const DEFAULT_ITERATIONS: usize = 5;
/// Environment variable overriding `DEFAULT_ITERATIONS`.
const ITERATIONS_VAR: &str = "NEST_BENCH_ITERATIONS";
/// MiB each container logs unless `NEST_BENCH_LOG_MIB` says otherwise.
const DEFAULT_LOG_MIB: usize = 20;
/// Environment variable overriding `DEFAULT_LOG_MIB`.
const LOG_MIB_VAR: &str = "NEST_BENCH_LOG_MIB";
/// Unmeasured rounds first: connections, the engine's page cache.
const WARMUP_ITERATIONS: usize = 1;
/// Bytes of one short line, newline included.
const SHORT_LINE_BYTES: usize = 58;
/// Bytes of one long line, newline included; below the engine's 16 KiB
/// split of long lines, so each is one engine frame.
const LONG_LINE_BYTES: usize = 8 * 1024;
/// Longest one read of a whole log may take (with one frame per log line,
/// Nest needed 80-100 s for 20 MiB of short lines).
const READ_TIMEOUT: Duration = Duration::from_secs(600);
/// Longest wait for a container to have written its whole log.
const WRITE_TIMEOUT: Duration = Duration::from_secs(120);
/// How often the engine is asked whether a log is complete.
const WRITE_POLL: Duration = Duration::from_millis(500);

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("logs_stream benchmark failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let iterations = count_from_env(ITERATIONS_VAR, DEFAULT_ITERATIONS)?;
    let mib = count_from_env(LOG_MIB_VAR, DEFAULT_LOG_MIB)?;
    docker::ensure_test_image();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("build the tokio runtime")?;
    // The harness panics on what it cannot recover from; the service is
    // dropped while unwinding, which deletes its instances.
    let results = std::panic::catch_unwind(AssertUnwindSafe(|| {
        runtime.block_on(bench(iterations, mib))
    }))
    .map_err(|_| anyhow::anyhow!("a harness step panicked (see the message above)"))??;
    drop(runtime);
    report(iterations, mib, &results);
    Ok(())
}

/// One container's log and the samples read of it.
struct Workload {
    label: &'static str,
    line_bytes: usize,
    lines: usize,
    /// Its name in Nest.
    name: String,
    /// Its name on the instance's engine.
    engine_name: String,
    /// Samples per series, in `SERIES` order.
    samples: [Vec<Duration>; 3],
}

impl Workload {
    fn bytes(&self) -> usize {
        self.line_bytes * self.lines
    }
}

/// The series of every workload, in report order; the last is the
/// baseline.
const SERIES: [&str; 3] = [
    "docker logs via Nest",
    "Zun logs?follow via Nest",
    "docker logs on engine",
];

async fn bench(iterations: usize, mib: usize) -> anyhow::Result<Vec<Workload>> {
    let service = ServiceProcess::start_with(ServiceOptions {
        extra: "\n[docker]\nenabled = true\nlisten = \"127.0.0.1:0\"\n".into(),
        ..Default::default()
    })
    .await;
    let run_dir = service.driver_config().run_dir;
    let measured = measure(&service, iterations, mib).await;
    drop(service);
    let _ = tokio::fs::remove_dir(&run_dir).await;
    measured
}

async fn measure(
    service: &ServiceProcess,
    iterations: usize,
    mib: usize,
) -> anyhow::Result<Vec<Workload>> {
    let cli = DockerCli::new(service, ALPHA, Auth::Certificate).await;
    let tar = cli.path("image.tar");
    let saved = tokio::process::Command::new("docker")
        .args(["save", "-o"])
        .arg(&tar)
        .arg(TEST_IMAGE)
        .output()
        .await
        .context("docker save")?;
    if !saved.status.success() {
        bail!("docker save {TEST_IMAGE} failed");
    }
    cli.ok(&["load", "-i", &tar.to_string_lossy()]).await;
    let total = mib * 1024 * 1024;
    let mut workloads = Vec::new();
    let mut host = None;
    for (label, line_bytes) in [
        ("short lines", SHORT_LINE_BYTES),
        ("long lines", LONG_LINE_BYTES),
    ] {
        let name = format!("flood-{line_bytes}");
        let lines = total / line_bytes;
        println!("setup: {name} logs {lines} lines of {line_bytes} bytes");
        // Whole lines only: the engine holds back a last partial line.
        let script = format!(
            "s=$(head -c {} /dev/zero | tr '\\0' x); yes \"$s\" | head -n {lines}; exec sleep 3600",
            line_bytes - 1
        );
        cli.ok(&[
            "run", "-d", "-m", "64m", "--name", &name, TEST_IMAGE, "sh", "-c", &script,
        ])
        .await;
        let placed = inspect(&cli, &name, "{{.Nest.Instance}}").await?;
        if host.as_ref().is_some_and(|h| *h != placed) {
            bail!("{name} ran on instance {placed}, not with the others: one engine for all");
        }
        host = Some(placed);
        let uuid = inspect(&cli, &name, "{{.Nest.Uuid}}").await?;
        workloads.push(Workload {
            label,
            line_bytes,
            lines,
            name,
            engine_name: format!("nest-{uuid}"),
            samples: [const { Vec::new() }; 3],
        });
    }
    let host = host.context("no workload ran")?;
    let engine = service.instance_socket(&host);
    for workload in &workloads {
        wait_written(&engine, workload).await?;
    }
    let http = reqwest::Client::new();
    println!(
        "setup done on instance {host}; warming up ({WARMUP_ITERATIONS} round), then \
         {iterations} measured rounds"
    );
    for i in 0..WARMUP_ITERATIONS + iterations {
        for workload in &mut workloads {
            for turn in 0..SERIES.len() {
                let series = (i + turn) % SERIES.len();
                let elapsed = match series {
                    0 => nest_docker_once(&cli, workload).await?,
                    1 => nest_zun_once(&http, service, workload).await?,
                    _ => engine_once(&engine, workload).await?,
                };
                if i >= WARMUP_ITERATIONS {
                    workload.samples[series].push(elapsed);
                }
            }
        }
    }
    for workload in &workloads {
        cli.ok(&["rm", "-f", &workload.name]).await;
    }
    Ok(workloads)
}

/// A field of Nest's `docker inspect` of `name`.
async fn inspect(cli: &DockerCli, name: &str, format: &str) -> anyhow::Result<String> {
    let out = cli.ok(&["inspect", "-f", format, name]).await;
    let value = out.trim().to_owned();
    if value.is_empty() || value == "<no value>" {
        bail!("{name} has no {format}: {out}");
    }
    Ok(value)
}

/// Waits until the engine holds the whole log of `workload`.
async fn wait_written(engine: &Path, workload: &Workload) -> anyhow::Result<()> {
    let deadline = Instant::now() + WRITE_TIMEOUT;
    loop {
        let out = engine_cli_output(engine, &["logs", &workload.engine_name], READ_TIMEOUT).await?;
        if out.len() == workload.bytes() {
            return Ok(());
        }
        if out.len() > workload.bytes() || Instant::now() > deadline {
            bail!(
                "{} logged {} bytes, expected {}",
                workload.name,
                out.len(),
                workload.bytes()
            );
        }
        tokio::time::sleep(WRITE_POLL).await;
    }
}

fn check_length(what: &str, workload: &Workload, got: usize) -> anyhow::Result<()> {
    if got != workload.bytes() {
        bail!(
            "{what} of {} read {got} bytes, expected {}",
            workload.name,
            workload.bytes()
        );
    }
    Ok(())
}

/// Times one `docker logs` through Nest's Docker endpoint.
async fn nest_docker_once(cli: &DockerCli, workload: &Workload) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let out = cli
        .run_within(&["logs", &workload.name], READ_TIMEOUT)
        .await;
    let elapsed = started.elapsed();
    if !out.status.success() {
        bail!(
            "docker logs through Nest failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    check_length("docker logs through Nest", workload, out.stdout.len())?;
    Ok(elapsed)
}

/// Times one Zun `GET logs?follow=true` until the last expected byte.
async fn nest_zun_once(
    http: &reqwest::Client,
    service: &ServiceProcess,
    workload: &Workload,
) -> anyhow::Result<Duration> {
    let url = format!(
        "{}/v1/containers/{}/logs?stdout=true&follow=true",
        service.url, workload.name
    );
    let started = Instant::now();
    let read = async {
        let mut response = http
            .get(&url)
            .header("X-Auth-Token", ALPHA)
            .header("OpenStack-API-Version", "container 1.40")
            .send()
            .await
            .context("send the logs request")?;
        if response.status() != 200 {
            bail!("logs answered {}", response.status());
        }
        let mut total = 0;
        while total < workload.bytes() {
            match response.chunk().await.context("read the logs")? {
                Some(chunk) => total += chunk.len(),
                None => break,
            }
        }
        Ok(total)
    };
    let total = tokio::time::timeout(READ_TIMEOUT, read)
        .await
        .with_context(|| format!("the follow read took over {READ_TIMEOUT:?}"))??;
    let elapsed = started.elapsed();
    check_length("Zun logs?follow", workload, total)?;
    Ok(elapsed)
}

/// Times one `docker logs` on the instance's own engine.
async fn engine_once(engine: &Path, workload: &Workload) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let out = engine_cli_output(engine, &["logs", &workload.engine_name], READ_TIMEOUT).await?;
    let elapsed = started.elapsed();
    check_length("docker logs on the engine", workload, out.len())?;
    Ok(elapsed)
}

/// Bytes in a MiB, for rates.
const MIB: f64 = 1024.0 * 1024.0;

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn report(iterations: usize, mib: usize, workloads: &[Workload]) {
    let cores = std::thread::available_parallelism()
        .map_or_else(|_| "unknown".to_owned(), |n| n.to_string());
    println!();
    println!(
        "streaming {mib} MiB of logs: N = {iterations} rounds of each (after \
         {WARMUP_ITERATIONS} warm-up), interleaved, {cores} cores"
    );
    println!("p99 is nearest-rank: below 100 samples it is the maximum");
    for workload in workloads {
        let summaries: Vec<Summary> = workload.samples.iter().map(|s| Summary::of(s)).collect();
        let baseline = &summaries[SERIES.len() - 1];
        println!();
        println!(
            "{} ({} lines of {} bytes)",
            workload.label, workload.lines, workload.line_bytes
        );
        println!(
            "{:<26} {:>10} {:>10} {:>10} {:>7} {:>9} {:>9}",
            "series", "median ms", "p99 ms", "mean ms", "MiB/s", "/ engine", "p99 / e."
        );
        for (label, s) in SERIES.iter().zip(&summaries) {
            #[expect(clippy::cast_precision_loss, reason = "a rate for people to read")]
            let rate = workload.bytes() as f64 / MIB / s.median.as_secs_f64();
            println!(
                "{label:<26} {:>10.1} {:>10.1} {:>10.1} {:>7.1} {:>8.2}x {:>8.2}x",
                millis(s.median),
                millis(s.p99),
                millis(s.mean),
                rate,
                ratio(s.median, baseline.median),
                ratio(s.p99, baseline.p99),
            );
        }
    }
    println!();
    println!(
        "/ engine, p99 / e. = median and p99 against the engine's own `docker logs` of the same log"
    );
}
