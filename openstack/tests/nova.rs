//! Conformance of the Nova, Neutron and Glance clients against the real
//! lab (`../shared/openstack-lab/up.sh`): a trust from `demo` to the
//! service user, a server booted through it in demo's project with
//! metadata, tags and user data, a floating IP from `public`, limits, and
//! Nova's own words when it refuses. Fails loudly without the lab.

use std::collections::BTreeMap;
use std::time::Duration;

use nest_core::duration::HumanDuration;
use nest_core::{ErrorKind, RequestId, Secret};
use nest_openstack::compute::{ServerCreate, ServerNetworks, ServerQuery};
use nest_openstack::{
    Compute, Image, Interface, Network, OpenStackError, Session, SessionConfig, SessionOptions,
    TenantAuthority, TrustRequest,
};
use serde_json::{Value, json};

const AUTH_URL: &str = "http://127.0.0.1:5000/v3";
const CALL_TIMEOUT: Duration = Duration::from_secs(20);
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(60);

fn config(user: &str, password: &str, project: &str) -> SessionConfig {
    let mut config =
        SessionConfig::password(AUTH_URL, user, Secret::new(password.to_owned()), project);
    config.request_timeout = HumanDuration(CALL_TIMEOUT);
    config
}

/// demo's own token, user id and project id, as the API would see them.
async fn demo_token() -> (Secret<String>, String, String) {
    let http = reqwest::Client::new();
    let response = http
        .post(format!("{AUTH_URL}/auth/tokens"))
        .json(&json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": "demo", "domain": {"name": "Default"}, "password": "demopass"}}},
            "scope": {"project": {"name": "demo", "domain": {"name": "Default"}}}
        }}))
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "Keystone is not reachable at {AUTH_URL} ({e}): start ../shared/openstack-lab/up.sh"
            )
        });
    assert_eq!(response.status().as_u16(), 201, "demo logs in");
    let token = response
        .headers()
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .expect("a token")
        .to_owned();
    let body: Value = response.json().await.expect("a token body");
    let id = |p: &str| {
        body.pointer(p)
            .and_then(Value::as_str)
            .expect("an id")
            .to_owned()
    };
    (
        Secret::new(token),
        id("/token/user/id"),
        id("/token/project/id"),
    )
}

#[tokio::test]
async fn a_trust_boots_addresses_and_deletes_a_server_in_the_tenants_project() {
    let service = Session::new(
        &config("admin", "adminpass", "admin"),
        SessionOptions::default(),
    )
    .await
    .expect("a valid config");
    let rid = RequestId::generate();
    let (token, demo_user, demo_project) = demo_token().await;
    let trust_id = service
        .create_trust(
            &token,
            &TrustRequest {
                trustor_user_id: demo_user,
                trustee_user_id: service.user_id().await.expect("the service user's id"),
                project_id: demo_project.clone(),
                roles: vec!["member".into()],
            },
            &rid,
        )
        .await
        .expect("demo delegates to the service user");
    let _revoke = RevokeTrust {
        url: format!("{AUTH_URL}/OS-TRUST/trusts/{trust_id}"),
        token: token.expose().clone(),
    };
    let tenant = service
        .for_tenant(&TenantAuthority::Trust { trust_id })
        .expect("a password session takes a trust");
    assert_eq!(
        tenant.project_id().await.expect("a trust login"),
        Some(demo_project.clone())
    );

    let compute = Compute::connect(&tenant, Interface::Public, Some("RegionOne"))
        .await
        .expect("nova in the catalog");
    let network = Network::connect(&tenant, Interface::Public, Some("RegionOne"))
        .await
        .expect("neutron in the catalog");
    let image = Image::connect(&tenant, Interface::Public, Some("RegionOne"))
        .await
        .expect("glance in the catalog");
    let flavor = compute
        .find_flavor("m1.tiny", &rid)
        .await
        .expect("flavors answer")
        .expect("m1.tiny exists");
    assert_eq!(
        (flavor.id.as_str(), flavor.vcpus, flavor.ram),
        ("1", 1, 512)
    );
    assert!(
        compute
            .find_flavor("m1.nope", &rid)
            .await
            .expect("answers")
            .is_none()
    );
    let fake_image = image
        .find_image("fake-image", &rid)
        .await
        .expect("glance answers")
        .expect("the lab's image");
    let private = network
        .find_network("private", &rid)
        .await
        .expect("neutron answers")
        .expect("the lab's private network");
    let public = network
        .find_network("public", &rid)
        .await
        .expect("neutron answers")
        .expect("the lab's public network");
    assert!(public.external);
    assert!(
        network
            .find_network("nope", &rid)
            .await
            .expect("answers")
            .is_none()
    );

    // Nova's refusal comes back in its own words.
    let tag = format!("nest-conformance-{}", std::process::id());
    let mut create = ServerCreate {
        name: tag.clone(),
        flavor_ref: "no-such-flavor".into(),
        image_ref: fake_image.id.clone(),
        networks: ServerNetworks::Networks(vec![private.id.clone()]),
        availability_zone: None,
        key_name: None,
        user_data: Some("I2Nsb3VkLWNvbmZpZwo=".into()),
        metadata: BTreeMap::from([("nest_instance_id".to_owned(), tag.clone())]),
        tags: vec![tag.clone()],
    };
    let err = compute
        .create_server(&create, Duration::from_secs(60), &rid)
        .await
        .expect_err("an unknown flavor");
    assert_eq!(err.kind(), ErrorKind::Invalid, "{err}");
    assert!(
        matches!(&err, OpenStackError::Refused { status: 400, message, .. } if message.contains("no-such-flavor")),
        "{err}"
    );

    create.flavor_ref = flavor.id.clone();
    let id = compute
        .create_server(&create, Duration::from_secs(60), &rid)
        .await
        .expect("a boot");
    let deadline = tokio::time::Instant::now() + ACTIVE_TIMEOUT;
    let server = loop {
        let server = compute
            .server(&id, &rid)
            .await
            .expect("nova answers")
            .expect("the server exists");
        if server.is_active() {
            break server;
        }
        assert!(!server.is_error(), "the server failed: {:?}", server.fault);
        assert!(tokio::time::Instant::now() < deadline, "not ACTIVE in time");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(server.tenant_id, demo_project);
    assert_eq!(server.metadata.get("nest_instance_id"), Some(&tag));
    assert!(server.tags.contains(&tag), "{:?}", server.tags);
    assert_eq!(server.user_data, None, "only admins read user data");
    assert_eq!(server.addresses_of("private", "fixed").count(), 1);
    let listed = compute
        .servers(
            &ServerQuery {
                tags: vec![tag.clone()],
                all_tenants: false,
            },
            &rid,
        )
        .await
        .expect("a listing");
    assert_eq!(
        listed.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        [id.as_str()]
    );

    let ports = network.server_ports(&id, &rid).await.expect("ports");
    assert_eq!(ports.len(), 1);
    let fip = network
        .create_floating_ip(&public.id, &ports[0].id, &tag, &rid)
        .await
        .expect("a floating IP");
    assert!(fip.floating_ip_address.starts_with("203.0.113."), "{fip:?}");
    let described = network
        .floating_ips_described(&tag, &rid)
        .await
        .expect("floating IPs");
    assert_eq!(described, std::slice::from_ref(&fip));

    let limits = compute.limits(None, &rid).await.expect("limits");
    assert!(limits.total_instances_used >= 1, "{limits:?}");
    assert!(limits.total_cores_used >= 1, "{limits:?}");

    assert!(
        network
            .delete_floating_ip(&fip.id, &rid)
            .await
            .expect("released")
    );
    assert!(
        !network
            .delete_floating_ip(&fip.id, &rid)
            .await
            .expect("already gone")
    );
    assert!(compute.delete_server(&id, &rid).await.expect("deleted"));
    let deadline = tokio::time::Instant::now() + ACTIVE_TIMEOUT;
    while compute.server(&id, &rid).await.expect("answers").is_some() {
        assert!(tokio::time::Instant::now() < deadline, "not gone in time");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        !compute
            .delete_server(&id, &rid)
            .await
            .expect("already gone")
    );
}

/// Deletes the test's trust with the trustor's token, even on panic.
struct RevokeTrust {
    url: String,
    token: String,
}

impl Drop for RevokeTrust {
    fn drop(&mut self) {
        let (url, token) = (self.url.clone(), self.token.clone());
        // A plain thread: Drop cannot await, and the runtime may be gone.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async {
                let _ = reqwest::Client::new()
                    .delete(url)
                    .header("x-auth-token", token)
                    .send()
                    .await;
            });
        })
        .join();
    }
}
