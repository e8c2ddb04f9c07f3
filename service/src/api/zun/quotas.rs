//! `GET /v1/quotas/{project_id}[?usages=True]` (zun-api.md §2.5) answered
//! from the project's Nova limits and usage and Nest's own counts, and
//! `PUT`/`DELETE` refused: Nest keeps no second quota system, so quotas
//! are changed in Nova (`openstack quota set`). The bodies are
//! `nest_api_types::zun::quotas`'s.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use nest_api_types::zun::quotas::{SOURCE_NONE, SOURCE_NOVA};
use nest_api_types::zun::{QuotaSetView, QuotaUsage, QuotaUsagesView};
use serde::Deserialize;

use super::extract::{Flag, QueryParams, RequestContext, ZunPath};
use super::middleware::UserToken;
use crate::api::ApiState;
use crate::api::zun::error::ApiError;
use crate::app::{AppError, QuotaInfo};
use crate::driver::Limit;

/// What a refused quota change says.
pub const QUOTAS_ARE_NOVAS: &str = "Nest keeps no quotas of its own: a project's containers run in \
     its own Nova servers, so Nova's quotas bound them. Change them with `openstack quota set \
     --instances N --cores N --ram MiB <project>`";

/// Query of `GET /v1/quotas/{project_id}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaQuery {
    #[serde(default)]
    usages: Option<Flag>,
}

const UNLIMITED: Limit = Limit {
    limit: -1,
    in_use: 0,
};

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn usage(l: Limit) -> QuotaUsage {
    QuotaUsage {
        limit: l.limit,
        in_use: l.in_use,
    }
}

fn usages_view(info: &QuotaInfo) -> QuotaUsagesView {
    let (instances, cores, ram) = info.limits.map_or((UNLIMITED, UNLIMITED, UNLIMITED), |l| {
        (l.instances, l.cores, l.ram)
    });
    // Nest's own reservations, bounded by Nova's cores and RAM.
    let cpu_used = info.usage.cpu_used.ceil();
    QuotaUsagesView {
        containers: QuotaUsage {
            limit: -1,
            in_use: to_i64(info.usage.containers),
        },
        cpu: QuotaUsage {
            limit: cores.limit,
            // Whole vCPUs: reservations are fractions, limits are not.
            in_use: format!("{cpu_used:.0}").parse().unwrap_or(0),
        },
        memory: QuotaUsage {
            limit: ram.limit,
            in_use: to_i64(info.usage.memory_used_mib),
        },
        disk: QuotaUsage {
            limit: -1,
            in_use: 0,
        },
        instances: usage(instances),
        cores: usage(cores),
        ram: usage(ram),
        source: source(info).to_owned(),
    }
}

fn source(info: &QuotaInfo) -> &'static str {
    if info.limits.is_some() {
        SOURCE_NOVA
    } else {
        SOURCE_NONE
    }
}

/// A project's quotas (Nova's), with usage when `usages=True`.
#[utoipa::path(get, path = "/v1/quotas/{project_id}", tag = "quotas",
    params(("project_id" = String, Path, description = "the project"),
           ("usages" = Option<bool>, Query, description = "limits with their use")),
    responses(
        (status = 200, description = "the limits (`QuotaSetView`), or with `usages=True` limits and use (`QuotaUsagesView`)", body = QuotaSetView),
        (status = 403, description = "another project's quotas"),
    ))]
pub async fn show(
    State(state): State<ApiState>,
    cx: RequestContext,
    token: Option<axum::Extension<UserToken>>,
    ZunPath(project): ZunPath<String>,
    QueryParams(query): QueryParams<QuotaQuery>,
) -> Result<Response, ApiError> {
    // A member's first look at the quotas may come before any create:
    // the driver reads Nova's limits with the project's delegation.
    if let Some(axum::Extension(token)) = &token
        && project == cx.call.caller.project_id.as_str()
    {
        state.app().ensure_delegation(&cx.call, &token.0).await?;
    }
    let info = state.app().quotas(&cx.call, &project).await?;
    let view = usages_view(&info);
    if query.usages.is_some_and(|Flag(on)| on) {
        return Ok(Json(view).into_response());
    }
    Ok(Json(QuotaSetView {
        containers: view.containers.limit,
        cpu: view.cpu.limit,
        memory: view.memory.limit,
        disk: view.disk.limit,
        instances: view.instances.limit,
        cores: view.cores.limit,
        ram: view.ram.limit,
        source: view.source,
    })
    .into_response())
}

/// Refused: quotas are Nova's.
#[utoipa::path(put, path = "/v1/quotas/{project_id}", tag = "quotas",
    params(("project_id" = String, Path)),
    responses((status = 400, description = "quotas are Nova's: `openstack quota set`")))]
pub async fn update(
    cx: RequestContext,
    ZunPath(_project): ZunPath<String>,
) -> Result<Response, ApiError> {
    let _ = cx;
    Err(refused())
}

/// Refused: quotas are Nova's.
#[utoipa::path(delete, path = "/v1/quotas/{project_id}", tag = "quotas",
    params(("project_id" = String, Path)),
    responses((status = 400, description = "quotas are Nova's: `openstack quota set`")))]
pub async fn delete(
    cx: RequestContext,
    ZunPath(_project): ZunPath<String>,
) -> Result<Response, ApiError> {
    let _ = cx;
    Err(refused())
}

fn refused() -> ApiError {
    AppError::InvalidRequest {
        what: "quota change",
        reason: QUOTAS_ARE_NOVAS.to_owned(),
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Usage;
    use crate::driver::ProjectLimits;

    #[test]
    fn nova_limits_and_nest_counts_fill_the_view() {
        let info = QuotaInfo {
            limits: Some(ProjectLimits {
                instances: Limit {
                    limit: 2,
                    in_use: 1,
                },
                cores: Limit {
                    limit: 20,
                    in_use: 1,
                },
                ram: Limit {
                    limit: 51200,
                    in_use: 512,
                },
            }),
            usage: Usage {
                cpu_used: 0.5,
                memory_used_mib: 128,
                containers: 1,
            },
        };
        let view = usages_view(&info);
        assert_eq!(
            view.instances,
            QuotaUsage {
                limit: 2,
                in_use: 1
            }
        );
        assert_eq!(
            view.cpu,
            QuotaUsage {
                limit: 20,
                in_use: 1
            }
        );
        assert_eq!(
            view.memory,
            QuotaUsage {
                limit: 51200,
                in_use: 128
            }
        );
        assert_eq!(
            view.containers,
            QuotaUsage {
                limit: -1,
                in_use: 1
            }
        );
        assert_eq!(view.source, "nova");
        let none = usages_view(&QuotaInfo {
            limits: None,
            usage: Usage::default(),
        });
        assert_eq!((none.instances.limit, none.source.as_str()), (-1, "none"));
    }
}
