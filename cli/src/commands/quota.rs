//! `quota-show`: the limits that bound the project (Nova's, since every
//! container lives in the project's own Nova servers) and their use.

use nest_api_types::zun::QuotaUsage;
use serde_json::json;

use crate::args::OutputArgs;
use crate::client::Session;
use crate::error::CliError;
use crate::output::print_list;

const COLUMNS: [&str; 3] = ["resource", "limit", "in_use"];

/// `quota-show`.
pub async fn show(
    session: &Session,
    project: Option<String>,
    output: &OutputArgs,
) -> Result<u8, CliError> {
    let project = project
        .or_else(|| session.project_id().map(str::to_owned))
        .ok_or_else(|| {
            CliError::Usage(
                "which project? the token's project is unknown without Keystone: pass --project \
                 or set OS_PROJECT_ID (NEST_PROJECT_ID)"
                    .into(),
            )
        })?;
    let usages = match session.quota_usages(&project).await {
        Err(CliError::Api {
            status: 404,
            ref code,
            ..
        }) if code.is_empty() || code == "container.not-found" => {
            return Err(CliError::Api {
                status: 404,
                code: "container.quotas-not-served".into(),
                message: "this Nest service does not serve quotas yet (GET /v1/quotas answered \
                          404); `openstack quota show` shows the project's Nova limits"
                    .into(),
                request_id: None,
            });
        }
        other => other?,
    };
    let limit = |u: &QuotaUsage| {
        if u.limit < 0 {
            json!("unlimited")
        } else {
            json!(u.limit)
        }
    };
    let row = |name: &str, u: &QuotaUsage| {
        vec![
            ("resource", json!(name)),
            ("limit", limit(u)),
            ("in_use", json!(u.in_use)),
        ]
    };
    let rows = vec![
        row("instances", &usages.instances),
        row("cores", &usages.cores),
        row("ram (MiB)", &usages.ram),
        row("containers", &usages.containers),
        row("container cpu", &usages.cpu),
        row("container memory (MiB)", &usages.memory),
    ];
    print_list(&COLUMNS, rows, output)?;
    if !usages.source.is_empty() && output.format.is_none() {
        let source = match usages.source.as_str() {
            "nova" => "Nova's limits for the project",
            "none" => "none: this cloud's instance driver enforces no limits",
            other => other,
        };
        eprintln!("limits: {source}");
    }
    Ok(0)
}
