//! Zun's error body (zun-api.md §4),
//! `{"errors":[{request_id, code, status, title, detail, links}]}`, which
//! every refusal of the REST API carries except 401 (Keystone's own shape,
//! rendered by the service). python-zunclient shows `errors[0].title`
//! and `detail`.

use serde::{Deserialize, Serialize};

use super::Link;

/// The body of an error answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// The errors; Nest always sends exactly one.
    pub errors: Vec<ErrorEntry>,
}

/// One error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorEntry {
    /// The request's `x-openstack-request-id`, `req-<uuid>`.
    pub request_id: String,
    /// `container.<kebab-case reason>`, e.g. `container.container-not-found`.
    pub code: String,
    /// The HTTP status, repeated.
    pub status: u16,
    /// One sentence; for a 5xx, a generic one.
    pub title: String,
    /// The sentence with its causes; for a 5xx, where to quote the request
    /// id instead.
    pub detail: String,
    /// Always empty.
    pub links: Vec<Link>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zun_error_body_round_trips() {
        let json = serde_json::json!({"errors": [{
            "request_id": "req-2c1d4f0e-8b7a-4e5c-9d3f-6a1b2c3d4e5f",
            "code": "container.container-not-found",
            "status": 404,
            "title": "container web could not be found",
            "detail": "container web could not be found",
            "links": [],
        }]});
        let body: ErrorBody = serde_json::from_value(json.clone()).expect("deserializes");
        assert_eq!(body.errors[0].status, 404);
        assert_eq!(serde_json::to_value(&body).ok(), Some(json));
    }
}
