//! Benchmark (not a test) of one command's round trip through the relay:
//! service-side `RelayClient` → `nest-relay` → `nest-agent` → dockerd, next
//! to the same engine call made directly with bollard, in the same run.
//!
//! Four operations are measured, interleaved round-robin (the starting
//! operation rotates every iteration) so that machine noise hits all of
//! them alike:
//! - relay ping: `command::Kind::Ping`, which the agent answers by calling
//!   the engine's `/_ping`, so it is relay + agent + engine `/_ping`;
//! - relay inspect: `command::Kind::Inspect` of one running container;
//! - direct ping: bollard `ping()` (`/_ping`);
//! - direct inspect: bollard `inspect_container` of the same container.
//!
//! It reports the median, p99 and mean of each, and the relay/direct ratios.
//! Nothing is asserted: timings depend on the machine.
//!
//! # Running it
//! The relay and the agent are the real binaries, found next to the bench
//! executable, so build them in the release profile first:
//!
//! ```text
//! cargo build --release --workspace --bins
//! cargo bench -p nest-tests --bench relay_roundtrip
//! ```
//!
//! It needs the Docker engine at `/var/run/docker.sock` and Debian's
//! busybox-static (for the test image), like the end-to-end tests.
//! `NEST_BENCH_ITERATIONS` sets the number of measured iterations (default
//! `DEFAULT_ITERATIONS`); `NEST_TEST_LOG` sets the relay's and the agent's
//! `RUST_LOG`.

use std::collections::HashSet;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bollard::Docker;
use nest_core::ids::InstanceId;
use nest_relay::proto::{self, command, command_output};
use nest_tests::bench::{Summary, count_from_env, ratio};
use nest_tests::docker::{self, Cleanup, TEST_IMAGE};
use nest_tests::{AgentProcess, RelayProcess, TestPki, TestService, any_loopback, unique};

/// Measured iterations of each operation unless `NEST_BENCH_ITERATIONS` says otherwise.
const DEFAULT_ITERATIONS: usize = 1000;
/// Unmeasured iterations of each operation first: connections, caches, JIT-free warm paths.
const WARMUP_ITERATIONS: usize = 50;
/// Environment variable overriding `DEFAULT_ITERATIONS`.
const ITERATIONS_VAR: &str = "NEST_BENCH_ITERATIONS";
/// Per-command timeout of the relay calls; far above any expected latency.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the agent may take to enroll and connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Lifetime of the agent's certificate; longer than any run.
const AGENT_CERT_LIFETIME: Duration = Duration::from_secs(3600);
/// bollard's timeout for direct engine calls, in seconds (its unit).
const DOCKER_TIMEOUT_SECS: u64 = 120;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("relay_roundtrip benchmark failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let iterations = count_from_env(ITERATIONS_VAR, DEFAULT_ITERATIONS)?;
    // Synchronous (it runs the docker CLI), so before the runtime starts.
    docker::ensure_test_image();
    let instance = InstanceId::parse(&unique("bench")).context("build an instance id")?;
    // Dropped last, after the runtime: removes the container even when a
    // step fails.
    let _cleanup = Cleanup(vec![instance.to_string()]);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("build the tokio runtime")?;
    let results = runtime.block_on(bench(&instance, iterations))?;
    drop(runtime);
    print_report(iterations, &results);
    Ok(())
}

/// The four measured operations, in round-robin order.
#[derive(Clone, Copy, Debug)]
enum Op {
    RelayPing,
    RelayInspect,
    DirectPing,
    DirectInspect,
}

impl Op {
    const ALL: [Op; 4] = [
        Op::RelayPing,
        Op::RelayInspect,
        Op::DirectPing,
        Op::DirectInspect,
    ];

    fn label(self) -> &'static str {
        match self {
            Op::RelayPing => "relay ping",
            Op::RelayInspect => "relay inspect",
            Op::DirectPing => "direct ping",
            Op::DirectInspect => "direct inspect",
        }
    }

    fn index(self) -> usize {
        match self {
            Op::RelayPing => 0,
            Op::RelayInspect => 1,
            Op::DirectPing => 2,
            Op::DirectInspect => 3,
        }
    }
}

/// The processes and clients the operations run through.
struct Rig {
    // Field order is drop order: the agent before the relay.
    agent: AgentProcess,
    service: TestService,
    _relay: RelayProcess,
    _pki: TestPki,
    engine: Docker,
    /// The container's uuid, as Nest knows it.
    uuid: String,
    /// The container's engine id, for direct calls.
    docker_id: String,
}

impl Rig {
    async fn start(instance: &InstanceId) -> anyhow::Result<Self> {
        let pki = TestPki::new();
        let relay = RelayProcess::start(&pki, any_loopback()).await;
        let service = TestService::attach(&pki, &relay.dial_addr(), AGENT_CERT_LIFETIME).await;
        let token = service.token_for(instance);
        let agent = AgentProcess::start(pki.dir.path(), &pki, &relay.dial_addr(), instance, &token);
        service
            .wait_connected(instance, &HashSet::new(), CONNECT_TIMEOUT)
            .await;

        let uuid = unique("bench-c");
        let created = service
            .client
            .execute(
                instance,
                &unique("req-create"),
                command::Kind::Create(proto::CreateContainer {
                    spec: Some(proto::ContainerSpec {
                        uuid: uuid.clone(),
                        image: TEST_IMAGE.to_owned(),
                        command: vec!["sleep".to_owned(), "3600".to_owned()],
                        ..Default::default()
                    }),
                    start: true,
                    pull_missing: false,
                }),
                COMMAND_TIMEOUT,
            )
            .await
            .context("create the benchmark container through the relay")?;
        let docker_id = match created {
            command_output::Kind::Container(state) if state.running => state.docker_id,
            other => bail!("expected a running container from create, got {other:?}"),
        };

        let engine = Docker::connect_with_unix(
            docker::SOCKET,
            DOCKER_TIMEOUT_SECS,
            bollard::API_DEFAULT_VERSION,
        )
        .with_context(|| format!("connect to the engine at {}", docker::SOCKET))?
        .negotiate_version()
        .await
        .context("negotiate the engine API version")?;

        Ok(Self {
            agent,
            service,
            _relay: relay,
            _pki: pki,
            engine,
            uuid,
            docker_id,
        })
    }

    /// Runs `op` once and checks that it succeeded with the expected answer.
    /// `request_id` is used by the relay operations only.
    async fn run(&self, op: Op, request_id: &str) -> anyhow::Result<()> {
        match op {
            Op::RelayPing => match self
                .relay(request_id, command::Kind::Ping(proto::Ping {}))
                .await?
            {
                command_output::Kind::Pong(_) => Ok(()),
                other => bail!("relay ping: expected a pong, got {other:?}"),
            },
            Op::RelayInspect => match self
                .relay(
                    request_id,
                    command::Kind::Inspect(proto::ContainerRef {
                        uuid: self.uuid.clone(),
                    }),
                )
                .await?
            {
                command_output::Kind::Container(state) if state.running => Ok(()),
                other => bail!("relay inspect: expected a running container, got {other:?}"),
            },
            Op::DirectPing => {
                self.engine.ping().await.context("direct engine ping")?;
                Ok(())
            }
            Op::DirectInspect => {
                self.engine
                    .inspect_container(&self.docker_id, None)
                    .await
                    .with_context(|| format!("direct engine inspect of {}", self.docker_id))?;
                Ok(())
            }
        }
    }

    async fn relay(
        &self,
        request_id: &str,
        kind: command::Kind,
    ) -> anyhow::Result<command_output::Kind> {
        self.service
            .client
            .execute(&self.agent.instance, request_id, kind, COMMAND_TIMEOUT)
            .await
            .with_context(|| format!("relay command {request_id}"))
    }
}

/// Sets up the rig, warms up, then measures every operation `iterations`
/// times. Returns the samples of each operation, in `Op::ALL` order.
async fn bench(instance: &InstanceId, iterations: usize) -> anyhow::Result<[Vec<Duration>; 4]> {
    let rig = Rig::start(instance).await?;
    println!(
        "setup done: relay, agent {instance} and container {} running; warming up ({WARMUP_ITERATIONS} iterations)",
        rig.uuid
    );
    rounds(&rig, "warmup", WARMUP_ITERATIONS, None).await?;
    println!("measuring ({iterations} iterations of each operation)");
    let mut samples: [Vec<Duration>; 4] = std::array::from_fn(|_| Vec::with_capacity(iterations));
    rounds(&rig, "bench", iterations, Some(&mut samples)).await?;
    Ok(samples)
}

/// Runs `iterations` rounds of all four operations, rotating which goes
/// first, and records each duration in `samples` when given.
async fn rounds(
    rig: &Rig,
    phase: &str,
    iterations: usize,
    mut samples: Option<&mut [Vec<Duration>; 4]>,
) -> anyhow::Result<()> {
    for i in 0..iterations {
        for k in 0..Op::ALL.len() {
            let op = Op::ALL[(i + k) % Op::ALL.len()];
            // Built before the clock starts: only the round trip is timed.
            let request_id = format!("req-{phase}-{i}-{}", op.index());
            let started = Instant::now();
            rig.run(op, &request_id).await?;
            let elapsed = started.elapsed();
            if let Some(samples) = samples.as_deref_mut() {
                samples[op.index()].push(elapsed);
            }
        }
    }
    Ok(())
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn print_report(iterations: usize, samples: &[Vec<Duration>; 4]) {
    let cores = std::thread::available_parallelism()
        .map_or_else(|_| "unknown".to_owned(), |n| n.to_string());
    let summaries: Vec<Summary> = samples.iter().map(|s| Summary::of(s)).collect();
    println!();
    println!(
        "relay round trip: N = {iterations} per operation (after {WARMUP_ITERATIONS} warm-up), {cores} cores"
    );
    println!("ping = relay+agent+engine /_ping; inspect = one running container");
    println!();
    println!(
        "{:<16} {:>12} {:>12} {:>12}",
        "operation", "median µs", "p99 µs", "mean µs"
    );
    for op in Op::ALL {
        let s = &summaries[op.index()];
        println!(
            "{:<16} {:>12.1} {:>12.1} {:>12.1}",
            op.label(),
            micros(s.median),
            micros(s.p99),
            micros(s.mean)
        );
    }
    println!();
    println!("{:<16} {:>12} {:>12}", "relay / direct", "median", "p99");
    for (name, relay, direct) in [
        ("ping", Op::RelayPing, Op::DirectPing),
        ("inspect", Op::RelayInspect, Op::DirectInspect),
    ] {
        let (r, d) = (&summaries[relay.index()], &summaries[direct.index()]);
        println!(
            "{:<16} {:>11.2}x {:>11.2}x",
            name,
            ratio(r.median, d.median),
            ratio(r.p99, d.p99)
        );
    }
}
