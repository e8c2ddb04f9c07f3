//! The database layer against both of its backends: every case runs once
//! on SQLite (a fresh file in a temporary directory) and once on
//! PostgreSQL (a fresh database on the server named by
//! `NEST_TEST_POSTGRES_URL`, dropped afterwards, even when the case
//! panics). Without that variable the PostgreSQL half fails, saying how to
//! start a server: `scripts/postgres-for-tests.sh` prints the URL.

use std::collections::BTreeMap;

use nest_core::ErrorKind;
use nest_service::db::{
    ContainerFilters, ContainerPatch, DbError, ListQuery, NetworkRemoval, NewAction, SortDir,
    SortKey, Store, UniqueKey, utc_now,
};
use nest_service::domain::{
    Container, ContainerId, ContainerSpec, ContainerStatus, Instance, InstanceId, InstanceStatus,
    Network, NetworkAttachment, NetworkId, PortProtocol, ProjectId, PublishedPort, RequestId,
    RestartPolicyName, UnreachableCause, UserId,
};
use sqlx::{AssertSqlSafe, Connection, Executor};

const POSTGRES_URL_VAR: &str = "NEST_TEST_POSTGRES_URL";

// === harness ===

/// A store on a scratch database that is removed when this is dropped.
struct TestDb {
    store: Store,
    url: String,
    _scratch: Scratch,
}

/// What a [`TestDb`] removes when dropped.
enum Scratch {
    Sqlite { _dir: tempfile::TempDir },
    Postgres { _db: PgScratch },
}

/// A PostgreSQL database made for one test.
struct PgScratch {
    admin_url: String,
    name: String,
}

impl Drop for PgScratch {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which cannot block on
        // another future; a thread with its own runtime can.
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
                admin
                    .execute(AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                    )))
                    .await?;
                admin.close().await
            })
            .map_err(std::io::Error::other)
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop scratch database {}: {dropped:?}", self.name);
        }
    }
}

impl TestDb {
    async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite://{}/nest.db?mode=rwc", dir.path().display());
        let store = Store::connect(&url).await.expect("SQLite opens");
        Self {
            store,
            url,
            _scratch: Scratch::Sqlite { _dir: dir },
        }
    }

    async fn postgres() -> Self {
        let admin_url = std::env::var(POSTGRES_URL_VAR).unwrap_or_else(|_| {
            panic!(
                "{POSTGRES_URL_VAR} is not set, so the PostgreSQL half of the database tests \
                 cannot run. Start a server and export its URL (as root on Debian):\n    \
                 export {POSTGRES_URL_VAR}=\"$(scripts/postgres-for-tests.sh | tail -n1)\"\n\
                 (it installs postgresql, starts it and creates role and database `nest`; \
                 the URL is postgres://nest:nest@127.0.0.1/nest)"
            )
        });
        let name = format!("nest_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("cannot reach {POSTGRES_URL_VAR}: {e}"));
        admin
            .execute(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .await
            .expect("the test role may create databases");
        admin.close().await.expect("admin connection closes");
        let url = with_database(&admin_url, &name);
        // From here on, the scratch database is dropped however the test ends.
        let scratch = PgScratch { admin_url, name };
        let store = Store::connect(&url).await.expect("PostgreSQL opens");
        Self {
            store,
            url,
            _scratch: Scratch::Postgres { _db: scratch },
        }
    }
}

/// `url` with its database name replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let prefix = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    format!("{prefix}/{db}{query}")
}

/// Generates, for each case in `cases`, a module with a `sqlite` and a
/// `postgres` test.
macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let db = super::TestDb::sqlite().await;
                super::cases::$case(&db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                let db = super::TestDb::postgres().await;
                super::cases::$case(&db).await;
            }
        }
    )*};
}

on_both_backends!(
    container_round_trips_with_a_full_spec,
    duplicate_name_in_a_project_is_a_conflict_and_changes_nothing,
    concurrent_status_updates_from_one_status_have_one_winner,
    concurrent_binds_of_one_host_port_book_it_once,
    same_port_on_two_instances_is_fine_and_binding_checks_ownership,
    list_paginates_sorts_filters_and_scopes_by_project,
    delete_frees_ports_and_instances_in_use_are_kept,
    instances_round_trip_and_report_usage,
    actions_are_recorded_finished_and_listed,
    unreachable_projects_are_marked_and_cleared,
    migrations_are_idempotent,
    networks_are_named_per_project_and_kept_while_containers_are_on_them,
);

#[tokio::test]
async fn sqlite_database_is_in_wal_mode() {
    let db = TestDb::sqlite().await;
    let mut conn = sqlx::SqliteConnection::connect(&db.url)
        .await
        .expect("open the file directly");
    let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .expect("journal mode");
    assert_eq!(mode, "wal");
    conn.close().await.expect("close");
}

#[test]
fn database_urls_are_rewritten_to_the_scratch_database() {
    assert_eq!(
        with_database("postgres://u:p@h/nest", "x"),
        "postgres://u:p@h/x"
    );
    assert_eq!(
        with_database("postgres://u:p@h:5433/nest?sslmode=disable", "x"),
        "postgres://u:p@h:5433/x?sslmode=disable"
    );
    assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
}

// === fixtures ===

fn project(s: &str) -> ProjectId {
    ProjectId::parse(s).expect("a valid project id")
}

fn user(s: &str) -> UserId {
    UserId::parse(s).expect("a valid user id")
}

fn instance_id(s: &str) -> InstanceId {
    InstanceId::parse(s).expect("a valid instance id")
}

fn port(host_port: u16, container_port: u16, protocol: PortProtocol) -> PublishedPort {
    PublishedPort {
        network: Some("pub".into()),
        host_port,
        container_port,
        protocol,
    }
}

fn container(project_id: &str, name: &str) -> Container {
    let now = utc_now();
    Container {
        id: ContainerId::generate(),
        name: name.into(),
        project_id: project(project_id),
        user_id: user("alice"),
        spec: ContainerSpec {
            image: "busybox:1.36".into(),
            cpu: 0.5,
            memory_mib: 256,
            ..ContainerSpec::default()
        },
        status: ContainerStatus::Creating,
        status_reason: None,
        desired_running: true,
        instance_id: None,
        docker_id: None,
        created_at: now.clone(),
        updated_at: now,
        health: None,
    }
}

fn full_container(project_id: &str, name: &str) -> Container {
    let mut c = container(project_id, name);
    c.spec = ContainerSpec {
        image: "registry.local/app@sha256:0123".into(),
        command: vec!["sh".into(), "-c".into(), "echo 'a \"b\"' && sleep 1".into()],
        entrypoint: vec!["/bin/entry".into()],
        environment: BTreeMap::from([
            ("EMPTY".into(), String::new()),
            ("UNICODE".into(), "héllo ☃".into()),
        ]),
        labels: BTreeMap::from([("tier".into(), "web".into())]),
        workdir: Some("/srv".into()),
        hostname: Some("web-1".into()),
        user: Some("1000:1000".into()),
        cpu: 1.25,
        memory_mib: 1536,
        restart_policy: (RestartPolicyName::OnFailure, 5),
        interactive: true,
        stdin_once: true,
        tty: true,
        auto_remove: true,
        ports: vec![
            port(222, 22, PortProtocol::Tcp),
            PublishedPort {
                network: None,
                host_port: 5353,
                container_port: 53,
                protocol: PortProtocol::Udp,
            },
        ],
        hints: BTreeMap::from([("flavor".into(), "m1.small".into())]),
        networks: vec![NetworkAttachment {
            network: NetworkId::generate(),
            aliases: vec!["web".into(), "www".into()],
        }],
        engine: nest_service::domain::EngineOptions {
            stop_signal: Some("SIGQUIT".into()),
            stop_timeout: Some(5),
            init: true,
            read_only: true,
            extra_hosts: vec![("db".into(), "10.0.0.9".into())],
            healthcheck: Some(nest_service::domain::HealthCheck {
                test: vec!["CMD-SHELL".into(), "test -f /ready".into()],
                interval_ns: 2_000_000_000,
                timeout_ns: 1_000_000_000,
                start_period_ns: 0,
                retries: 4,
            }),
        },
    };
    c.status_reason = Some("waiting for an instance".into());
    c.desired_running = false;
    c.health = Some(nest_service::domain::Health::Unhealthy);
    c
}

fn instance(project_id: &str, id: &str) -> Instance {
    Instance {
        id: instance_id(id),
        project_id: project(project_id),
        driver: "local".into(),
        status: InstanceStatus::Ready,
        status_reason: None,
        vcpus: 4.0,
        memory_mib: 4096,
        addresses: BTreeMap::from([("pub".into(), "10.0.0.5".into())]),
        created_at: utc_now(),
        empty_since: None,
    }
}

fn request() -> RequestId {
    RequestId::generate()
}

// === cases ===

mod cases {
    use super::*;

    pub async fn container_round_trips_with_a_full_spec(db: &TestDb) {
        let s = &db.store;
        let c = full_container("p1", "web");
        s.insert_container(&c).await.expect("insert");
        assert_eq!(s.get_container(c.id).await.expect("get"), c);
        assert_eq!(
            s.find_by_name(Some(&project("p1")), "web")
                .await
                .expect("find"),
            vec![c.clone()]
        );
        assert!(
            s.find_by_name(Some(&project("p2")), "web")
                .await
                .expect("find")
                .is_empty()
        );
        // Across projects (an admin's all_projects): both of the same name.
        let theirs = full_container("p2", "web");
        s.insert_container(&theirs).await.expect("insert");
        assert_eq!(
            s.find_by_name(None, "web").await.expect("find"),
            vec![c.clone(), theirs.clone()]
        );
        s.delete_container(theirs.id).await.expect("delete");

        let missing = ContainerId::generate();
        let err = s.get_container(missing).await.expect_err("unknown id");
        assert!(matches!(err, DbError::ContainerNotFound(id) if id == missing));
        assert_eq!(err.kind(), ErrorKind::NotFound);

        s.set_docker_id(c.id, Some("d0cker"))
            .await
            .expect("docker id");
        s.set_desired_running(c.id, true).await.expect("desired");
        s.set_status_any(c.id, ContainerStatus::Running, None)
            .await
            .expect("status");
        let patched = s
            .update_container(
                c.id,
                &ContainerPatch {
                    name: Some("web-2".into()),
                    cpu: None,
                    memory_mib: Some(2048),
                },
            )
            .await
            .expect("patch");
        let mut expected = c.clone();
        expected.name = "web-2".into();
        expected.spec.memory_mib = 2048;
        expected.docker_id = Some("d0cker".into());
        expected.desired_running = true;
        expected.status = ContainerStatus::Running;
        expected.status_reason = None;
        expected.updated_at = patched.updated_at.clone();
        assert_eq!(patched, expected);
        assert!(patched.updated_at >= c.updated_at);
        assert_eq!(s.get_container(c.id).await.expect("get"), expected);
        assert!(matches!(
            s.set_docker_id(missing, None).await,
            Err(DbError::ContainerNotFound(_))
        ));
    }

    pub async fn duplicate_name_in_a_project_is_a_conflict_and_changes_nothing(db: &TestDb) {
        let s = &db.store;
        let first = full_container("p1", "web");
        s.insert_container(&first).await.expect("first");

        let mut second = container("p1", "web");
        second.spec.image = "other".into();
        let err = s.insert_container(&second).await.expect_err("same name");
        assert!(
            matches!(
                err,
                DbError::Conflict {
                    what: UniqueKey::ContainerName,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(err.kind(), ErrorKind::Conflict);
        assert_eq!(s.get_container(first.id).await.expect("first"), first);
        assert!(matches!(
            s.get_container(second.id).await,
            Err(DbError::ContainerNotFound(_))
        ));
        let listed = s
            .list_containers(&ListQuery::new(Some(project("p1"))))
            .await
            .expect("list");
        assert_eq!(listed.items, vec![first.clone()]);

        // The same uuid twice is a conflict too, whatever the name.
        let mut same_id = container("p1", "other");
        same_id.id = first.id;
        assert!(matches!(
            s.insert_container(&same_id).await,
            Err(DbError::Conflict {
                what: UniqueKey::ContainerId,
                ..
            })
        ));

        // Another project may use the name.
        let elsewhere = container("p2", "web");
        s.insert_container(&elsewhere).await.expect("other project");

        // Renaming onto a taken name is refused and changes nothing.
        let third = container("p1", "api");
        s.insert_container(&third).await.expect("third");
        let err = s
            .update_container(
                third.id,
                &ContainerPatch {
                    name: Some("web".into()),
                    cpu: Some(2.0),
                    memory_mib: None,
                },
            )
            .await
            .expect_err("rename onto a taken name");
        assert!(matches!(
            err,
            DbError::Conflict {
                what: UniqueKey::ContainerName,
                ..
            }
        ));
        assert_eq!(s.get_container(third.id).await.expect("third"), third);
    }

    pub async fn concurrent_status_updates_from_one_status_have_one_winner(db: &TestDb) {
        let s = &db.store;
        for round in 0..10 {
            let c = container("p1", &format!("c{round}"));
            s.insert_container(&c).await.expect("insert");
            let (a, b) = tokio::join!(
                s.update_status(
                    c.id,
                    ContainerStatus::Creating,
                    ContainerStatus::Created,
                    None
                ),
                s.update_status(
                    c.id,
                    ContainerStatus::Creating,
                    ContainerStatus::Error,
                    Some("boom")
                ),
            );
            let (a, b) = (a.expect("first update"), b.expect("second update"));
            assert!(a ^ b, "round {round}: exactly one wins, got {a} and {b}");
            let now = s.get_container(c.id).await.expect("get");
            if a {
                assert_eq!(
                    (now.status, now.status_reason),
                    (ContainerStatus::Created, None)
                );
            } else {
                assert_eq!(
                    (now.status, now.status_reason.as_deref()),
                    (ContainerStatus::Error, Some("boom"))
                );
            }
        }

        // From a status it is not in: no change.
        let c = container("p1", "stale");
        s.insert_container(&c).await.expect("insert");
        let won = s
            .update_status(
                c.id,
                ContainerStatus::Running,
                ContainerStatus::Stopped,
                None,
            )
            .await
            .expect("update");
        assert!(!won);
        assert_eq!(s.get_container(c.id).await.expect("get"), c);
        assert!(matches!(
            s.update_status(
                ContainerId::generate(),
                ContainerStatus::Creating,
                ContainerStatus::Created,
                None
            )
            .await,
            Err(DbError::ContainerNotFound(_))
        ));
    }

    pub async fn concurrent_binds_of_one_host_port_book_it_once(db: &TestDb) {
        let s = &db.store;
        let inst = instance("p1", "i-1");
        s.insert_instance(&inst).await.expect("instance");
        let mut containers = Vec::new();
        for n in 0..20u16 {
            let mut c = container("p1", &format!("c{n}"));
            // Each also publishes a port of its own, which must not stay
            // booked when the shared one is refused.
            c.spec.ports = vec![
                port(1000 + n, 80, PortProtocol::Tcp),
                port(222, 22, PortProtocol::Tcp),
            ];
            s.insert_container(&c).await.expect("insert");
            containers.push(c);
        }

        let mut binds = tokio::task::JoinSet::new();
        for c in &containers {
            let (s, id, ports, inst) = (s.clone(), c.id, c.spec.ports.clone(), inst.id.clone());
            binds.spawn(async move { (id, s.bind_container(id, &inst, &ports).await) });
        }
        let mut winners = Vec::new();
        let mut refused = 0;
        while let Some(joined) = binds.join_next().await {
            let (id, result) = joined.expect("bind task");
            match result {
                Ok(()) => winners.push(id),
                Err(DbError::PortTaken {
                    host_port: 222,
                    protocol: PortProtocol::Tcp,
                    ref instance,
                    ..
                }) if *instance == inst.id => refused += 1,
                Err(e) => panic!("unexpected error: {e:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "exactly one bind wins");
        assert_eq!(refused, 19);
        let winner = winners[0];

        // Nothing half-bound: the losers have no instance and no bookings.
        for c in &containers {
            let now = s.get_container(c.id).await.expect("get");
            if c.id == winner {
                assert_eq!(now.instance_id.as_ref(), Some(&inst.id));
            } else {
                assert_eq!(now.instance_id, None, "loser {} is unbound", c.id);
            }
        }
        let booked = s.booked_ports(&inst.id).await.expect("bookings");
        assert_eq!(booked.len(), 2, "{booked:?}");
        assert!(booked.iter().all(|b| b.container == winner));
        let on_instance = s.containers_on_instance(&inst.id).await.expect("on");
        assert_eq!(
            on_instance.iter().map(|c| c.id).collect::<Vec<_>>(),
            vec![winner]
        );
        let err = DbError::PortTaken {
            instance: inst.id.clone(),
            protocol: PortProtocol::Tcp,
            host_port: 222,
            source: sqlx::Error::RowNotFound,
        };
        assert_eq!(err.kind(), ErrorKind::Conflict);
    }

    pub async fn same_port_on_two_instances_is_fine_and_binding_checks_ownership(db: &TestDb) {
        let s = &db.store;
        let (i1, i2) = (instance("p1", "i-1"), instance("p1", "i-2"));
        let foreign = instance("p2", "i-9");
        for i in [&i1, &i2, &foreign] {
            s.insert_instance(i).await.expect("instance");
        }
        let ssh = [port(222, 22, PortProtocol::Tcp)];
        let (a, b, c, d) = (
            container("p1", "a"),
            container("p1", "b"),
            container("p1", "c"),
            container("p1", "d"),
        );
        for x in [&a, &b, &c, &d] {
            s.insert_container(x).await.expect("insert");
        }
        s.bind_container(a.id, &i1.id, &ssh).await.expect("a on i1");
        s.bind_container(b.id, &i2.id, &ssh).await.expect("b on i2");
        // The same number over UDP is another port.
        s.bind_container(c.id, &i1.id, &[port(222, 53, PortProtocol::Udp)])
            .await
            .expect("udp 222 on i1");

        let err = s
            .bind_container(a.id, &i2.id, &[])
            .await
            .expect_err("rebind");
        assert!(matches!(err, DbError::AlreadyBound { ref instance, .. } if *instance == i1.id));
        assert_eq!(err.kind(), ErrorKind::Conflict);

        let err = s
            .bind_container(d.id, &foreign.id, &ssh)
            .await
            .expect_err("another project's instance");
        assert!(matches!(err, DbError::ForeignInstance { .. }), "{err:?}");
        let err = s
            .bind_container(d.id, &instance_id("i-nope"), &ssh)
            .await
            .expect_err("no such instance");
        assert!(matches!(err, DbError::InstanceNotFound(_)), "{err:?}");
        let err = s
            .bind_container(ContainerId::generate(), &i1.id, &ssh)
            .await
            .expect_err("no such container");
        assert!(matches!(err, DbError::ContainerNotFound(_)), "{err:?}");
        assert_eq!(s.get_container(d.id).await.expect("d").instance_id, None);
        assert!(
            s.booked_ports(&foreign.id)
                .await
                .expect("bookings")
                .is_empty()
        );

        // Unbinding frees the ports for another container.
        s.unbind_container(a.id).await.expect("unbind");
        assert_eq!(s.get_container(a.id).await.expect("a").instance_id, None);
        s.bind_container(d.id, &i1.id, &ssh)
            .await
            .expect("d takes the freed port");
    }

    pub async fn list_paginates_sorts_filters_and_scopes_by_project(db: &TestDb) {
        let s = &db.store;
        // Names out of creation order, so that name order differs.
        let names = [
            "delta", "alpha", "golf", "charlie", "echo", "bravo", "foxtrot",
        ];
        let mut mine = Vec::new();
        for (n, name) in names.iter().enumerate() {
            let mut c = container("p1", name);
            if n % 2 == 0 {
                c.status = ContainerStatus::Running;
                c.spec.image = "nginx".into();
            }
            if n == 3 {
                c.user_id = user("bob");
            }
            s.insert_container(&c).await.expect("insert");
            mine.push(c);
        }
        let mut theirs = Vec::new();
        for name in ["alpha", "zulu", "mike"] {
            let c = container("p2", name);
            s.insert_container(&c).await.expect("insert");
            theirs.push(c);
        }

        let ids = |cs: &[Container]| cs.iter().map(|c| c.id).collect::<Vec<_>>();
        let creation: Vec<ContainerId> = ids(&mine);
        let mut by_name = mine.clone();
        by_name.sort_by(|a, b| a.name.cmp(&b.name));
        let by_name = ids(&by_name);

        let walk = |sort_key: SortKey, sort_dir: SortDir, limit: u32| {
            let s = s.clone();
            async move {
                let mut seen = Vec::new();
                let mut marker = None;
                let mut pages = 0;
                loop {
                    let page = s
                        .list_containers(&ListQuery {
                            limit,
                            marker,
                            sort_key,
                            sort_dir,
                            ..ListQuery::new(Some(project("p1")))
                        })
                        .await
                        .expect("page");
                    pages += 1;
                    assert!(page.items.len() <= limit as usize);
                    assert!(page.items.iter().all(|c| c.project_id == project("p1")));
                    seen.extend(page.items.iter().map(|c| c.id));
                    if !page.has_more {
                        break;
                    }
                    assert_eq!(page.items.len(), limit as usize, "only full pages go on");
                    marker = page.items.last().map(|c| c.id);
                    assert!(pages < 20, "pagination terminates");
                }
                (seen, pages)
            }
        };

        let (seen, pages) = walk(SortKey::Id, SortDir::Asc, 3).await;
        assert_eq!((seen, pages), (creation.clone(), 3));
        let (seen, _) = walk(SortKey::Id, SortDir::Desc, 3).await;
        assert_eq!(seen, creation.iter().rev().copied().collect::<Vec<_>>());
        let (seen, _) = walk(SortKey::Name, SortDir::Asc, 2).await;
        assert_eq!(seen, by_name);
        let (seen, _) = walk(SortKey::Name, SortDir::Desc, 4).await;
        assert_eq!(seen, by_name.iter().rev().copied().collect::<Vec<_>>());
        // Ties in the sort column fall back to creation order, in the same
        // direction, and no row is lost or repeated across pages.
        let (seen, _) = walk(SortKey::Status, SortDir::Asc, 2).await;
        let running: Vec<_> = creation.iter().step_by(2).copied().collect();
        let creating: Vec<_> = creation.iter().skip(1).step_by(2).copied().collect();
        assert_eq!(seen, [creating.clone(), running.clone()].concat());
        let (seen, _) = walk(SortKey::Status, SortDir::Desc, 3).await;
        let rev = |v: &[ContainerId]| v.iter().rev().copied().collect::<Vec<_>>();
        assert_eq!(seen, [rev(&running), rev(&creating)].concat());
        let (seen, _) = walk(SortKey::CreatedAt, SortDir::Asc, 10).await;
        assert_eq!(seen, creation);

        // Exact-match filters.
        let filtered = |filters: ContainerFilters| {
            let s = s.clone();
            async move {
                s.list_containers(&ListQuery {
                    filters,
                    ..ListQuery::new(Some(project("p1")))
                })
                .await
                .expect("filtered list")
                .items
                .iter()
                .map(|c| c.id)
                .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            filtered(ContainerFilters {
                status: Some(ContainerStatus::Running),
                ..Default::default()
            })
            .await,
            running
        );
        assert_eq!(
            filtered(ContainerFilters {
                image: Some("nginx".into()),
                name: Some("golf".into()),
                ..Default::default()
            })
            .await,
            vec![mine[2].id]
        );
        assert_eq!(
            filtered(ContainerFilters {
                user_id: Some(user("bob")),
                ..Default::default()
            })
            .await,
            vec![mine[3].id]
        );
        assert!(
            filtered(ContainerFilters {
                name: Some("zulu".into()),
                ..Default::default()
            })
            .await
            .is_empty(),
            "another project's name does not match"
        );

        // Scoping: another project's container is no marker here.
        let err = s
            .list_containers(&ListQuery {
                marker: Some(theirs[0].id),
                ..ListQuery::new(Some(project("p1")))
            })
            .await
            .expect_err("foreign marker");
        assert!(matches!(err, DbError::MarkerNotFound(id) if id == theirs[0].id));
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(matches!(
            s.list_containers(&ListQuery {
                marker: Some(ContainerId::generate()),
                ..ListQuery::new(None)
            })
            .await,
            Err(DbError::MarkerNotFound(_))
        ));

        // All projects: everyone's, in creation order.
        let all = s.list_containers(&ListQuery::new(None)).await.expect("all");
        assert_eq!(ids(&all.items), [creation.clone(), ids(&theirs)].concat());
        assert!(!all.has_more);
        let theirs_only = s
            .list_containers(&ListQuery::new(Some(project("p2"))))
            .await
            .expect("p2");
        assert_eq!(ids(&theirs_only.items), ids(&theirs));
    }

    pub async fn delete_frees_ports_and_instances_in_use_are_kept(db: &TestDb) {
        let s = &db.store;
        let inst = instance("p1", "i-1");
        s.insert_instance(&inst).await.expect("instance");
        let (a, b) = (container("p1", "a"), container("p1", "b"));
        s.insert_container(&a).await.expect("a");
        s.insert_container(&b).await.expect("b");
        let ports = [
            port(222, 22, PortProtocol::Tcp),
            port(8080, 80, PortProtocol::Tcp),
        ];
        s.bind_container(a.id, &inst.id, &ports)
            .await
            .expect("bind a");
        s.record_action(&NewAction {
            request_id: request(),
            container: a.id,
            action: "create".into(),
            project_id: a.project_id.clone(),
            user_id: a.user_id.clone(),
        })
        .await
        .expect("action");
        assert!(matches!(
            s.bind_container(b.id, &inst.id, &ports).await,
            Err(DbError::PortTaken { host_port: 222, .. })
        ));

        let err = s.delete_instance(&inst.id).await.expect_err("in use");
        assert!(matches!(err, DbError::InstanceInUse(_)));
        assert_eq!(err.kind(), ErrorKind::Conflict);
        assert_eq!(s.get_instance(&inst.id).await.expect("kept"), inst);

        s.delete_container(a.id).await.expect("delete a");
        assert!(matches!(
            s.get_container(a.id).await,
            Err(DbError::ContainerNotFound(_))
        ));
        assert!(s.booked_ports(&inst.id).await.expect("ports").is_empty());
        assert!(s.list_actions(a.id).await.expect("actions").is_empty());
        assert!(matches!(
            s.delete_container(a.id).await,
            Err(DbError::ContainerNotFound(_))
        ));
        s.bind_container(b.id, &inst.id, &ports)
            .await
            .expect("b takes the freed ports");

        s.delete_container(b.id).await.expect("delete b");
        s.delete_instance(&inst.id).await.expect("empty instance");
        assert!(matches!(
            s.delete_instance(&inst.id).await,
            Err(DbError::InstanceNotFound(_))
        ));
    }

    pub async fn instances_round_trip_and_report_usage(db: &TestDb) {
        let s = &db.store;
        let mut ready = instance("p1", "i-ready");
        ready.status_reason = Some("agent connected".into());
        let mut booting = instance("p1", "i-booting");
        booting.status = InstanceStatus::Booting;
        booting.addresses = BTreeMap::new();
        booting.empty_since = Some(utc_now());
        let mut retiring = instance("p1", "i-retiring");
        retiring.status = InstanceStatus::Retiring;
        let foreign = instance("p2", "i-foreign");
        for i in [&ready, &booting, &retiring, &foreign] {
            s.insert_instance(i).await.expect("instance");
        }
        assert_eq!(s.get_instance(&ready.id).await.expect("get"), ready);
        assert_eq!(s.get_instance(&booting.id).await.expect("get"), booting);
        let err = s.insert_instance(&ready).await.expect_err("same id");
        assert!(matches!(
            err,
            DbError::Conflict {
                what: UniqueKey::InstanceId,
                ..
            }
        ));
        assert_eq!(
            s.list_instances(Some(&project("p1")))
                .await
                .expect("list")
                .len(),
            3
        );
        assert_eq!(s.list_instances(None).await.expect("all").len(), 4);

        let mut big = container("p1", "big");
        big.spec.cpu = 1.5;
        big.spec.memory_mib = 1024;
        let mut small = container("p1", "small");
        small.spec.cpu = 0.25;
        small.spec.memory_mib = 128;
        for c in [&big, &small] {
            s.insert_container(c).await.expect("insert");
            s.bind_container(c.id, &ready.id, &[]).await.expect("bind");
        }
        let used = s.instance_usage(&ready.id).await.expect("usage");
        assert_eq!(
            (used.cpu_used, used.memory_used_mib, used.containers),
            (1.75, 1152, 2)
        );
        let idle = s.instance_usage(&booting.id).await.expect("usage");
        assert_eq!(
            (idle.cpu_used, idle.memory_used_mib, idle.containers),
            (0.0, 0, 0)
        );
        assert!(matches!(
            s.instance_usage(&instance_id("i-nope")).await,
            Err(DbError::InstanceNotFound(_))
        ));

        let candidates = s
            .placement_candidates(&project("p1"))
            .await
            .expect("candidates");
        let mut got: Vec<_> = candidates
            .iter()
            .map(|c| (c.instance.id.as_str().to_owned(), c.free_memory_mib()))
            .collect();
        got.sort();
        assert_eq!(
            got,
            vec![("i-booting".into(), 4096), ("i-ready".into(), 4096 - 1152)],
            "Booting and Ready instances of the project only"
        );

        // Conditional status changes, addresses, emptiness.
        assert!(
            s.update_instance_status(
                &booting.id,
                InstanceStatus::Booting,
                InstanceStatus::Ready,
                None
            )
            .await
            .expect("status")
        );
        assert!(
            !s.update_instance_status(
                &booting.id,
                InstanceStatus::Booting,
                InstanceStatus::Error,
                Some("late")
            )
            .await
            .expect("status")
        );
        let addresses = BTreeMap::from([
            ("pub".to_owned(), "192.0.2.7".to_owned()),
            ("priv".to_owned(), "10.1.0.7".to_owned()),
        ]);
        s.set_instance_addresses(&booting.id, &addresses)
            .await
            .expect("addresses");
        s.set_empty_since(&booting.id, None).await.expect("empty");
        let now = s.get_instance(&booting.id).await.expect("get");
        assert_eq!(now.status, InstanceStatus::Ready);
        assert_eq!(now.addresses, addresses);
        assert_eq!(now.empty_since, None);
        assert!(matches!(
            s.set_empty_since(&instance_id("i-nope"), None).await,
            Err(DbError::InstanceNotFound(_))
        ));

        let creating = s
            .containers_in_status(ContainerStatus::Creating)
            .await
            .expect("in status");
        assert_eq!(
            creating.iter().map(|c| c.id).collect::<Vec<_>>(),
            vec![big.id, small.id]
        );
    }

    pub async fn actions_are_recorded_finished_and_listed(db: &TestDb) {
        let s = &db.store;
        let c = container("p1", "web");
        s.insert_container(&c).await.expect("insert");
        let (create, start) = (request(), request());
        let action = |request_id: &RequestId, name: &str| NewAction {
            request_id: request_id.clone(),
            container: c.id,
            action: name.into(),
            project_id: c.project_id.clone(),
            user_id: c.user_id.clone(),
        };
        s.record_action(&action(&create, "create"))
            .await
            .expect("create");
        s.record_action(&action(&start, "start"))
            .await
            .expect("start");
        let err = s
            .record_action(&action(&start, "start"))
            .await
            .expect_err("same request twice");
        assert!(matches!(
            err,
            DbError::Conflict {
                what: UniqueKey::ActionRequest,
                ..
            }
        ));
        s.finish_action(c.id, &create, None)
            .await
            .expect("finish create");
        assert_eq!(
            s.action_request_id(c.id, "create").await.expect("lookup"),
            Some(create.clone())
        );
        assert_eq!(
            s.action_request_id(c.id, "delete").await.expect("lookup"),
            None
        );
        s.finish_action(c.id, &start, Some("image not found"))
            .await
            .expect("finish start");
        let err = s
            .finish_action(c.id, &request(), None)
            .await
            .expect_err("unknown request");
        assert!(matches!(err, DbError::ActionNotFound { .. }));
        assert_eq!(err.kind(), ErrorKind::NotFound);
        // Foreign keys are enforced (on SQLite they are per connection).
        let orphan = NewAction {
            container: ContainerId::generate(),
            ..action(&request(), "start")
        };
        let err = s.record_action(&orphan).await.expect_err("no container");
        assert!(matches!(err, DbError::Query(_)), "{err:?}");

        let listed = s.list_actions(c.id).await.expect("list");
        assert_eq!(listed.len(), 2);
        assert_eq!(
            (
                listed[0].request_id.clone(),
                listed[0].action.as_str(),
                listed[0].message.as_deref()
            ),
            (start, "start", Some("image not found"))
        );
        assert_eq!(
            (
                listed[1].request_id.clone(),
                listed[1].action.as_str(),
                listed[1].message.as_deref()
            ),
            (create, "create", None)
        );
        assert!(listed.iter().all(|a| a.finish_time.is_some()
            && a.start_time <= *a.finish_time.as_ref().expect("finished")));
        assert!(
            s.list_actions(ContainerId::generate())
                .await
                .expect("none")
                .is_empty()
        );
    }

    pub async fn unreachable_projects_are_marked_and_cleared(db: &TestDb) {
        let s = &db.store;
        let (p1, p2) = (project("p1"), project("p2"));
        let refused = UnreachableCause::DelegationRefused;
        assert_eq!(
            s.mark_unreachable(&p1, refused, "a").await.expect("mark"),
            None
        );
        let before = s
            .mark_unreachable(&p1, refused, "b")
            .await
            .expect("mark again")
            .expect("was marked");
        assert_eq!((before.cause, before.reason.as_str()), (refused, "a"));
        s.mark_unreachable(&p2, UnreachableCause::CloudUnavailable, "c")
            .await
            .expect("mark");
        let all = s.unreachable_projects().await.expect("list");
        assert_eq!(
            all.iter()
                .map(|u| (u.project_id.as_str(), u.cause, u.reason.as_str()))
                .collect::<Vec<_>>(),
            [
                ("p1", refused, "b"),
                ("p2", UnreachableCause::CloudUnavailable, "c")
            ]
        );
        assert_eq!(
            all[0].since, before.since,
            "kept while the cause is the same"
        );
        assert!(s.clear_unreachable(&p1).await.expect("clear"));
        assert!(!s.clear_unreachable(&p1).await.expect("clear again"));
        assert_eq!(s.unreachable_project(&p1).await.expect("read"), None);
        assert!(s.unreachable_project(&p2).await.expect("read").is_some());
    }

    pub async fn migrations_are_idempotent(db: &TestDb) {
        let c = full_container("p1", "web");
        db.store.insert_container(&c).await.expect("insert");
        // A second start on the same database migrates again: no error, no
        // lost data, and both handles work.
        let again = Store::connect(&db.url).await.expect("second connect");
        assert_eq!(again.backend(), db.store.backend());
        assert_eq!(again.get_container(c.id).await.expect("get"), c);
        let d = container("p1", "api");
        again.insert_container(&d).await.expect("insert");
        assert_eq!(db.store.get_container(d.id).await.expect("get"), d);
        again.close().await;
        let third = Store::connect(&db.url).await.expect("third connect");
        third.close().await;
    }

    pub async fn networks_are_named_per_project_and_kept_while_containers_are_on_them(db: &TestDb) {
        let s = &db.store;
        let network = |project_id: &str, name: &str| Network {
            id: NetworkId::generate(),
            name: name.into(),
            project_id: project(project_id),
            user_id: user("alice"),
            labels: BTreeMap::from([("com.docker.compose.project".into(), "proj".into())]),
            created_at: utc_now(),
        };
        let front = network("p1", "front");
        s.insert_network(&front).await.expect("insert");
        // The same name in another project is another network.
        let other = network("p2", "front");
        s.insert_network(&other).await.expect("other project");
        let err = s
            .insert_network(&network("p1", "front"))
            .await
            .expect_err("same name");
        assert!(
            matches!(
                err,
                DbError::Conflict {
                    what: UniqueKey::NetworkName,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            s.list_networks(&project("p1")).await.expect("list"),
            vec![front.clone()]
        );
        assert_eq!(
            s.get_network(front.id).await.expect("get"),
            Some(front.clone())
        );

        let mut on = container("p1", "web");
        on.spec.networks = vec![NetworkAttachment {
            network: front.id,
            aliases: vec!["web".into()],
        }];
        s.insert_container(&on).await.expect("insert");
        s.insert_container(&container("p1", "off"))
            .await
            .expect("insert");
        let found = s
            .containers_on_network(&project("p1"), front.id)
            .await
            .expect("on network");
        assert_eq!(found, vec![on.clone()]);
        assert!(
            s.containers_on_network(&project("p2"), front.id)
                .await
                .expect("other project")
                .is_empty()
        );
        assert_eq!(
            s.remove_network(&project("p1"), front.id)
                .await
                .expect("remove"),
            NetworkRemoval::InUse
        );
        assert_eq!(
            s.remove_network(&project("p2"), front.id)
                .await
                .expect("remove"),
            NetworkRemoval::NotFound,
            "another project's network is not found"
        );
        s.delete_container(on.id).await.expect("delete");
        assert_eq!(
            s.remove_network(&project("p1"), front.id)
                .await
                .expect("remove"),
            NetworkRemoval::Removed
        );
        assert_eq!(s.get_network(front.id).await.expect("get"), None);
        assert_eq!(
            s.list_networks(&project("p2")).await.expect("list"),
            vec![other]
        );
    }
}
