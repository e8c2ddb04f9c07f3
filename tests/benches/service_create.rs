//! Benchmark (not a test) of creating a container through Nest's API until
//! it runs, next to `docker run -d` on the same engine, in the same run.
//!
//! It starts the real `nest-service` with the `local` driver (each instance
//! is a network namespace with its own dockerd and agent) and measures:
//! - API, warm: `POST /v1/containers?run=true` until `GET` shows `Running`,
//!   on an instance that is already up. An "anchor" container keeps that
//!   instance busy, so it is never retired during this part;
//! - `docker run -d`: the docker CLI against the same instance's engine,
//!   timed as a whole command (CLI start-up included), interleaved with
//!   the API rounds (the first of the pair alternates) so that machine
//!   noise hits both alike;
//! - API, cold: the same create in a project with no instance, so it
//!   includes booting one (namespace, dockerd, agent enrollment, image
//!   load) before the create. Between cold rounds the instance is left to
//!   be retired (the service runs with a short idle timeout).
//!
//! The API figures come from polling the container every `POLL_INTERVAL`,
//! so they are late by up to one interval plus one `GET`: the polling
//! granularity bounds their precision. Deleting and removing containers is
//! not timed. It reports the median, p99 and mean of each, and the ratios.
//! Nothing is asserted: timings depend on the machine.
//!
//! # Running it
//! The service and the agent are the real binaries, found next to the
//! bench executable, so build them in the release profile first:
//!
//! ```text
//! cargo build --release --workspace --bins
//! cargo bench -p nest-tests --bench service_create
//! ```
//!
//! It needs root, the docker CLI and a Docker engine (for the test image),
//! and Debian's busybox-static, like the end-to-end tests.
//! `NEST_BENCH_ITERATIONS` sets the number of warm rounds (default
//! `DEFAULT_WARM_ITERATIONS`) and `NEST_BENCH_COLD_ITERATIONS` the number
//! of cold ones (default `DEFAULT_COLD_ITERATIONS`); `NEST_TEST_LOG` sets
//! the service's `RUST_LOG`.

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nest_tests::bench::{Summary, count_from_env, engine_cli, ratio};
use nest_tests::docker::{self, TEST_IMAGE};
use nest_tests::service::{ALPHA, BETA, ServiceOptions, ServiceProcess};
use reqwest::Method;
use serde_json::{Value, json};

/// Measured warm rounds unless `NEST_BENCH_ITERATIONS` says otherwise.
const DEFAULT_WARM_ITERATIONS: usize = 30;
/// Measured cold rounds unless `NEST_BENCH_COLD_ITERATIONS` says otherwise.
/// Each one boots and retires an instance, so it takes seconds.
const DEFAULT_COLD_ITERATIONS: usize = 5;
/// Environment variable overriding `DEFAULT_WARM_ITERATIONS`.
const WARM_ITERATIONS_VAR: &str = "NEST_BENCH_ITERATIONS";
/// Environment variable overriding `DEFAULT_COLD_ITERATIONS`.
const COLD_ITERATIONS_VAR: &str = "NEST_BENCH_COLD_ITERATIONS";
/// Unmeasured warm rounds first: the engine's first `run`, connections.
const WARMUP_ITERATIONS: usize = 2;
/// How often the API is polled for the container's status; bounds the
/// precision of the API figures.
const POLL_INTERVAL: Duration = Duration::from_millis(10);
/// How often the slower, untimed waits (deletion, retirement) poll.
const WAIT_INTERVAL: Duration = Duration::from_millis(100);
/// Short, so that the cold rounds do not wait long for retirement. The
/// scheduler looks every 2 s, so an empty instance goes after 2–6 s.
const IDLE_TIMEOUT: &str = "2s";
/// Longest create → Running when an instance must boot first.
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest create → Running on a warm instance.
const WARM_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest wait for a container to stop, or to disappear once deleted.
const DELETE_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest wait for a project's empty instance to be retired.
const RETIRE_TIMEOUT: Duration = Duration::from_secs(60);

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("service_create benchmark failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let warm = count_from_env(WARM_ITERATIONS_VAR, DEFAULT_WARM_ITERATIONS)?;
    let cold = count_from_env(COLD_ITERATIONS_VAR, DEFAULT_COLD_ITERATIONS)?;
    // Synchronous (it runs the docker CLI), so before the runtime starts.
    docker::ensure_test_image();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("build the tokio runtime")?;
    // The harness panics on the failures it cannot recover from (the
    // service does not start, a request cannot be sent); the panic message
    // and the service's log are printed by then. The service is dropped
    // while unwinding, which deletes every instance it booted.
    let results =
        std::panic::catch_unwind(AssertUnwindSafe(|| runtime.block_on(bench(warm, cold))))
            .map_err(|_| anyhow::anyhow!("a harness step panicked (see the message above)"))??;
    drop(runtime);
    print_report(warm, cold, &results);
    Ok(())
}

/// The measured series, in table order.
#[derive(Clone, Copy, Debug)]
enum Series {
    ApiWarm,
    DockerRun,
    ApiCold,
}

impl Series {
    const ALL: [Series; 3] = [Series::ApiWarm, Series::DockerRun, Series::ApiCold];

    fn label(self) -> &'static str {
        match self {
            Series::ApiWarm => "API warm",
            Series::DockerRun => "docker run -d",
            Series::ApiCold => "API cold",
        }
    }

    fn index(self) -> usize {
        match self {
            Series::ApiWarm => 0,
            Series::DockerRun => 1,
            Series::ApiCold => 2,
        }
    }
}

/// The service and what every round needs.
struct Rig {
    service: ServiceProcess,
    /// Uploaded image uuid of project alpha (warm rounds).
    image_alpha: String,
    /// Uploaded image uuid of project beta (cold rounds).
    image_beta: String,
}

/// Runs the warm part, then the cold part. Returns the samples of each
/// series, in `Series::ALL` order.
async fn bench(warm: usize, cold: usize) -> anyhow::Result<[Vec<Duration>; 3]> {
    let service = ServiceProcess::start_with(ServiceOptions {
        idle_timeout: IDLE_TIMEOUT.into(),
        ..Default::default()
    })
    .await;
    // The driver's run directory outlives the service (the harness leaves
    // it, empty); removed below once the service is gone.
    let run_dir = service.driver_config().run_dir;
    let image_alpha = service.upload_test_image(ALPHA).await;
    let image_beta = service.upload_test_image(BETA).await;
    let rig = Rig {
        service,
        image_alpha,
        image_beta,
    };
    let mut samples: [Vec<Duration>; 3] = [
        Vec::with_capacity(warm),
        Vec::with_capacity(warm),
        Vec::with_capacity(cold),
    ];
    let measured = async {
        warm_part(&rig, warm, &mut samples).await?;
        cold_part(&rig, cold, &mut samples[Series::ApiCold.index()]).await
    }
    .await;
    // Kills the service and deletes every instance it booted.
    drop(rig);
    // Only if empty: nothing else is ever removed.
    let _ = tokio::fs::remove_dir(&run_dir).await;
    measured.map(|()| samples)
}

// === warm part ===

/// Boots alpha's instance with an anchor container, then interleaves API
/// creates and `docker run -d` on that instance's engine.
async fn warm_part(
    rig: &Rig,
    iterations: usize,
    samples: &mut [Vec<Duration>; 3],
) -> anyhow::Result<()> {
    println!("setup: booting project alpha's instance with an anchor container");
    let (anchor, _) = create_until_running(rig, ALPHA, &rig.image_alpha, BOOT_TIMEOUT)
        .await
        .context("create the anchor container")?;
    let host = host_of(rig, ALPHA, &anchor).await?;
    let engine = rig.service.instance_socket(&host);
    // The anchor's create loaded the image into this engine; the baseline
    // runs it from there, as Nest does.
    engine_cli(
        &engine,
        &["image", "inspect", "--format", "{{.Id}}", TEST_IMAGE],
    )
    .await
    .with_context(|| {
        format!(
            "{TEST_IMAGE} is not on instance {host}'s engine after the anchor's create \
                 (was it loaded under another name?)"
        )
    })?;
    println!(
        "setup done: instance {host} running anchor {anchor}; warming up ({WARMUP_ITERATIONS} rounds)"
    );
    for i in 0..WARMUP_ITERATIONS {
        warm_round(rig, &host, &engine, i, None).await?;
    }
    println!("measuring ({iterations} warm rounds of each, interleaved)");
    for i in 0..iterations {
        warm_round(rig, &host, &engine, i, Some(&mut *samples)).await?;
    }
    // Without its anchor the instance retires, which the cold part waits
    // for: a boot must not share the machine with a retirement.
    delete_and_wait(rig, ALPHA, &anchor).await?;
    Ok(())
}

/// One API create and one `docker run -d`, the first alternating with `i`.
async fn warm_round(
    rig: &Rig,
    host: &str,
    engine: &Path,
    i: usize,
    mut samples: Option<&mut [Vec<Duration>; 3]>,
) -> anyhow::Result<()> {
    let api_first = i.is_multiple_of(2);
    for api_turn in [api_first, !api_first] {
        let (series, elapsed) = if api_turn {
            (Series::ApiWarm, api_warm_once(rig, host).await?)
        } else {
            (Series::DockerRun, docker_run_once(engine).await?)
        };
        if let Some(samples) = samples.as_deref_mut() {
            samples[series.index()].push(elapsed);
        }
    }
    Ok(())
}

/// Times one create on alpha's warm instance, then deletes the container
/// (untimed) and waits until it is gone, so the next round has the same
/// room.
async fn api_warm_once(rig: &Rig, host: &str) -> anyhow::Result<Duration> {
    let (id, elapsed) = create_until_running(rig, ALPHA, &rig.image_alpha, WARM_TIMEOUT).await?;
    let placed = host_of(rig, ALPHA, &id).await?;
    if placed != host {
        bail!(
            "container {id} ran on instance {placed}, not on the warm instance {host}: the \
             comparison must be on one engine"
        );
    }
    delete_and_wait(rig, ALPHA, &id).await?;
    Ok(elapsed)
}

/// Times one `docker run -d` as a whole command, then removes the
/// container (untimed).
async fn docker_run_once(engine: &Path) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let id = engine_cli(engine, &["run", "-d", TEST_IMAGE, "sleep", "3600"]).await?;
    let elapsed = started.elapsed();
    engine_cli(engine, &["rm", "-f", id.trim()]).await?;
    Ok(elapsed)
}

// === cold part ===

/// Times creates in project beta, each of which must boot an instance.
async fn cold_part(
    rig: &Rig,
    iterations: usize,
    samples: &mut Vec<Duration>,
) -> anyhow::Result<()> {
    println!("waiting for alpha's instance to be retired");
    wait_no_instance(rig, ALPHA).await?;
    println!(
        "measuring ({iterations} cold rounds; each boots an instance, then waits for its retirement)"
    );
    let mut booted = HashSet::new();
    for _ in 0..iterations {
        wait_no_instance(rig, BETA).await?;
        let (id, elapsed) = create_until_running(rig, BETA, &rig.image_beta, BOOT_TIMEOUT).await?;
        samples.push(elapsed);
        // Each cold round must have booted an instance of its own.
        let host = host_of(rig, BETA, &id).await?;
        if !booted.insert(host.clone()) {
            bail!("cold round ran {id} on instance {host}, which an earlier round booted");
        }
        delete_and_wait(rig, BETA, &id).await?;
    }
    wait_no_instance(rig, BETA).await
}

/// Waits until `token`'s project has no instance (`GET /v1/hosts` is empty).
async fn wait_no_instance(rig: &Rig, token: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + RETIRE_TIMEOUT;
    loop {
        let (code, hosts) = rig
            .service
            .call(token, Method::GET, "/v1/hosts", None)
            .await;
        match (code, hosts["hosts"].as_array()) {
            (200, Some(list)) if list.is_empty() => return Ok(()),
            (200, Some(_)) => {}
            _ => bail!("list hosts: {code} {hosts}"),
        }
        if Instant::now() > deadline {
            bail!("the project's instances were not retired after {RETIRE_TIMEOUT:?}: {hosts}");
        }
        tokio::time::sleep(WAIT_INTERVAL).await;
    }
}

// === API and engine steps ===

/// Creates a `sleep 3600` container and polls it every `POLL_INTERVAL`
/// until it runs. Returns its uuid and the time from sending the create to
/// the first `GET` that showed `Running`.
async fn create_until_running(
    rig: &Rig,
    token: &str,
    image: &str,
    timeout: Duration,
) -> anyhow::Result<(String, Duration)> {
    // Built before the clock starts.
    let body = json!({
        "image": image,
        "command": ["sleep", "3600"],
        "cpu": 0.1,
        "memory": "64",
    });
    let started = Instant::now();
    let (code, view) = rig
        .service
        .call(token, Method::POST, "/v1/containers?run=true", Some(body))
        .await;
    let id = match (code, view["uuid"].as_str()) {
        (202, Some(id)) => id.to_owned(),
        _ => bail!("create: {code} {view}"),
    };
    let path = format!("/v1/containers/{id}");
    loop {
        let (code, view) = rig.service.call(token, Method::GET, &path, None).await;
        if code != 200 {
            bail!("show {id}: {code} {view}");
        }
        match status(&view) {
            "Running" => return Ok((id, started.elapsed())),
            "Error" => bail!("container {id} failed: {view}"),
            _ => {}
        }
        if started.elapsed() > timeout {
            bail!("container {id} not Running after {timeout:?}: {view}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// The instance (`host`) a container was placed on.
async fn host_of(rig: &Rig, token: &str, id: &str) -> anyhow::Result<String> {
    let (code, view) = rig
        .service
        .call(token, Method::GET, &format!("/v1/containers/{id}"), None)
        .await;
    match (code, view["host"].as_str()) {
        (200, Some(host)) => Ok(host.to_owned()),
        _ => bail!("show {id} for its host: {code} {view}"),
    }
}

fn status(view: &Value) -> &str {
    view["status"].as_str().unwrap_or("")
}

/// Removes a container and waits until the API answers 404. It is stopped
/// first with no grace period: `sleep` as PID 1 ignores SIGTERM, so
/// `DELETE ?stop=true` would wait out its 10 s stop timeout every round.
async fn delete_and_wait(rig: &Rig, token: &str, id: &str) -> anyhow::Result<()> {
    let path = format!("/v1/containers/{id}");
    let (code, body) = rig
        .service
        .call(token, Method::POST, &format!("{path}/stop?timeout=0"), None)
        .await;
    if code != 202 {
        bail!("stop {id}: {code} {body}");
    }
    wait_for(rig, token, &path, "Stopped", |code, view| {
        code == 200 && status(view) == "Stopped"
    })
    .await?;
    let (code, body) = rig.service.call(token, Method::DELETE, &path, None).await;
    if code != 204 {
        bail!("delete {id}: {code} {body}");
    }
    wait_for(rig, token, &path, "gone (404)", |code, _| code == 404).await
}

/// Polls `GET path` every `WAIT_INTERVAL` until `done` accepts the answer,
/// for at most `DELETE_TIMEOUT`.
async fn wait_for(
    rig: &Rig,
    token: &str,
    path: &str,
    what: &str,
    done: impl Fn(u16, &Value) -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + DELETE_TIMEOUT;
    loop {
        let (code, view) = rig.service.call(token, Method::GET, path, None).await;
        if done(code, &view) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{path} not {what} after {DELETE_TIMEOUT:?}: {code} {view}");
        }
        tokio::time::sleep(WAIT_INTERVAL).await;
    }
}

// === report ===

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn print_report(warm: usize, cold: usize, samples: &[Vec<Duration>; 3]) {
    let cores = std::thread::available_parallelism()
        .map_or_else(|_| "unknown".to_owned(), |n| n.to_string());
    let s: Vec<Summary> = samples.iter().map(|s| Summary::of(s)).collect();
    println!();
    println!(
        "create → Running: N = {warm} warm rounds (after {WARMUP_ITERATIONS} warm-up), \
         M = {cold} cold rounds, {cores} cores"
    );
    println!("p99 is nearest-rank: below 100 samples it is the maximum");
    println!(
        "API = POST create until GET shows Running, polled every {} ms (figures are late by up \
         to one poll)",
        POLL_INTERVAL.as_millis()
    );
    println!(
        "docker run -d = the whole CLI command, on the warm instance's engine; \
         API cold includes booting an instance"
    );
    println!();
    println!(
        "{:<16} {:>12} {:>12} {:>12}",
        "series", "median ms", "p99 ms", "mean ms"
    );
    for series in Series::ALL {
        let x = &s[series.index()];
        println!(
            "{:<16} {:>12.1} {:>12.1} {:>12.1}",
            series.label(),
            millis(x.median),
            millis(x.p99),
            millis(x.mean)
        );
    }
    let (api, run, cold) = (
        &s[Series::ApiWarm.index()],
        &s[Series::DockerRun.index()],
        &s[Series::ApiCold.index()],
    );
    println!();
    println!("{:<26} {:>8} {:>8}", "ratio", "median", "p99");
    println!(
        "{:<26} {:>7.2}x {:>7.2}x",
        "API warm / docker run -d",
        ratio(api.median, run.median),
        ratio(api.p99, run.p99)
    );
    println!(
        "{:<26} {:>7.2}x {:>8}",
        "API cold / API warm",
        ratio(cold.median, api.median),
        "–"
    );
}
