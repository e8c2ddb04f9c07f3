//! What goes wrong in an instance is reported, bounded and recovered from:
//! end to end through the real nest-service on the `local` driver.

use std::time::Duration;

use nest_tests::service::{ALPHA, ServiceOptions, ServiceProcess};
use reqwest::Method;
use serde_json::json;

const BOOT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_whose_image_cannot_be_pulled_ends_in_error_with_the_pull_error() {
    let svc = ServiceProcess::start_with(ServiceOptions {
        scheduler_extra: "create_attempts = 3\ncreate_retry_delay = \"1s\"\n".into(),
        ..Default::default()
    })
    .await;
    // Nothing listens on port 9 of the instance's own loopback.
    let image = "127.0.0.1:9/nest-missing/app:1";
    let (code, view) = svc
        .call(
            ALPHA,
            Method::POST,
            "/v1/containers?run=true",
            Some(json!({"image": image, "name": "unpullable", "memory": "64"})),
        )
        .await;
    assert_eq!(code, 202, "{view}");
    let id = view["uuid"].as_str().expect("uuid").to_owned();

    // While it retries, its reason says what it waits for...
    let mut saw_retrying = None;
    let deadline = tokio::time::Instant::now() + BOOT;
    let last = loop {
        let (code, view) = svc
            .call(ALPHA, Method::GET, &format!("/v1/containers/{id}"), None)
            .await;
        assert_eq!(code, 200, "{view}");
        let reason = view["status_reason"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if view["status"] == "Creating" && reason.starts_with("retrying") {
            saw_retrying = Some(reason);
        }
        if view["status"] != "Creating" {
            break view;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still Creating after {BOOT:?}: {view}\n{}",
            svc.log_text()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let retrying = saw_retrying.expect("a retrying reason was shown");
    assert!(
        retrying.contains("tries failed") && retrying.contains(image),
        "{retrying}"
    );
    // ... and after the last try it ends in Error with the pull's reason.
    assert_eq!(last["status"], "Error", "{last}");
    let reason = last["status_reason"].as_str().expect("a reason");
    assert!(reason.contains(image), "{reason}");
    assert!(reason.contains("gave up after 3 tries"), "{reason}");
    assert!(
        reason.contains("connection refused") || reason.contains("dial tcp"),
        "the engine's own words: {reason}"
    );
    // Deleting it leaves nothing behind.
    let (code, body) = svc
        .call(ALPHA, Method::DELETE, &format!("/v1/containers/{id}"), None)
        .await;
    assert_eq!(code, 204, "{body}");
}
