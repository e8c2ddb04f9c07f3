//! The container service's behaviour, proved against the real application
//! (store over SQLite, scheduler, reconciler, [`App`]) with fakes only at
//! its true seams: the agents ([`FakeAgents`]) and the instance driver
//! ([`FakeDriver`]). The tests call the application directly, not HTTP.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::time::Duration;

use nest_core::ErrorKind;
use nest_core::testing::eventually;
use nest_service::agents::{AgentAction, CreateRequest};
use nest_service::app::{
    AppError, CallContext, ContainerAction, ContainerRef, DeleteOptions, ExecRequest, ExecResult,
    NewContainer,
};
use nest_service::auth::Caller;
use nest_service::domain::{
    Container, ContainerId, ContainerSpec, ContainerStatus, InstanceId, InstanceStatus, ProjectId,
    RequestId, UserId,
};
use nest_service::driver::DriverError;
use nest_service::testing::{AgentCall, AgentCommand, TestService};

/// Longest wait for the background work (placement, boot, create).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);

// === harness ===

async fn service() -> TestService {
    TestService::start()
        .await
        .unwrap_or_else(|e| panic!("the test service starts: {e:#?}"))
}

/// A call by a member of `project`, under a fresh request id.
fn member_of(project: &str) -> CallContext {
    CallContext {
        caller: Caller {
            user_id: UserId::parse(&format!("{project}-user")).expect("a valid user id"),
            project_id: ProjectId::parse(project).expect("a valid project id"),
            roles: BTreeSet::from(["member".to_owned()]),
        },
        request_id: RequestId::generate(),
    }
}

fn busybox(command: &[&str]) -> NewContainer {
    NewContainer {
        name: Some("web".into()),
        spec: ContainerSpec {
            image: "busybox".into(),
            command: command.iter().map(|s| (*s).to_owned()).collect(),
            cpu: 0.5,
            memory_mib: 64,
            ..Default::default()
        },
    }
}

async fn record(svc: &TestService, id: ContainerId) -> Container {
    svc.store()
        .get_container(id)
        .await
        .unwrap_or_else(|e| panic!("container {id} is recorded: {e}"))
}

/// Waits until the container's record has `status`, and returns it.
async fn settled(svc: &TestService, id: ContainerId, status: ContainerStatus) -> Container {
    eventually(
        SETTLE_TIMEOUT,
        &format!("container {id} {status}"),
        || async {
            let container = record(svc, id).await;
            (container.status == status).then_some(container)
        },
    )
    .await
}

/// Creates a container as `cx` and waits until it is `status`.
async fn created(
    svc: &TestService,
    cx: &CallContext,
    run: bool,
    status: ContainerStatus,
) -> Container {
    let info = svc
        .app()
        .create_container(cx, busybox(&["sleep", "1000"]), run)
        .await
        .unwrap_or_else(|e| panic!("create is accepted: {e}"));
    settled(svc, info.container.id, status).await
}

fn instance_of(container: &Container) -> InstanceId {
    container
        .instance_id
        .clone()
        .unwrap_or_else(|| panic!("container {} is placed", container.id))
}

fn is_remove(call: &AgentCall) -> bool {
    matches!(
        call.command,
        AgentCommand::Act {
            action: AgentAction::Remove { .. },
            ..
        }
    )
}

// === tests ===

#[tokio::test]
async fn a_created_container_runs_on_an_instance_booted_for_its_project() {
    let svc = service().await;
    let cx = member_of("project-a");

    let running = created(&svc, &cx, true, ContainerStatus::Running).await;

    let instance = instance_of(&running);
    let boots = svc.driver().boots();
    assert_eq!(boots.len(), 1, "{boots:?}");
    assert_eq!(boots[0].instance_id, instance);
    assert_eq!(boots[0].project_id, cx.caller.project_id);
    let recorded = eventually(SETTLE_TIMEOUT, "the instance's addresses", || async {
        let i = svc
            .store()
            .get_instance(&instance)
            .await
            .expect("the instance is recorded");
        (!i.addresses.is_empty()).then_some(i)
    })
    .await;
    assert_eq!(recorded.project_id, cx.caller.project_id);
    assert_eq!(recorded.status, InstanceStatus::Ready);
    assert_eq!(
        recorded.addresses,
        BTreeMap::from([("private".to_owned(), "10.0.0.1".to_owned())])
    );

    let engine = svc
        .agents()
        .container(running.id)
        .expect("the agent has the container");
    assert_eq!(engine.instance, instance);
    assert_eq!(engine.state.status, ContainerStatus::Running);
    assert_eq!(
        running.docker_id.as_deref(),
        Some(engine.state.docker_id.as_str())
    );
    assert_eq!(engine.state.docker_id.len(), 64);
    assert!(
        engine
            .state
            .docker_id
            .chars()
            .all(|c| c.is_ascii_hexdigit())
    );
    assert_eq!(running.status_reason, None);

    // The scheduler may try the create again before it sees the first
    // one recorded; the agent's conflict makes it adopt the container.
    // Either way every call carries the API call's request id.
    let calls = svc.agents().calls_for(running.id);
    assert_eq!(
        calls.first(),
        Some(&AgentCall {
            request_id: cx.request_id.clone(),
            instance: Some(instance),
            command: AgentCommand::Create(CreateRequest {
                container: running.id,
                name: "web".into(),
                spec: busybox(&["sleep", "1000"]).spec,
                start: true,
                pull_missing: true,
            }),
        })
    );
    assert!(
        calls.iter().all(|c| c.request_id == cx.request_id
            && matches!(
                c.command,
                AgentCommand::Create(_) | AgentCommand::Inspect { .. }
            )),
        "{calls:?}"
    );
    svc.stop().await;
}

#[tokio::test]
async fn another_projects_caller_cannot_see_or_change_a_container() {
    let svc = service().await;
    let owner = member_of("project-a");
    let running = created(&svc, &owner, true, ContainerStatus::Running).await;
    let reference = ContainerRef::Id(running.id);
    let stranger = member_of("project-b");

    let got = svc.app().show_container(&stranger, &reference, false).await;
    assert!(
        matches!(&got, Err(AppError::ContainerNotFound(r)) if *r == reference),
        "{got:?}"
    );
    let stopped = svc
        .app()
        .act_on_container(
            &stranger,
            &reference,
            ContainerAction::Stop { timeout: None },
        )
        .await;
    assert!(
        matches!(&stopped, Err(AppError::ContainerNotFound(r)) if *r == reference),
        "{stopped:?}"
    );
    let options = DeleteOptions {
        force: true,
        stop: true,
        all_projects: false,
    };
    let deleted = svc
        .app()
        .delete_container(&stranger, &reference, options)
        .await;
    assert!(
        matches!(&deleted, Err(AppError::ContainerNotFound(r)) if *r == reference),
        "{deleted:?}"
    );

    // Nothing changed: the record, the engine, and what the agent was asked.
    assert_eq!(record(&svc, running.id).await, running);
    let engine = svc
        .agents()
        .container(running.id)
        .expect("still on its agent");
    assert_eq!(engine.state.status, ContainerStatus::Running);
    let calls = svc.agents().calls_for(running.id);
    assert!(
        calls.iter().all(|c| c.request_id == owner.request_id
            && matches!(
                c.command,
                AgentCommand::Create(_) | AgentCommand::Inspect { .. }
            )),
        "only the create reached the agent: {calls:?}"
    );
    assert!(
        svc.agents()
            .calls()
            .iter()
            .all(|c| c.request_id != stranger.request_id)
    );
    svc.stop().await;
}

#[tokio::test]
async fn stop_stops_a_running_container_on_its_agent() {
    let svc = service().await;
    let cx = member_of("project-a");
    let running = created(&svc, &cx, true, ContainerStatus::Running).await;

    let stop = member_of("project-a");
    svc.app()
        .act_on_container(
            &stop,
            &ContainerRef::Id(running.id),
            ContainerAction::Stop { timeout: None },
        )
        .await
        .unwrap_or_else(|e| panic!("stop succeeds: {e}"));

    let stopped = record(&svc, running.id).await;
    assert_eq!(stopped.status, ContainerStatus::Stopped);
    assert_eq!(stopped.status_reason.as_deref(), Some("exited with code 0"));
    assert!(!stopped.desired_running);
    let engine = svc
        .agents()
        .container(running.id)
        .expect("still on its agent");
    assert_eq!(engine.state.status, ContainerStatus::Stopped);
    let last = svc.agents().calls_for(running.id).pop().expect("a call");
    assert_eq!(
        last,
        AgentCall {
            request_id: stop.request_id.clone(),
            instance: Some(instance_of(&running)),
            command: AgentCommand::Act {
                container: running.id,
                action: AgentAction::Stop { timeout: None },
            },
        }
    );
    svc.stop().await;
}

#[tokio::test]
async fn exec_returns_what_the_command_printed() {
    let svc = service().await;
    let cx = member_of("project-a");
    let running = created(&svc, &cx, true, ContainerStatus::Running).await;

    let exec = member_of("project-a");
    let request = ExecRequest {
        command: vec!["echo".into(), "hello".into()],
        options: Default::default(),
        run: true,
        interactive: false,
    };
    let outcome = svc
        .app()
        .execute(&exec, &ContainerRef::Id(running.id), request)
        .await
        .unwrap_or_else(|e| panic!("exec succeeds: {e}"));

    assert_eq!(outcome.container_id, running.id);
    assert_eq!(
        outcome.result,
        ExecResult::Finished {
            output: "echo hello\n".into(),
            exit_code: 0,
        }
    );
    let last = svc.agents().calls_for(running.id).pop().expect("a call");
    assert_eq!(last.request_id, exec.request_id);
    assert!(
        matches!(last.command, AgentCommand::Exec { .. }),
        "{last:?}"
    );
    assert_eq!(
        record(&svc, running.id).await,
        running,
        "exec changes nothing"
    );
    svc.stop().await;
}

#[tokio::test]
async fn delete_removes_the_container_from_its_agent_and_the_database() {
    let svc = service().await;
    let cx = member_of("project-a");
    let running = created(&svc, &cx, true, ContainerStatus::Running).await;

    let delete = member_of("project-a");
    let options = DeleteOptions {
        force: false,
        stop: true,
        all_projects: false,
    };
    svc.app()
        .delete_container(&delete, &ContainerRef::Id(running.id), options)
        .await
        .unwrap_or_else(|e| panic!("delete is accepted: {e}"));

    eventually(SETTLE_TIMEOUT, "the record to go", || async {
        match svc.store().get_container(running.id).await {
            Err(e) if e.kind() == ErrorKind::NotFound => Some(()),
            _ => None,
        }
    })
    .await;
    assert_eq!(svc.agents().container(running.id), None);
    let removes: Vec<AgentCall> = svc
        .agents()
        .calls_for(running.id)
        .into_iter()
        .filter(is_remove)
        .collect();
    assert_eq!(removes.len(), 1, "{removes:?}");
    assert_eq!(removes[0].request_id, delete.request_id);
    let got = svc
        .app()
        .show_container(&cx, &ContainerRef::Id(running.id), false)
        .await;
    assert!(
        matches!(got, Err(AppError::ContainerNotFound(_))),
        "{got:?}"
    );
    svc.stop().await;
}

#[tokio::test]
async fn start_answers_unavailable_while_the_agent_is_offline() {
    let svc = service().await;
    let cx = member_of("project-a");
    let created = created(&svc, &cx, false, ContainerStatus::Created).await;
    let instance = instance_of(&created);
    svc.agents().set_offline(&instance, true).await;

    let start = member_of("project-a");
    let started = svc
        .app()
        .act_on_container(
            &start,
            &ContainerRef::Id(created.id),
            ContainerAction::Start,
        )
        .await;

    let error = started.expect_err("start fails while the agent is away");
    assert_eq!(error.kind(), ErrorKind::Unavailable, "{error:?}");
    let after = record(&svc, created.id).await;
    assert_eq!(
        (
            after.status,
            after.docker_id.as_deref(),
            after.desired_running
        ),
        (
            ContainerStatus::Created,
            created.docker_id.as_deref(),
            false
        )
    );
    let engine = svc
        .agents()
        .container(created.id)
        .expect("still on its agent");
    assert_eq!(engine.state.status, ContainerStatus::Created);
    svc.stop().await;
}

#[tokio::test]
async fn a_refused_boot_fails_the_container_with_the_drivers_reason() {
    let svc = service().await;
    svc.driver().fail_next_boot(DriverError::OverQuota {
        reason: "cores".into(),
    });
    let cx = member_of("project-a");

    let failed = created(&svc, &cx, true, ContainerStatus::Error).await;

    let reason = failed.status_reason.clone().unwrap_or_default();
    assert!(reason.contains("over quota: cores"), "{reason}");
    assert_eq!(failed.docker_id, None);
    assert!(svc.driver().instances().is_empty());
    assert!(svc.agents().calls_for(failed.id).is_empty());
    eventually(
        SETTLE_TIMEOUT,
        "the failed instance's record to go",
        || async {
            let instances = svc
                .store()
                .list_instances(None)
                .await
                .expect("instances are readable");
            instances.is_empty().then_some(())
        },
    )
    .await;
    svc.stop().await;
}

#[tokio::test]
async fn only_an_admin_may_name_the_instance_a_container_goes_to() {
    let svc = service().await;
    let member = member_of("project-a");
    let mut on_host = busybox(&["sleep", "1000"]);
    on_host
        .spec
        .hints
        .insert("host".into(), "6f1c1c3e-2b7a-4d7e-9a52-0d1f3c2b1a00".into());

    let refused = svc
        .app()
        .create_container(&member, on_host.clone(), true)
        .await;
    match refused {
        Err(AppError::PolicyNotAuthorized(rule)) => {
            assert_eq!(rule, "container:create:requested_destination");
        }
        other => panic!("a member's host hint is refused by policy: {other:?}"),
    }
    let stored = svc
        .store()
        .containers_in_status(ContainerStatus::Creating)
        .await
        .expect("containers are readable");
    assert!(stored.is_empty(), "nothing was stored: {stored:?}");
    assert!(svc.driver().boots().is_empty(), "nothing was booted");

    let mut admin = member_of("project-a");
    admin.caller.roles = BTreeSet::from(["admin".to_owned()]);
    svc.app()
        .create_container(&admin, on_host, false)
        .await
        .unwrap_or_else(|e| panic!("an admin may name the instance: {e}"));
    svc.stop().await;
}

// === agents without user-defined network support ===

/// A container of `cx`'s project on `network` (none: the default bridge),
/// running once created.
async fn on_network(
    svc: &TestService,
    cx: &CallContext,
    name: &str,
    network: Option<&nest_service::domain::Network>,
) -> ContainerId {
    let mut new = busybox(&["sleep", "1000"]);
    new.name = Some(name.into());
    new.spec.networks = network
        .map(|n| {
            vec![nest_service::domain::NetworkAttachment {
                network: n.id,
                aliases: Vec::new(),
            }]
        })
        .unwrap_or_default();
    svc.app()
        .create_container(cx, new, true)
        .await
        .unwrap_or_else(|e| panic!("create is accepted: {e}"))
        .container
        .id
}

fn old_agent_reason(instance: &InstanceId) -> String {
    format!(
        "instance {instance} runs an agent without user-defined network support (agent version 0.9.0); \
         upgrade its agent, or remove the network's containers there"
    )
}

#[tokio::test]
async fn networked_containers_never_go_to_an_agent_without_network_support() {
    let svc = service().await;
    let cx = member_of("project-a");
    let back = svc
        .app()
        .create_network(
            &cx,
            nest_service::app::NewNetwork {
                name: "back".into(),
                labels: BTreeMap::new(),
            },
        )
        .await
        .expect("the network is created");

    // The project's first instance turns out to run an older agent.
    let plain = created(&svc, &cx, true, ContainerStatus::Running).await;
    let old = instance_of(&plain);
    svc.agents().connect_as(&old, "0.9.0", &[]).await;
    svc.events_applied().await;

    // A networked container is not placed there, though it has room: an
    // instance is booted for it, with this build's agent.
    let db = on_network(&svc, &cx, "db", Some(&back)).await;
    let db = settled(&svc, db, ContainerStatus::Running).await;
    let home = instance_of(&db);
    assert_ne!(home, old);
    // The network's home gets an old agent: the next container of the
    // network fails, saying what to do, and is created nowhere.
    svc.agents().connect_as(&home, "0.9.0", &[]).await;
    svc.events_applied().await;
    let web = on_network(&svc, &cx, "front", Some(&back)).await;
    let web = settled(&svc, web, ContainerStatus::Error).await;
    assert_eq!(
        web.status_reason.as_deref(),
        Some(old_agent_reason(&home).as_str())
    );
    assert!(svc.agents().container(web.id).is_none());
    // Containers without networks still go to the old agents (both
    // instances have room: nothing is booted for it).
    let plain2 = on_network(&svc, &cx, "plain2", None).await;
    let plain2 = settled(&svc, plain2, ContainerStatus::Running).await;
    assert!([&old, &home].contains(&&instance_of(&plain2)), "{plain2:?}");
    // An agent that lists the feature again takes networked containers.
    svc.agents()
        .connect_as(&home, "1.0.0", &["networks", "later-feature"])
        .await;
    svc.events_applied().await;
    let api = on_network(&svc, &cx, "api", Some(&back)).await;
    let api = settled(&svc, api, ContainerStatus::Running).await;
    assert_eq!(instance_of(&api), home);
    svc.stop().await;
}

#[tokio::test]
async fn a_networked_container_waiting_for_a_boot_fails_when_its_agent_is_old() {
    let svc = service().await;
    let cx = member_of("project-a");
    let back = svc
        .app()
        .create_network(
            &cx,
            nest_service::app::NewNetwork {
                name: "back".into(),
                labels: BTreeMap::new(),
            },
        )
        .await
        .expect("the network is created");
    // The instances' image carries an agent older than networks.
    svc.agents().set_default_release("0.9.0", &[]);

    let db = on_network(&svc, &cx, "db", Some(&back)).await;
    let db = settled(&svc, db, ContainerStatus::Error).await;
    let instance = instance_of(&db);
    assert_eq!(
        db.status_reason.as_deref(),
        Some(old_agent_reason(&instance).as_str())
    );
    assert!(svc.agents().container(db.id).is_none());
    let plain = on_network(&svc, &cx, "plain", None).await;
    settled(&svc, plain, ContainerStatus::Running).await;
    svc.stop().await;
}

/// Creates a container with `options` on instances whose agent is
/// `release` listing `features`, and checks it fails with the reason that
/// names `what` it lacks and what to do `instead`, created nowhere; then
/// that a plain container runs on that same instance.
async fn fails_without_the_feature(
    release: &str,
    features: &[&str],
    options: nest_service::domain::EngineOptions,
    what: &str,
    instead: &str,
) {
    let svc = service().await;
    let cx = member_of("project-a");
    svc.agents().set_default_release(release, features);
    let mut new = busybox(&["sleep", "1000"]);
    new.name = Some("optioned".into());
    new.spec.engine = options;
    let id = svc
        .app()
        .create_container(&cx, new, true)
        .await
        .unwrap_or_else(|e| panic!("create is accepted: {e}"))
        .container
        .id;
    let failed = settled(&svc, id, ContainerStatus::Error).await;
    let instance = instance_of(&failed);
    assert_eq!(
        failed.status_reason.as_deref(),
        Some(
            format!(
                "instance {instance} runs an agent without {what} (agent version {release}); \
                 upgrade its agent, or {instead}"
            )
            .as_str()
        )
    );
    assert!(svc.agents().container(id).is_none());
    let plain = created(&svc, &cx, true, ContainerStatus::Running).await;
    assert_eq!(instance_of(&plain), instance);
    svc.stop().await;
}

#[tokio::test]
async fn engine_options_never_reach_an_agent_that_did_not_list_them() {
    // An agent from before engine options.
    fails_without_the_feature(
        "0.9.5",
        &["networks"],
        nest_service::domain::EngineOptions {
            stop_signal: Some("SIGINT".into()),
            ..Default::default()
        },
        "support for --stop-signal, --stop-timeout, --init, --read-only and --add-host",
        "create the container without those options",
    )
    .await;
}

#[tokio::test]
async fn a_healthcheck_never_reaches_an_agent_that_did_not_list_it() {
    // An agent with engine options but from before healthchecks.
    fails_without_the_feature(
        "0.9.8",
        &["networks", "engine-options"],
        nest_service::domain::EngineOptions {
            healthcheck: Some(nest_service::domain::HealthCheck {
                test: vec!["CMD".into(), "true".into()],
                ..Default::default()
            }),
            ..Default::default()
        },
        "healthcheck support",
        "create the container without a healthcheck",
    )
    .await;
}
