//! The reconciler believes an agent only about its own instance: events and
//! inventories naming another instance's containers are dropped and
//! counted, a replaced session's end leaves the instance Ready, and an
//! inventory older than a container fails it only once the agent confirms
//! the loss. Proved
//! against the real application with [`FakeAgents`] playing the agents.

use std::collections::BTreeSet;
use std::time::Duration;

use nest_core::testing::eventually;
use nest_service::agents::{AgentEvent, ContainerEvent, EngineAction, EngineState};
use nest_service::app::{CallContext, NewContainer};
use nest_service::auth::Caller;
use nest_service::domain::{
    Container, ContainerId, ContainerSpec, ContainerStatus, InstanceId, InstanceStatus, ProjectId,
    RequestId, UserId,
};
use nest_service::metrics::Violation;
use nest_service::testing::AgentCommand;
use nest_service::testing::TestService;

const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);

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

async fn running(svc: &TestService, project: &str) -> Container {
    let cx = member_of(project);
    let new = NewContainer {
        name: Some("web".into()),
        spec: ContainerSpec {
            image: "busybox".into(),
            command: vec!["sleep".into(), "1000".into()],
            cpu: 0.5,
            memory_mib: 64,
            ..Default::default()
        },
    };
    let info = svc
        .app()
        .create_container(&cx, new, true)
        .await
        .unwrap_or_else(|e| panic!("create is accepted: {e}"));
    eventually(SETTLE_TIMEOUT, "the container to run", || async {
        let c = svc
            .store()
            .get_container(info.container.id)
            .await
            .expect("recorded");
        (c.status == ContainerStatus::Running).then_some(c)
    })
    .await
}

fn instance_of(c: &Container) -> InstanceId {
    c.instance_id.clone().expect("placed")
}

fn violations(svc: &TestService, kind: Violation) -> u64 {
    let text = svc.metrics().render();
    let prefix = format!(
        "nest_agent_scope_violations_total{{kind=\"{}\"}} ",
        kind.as_str()
    );
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |n| n.trim().parse().expect("a count"))
}

fn exited(container: ContainerId) -> EngineState {
    EngineState {
        container,
        docker_id: "f00".into(),
        status: ContainerStatus::Stopped,
        status_reason: Some("exited with code 137".into()),
        exit_code: 137,
        health: None,
    }
}

#[tokio::test]
async fn events_about_another_instances_container_change_nothing() {
    let svc = TestService::start().await.expect("test service");
    let victim = running(&svc, "project-a").await;
    let attacker = running(&svc, "project-b").await;
    let attacker_instance = instance_of(&attacker);
    assert_ne!(instance_of(&victim), attacker_instance);

    svc.agents()
        .announce(vec![
            AgentEvent::Container {
                instance: attacker_instance.clone(),
                event: ContainerEvent {
                    container: victim.id,
                    action: EngineAction::Other("die".into()),
                    state: Some(exited(victim.id)),
                },
            },
            AgentEvent::Container {
                instance: attacker_instance.clone(),
                event: ContainerEvent {
                    container: victim.id,
                    action: EngineAction::Destroy,
                    state: None,
                },
            },
            AgentEvent::Connected {
                instance: attacker_instance.clone(),
                session: 9_999,
                inventory: vec![exited(victim.id), exited(attacker.id)],
                agent_version: "rogue".into(),
                features: Vec::new(),
            },
        ])
        .await;
    svc.events_applied().await;

    let after = svc.store().get_container(victim.id).await.expect("kept");
    assert_eq!(after.status, ContainerStatus::Running, "{after:?}");
    assert_eq!(after.status_reason, victim.status_reason);
    assert_eq!(violations(&svc, Violation::ContainerEvent), 2);
    assert_eq!(violations(&svc, Violation::Inventory), 1);
    // The attacker's own container is its to report on.
    let own = svc.store().get_container(attacker.id).await.expect("kept");
    assert_eq!(own.status, ContainerStatus::Stopped, "{own:?}");
    svc.stop().await;
}

#[tokio::test]
async fn a_replaced_sessions_end_leaves_the_instance_ready() {
    let svc = TestService::start().await.expect("test service");
    let container = running(&svc, "project-a").await;
    let instance = instance_of(&container);
    let first = svc.agents().connect(&instance).await;
    let second = svc.agents().connect(&instance).await;
    assert_ne!(first, second);
    svc.agents()
        .announce(vec![AgentEvent::Disconnected {
            instance: instance.clone(),
            session: first,
            reason: "replaced by a newer session".into(),
        }])
        .await;
    svc.events_applied().await;
    let record = svc.store().get_instance(&instance).await.expect("kept");
    assert_eq!(record.status, InstanceStatus::Ready, "{record:?}");

    // The live session's end still counts.
    svc.agents()
        .announce(vec![AgentEvent::Disconnected {
            instance: instance.clone(),
            session: second,
            reason: "agent closed the session".into(),
        }])
        .await;
    svc.events_applied().await;
    let record = svc.store().get_instance(&instance).await.expect("kept");
    assert_eq!(record.status, InstanceStatus::Unreachable, "{record:?}");
    svc.stop().await;
}

/// What a hello sent before `container` was created says: the engine has
/// nothing on `instance`.
fn stale_hello(instance: &InstanceId, session: u64) -> AgentEvent {
    AgentEvent::Connected {
        instance: instance.clone(),
        session,
        inventory: Vec::new(),
        agent_version: nest_relay::version::RELEASE.into(),
        features: nest_relay::version::AGENT_FEATURES
            .iter()
            .map(|f| (*f).to_owned())
            .collect(),
    }
}

async fn inspected(svc: &TestService, id: ContainerId, times: usize) {
    eventually(SETTLE_TIMEOUT, "the agent to be asked", || async {
        let asked = svc
            .agents()
            .calls_for(id)
            .iter()
            .filter(|c| matches!(c.command, AgentCommand::Inspect { .. }))
            .count();
        (asked >= times).then_some(())
    })
    .await;
}

#[tokio::test]
async fn an_inventory_older_than_a_container_fails_it_only_once_the_agent_confirms() {
    let svc = TestService::start().await.expect("test service");
    let container = running(&svc, "project-a").await;
    let instance = instance_of(&container);

    // The hello predates the create (a session that replaced another, its
    // event applied late): the agent still has the container.
    svc.agents()
        .announce(vec![stale_hello(&instance, 9001)])
        .await;
    svc.events_applied().await;
    inspected(&svc, container.id, 1).await;
    let kept = svc.store().get_container(container.id).await.expect("kept");
    assert_eq!(kept.status, ContainerStatus::Running, "{kept:?}");
    assert_eq!(kept.status_reason, None);

    // Really lost: the agent confirms, and the container fails with why.
    svc.agents().lose(container.id);
    svc.agents()
        .announce(vec![stale_hello(&instance, 9002)])
        .await;
    svc.events_applied().await;
    inspected(&svc, container.id, 2).await;
    let failed = eventually(SETTLE_TIMEOUT, "the container to fail", || async {
        let c = svc
            .store()
            .get_container(container.id)
            .await
            .expect("recorded");
        (c.status == ContainerStatus::Error).then_some(c)
    })
    .await;
    assert_eq!(
        failed.status_reason.as_deref(),
        Some("the container disappeared from its instance")
    );
    svc.stop().await;
}
