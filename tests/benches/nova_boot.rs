//! Benchmark (not a test) of create → Running on a new Nova instance, with
//! the time split into Nova's boot and Nest's own steps, against a create
//! on an instance already up, in the same run.
//!
//! It runs the real `nest-service` with the `nova` driver against the lab
//! (`../shared/openstack-lab`), and the test hypervisor that runs the
//! servers as namespace guests (dockerd and agent, like the `local`
//! driver). As `demo`, it measures:
//! - warm: `POST /v1/containers?run=true` until `GET` shows `Running`, on
//!   an instance that is up (an anchor container keeps it);
//! - cold: the same create of a container too big to share that instance
//!   (400 MiB on an m1.tiny of 512), so a server is booted for it. Its
//!   time is split into Nova's boot (the driver's own measure, from its
//!   `POST /servers` to `ACTIVE`, read from the service's log) and the rest,
//!   Nest's: the trust login and lookups before the boot, then the guest's
//!   start (here the test hypervisor's), the agent's enrollment and the
//!   image load and create. Each cold container is deleted and its server
//!   retired (short idle timeout) before the next round.
//!
//! Nova's part reflects the lab's FakeDriver (nothing boots), so on a real
//! cloud it is the VM's boot that dominates; Nest's part is what this
//! benchmark is for.
//!
//! # Running it
//! ```text
//! cargo build --release --workspace --bins
//! cargo bench -p nest-tests --bench nova_boot
//! ```
//! Needs root, a Docker engine and the lab. `NEST_BENCH_ITERATIONS` sets
//! the warm rounds (default `DEFAULT_WARM_ITERATIONS`) and
//! `NEST_BENCH_COLD_ITERATIONS` the cold ones (default
//! `DEFAULT_COLD_ITERATIONS`).

use std::panic::AssertUnwindSafe;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use nest_tests::bench::{Summary, count_from_env, ratio};
use nest_tests::nova::{
    CloudCleanup, Hypervisor, demo, ensure_driver_user, service_options, token, unique_tag,
};
use nest_tests::service::ServiceProcess;
use reqwest::Method;
use serde_json::{Value, json};

/// Warm rounds unless `NEST_BENCH_ITERATIONS` says otherwise.
const DEFAULT_WARM_ITERATIONS: usize = 5;
/// Cold rounds unless `NEST_BENCH_COLD_ITERATIONS` says otherwise; each
/// boots and retires a server.
const DEFAULT_COLD_ITERATIONS: usize = 3;
/// How often the container is polled.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Longest wait for one create.
const ROUND_TIMEOUT: Duration = Duration::from_secs(240);

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nova_boot benchmark failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let warm = count_from_env("NEST_BENCH_ITERATIONS", DEFAULT_WARM_ITERATIONS)?;
    let cold = count_from_env("NEST_BENCH_COLD_ITERATIONS", DEFAULT_COLD_ITERATIONS)?;
    nest_tests::docker::ensure_test_image();
    ensure_driver_user();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("build the tokio runtime")?;
    let results =
        std::panic::catch_unwind(AssertUnwindSafe(|| runtime.block_on(bench(warm, cold))))
            .map_err(|_| anyhow::anyhow!("a harness step panicked (see the message above)"))??;
    drop(runtime);
    report(warm, cold, &results);
    Ok(())
}

struct Results {
    warm: Vec<Duration>,
    cold: Vec<Duration>,
    nova: Vec<Duration>,
    nest: Vec<Duration>,
}

async fn create_until_running(
    svc: &ServiceProcess,
    token: &str,
    body: Value,
) -> anyhow::Result<(String, Duration)> {
    let started = Instant::now();
    let (code, view) = svc
        .call(token, Method::POST, "/v1/containers?run=true", Some(body))
        .await;
    anyhow::ensure!(code == 202, "create answered {code}: {view}");
    let id = view["uuid"].as_str().context("a uuid")?.to_owned();
    loop {
        let (code, view) = svc
            .call(token, Method::GET, &format!("/v1/containers/{id}"), None)
            .await;
        anyhow::ensure!(code == 200, "show answered {code}: {view}");
        match view["status"].as_str() {
            Some("Running") => return Ok((id, started.elapsed())),
            Some("Error") => anyhow::bail!("the container failed: {view}"),
            _ => {}
        }
        anyhow::ensure!(started.elapsed() < ROUND_TIMEOUT, "not Running in time");
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

async fn delete(svc: &ServiceProcess, token: &str, id: &str) -> anyhow::Result<()> {
    let (code, body) = svc
        .call(
            token,
            Method::DELETE,
            &format!("/v1/containers/{id}?stop=true"),
            None,
        )
        .await;
    anyhow::ensure!(code == 204, "delete answered {code}: {body}");
    Ok(())
}

/// A log line without its colour escapes (`ESC [ ... m`).
fn plain(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for skipped in chars.by_ref() {
                if skipped == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Nova's boot times the driver logged (`server active ... boot_s=6.78`).
fn nova_boots(log: &str) -> Vec<Duration> {
    log.lines()
        .filter(|l| l.contains("server active"))
        .filter_map(|l| {
            let line = plain(l);
            let after = &line[line.find("boot_s=")? + "boot_s=".len()..];
            let number: String = after
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            number.parse::<f64>().ok().map(Duration::from_secs_f64)
        })
        .collect()
}

async fn bench(warm: usize, cold: usize) -> anyhow::Result<Results> {
    let tag = unique_tag();
    let cleanup = CloudCleanup { tag: tag.clone() };
    let hypervisor = Hypervisor::start(&tag).await;
    let mut options = service_options(&tag);
    options.idle_timeout = "2s".into();
    let svc = ServiceProcess::start_with(options).await;
    let demo_token = token(&demo()).await;
    let image = svc.upload_test_image(&demo_token).await;
    let small = json!({"image": image, "command": ["sleep", "3600"], "cpu": 0.1, "memory": "64"});
    let big = json!({"image": image, "command": ["sleep", "3600"], "cpu": 0.5, "memory": "400"});

    // The anchor boots the warm instance (and warms the trust's token).
    // 128 MiB: what is left of the 512 (384) takes the warm rounds' small
    // containers but never a cold round's big one.
    let anchor_body =
        json!({"image": image, "command": ["sleep", "3600"], "cpu": 0.1, "memory": "128"});
    let (anchor, _) = create_until_running(&svc, &demo_token, anchor_body).await?;
    let mut results = Results {
        warm: Vec::new(),
        cold: Vec::new(),
        nova: Vec::new(),
        nest: Vec::new(),
    };
    for _ in 0..warm {
        let (id, took) = create_until_running(&svc, &demo_token, small.clone()).await?;
        results.warm.push(took);
        delete(&svc, &demo_token, &id).await?;
    }
    for _ in 0..cold {
        let boots_before = nova_boots(&svc.log_text()).len();
        let (id, took) = create_until_running(&svc, &demo_token, big.clone()).await?;
        let boots = nova_boots(&svc.log_text());
        let nova = *boots
            .get(boots_before)
            .context("the driver logged no boot for the cold round")?;
        results.cold.push(took);
        results.nova.push(nova);
        results.nest.push(took.saturating_sub(nova));
        delete(&svc, &demo_token, &id).await?;
        // Until its server is retired: the next round boots anew.
        let deadline = Instant::now() + ROUND_TIMEOUT;
        while cleanup.servers().len() > 1 {
            anyhow::ensure!(Instant::now() < deadline, "the cold server was not retired");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    delete(&svc, &demo_token, &anchor).await?;
    drop(svc);
    drop(hypervisor);
    drop(cleanup);
    Ok(results)
}

fn report(warm: usize, cold: usize, r: &Results) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("create → Running with the nova driver: N = {warm} warm, M = {cold} cold rounds");
    println!(
        "cold = a new Nova server booted for the container; Nova = the driver's POST /servers → ACTIVE"
    );
    println!();
    println!(
        "{:<24}{:>12}{:>12}{:>12}",
        "series", "median ms", "p99 ms", "mean ms"
    );
    for (name, samples) in [
        ("warm (instance up)", &r.warm),
        ("cold (new server)", &r.cold),
        ("  of which Nova's boot", &r.nova),
        ("  of which Nest's own", &r.nest),
    ] {
        let s = Summary::of(samples);
        println!(
            "{name:<24}{:>12.1}{:>12.1}{:>12.1}",
            ms(s.median),
            ms(s.p99),
            ms(s.mean)
        );
    }
    let (w, c, n) = (
        Summary::of(&r.warm),
        Summary::of(&r.cold),
        Summary::of(&r.nest),
    );
    println!();
    println!("cold / warm (median): {:.2}x", ratio(c.median, w.median));
    println!(
        "Nest's own share of cold (median): {:.0}%",
        100.0 * ratio(n.median, c.median)
    );
}
