//! The Zun-compatible REST API (zun-api.md): its routes, its OpenAPI
//! document, and one file per group of handlers. Each handler parses,
//! makes one call to the application layer and renders Zun's JSON.
//!
//! # Layout
//! - [`error`]: [`error::ApiError`], its statuses, Zun's and Keystone's
//!   error bodies, and the outermost middleware (request id, rendering);
//! - [`microversion`]: `OpenStack-API-Version` negotiation and headers;
//! - `middleware`: path normalisation and Keystone token validation;
//! - `extract`: Nest's body, query and path extractors (Zun's error format
//!   for malformed input);
//! - [`create`]: the create and update bodies and their validation;
//! - [`views`]: Zun's container, action and host views;
//! - `containers`, `lifecycle`, `exec`, `inspect`, `container_actions`,
//!   `hosts`, `services`, `images`, `docker_certificates`: the route handlers, one
//!   file per group;
//! - `ws`: the console websockets behind `attach` and interactive exec;
//! - `versions`: `/` and `/v1`; `agent`: the agent binary download;
//! - `unsupported`: Zun's routes Nest leaves out, and what to do instead.

mod agent;
mod container_actions;
mod containers;
pub mod create;
mod docker_certificates;
pub mod error;
mod exec;
pub(crate) mod extract;
mod hosts;
mod images;
mod inspect;
mod lifecycle;
pub mod microversion;
pub(crate) mod middleware;
mod quotas;
mod services;
pub(crate) mod unsupported;
mod versions;
pub mod views;
mod ws;

use axum::Router;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ApiState;
use super::metrics;

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Nest container API",
        description = "OpenStack Zun v1 compatible container API (microversions 1.1-1.40, \
            header `OpenStack-API-Version: container 1.N`). Authenticate with a Keystone token \
            in `X-Auth-Token`; errors are `{\"errors\":[{request_id, code, status, title, detail}]}`. \
            Nest extensions: create body `ports` (`[network:]host:container[/proto]`), container \
            view `published_ports`/`port_bindings`, `logs?follow=true`, console websockets."
    ),
    tags(
        (name = "containers"), (name = "actions"), (name = "exec"), (name = "inspect"),
        (name = "hosts"), (name = "images"), (name = "docker"), (name = "versions"),
        (name = "operations"),
    )
)]
struct ApiDoc;

/// The routes and their OpenAPI description, generated from the handlers.
pub(crate) fn routes() -> (Router<ApiState>, utoipa::openapi::OpenApi) {
    let (router, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(versions::root))
        .routes(routes!(versions::v1))
        .routes(routes!(metrics::healthz))
        .routes(routes!(metrics::metrics))
        .routes(routes!(containers::create, containers::list))
        .routes(routes!(
            containers::show,
            containers::update,
            containers::delete
        ))
        .routes(routes!(containers::network_list))
        .routes(routes!(containers::rename))
        .routes(routes!(lifecycle::start))
        .routes(routes!(lifecycle::stop))
        .routes(routes!(lifecycle::reboot))
        .routes(routes!(lifecycle::pause))
        .routes(routes!(lifecycle::unpause))
        .routes(routes!(lifecycle::kill))
        .routes(routes!(exec::execute))
        .routes(routes!(exec::execute_resize))
        .routes(routes!(exec::attach))
        .routes(routes!(exec::resize))
        .routes(routes!(inspect::logs))
        .routes(routes!(inspect::top))
        .routes(routes!(inspect::stats))
        .routes(routes!(container_actions::list))
        .routes(routes!(container_actions::show))
        .routes(routes!(hosts::list))
        .routes(routes!(hosts::show))
        .routes(routes!(quotas::show, quotas::update, quotas::delete))
        .routes(routes!(services::list, services::delete))
        .routes(routes!(agent::binary))
        .routes(routes!(agent::sha256))
        .routes(routes!(images::upload, images::list))
        .routes(routes!(images::delete))
        .routes(routes!(images::zun_list, images::zun_pull))
        .routes(routes!(images::zun_show, images::zun_delete))
        .routes(routes!(
            docker_certificates::create,
            docker_certificates::list
        ))
        .routes(routes!(docker_certificates::revoke))
        .routes(routes!(ws::attach))
        .routes(routes!(ws::exec))
        .split_for_parts();
    (router, with_error_responses(doc))
}

/// The error answers any `/v1` operation may give besides its own, in the
/// Zun error format (401 in Keystone's): bad input, authentication,
/// policy, another project's or a missing object, a wrong microversion, a
/// wrong state, a body too large or not JSON, and the server-side failures (a
/// dependency away or slow, or a bug). Handlers document their successes
/// and their own refusals; this adds the rest, so that a client (or a
/// fuzzer) finds every status the API answers with in the document.
fn with_error_responses(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    use utoipa::openapi::{ContentBuilder, ObjectBuilder, RefOr, ResponseBuilder};
    const COMMON: [(&str, &str); 11] = [
        (
            "400",
            "invalid request (Zun error format, naming the field)",
        ),
        ("401", "no valid Keystone token (Keystone's error format)"),
        ("403", "not allowed by policy"),
        ("404", "no such object in the caller's project"),
        ("406", "unsupported microversion"),
        ("409", "the object's state does not allow it"),
        ("413", "request body too large"),
        ("415", "request body is not application/json"),
        ("500", "internal error (the request id is in the body)"),
        (
            "503",
            "a dependency (agent, engine, relay, Nova, database) is unavailable",
        ),
        ("504", "a dependency did not answer in time"),
    ];
    let body = || {
        ContentBuilder::new()
            .schema(Some(RefOr::T(
                ObjectBuilder::new()
                    .description(Some(
                        "`{\"errors\": [{request_id, code, status, title, detail}]}`",
                    ))
                    .into(),
            )))
            .build()
    };
    for (path, item) in &mut doc.paths.paths {
        if !path.starts_with("/v1/") {
            continue;
        }
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            for (status, description) in COMMON {
                operation
                    .responses
                    .responses
                    .entry(status.to_owned())
                    .or_insert_with(|| {
                        RefOr::T(
                            ResponseBuilder::new()
                                .description(description)
                                .content("application/json", body())
                                .build(),
                        )
                    });
            }
        }
    }
    doc
}

/// The OpenAPI document of this API, as served at `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().1
}
