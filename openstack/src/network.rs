//! [`Network`]: the Neutron v2.0 client: networks by name or id, a
//! server's ports, and floating IPs.
//!
//! Same shape as [`crate::compute`]: one call per method, typed bodies,
//! refusals with Neutron's own message, reads and deletes retried.

use nest_core::RequestId;
use serde::Deserialize;
use url::Url;

use crate::catalog::{Interface, join_segments};
use crate::client::{self, Retry};
use crate::error::OpenStackError;
use crate::session::{Call, Session};

/// The Neutron client, on a session and its network endpoint.
#[derive(Debug)]
pub struct Network<'a> {
    session: &'a Session,
    endpoint: Url,
}

/// A Neutron network.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct NetworkInfo {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Whether floating IPs come from it.
    #[serde(rename = "router:external", default)]
    pub external: bool,
}

/// A port.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Port {
    /// Id.
    pub id: String,
    /// Its network.
    pub network_id: String,
    /// The server it belongs to.
    #[serde(default)]
    pub device_id: String,
    /// Its fixed addresses.
    #[serde(default)]
    pub fixed_ips: Vec<FixedIp>,
}

/// A fixed address of a port.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct FixedIp {
    /// The address.
    pub ip_address: String,
    /// Its subnet.
    pub subnet_id: String,
}

/// A floating IP.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct FloatingIp {
    /// Id.
    pub id: String,
    /// The address.
    pub floating_ip_address: String,
    /// The external network it comes from.
    pub floating_network_id: String,
    /// The port it is associated with.
    #[serde(default)]
    pub port_id: Option<String>,
}

#[derive(Deserialize)]
struct NetworkBody {
    network: NetworkInfo,
}

#[derive(Deserialize)]
struct NetworksBody {
    networks: Vec<NetworkInfo>,
}

#[derive(Deserialize)]
struct PortsBody {
    ports: Vec<Port>,
}

#[derive(Deserialize)]
struct FloatingIpBody {
    floatingip: FloatingIp,
}

#[derive(Deserialize)]
struct FloatingIpsBody {
    floatingips: Vec<FloatingIp>,
}

impl<'a> Network<'a> {
    /// The client on `session`'s network endpoint.
    ///
    /// # Errors
    /// Why the endpoint is unknown.
    pub async fn connect(
        session: &'a Session,
        interface: Interface,
        region: Option<&str>,
    ) -> Result<Self, OpenStackError> {
        let endpoint = session.endpoint("network", interface, region).await?;
        Ok(Self { session, endpoint })
    }

    fn url(&self, segments: &[&str]) -> Url {
        // Catalogs list Neutron with or without its version.
        let versioned = self
            .endpoint
            .path()
            .trim_end_matches('/')
            .ends_with("/v2.0");
        let mut all = if versioned { vec![] } else { vec!["v2.0"] };
        all.extend_from_slice(segments);
        join_segments(&self.endpoint, &all)
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        call: &Call<'_>,
        url: Url,
    ) -> Result<T, OpenStackError> {
        let response = client::send(self.session, call, Retry::Idempotent, |http| {
            http.get(url.clone())
        })
        .await?;
        client::json(call, response).await
    }

    /// A network by id or name (visible to the session); `None` when
    /// neither names one. A name held by several networks is refused.
    ///
    /// # Errors
    /// [`OpenStackError`]; [`OpenStackError::Refused`] (409) for an
    /// ambiguous name.
    pub async fn find_network(
        &self,
        name_or_id: &str,
        request_id: &RequestId,
    ) -> Result<Option<NetworkInfo>, OpenStackError> {
        let call = Call::new("neutron", "show a network").request_id(request_id);
        match self
            .get::<NetworkBody>(&call, self.url(&["networks", name_or_id]))
            .await
        {
            Ok(body) => return Ok(Some(body.network)),
            Err(e) if e.kind() == nest_core::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let call = Call::new("neutron", "list networks").request_id(request_id);
        let mut url = self.url(&["networks"]);
        url.query_pairs_mut().append_pair("name", name_or_id);
        let mut found: NetworksBody = self.get(&call, url).await?;
        match found.networks.len() {
            0 => Ok(None),
            1 => Ok(found.networks.pop()),
            n => Err(OpenStackError::Refused {
                service: "neutron",
                operation: "find a network",
                status: 409,
                message: format!("{n} networks are named {name_or_id:?}; name one by id"),
                request: crate::error::RemoteRequestId(None),
            }),
        }
    }

    /// The ports of a server.
    ///
    /// # Errors
    /// [`OpenStackError`].
    pub async fn server_ports(
        &self,
        server_id: &str,
        request_id: &RequestId,
    ) -> Result<Vec<Port>, OpenStackError> {
        let call = Call::new("neutron", "list a server's ports").request_id(request_id);
        let mut url = self.url(&["ports"]);
        url.query_pairs_mut().append_pair("device_id", server_id);
        let body: PortsBody = self.get(&call, url).await?;
        Ok(body.ports)
    }

    /// Allocates a floating IP from `network_id` and associates it with
    /// `port_id`. Sent once.
    ///
    /// # Errors
    /// [`OpenStackError::Refused`] with Neutron's message.
    pub async fn create_floating_ip(
        &self,
        network_id: &str,
        port_id: &str,
        description: &str,
        request_id: &RequestId,
    ) -> Result<FloatingIp, OpenStackError> {
        let call = Call::new("neutron", "allocate a floating IP").request_id(request_id);
        let url = self.url(&["floatingips"]);
        let body = serde_json::json!({"floatingip": {
            "floating_network_id": network_id,
            "port_id": port_id,
            "description": description,
        }});
        let response = client::send(self.session, &call, Retry::Never, |http| {
            http.post(url.clone()).json(&body)
        })
        .await?;
        let created: FloatingIpBody = client::json(&call, response).await?;
        Ok(created.floatingip)
    }

    /// Floating IPs whose description is `description` (Nest writes its
    /// instance id there, so that they are found after the port is gone).
    ///
    /// # Errors
    /// [`OpenStackError`].
    pub async fn floating_ips_described(
        &self,
        description: &str,
        request_id: &RequestId,
    ) -> Result<Vec<FloatingIp>, OpenStackError> {
        let call = Call::new("neutron", "list floating IPs").request_id(request_id);
        let mut url = self.url(&["floatingips"]);
        url.query_pairs_mut()
            .append_pair("description", description);
        let body: FloatingIpsBody = self.get(&call, url).await?;
        Ok(body.floatingips)
    }

    /// Releases a floating IP. Returns whether it existed.
    ///
    /// # Errors
    /// [`OpenStackError::Refused`].
    pub async fn delete_floating_ip(
        &self,
        id: &str,
        request_id: &RequestId,
    ) -> Result<bool, OpenStackError> {
        let call = Call::new("neutron", "release a floating IP").request_id(request_id);
        let url = self.url(&["floatingips", id]);
        let response = client::send(self.session, &call, Retry::Idempotent, |http| {
            http.delete(url.clone())
        })
        .await?;
        client::done(&call, response, true).await
    }
}
