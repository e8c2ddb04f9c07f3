//! The service catalog that comes with a Keystone token, and endpoint
//! lookup by service type, interface and region.
//!
//! Keystone v3 answers a login with `token.catalog`: one entry per service
//! (`type` = `compute`, `network`, `image`, ...), each with endpoints per
//! interface (`public`, `internal`, `admin`) and region. Only what lookup
//! needs is kept; URLs are parsed when looked up, so that one odd entry of
//! a service nobody asks for cannot break a login.

use std::fmt;

use url::Url;

use crate::error::OpenStackError;

/// Which of a service's endpoints to use, as Keystone's catalog names them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interface {
    /// The endpoint tenants use. The default, as in `openstack` (`OS_INTERFACE`).
    #[default]
    #[serde(alias = "publicURL")]
    Public,
    /// The endpoint on the cloud's internal network.
    #[serde(alias = "internalURL")]
    Internal,
    /// The admin endpoint (rarely distinct in Keystone v3 clouds).
    #[serde(alias = "adminURL")]
    Admin,
}

impl Interface {
    /// The name as the catalog spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Internal => "internal",
            Self::Admin => "admin",
        }
    }
}

impl fmt::Display for Interface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A token's service catalog.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Catalog {
    services: Vec<CatalogService>,
}

/// One service of the catalog; only what lookup needs.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
struct CatalogService {
    #[serde(rename = "type")]
    service_type: String,
    #[serde(default)]
    endpoints: Vec<CatalogEndpoint>,
}

/// One endpoint of a service.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
struct CatalogEndpoint {
    interface: String,
    /// Keystone v3 sends both `region_id` and the older `region`; they are
    /// the same in every Keystone since Mitaka.
    #[serde(default)]
    region_id: Option<String>,
    #[serde(default)]
    region: Option<String>,
    url: String,
}

impl CatalogEndpoint {
    fn in_region(&self, region: &str) -> bool {
        self.region_id.as_deref() == Some(region) || self.region.as_deref() == Some(region)
    }
}

impl Catalog {
    /// The URL of the `service_type` endpoint on `interface`, in `region`
    /// (`None`: the first one listed, whatever its region, as keystoneauth
    /// does when no region is configured).
    ///
    /// # Errors
    /// [`OpenStackError::EndpointNotFound`] when none matches;
    /// [`OpenStackError::BadEndpoint`] when the match is not a URL.
    pub fn endpoint(
        &self,
        service_type: &str,
        interface: Interface,
        region: Option<&str>,
    ) -> Result<Url, OpenStackError> {
        let found = self
            .services
            .iter()
            .filter(|s| s.service_type == service_type)
            .flat_map(|s| &s.endpoints)
            .find(|e| e.interface == interface.as_str() && region.is_none_or(|r| e.in_region(r)));
        let Some(endpoint) = found else {
            return Err(OpenStackError::EndpointNotFound {
                service_type: service_type.to_owned(),
                interface,
                region: region.map(str::to_owned),
            });
        };
        Url::parse(&endpoint.url).map_err(|source| OpenStackError::BadEndpoint {
            service_type: service_type.to_owned(),
            url: endpoint.url.clone(),
            source,
        })
    }

    /// Whether the catalog lists no service at all.
    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }
}

/// `endpoint` with `segments` appended to its path, each percent-encoded:
/// `join_segments(nova, &["servers", id])` is `…/v2.1/servers/<id>` whatever
/// `id` holds, and whether or not the catalog's URL ends in `/`.
pub fn join_segments(endpoint: &Url, segments: &[&str]) -> Url {
    let mut url = endpoint.clone();
    // Only URLs that cannot be a base (`mailto:`) have no segments; no
    // catalog lists one, and such a URL is returned unchanged.
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Shaped like the lab's catalog (Keystone 22), two regions for compute.
    fn catalog() -> Catalog {
        serde_json::from_value(json!([
            {"type": "identity", "name": "keystone", "id": "1", "endpoints": [
                {"id": "a", "interface": "public", "region_id": "RegionOne", "region": "RegionOne",
                 "url": "http://127.0.0.1:5000/v3/"}
            ]},
            {"type": "compute", "name": "nova", "id": "2", "endpoints": [
                {"id": "b", "interface": "public", "region_id": "RegionOne", "region": "RegionOne",
                 "url": "http://127.0.0.1:8774/v2.1"},
                {"id": "c", "interface": "internal", "region_id": "RegionOne", "region": "RegionOne",
                 "url": "http://10.0.0.1:8774/v2.1"},
                {"id": "d", "interface": "public", "region_id": "RegionTwo", "region": "RegionTwo",
                 "url": "http://two.example:8774/v2.1"}
            ]},
            {"type": "broken", "endpoints": [
                {"interface": "public", "url": "not a url"}
            ]}
        ]))
        .expect("a v3 catalog parses")
    }

    #[test]
    fn endpoints_are_found_by_type_interface_and_region() {
        let c = catalog();
        let url = |t, i, r| c.endpoint(t, i, r).map(|u| u.to_string());
        assert_eq!(
            url("compute", Interface::Public, None).ok().as_deref(),
            Some("http://127.0.0.1:8774/v2.1")
        );
        assert_eq!(
            url("compute", Interface::Internal, Some("RegionOne"))
                .ok()
                .as_deref(),
            Some("http://10.0.0.1:8774/v2.1")
        );
        assert_eq!(
            url("compute", Interface::Public, Some("RegionTwo"))
                .ok()
                .as_deref(),
            Some("http://two.example:8774/v2.1")
        );
    }

    #[test]
    fn a_missing_or_broken_endpoint_is_a_named_error() {
        let c = catalog();
        let err = c
            .endpoint("compute", Interface::Internal, Some("RegionTwo"))
            .expect_err("no internal endpoint in RegionTwo");
        assert!(
            matches!(err, OpenStackError::EndpointNotFound { .. }),
            "{err:?}"
        );
        let err = c
            .endpoint("network", Interface::Public, None)
            .expect_err("no network service");
        assert!(err.to_string().contains("\"network\""), "{err}");
        let err = c
            .endpoint("broken", Interface::Public, None)
            .expect_err("not a URL");
        assert!(matches!(err, OpenStackError::BadEndpoint { .. }), "{err:?}");
    }

    #[test]
    fn segments_are_appended_and_escaped() {
        for base in ["http://n:8774/v2.1", "http://n:8774/v2.1/"] {
            let base = Url::parse(base).expect("a URL");
            assert_eq!(
                join_segments(&base, &["servers", "a/b?c"]).as_str(),
                "http://n:8774/v2.1/servers/a%2Fb%3Fc"
            );
        }
    }

    #[test]
    fn interfaces_parse_with_their_legacy_spellings() {
        for (text, interface) in [
            ("\"public\"", Interface::Public),
            ("\"internalURL\"", Interface::Internal),
            ("\"admin\"", Interface::Admin),
        ] {
            let parsed: Interface = serde_json::from_str(text).expect("an interface");
            assert_eq!(parsed, interface);
        }
        assert!(serde_json::from_str::<Interface>("\"private\"").is_err());
    }
}
