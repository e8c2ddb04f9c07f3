//! `container-list`, `container-show`, `container-delete` and the
//! lifecycle actions, and the container's display fields.

use nest_api_types::zun::{ContainerView, DeleteContainerQuery, KillQuery, ListContainersQuery};
use serde_json::{Value, json};

use crate::args::OutputArgs;
use crate::client::Session;
use crate::error::CliError;
use crate::output::{Record, print_list, print_record};

/// The columns of `container-list`.
pub const LIST_COLUMNS: [&str; 6] = ["uuid", "name", "image", "status", "ports", "host"];

/// `ports`: where the published ports are reachable, `ADDRESS:HOST_PORT`.
fn ports(c: &ContainerView) -> Value {
    json!(c.published_ports)
}

fn restart(c: &ContainerView) -> Value {
    let policy = &c.restart_policy;
    match (policy.name.as_str(), policy.maximum_retry_count.as_str()) {
        ("", _) => Value::Null,
        (name, "" | "0") => json!(name),
        (name, count) => json!(format!("{name}:{count}")),
    }
}

fn addresses(c: &ContainerView) -> Value {
    let map: serde_json::Map<String, Value> = c
        .addresses
        .iter()
        .map(|(net, list)| {
            let addrs: Vec<&str> = list.iter().map(|a| a.addr.as_str()).collect();
            (net.clone(), json!(addrs))
        })
        .collect();
    Value::Object(map)
}

/// Every field `container-show` prints, in order.
pub fn record(c: &ContainerView) -> Record {
    vec![
        ("uuid", json!(c.uuid)),
        ("name", json!(c.name)),
        ("status", json!(c.status)),
        ("status_reason", json!(c.status_reason)),
        ("image", json!(c.image)),
        ("command", json!(c.command)),
        ("ports", ports(c)),
        ("port_bindings", json!(c.port_bindings)),
        ("addresses", addresses(c)),
        ("host", json!(c.host)),
        ("cpu", json!(c.cpu)),
        ("memory", json!(c.memory)),
        ("environment", json!(c.environment)),
        ("labels", json!(c.labels)),
        ("workdir", json!(c.workdir)),
        ("hostname", json!(c.hostname)),
        ("restart_policy", restart(c)),
        ("interactive", json!(c.interactive)),
        ("tty", json!(c.tty)),
        ("project_id", json!(c.project_id)),
        ("user_id", json!(c.user_id)),
        ("created_at", json!(c.created_at)),
        ("updated_at", json!(c.updated_at)),
    ]
}

fn list_row(c: &ContainerView) -> Record {
    vec![
        ("uuid", json!(c.uuid)),
        ("name", json!(c.name)),
        ("image", json!(c.image)),
        ("status", json!(c.status)),
        ("ports", ports(c)),
        ("host", json!(c.host)),
    ]
}

/// `container-list`.
pub async fn list(
    session: &Session,
    all_projects: bool,
    output: &OutputArgs,
) -> Result<u8, CliError> {
    let query = ListContainersQuery {
        all_projects: all_projects.then_some(true),
        ..ListContainersQuery::default()
    };
    let containers = session.list_containers(&query).await?;
    print_list(
        &LIST_COLUMNS,
        containers.iter().map(list_row).collect(),
        output,
    )?;
    Ok(0)
}

/// `container-show`.
pub async fn show(session: &Session, ident: &str, output: &OutputArgs) -> Result<u8, CliError> {
    let container = session.show_container(ident).await?;
    print_record(record(&container), output)?;
    Ok(0)
}

/// Runs `each` on every target; reports each failure and answers the
/// first failure's exit code (0 when all succeeded).
async fn for_each<'a, F, Fut>(targets: &'a [String], what: &str, each: F) -> Result<u8, CliError>
where
    F: Fn(&'a str) -> Fut,
    Fut: std::future::Future<Output = Result<(), CliError>>,
{
    let mut code = 0;
    let single = targets.len() == 1;
    for target in targets {
        match each(target).await {
            Ok(()) => {}
            Err(e) if single => return Err(e),
            Err(e) => {
                eprintln!("osc: {what} {target}: {e}");
                if code == 0 {
                    code = e.exit_code();
                }
            }
        }
    }
    Ok(code)
}

/// `container-delete`.
pub async fn delete(
    session: &Session,
    targets: &[String],
    force: bool,
    stop: bool,
) -> Result<u8, CliError> {
    let query = DeleteContainerQuery {
        force: force.then_some(true),
        stop: stop.then_some(true),
    };
    for_each(targets, "cannot delete", |t| {
        session.delete_container(t, &query)
    })
    .await
}

/// `container-start|stop|restart|pause|unpause`.
pub async fn action(
    session: &Session,
    targets: &[String],
    action: &str,
    timeout: Option<u32>,
) -> Result<u8, CliError> {
    let what = format!("cannot {action}");
    for_each(targets, &what, |t| session.action(t, action, timeout)).await
}

/// `container-kill`.
pub async fn kill(session: &Session, ident: &str, signal: Option<String>) -> Result<u8, CliError> {
    session.kill(ident, &KillQuery { signal }).await?;
    Ok(0)
}
