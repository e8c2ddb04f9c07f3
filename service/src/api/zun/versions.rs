//! The unauthenticated version documents `GET /` and `GET /v1`
//! (zun-api.md §1), which python-zunclient reads to negotiate `latest`:
//! it takes the `CURRENT` entry's `min_version`/`max_version`. The
//! documents are [`nest_api_types::zun::versions`]'s; their values are
//! chosen here.

use axum::Json;
use nest_api_types::zun::{DocLink, MediaType, RootDocument, V1Document, VersionEntry};

use super::extract::BaseUrl;
use super::microversion::ApiVersion;

fn link(href: String, rel: &str) -> DocLink {
    DocLink {
        href,
        rel: rel.to_owned(),
        media_type: None,
    }
}

/// The service's name in the root document, as Zun spells it.
const ROOT_NAME: &str = "OpenStack Zun API";
/// The root document's description.
const ROOT_DESCRIPTION: &str = "Nest: an OpenStack container service that runs containers in \
     the tenant's own Nova instances, compatible with the Zun container API.";

/// The API versions document (no auth, no microversion headers).
#[utoipa::path(get, path = "/", tag = "versions", responses((status = 200, body = RootDocument)))]
pub async fn root(base: BaseUrl) -> Json<RootDocument> {
    let v1 = VersionEntry {
        id: "v1".into(),
        links: vec![link(format!("{}/v1/", base.as_str()), "self")],
        status: "CURRENT".into(),
        max_version: ApiVersion::MAX.to_string(),
        min_version: ApiVersion::MIN.to_string(),
    };
    Json(RootDocument {
        name: ROOT_NAME.into(),
        description: ROOT_DESCRIPTION.into(),
        versions: vec![v1.clone()],
        default_version: v1,
    })
}

/// Where Zun's v1 document says the API is described.
const DESCRIBED_BY: &str = "https://docs.openstack.org/developer/zun/dev/api-spec-v1.html";

/// The v1 document (no auth; microversion headers as on all of `/v1`).
#[utoipa::path(get, path = "/v1", tag = "versions", responses((status = 200, body = V1Document)))]
pub async fn v1(base: BaseUrl) -> Json<V1Document> {
    let b = base.as_str();
    let pair = |coll: &str| {
        vec![
            link(format!("{b}/v1/{coll}/"), "self"),
            link(format!("{b}/{coll}/"), "bookmark"),
        ]
    };
    Json(V1Document {
        id: "v1".into(),
        links: vec![
            link(format!("{b}/v1/"), "self"),
            DocLink {
                href: DESCRIBED_BY.into(),
                rel: "describedby".into(),
                media_type: Some("text/html".into()),
            },
        ],
        media_types: vec![MediaType {
            base: "application/json".into(),
            media_type: "application/vnd.openstack.zun.v1+json".into(),
        }],
        services: pair("services"),
        containers: pair("containers"),
        images: pair("images"),
        networks: pair("networks"),
        hosts: pair("hosts"),
        capsules: pair("capsules"),
        availability_zones: pair("availability_zones"),
        quotas: pair("quotas"),
        quota_classes: pair("quota_classes"),
        registries: pair("registries"),
    })
}
