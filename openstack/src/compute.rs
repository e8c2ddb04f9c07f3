//! [`Compute`]: the Nova API v2.1 client, at one pinned microversion.
//!
//! Thin and typed: each method is one call (or one lookup), its body and
//! answer are serde types holding only what Nest uses, and a refusal comes
//! back as [`OpenStackError::Refused`] with Nova's own message. Reads and
//! deletes are retried on 5xx and timeouts; a create is sent once (see
//! [`crate::client`]).

use std::collections::BTreeMap;
use std::time::Duration;

use nest_core::RequestId;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::catalog::{Interface, join_segments};
use crate::client::{self, Retry};
use crate::error::OpenStackError;
use crate::session::{Call, Session};

/// The compute microversion every call asks for. 2.37 is the first that
/// takes `networks: "none"`; 2.52 adds tags at create; 2.79 is well within
/// what Zed serves (2.93) and still returns `OS-EXT-SRV-ATTR:user_data`
/// (2.3+) to admins.
pub const COMPUTE_MICROVERSION: &str = "2.79";
/// The header carrying it, as Nova reads it since 2.27.
const MICROVERSION_HEADER: &str = "openstack-api-version";
/// The most bytes of (base64-encoded) user data Nova accepts.
pub const MAX_USER_DATA_BYTES: usize = 65_535;

/// The Nova client, on a session and its compute endpoint.
#[derive(Debug)]
pub struct Compute<'a> {
    session: &'a Session,
    endpoint: Url,
}

/// What networks a new server gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerNetworks {
    /// No network at all (`"none"`, 2.37+).
    None,
    /// One port on each network, by Neutron id, in NIC order.
    Networks(Vec<String>),
}

impl Serialize for ServerNetworks {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Nic<'a> {
            uuid: &'a str,
        }
        match self {
            Self::None => s.serialize_str("none"),
            Self::Networks(ids) => s.collect_seq(ids.iter().map(|uuid| Nic { uuid })),
        }
    }
}

/// `POST /servers`: what Nest asks for. `Debug` never shows the user data.
#[derive(Clone, Serialize)]
pub struct ServerCreate {
    /// The server's name.
    pub name: String,
    /// Flavor id.
    #[serde(rename = "flavorRef")]
    pub flavor_ref: String,
    /// Image id.
    #[serde(rename = "imageRef")]
    pub image_ref: String,
    /// Networks.
    pub networks: ServerNetworks,
    /// Availability zone; Nova's choice when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    /// Key pair name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_name: Option<String>,
    /// Base64 of the user data; at most [`MAX_USER_DATA_BYTES`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_data: Option<String>,
    /// Metadata (at most 255 characters per key and value).
    pub metadata: BTreeMap<String, String>,
    /// Tags (2.52+).
    pub tags: Vec<String>,
}

// By hand: user_data holds the enrollment token.
impl std::fmt::Debug for ServerCreate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl ServerCreate {
    fn redacted(&self) -> String {
        format!(
            "server {:?} (flavor {}, image {}, user data {} bytes)",
            self.name,
            self.flavor_ref,
            self.image_ref,
            self.user_data.as_ref().map_or(0, String::len)
        )
    }
}

/// A server as Nova shows it; only what Nest reads.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Server {
    /// Nova's id.
    pub id: String,
    /// Name.
    pub name: String,
    /// `BUILD`, `ACTIVE`, `ERROR`, `DELETED`, `SHUTOFF`, ...
    pub status: String,
    /// The owning project.
    pub tenant_id: String,
    /// Metadata.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Addresses by Neutron network name.
    #[serde(default)]
    pub addresses: BTreeMap<String, Vec<ServerAddress>>,
    /// Why the server is in `ERROR`.
    #[serde(default)]
    pub fault: Option<ServerFault>,
    /// Tags (2.26+).
    #[serde(default)]
    pub tags: Vec<String>,
    /// The flavor, embedded (2.47+).
    #[serde(default)]
    pub flavor: Option<ServerFlavor>,
    /// The base64 user data; shown to admins only (2.3+).
    #[serde(rename = "OS-EXT-SRV-ATTR:user_data", default)]
    pub user_data: Option<String>,
}

impl Server {
    /// Whether the server is up.
    pub fn is_active(&self) -> bool {
        self.status == "ACTIVE"
    }

    /// Whether the server failed for good.
    pub fn is_error(&self) -> bool {
        self.status == "ERROR"
    }

    /// Its addresses of one type (`fixed` or `floating`) on a network.
    pub fn addresses_of<'s>(
        &'s self,
        network: &'s str,
        kind: &'s str,
    ) -> impl Iterator<Item = &'s str> + 's {
        self.addresses
            .get(network)
            .into_iter()
            .flatten()
            .filter(move |a| a.kind.as_deref() == Some(kind))
            .map(|a| a.addr.as_str())
    }
}

/// One address of a server.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct ServerAddress {
    /// The address.
    pub addr: String,
    /// 4 or 6.
    pub version: u8,
    /// `fixed` or `floating`.
    #[serde(rename = "OS-EXT-IPS:type", default)]
    pub kind: Option<String>,
}

/// A server's fault.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct ServerFault {
    /// Nova's code: 413 for a quota exceeded at the conductor's recheck.
    pub code: u16,
    /// Nova's message, verbatim.
    pub message: String,
}

/// A server's embedded flavor.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct ServerFlavor {
    /// Virtual CPUs.
    pub vcpus: u32,
    /// Memory, MiB.
    pub ram: u64,
}

/// A flavor.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Flavor {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Virtual CPUs.
    pub vcpus: u32,
    /// Memory, MiB.
    pub ram: u64,
    /// Root disk, GiB.
    pub disk: u64,
}

/// The project's absolute limits and usage (`GET /limits`).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AbsoluteLimits {
    /// Instance quota; -1: unlimited.
    pub max_total_instances: i64,
    /// Instances used.
    pub total_instances_used: i64,
    /// Core quota.
    pub max_total_cores: i64,
    /// Cores used.
    pub total_cores_used: i64,
    /// RAM quota, MiB.
    #[serde(rename = "maxTotalRAMSize")]
    pub max_total_ram_size: i64,
    /// RAM used, MiB.
    #[serde(rename = "totalRAMUsed")]
    pub total_ram_used: i64,
}

/// Which servers a listing asks for.
#[derive(Clone, Debug, Default)]
pub struct ServerQuery {
    /// Servers holding all these tags.
    pub tags: Vec<String>,
    /// Every project's servers (admin only).
    pub all_tenants: bool,
}

#[derive(Deserialize)]
struct ServerBody {
    server: Server,
}

#[derive(Deserialize)]
struct ServersBody {
    servers: Vec<Server>,
}

#[derive(Deserialize)]
struct CreatedBody {
    server: CreatedServer,
}

#[derive(Deserialize)]
struct CreatedServer {
    id: String,
}

#[derive(Deserialize)]
struct FlavorBody {
    flavor: Flavor,
}

#[derive(Deserialize)]
struct FlavorsBody {
    flavors: Vec<Flavor>,
}

#[derive(Deserialize)]
struct LimitsBody {
    limits: LimitsInner,
}

#[derive(Deserialize)]
struct LimitsInner {
    absolute: AbsoluteLimits,
}

#[derive(Deserialize)]
struct ZonesBody {
    #[serde(rename = "availabilityZoneInfo")]
    zones: Vec<Zone>,
}

#[derive(Deserialize)]
struct Zone {
    #[serde(rename = "zoneName")]
    name: String,
}

impl<'a> Compute<'a> {
    /// The client on `session`'s compute endpoint.
    ///
    /// # Errors
    /// Why the endpoint is unknown.
    pub async fn connect(
        session: &'a Session,
        interface: Interface,
        region: Option<&str>,
    ) -> Result<Self, OpenStackError> {
        let endpoint = session.endpoint("compute", interface, region).await?;
        Ok(Self { session, endpoint })
    }

    /// A client on a known endpoint.
    pub fn at(session: &'a Session, endpoint: Url) -> Self {
        Self { session, endpoint }
    }

    fn url(&self, segments: &[&str]) -> Url {
        join_segments(&self.endpoint, segments)
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        call: &Call<'_>,
        url: Url,
    ) -> Result<T, OpenStackError> {
        let response = client::send(self.session, call, Retry::Idempotent, |http| {
            http.get(url.clone())
                .header(MICROVERSION_HEADER, microversion())
        })
        .await?;
        client::json(call, response).await
    }

    /// Boots a server; returns its id. Sent once, waiting at most
    /// `timeout` for the answer (a timeout may still have booted it: look
    /// for it by tag before asking again).
    ///
    /// # Errors
    /// [`OpenStackError::Refused`] with Nova's message (403 for a quota).
    pub async fn create_server(
        &self,
        server: &ServerCreate,
        timeout: Duration,
        request_id: &RequestId,
    ) -> Result<String, OpenStackError> {
        let call = Call::new("nova", "boot a server")
            .request_id(request_id)
            .timeout(timeout);
        let url = self.url(&["servers"]);
        let body = serde_json::json!({ "server": server });
        tracing::debug!(server = %server.redacted(), "booting a server");
        let response = client::send(self.session, &call, Retry::Never, |http| {
            http.post(url.clone())
                .header(MICROVERSION_HEADER, microversion())
                .json(&body)
        })
        .await?;
        let created: CreatedBody = client::json(&call, response).await?;
        Ok(created.server.id)
    }

    /// One server, `None` when Nova does not know it (or it is another
    /// project's).
    ///
    /// # Errors
    /// [`OpenStackError`] for any other failure.
    pub async fn server(
        &self,
        id: &str,
        request_id: &RequestId,
    ) -> Result<Option<Server>, OpenStackError> {
        let call = Call::new("nova", "show a server").request_id(request_id);
        match self
            .get::<ServerBody>(&call, self.url(&["servers", id]))
            .await
        {
            Ok(body) => Ok(Some(body.server)),
            Err(e) if e.kind() == nest_core::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Servers (detailed), filtered by `query`.
    ///
    /// # Errors
    /// [`OpenStackError`].
    pub async fn servers(
        &self,
        query: &ServerQuery,
        request_id: &RequestId,
    ) -> Result<Vec<Server>, OpenStackError> {
        let call = Call::new("nova", "list servers").request_id(request_id);
        let mut url = self.url(&["servers", "detail"]);
        {
            let mut pairs = url.query_pairs_mut();
            if !query.tags.is_empty() {
                pairs.append_pair("tags", &query.tags.join(","));
            }
            if query.all_tenants {
                pairs.append_pair("all_tenants", "1");
            }
        }
        let body: ServersBody = self.get(&call, url).await?;
        Ok(body.servers)
    }

    /// Deletes a server. Returns whether it existed.
    ///
    /// # Errors
    /// [`OpenStackError::Refused`] when Nova refuses.
    pub async fn delete_server(
        &self,
        id: &str,
        request_id: &RequestId,
    ) -> Result<bool, OpenStackError> {
        let call = Call::new("nova", "delete a server").request_id(request_id);
        let url = self.url(&["servers", id]);
        let response = client::send(self.session, &call, Retry::Idempotent, |http| {
            http.delete(url.clone())
                .header(MICROVERSION_HEADER, microversion())
        })
        .await?;
        client::done(&call, response, true).await
    }

    /// A flavor by id or name; `None` when neither names one.
    ///
    /// # Errors
    /// [`OpenStackError`].
    pub async fn find_flavor(
        &self,
        name_or_id: &str,
        request_id: &RequestId,
    ) -> Result<Option<Flavor>, OpenStackError> {
        let call = Call::new("nova", "show a flavor").request_id(request_id);
        match self
            .get::<FlavorBody>(&call, self.url(&["flavors", name_or_id]))
            .await
        {
            Ok(body) => return Ok(Some(body.flavor)),
            Err(e) if e.kind() == nest_core::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let call = Call::new("nova", "list flavors").request_id(request_id);
        let body: FlavorsBody = self.get(&call, self.url(&["flavors", "detail"])).await?;
        Ok(body.flavors.into_iter().find(|f| f.name == name_or_id))
    }

    /// The names of the availability zones.
    ///
    /// # Errors
    /// [`OpenStackError`].
    pub async fn availability_zones(
        &self,
        request_id: &RequestId,
    ) -> Result<Vec<String>, OpenStackError> {
        let call = Call::new("nova", "list availability zones").request_id(request_id);
        let body: ZonesBody = self.get(&call, self.url(&["os-availability-zone"])).await?;
        Ok(body.zones.into_iter().map(|z| z.name).collect())
    }

    /// Whether the session's user has the key pair `name`.
    ///
    /// # Errors
    /// [`OpenStackError`].
    pub async fn has_key_pair(
        &self,
        name: &str,
        request_id: &RequestId,
    ) -> Result<bool, OpenStackError> {
        let call = Call::new("nova", "show a key pair").request_id(request_id);
        match self
            .get::<serde_json::Value>(&call, self.url(&["os-keypairs", name]))
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == nest_core::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The session's project's limits and usage; another project's with
    /// `project` (admin only).
    ///
    /// # Errors
    /// [`OpenStackError`].
    pub async fn limits(
        &self,
        project: Option<&str>,
        request_id: &RequestId,
    ) -> Result<AbsoluteLimits, OpenStackError> {
        let call = Call::new("nova", "show limits").request_id(request_id);
        let mut url = self.url(&["limits"]);
        if let Some(project) = project {
            url.query_pairs_mut().append_pair("tenant_id", project);
        }
        let body: LimitsBody = self.get(&call, url).await?;
        Ok(body.limits.absolute)
    }
}

fn microversion() -> String {
    format!("compute {COMPUTE_MICROVERSION}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_serialize_as_nova_reads_them() {
        assert_eq!(
            serde_json::to_value(ServerNetworks::None).expect("serializes"),
            serde_json::json!("none")
        );
        assert_eq!(
            serde_json::to_value(ServerNetworks::Networks(vec!["n1".into(), "n2".into()]))
                .expect("serializes"),
            serde_json::json!([{"uuid": "n1"}, {"uuid": "n2"}])
        );
    }

    #[test]
    fn a_servers_addresses_are_read_by_network_and_type() {
        let server: Server = serde_json::from_value(serde_json::json!({
            "id": "s1", "name": "n", "status": "ACTIVE", "tenant_id": "p",
            "addresses": {"private": [
                {"addr": "198.51.100.7", "version": 4, "OS-EXT-IPS:type": "fixed"},
                {"addr": "203.0.113.9", "version": 4, "OS-EXT-IPS:type": "floating"}
            ]},
            "flavor": {"vcpus": 1, "ram": 512, "disk": 1, "original_name": "m1.tiny"},
        }))
        .expect("a server");
        assert!(server.is_active());
        assert_eq!(
            server
                .addresses_of("private", "floating")
                .collect::<Vec<_>>(),
            ["203.0.113.9"]
        );
        assert_eq!(
            server.addresses_of("private", "fixed").collect::<Vec<_>>(),
            ["198.51.100.7"]
        );
        assert_eq!(server.addresses_of("public", "fixed").count(), 0);
    }

    #[test]
    fn a_create_never_shows_its_user_data() {
        let create = ServerCreate {
            name: "nest-1".into(),
            flavor_ref: "1".into(),
            image_ref: "img".into(),
            networks: ServerNetworks::None,
            availability_zone: None,
            key_name: None,
            user_data: Some("c2VjcmV0".into()),
            metadata: BTreeMap::new(),
            tags: vec![],
        };
        assert!(!create.redacted().contains("c2VjcmV0"));
    }
}
