//! Benchmark (not a test) of `docker run -d` through Nest's Docker
//! endpoint, next to `docker run -d` on the same instance's own engine, in
//! the same run (issue #8).
//!
//! It starts the real `nest-service` (local driver, Docker endpoint on),
//! loads the test image with `docker load` through Nest, and runs an
//! anchor container so that one instance is up and stays up. Then it
//! interleaves, round by round (the first of the pair alternates, so that
//! machine noise hits both alike):
//! - Nest: `docker run -d -m 64m IMAGE sleep 3600` with `DOCKER_HOST` at
//!   Nest's endpoint (TLS, client certificate), timed as a whole CLI
//!   command: create, wait, start until the container runs on the
//!   instance;
//! - engine: the same command with `-H unix://` the instance's own
//!   dockerd socket.
//!
//! Both containers are removed after each round (untimed). Every Nest
//! container must have run on the anchor's instance, or the comparison
//! would not be on one engine. It reports median, p99 and mean, and the
//! ratios. Nothing is asserted: timings depend on the machine.
//!
//! ```text
//! cargo build --release --workspace --bins
//! cargo bench -p nest-tests --bench docker_run
//! ```
//!
//! Needs root, the docker CLI, a Docker engine (for the test image) and
//! busybox-static, like the end-to-end tests. `NEST_BENCH_ITERATIONS` sets
//! the number of measured rounds (default `DEFAULT_ITERATIONS`).

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nest_tests::bench::{Summary, count_from_env, engine_cli, ratio};
use nest_tests::docker::{self, TEST_IMAGE};
use nest_tests::docker_client::{Auth, DockerCli};
use nest_tests::service::{ALPHA, ServiceOptions, ServiceProcess};

/// Measured rounds unless `NEST_BENCH_ITERATIONS` says otherwise.
const DEFAULT_ITERATIONS: usize = 20;
/// Environment variable overriding `DEFAULT_ITERATIONS`.
const ITERATIONS_VAR: &str = "NEST_BENCH_ITERATIONS";
/// Unmeasured rounds first: connections, the engine's first run.
const WARMUP_ITERATIONS: usize = 2;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("docker_run benchmark failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let iterations = count_from_env(ITERATIONS_VAR, DEFAULT_ITERATIONS)?;
    docker::ensure_test_image();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("build the tokio runtime")?;
    // The harness panics on what it cannot recover from; the service is
    // dropped while unwinding, which deletes its instances.
    let samples =
        std::panic::catch_unwind(AssertUnwindSafe(|| runtime.block_on(bench(iterations))))
            .map_err(|_| anyhow::anyhow!("a harness step panicked (see the message above)"))??;
    drop(runtime);
    report(iterations, &samples);
    Ok(())
}

async fn bench(iterations: usize) -> anyhow::Result<[Vec<Duration>; 2]> {
    let service = ServiceProcess::start_with(ServiceOptions {
        extra: "\n[docker]\nenabled = true\nlisten = \"127.0.0.1:0\"\n".into(),
        ..Default::default()
    })
    .await;
    let run_dir = service.driver_config().run_dir;
    let measured = measure(&service, iterations).await;
    drop(service);
    let _ = tokio::fs::remove_dir(&run_dir).await;
    measured
}

async fn measure(
    service: &ServiceProcess,
    iterations: usize,
) -> anyhow::Result<[Vec<Duration>; 2]> {
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
    println!("setup: booting an instance with an anchor container");
    cli.ok(&[
        "run", "-d", "-m", "64m", "--name", "anchor", TEST_IMAGE, "sleep", "3600",
    ])
    .await;
    let host = instance_of(&cli, "anchor").await?;
    let engine = service.instance_socket(&host);
    engine_cli(
        &engine,
        &["image", "inspect", "--format", "{{.Id}}", TEST_IMAGE],
    )
    .await
    .with_context(|| format!("{TEST_IMAGE} is not on instance {host}'s engine"))?;
    let mut samples = [
        Vec::with_capacity(iterations),
        Vec::with_capacity(iterations),
    ];
    println!("warming up ({WARMUP_ITERATIONS} rounds), then {iterations} measured rounds");
    for i in 0..WARMUP_ITERATIONS + iterations {
        let nest_first = i.is_multiple_of(2);
        for nest_turn in [nest_first, !nest_first] {
            let (series, elapsed) = if nest_turn {
                (0, nest_once(&cli, &host).await?)
            } else {
                (1, engine_once(&engine).await?)
            };
            if i >= WARMUP_ITERATIONS {
                samples[series].push(elapsed);
            }
        }
    }
    Ok(samples)
}

/// The instance a container runs on, from Nest's part of `inspect`.
async fn instance_of(cli: &DockerCli, name: &str) -> anyhow::Result<String> {
    let out = cli.ok(&["inspect", "-f", "{{.Nest.Instance}}", name]).await;
    let host = out.trim().to_owned();
    if host.is_empty() || host == "<no value>" {
        bail!("{name} has no instance: {out}");
    }
    Ok(host)
}

/// Times one `docker run -d` through Nest, then removes it (untimed).
async fn nest_once(cli: &DockerCli, host: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let out = cli
        .run(&["run", "-d", "-m", "64m", TEST_IMAGE, "sleep", "3600"])
        .await;
    let elapsed = started.elapsed();
    if !out.status.success() {
        bail!(
            "docker run through Nest failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let placed = instance_of(cli, &id).await?;
    if placed != host {
        bail!("{id} ran on instance {placed}, not on the anchor's {host}");
    }
    cli.ok(&["rm", "-f", &id]).await;
    Ok(elapsed)
}

/// Times one `docker run -d` on the instance's engine, then removes it.
async fn engine_once(engine: &Path) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let id = engine_cli(
        engine,
        &["run", "-d", "-m", "64m", TEST_IMAGE, "sleep", "3600"],
    )
    .await?;
    let elapsed = started.elapsed();
    engine_cli(engine, &["rm", "-f", id.trim()]).await?;
    Ok(elapsed)
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn report(iterations: usize, samples: &[Vec<Duration>; 2]) {
    let cores = std::thread::available_parallelism()
        .map_or_else(|_| "unknown".to_owned(), |n| n.to_string());
    let nest = Summary::of(&samples[0]);
    let engine = Summary::of(&samples[1]);
    println!();
    println!(
        "docker run -d, whole CLI command: N = {iterations} rounds of each (after \
         {WARMUP_ITERATIONS} warm-up), interleaved, {cores} cores"
    );
    println!("p99 is nearest-rank: below 100 samples it is the maximum");
    println!();
    println!(
        "{:<22} {:>12} {:>12} {:>12}",
        "series", "median ms", "p99 ms", "mean ms"
    );
    for (label, s) in [("through Nest", &nest), ("instance's engine", &engine)] {
        println!(
            "{label:<22} {:>12.1} {:>12.1} {:>12.1}",
            millis(s.median),
            millis(s.p99),
            millis(s.mean)
        );
    }
    println!();
    println!(
        "Nest / engine: median {:.2}x, p99 {:.2}x",
        ratio(nest.median, engine.median),
        ratio(nest.p99, engine.p99)
    );
}
