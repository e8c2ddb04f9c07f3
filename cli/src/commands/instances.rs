//! `instance-list`: the project's instances (Nest's hosts), each with its
//! state, size, addresses and the containers it holds, and why when
//! something is wrong (its project's cloud cannot be reached, say).

use std::collections::BTreeMap;

use nest_api_types::zun::ListContainersQuery;
use serde_json::json;

use crate::args::OutputArgs;
use crate::client::Session;
use crate::error::CliError;
use crate::output::print_list;

const COLUMNS: [&str; 7] = [
    "uuid",
    "status",
    "flavor",
    "driver",
    "addresses",
    "containers",
    "status_reason",
];

/// `instance-list`.
pub async fn list(session: &Session, output: &OutputArgs) -> Result<u8, CliError> {
    let hosts = session.list_hosts().await?;
    let containers = session
        .list_containers(&ListContainersQuery::default())
        .await?;
    let mut held: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for c in &containers {
        if let Some(host) = &c.host {
            held.entry(host.as_str()).or_default().push(c.name.as_str());
        }
    }
    let rows = hosts
        .iter()
        .map(|h| {
            vec![
                ("uuid", json!(h.uuid)),
                ("status", json!(h.status)),
                (
                    "flavor",
                    json!(format!("{} vCPU, {} MiB", h.cpus, h.mem_total)),
                ),
                ("driver", json!(h.driver)),
                ("addresses", json!(h.addresses)),
                (
                    "containers",
                    json!(held.get(h.uuid.as_str()).cloned().unwrap_or_default()),
                ),
                ("status_reason", json!(h.status_reason)),
            ]
        })
        .collect();
    print_list(&COLUMNS, rows, output)?;
    Ok(0)
}
