//! A bounded fuzz run of the REST API from its own OpenAPI document, with
//! schemathesis (from PyPI, in a virtualenv scripts/test.sh makes): no
//! answer may be a 5xx, nor have a status or content type the document
//! does not list.
//!
//! The service's instances cannot boot here (its agent binary does not
//! exist), so creates the fuzzer gets accepted fail fast instead of
//! booting namespaces.

use std::path::PathBuf;
use std::time::Duration;

use nest_tests::service::{ALPHA, ServiceOptions, ServiceProcess};

/// The fuzz run's time budget, seconds (`NEST_FUZZ_SECONDS`).
const DEFAULT_BUDGET_SECONDS: u64 = 120;

fn schemathesis() -> PathBuf {
    let path = PathBuf::from(
        std::env::var("NEST_SCHEMATHESIS_BIN")
            .unwrap_or_else(|_| "/opt/nest-schemathesis/bin/st".into()),
    );
    assert!(
        path.exists(),
        "{} is missing: install schemathesis in a virtualenv \
         (`python3 -m venv /opt/nest-schemathesis && /opt/nest-schemathesis/bin/pip install schemathesis`; \
         scripts/test.sh does this) or set NEST_SCHEMATHESIS_BIN",
        path.display()
    );
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_fuzzed_requests_only_as_its_document_says() {
    let st = schemathesis();
    let budget: u64 = std::env::var("NEST_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_BUDGET_SECONDS);
    let svc = ServiceProcess::start_with(ServiceOptions {
        extra: "agent_binary = \"/nonexistent/nest-agent\"\n".into(),
        ..Default::default()
    })
    .await;
    let report = svc.dir().join("schemathesis");
    let run = tokio::process::Command::new(st)
        .arg("run")
        .arg(format!("{}/openapi.json", svc.url))
        .args(["--url", &svc.url])
        .args(["--header", &format!("X-Auth-Token: {ALPHA}")])
        .args(["--header", "OpenStack-API-Version: container 1.40"])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance",
        ])
        .args(["--max-time", &budget.to_string()])
        .args(["--request-timeout", "30"])
        .args(["--workers", "2"])
        .args(["--seed", "1"])
        .args(["--generation-database", "none"])
        .arg("--report-dir")
        .arg(&report)
        // Its caches go to the test's own directory, never the checkout.
        .current_dir(svc.dir())
        .env("NO_COLOR", "1")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(budget + 120), run)
        .await
        .expect("schemathesis ends within its budget")
        .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("passed"), "{stdout}");
}
