//! Who a Nest certificate names, and how that name is written into it.
//!
//! Every certificate Nest's CA issues carries exactly one URI subject
//! alternative name of the form `nest://<role>/<name>`:
//! `nest://agent/<instance-id>`, `nest://service/<name>` or
//! `nest://relay/<name>`. The relay takes a peer's identity from that URI
//! and from nothing else (not the common name, not anything the peer says),
//! and checks the role so that an agent certificate can never act as the
//! service, nor the reverse.
//!
//! This module only *reads* identities. It does not verify certificates:
//! [`peer_identity`] must only be called on a certificate that rustls has
//! already verified against Nest's CA (see [`crate::tls`]).

use std::fmt;

use rustls_pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;

use nest_core::ids::{InstanceId, InstanceIdError};

/// How far a certificate's `not_before` is backdated, so that a peer whose
/// clock is a little behind the CA's does not reject a certificate issued a
/// moment ago; agents allow the same skew when they judge expiry.
pub const CLOCK_SKEW_ALLOWANCE: std::time::Duration = std::time::Duration::from_secs(5 * 60);

/// DNS name every relay certificate carries, so that an agent verifies the
/// relay by this fixed name whatever address (IP, floating IP, DNS alias)
/// it dials.
pub const RELAY_SERVER_NAME: &str = "relay.nest";

/// Scheme and authority separator that starts every identity URI.
const URI_PREFIX: &str = "nest://";

/// What a certificate holder is allowed to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// A `nest-agent` running in one instance; its name is the instance id.
    Agent,
    /// `nest-service`, which sends commands to agents through the relay.
    Service,
    /// A `nest-relay` server.
    Relay,
}

impl Role {
    /// The role as written in an identity URI (`agent`, `service`, `relay`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::Service => "service",
            Self::Relay => "relay",
        }
    }

    fn from_uri_segment(segment: &str) -> Option<Self> {
        match segment {
            "agent" => Some(Self::Agent),
            "service" => Some(Self::Service),
            "relay" => Some(Self::Relay),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The identity a Nest certificate names: a role and a name within it.
///
/// Names use the [`InstanceId`] character set (ASCII letters, digits, `-`,
/// `_`, `.`; at most 64 characters), so that they are safe in URIs, common
/// names and log lines.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PeerIdentity {
    /// What the holder is allowed to act as.
    pub role: Role,
    /// The instance id for an agent; a free name for a service or relay.
    pub name: String,
}

/// Why an identity could not be built or read.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The certificate is not valid DER X.509.
    #[error("certificate could not be parsed")]
    Parse(#[source] x509_parser::nom::Err<x509_parser::error::X509Error>),
    /// Bytes follow the certificate in its DER encoding.
    #[error("certificate is followed by {0} bytes of trailing data")]
    TrailingData(usize),
    /// The subject alternative name extension is malformed or repeated.
    #[error("certificate's subject alternative names could not be read")]
    SubjectAltName(#[source] x509_parser::error::X509Error),
    /// The certificate names no `nest://` URI.
    #[error("certificate carries no nest:// URI subject alternative name")]
    NoNestUri,
    /// The certificate names several `nest://` URIs, so it is ambiguous.
    #[error(
        "certificate carries {0} nest:// URI subject alternative names; exactly one is allowed"
    )]
    SeveralNestUris(usize),
    /// The URI does not start with `nest://`.
    #[error("identity URI does not start with {URI_PREFIX}")]
    NotNestUri,
    /// The URI has no `/<name>` after the role.
    #[error("identity URI has no name after its role")]
    MissingName,
    /// The role segment is not `agent`, `service` or `relay`.
    #[error("identity URI names unknown role {0:?}")]
    UnknownRole(String),
    /// The name is empty, too long or holds a character outside the
    /// instance id character set.
    #[error("identity name is not allowed")]
    BadName(#[source] InstanceIdError),
}

impl PeerIdentity {
    /// The identity of the agent running in `instance`.
    pub fn agent(instance: &InstanceId) -> Self {
        Self {
            role: Role::Agent,
            name: instance.as_str().to_owned(),
        }
    }

    /// The identity of a `nest-service` process called `name`.
    ///
    /// # Errors
    /// [`IdentityError::BadName`] when `name` is outside the instance id
    /// character set.
    pub fn service(name: &str) -> Result<Self, IdentityError> {
        Self::new(Role::Service, name)
    }

    /// The identity of a `nest-relay` process called `name`.
    ///
    /// # Errors
    /// [`IdentityError::BadName`] when `name` is outside the instance id
    /// character set.
    pub fn relay(name: &str) -> Result<Self, IdentityError> {
        Self::new(Role::Relay, name)
    }

    /// An identity with any role, checking the name.
    ///
    /// # Errors
    /// [`IdentityError::BadName`] when `name` is outside the instance id
    /// character set.
    pub fn new(role: Role, name: &str) -> Result<Self, IdentityError> {
        validate_name(name)?;
        Ok(Self {
            role,
            name: name.to_owned(),
        })
    }

    /// The instance this identity is the agent of; `None` for any other role
    /// (or a hand-built agent identity whose name is not a valid id).
    pub fn instance_id(&self) -> Option<InstanceId> {
        match self.role {
            Role::Agent => InstanceId::parse(&self.name).ok(),
            Role::Service | Role::Relay => None,
        }
    }

    /// The `nest://<role>/<name>` URI written into certificates.
    pub fn to_uri(&self) -> String {
        format!("{URI_PREFIX}{}/{}", self.role, self.name)
    }

    /// Reads an identity back from its `nest://<role>/<name>` URI.
    ///
    /// The form is strict: lowercase scheme and role, exactly one name
    /// segment, no query, fragment or percent-encoding (the name character
    /// set excludes `/`, `?`, `#` and `%`).
    ///
    /// # Errors
    /// [`IdentityError`] naming the first part of the URI that is wrong.
    pub fn from_uri(uri: &str) -> Result<Self, IdentityError> {
        let rest = uri
            .strip_prefix(URI_PREFIX)
            .ok_or(IdentityError::NotNestUri)?;
        let (role, name) = rest.split_once('/').ok_or(IdentityError::MissingName)?;
        let role = Role::from_uri_segment(role)
            .ok_or_else(|| IdentityError::UnknownRole(role.to_owned()))?;
        Self::new(role, name)
    }

    /// Checks that the name is within the allowed character set; used before
    /// writing a hand-built identity into a certificate.
    ///
    /// # Errors
    /// [`IdentityError::BadName`] when it is not.
    pub fn validate(&self) -> Result<(), IdentityError> {
        validate_name(&self.name)
    }
}

impl fmt::Display for PeerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{URI_PREFIX}{}/{}", self.role, self.name)
    }
}

/// Names share the instance id rules: the same reasons (URIs, file names,
/// log lines) apply, and one rule is easier to reason about than two.
fn validate_name(name: &str) -> Result<(), IdentityError> {
    InstanceId::parse(name)
        .map(drop)
        .map_err(IdentityError::BadName)
}

/// Whether a URI SAN is meant as a Nest identity. The scheme is compared
/// case-insensitively (as RFC 3986 says schemes are), so that a `NEST://`
/// URI counts towards "several" instead of being silently skipped.
fn is_nest_uri(uri: &str) -> bool {
    uri.get(..URI_PREFIX.len())
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case(URI_PREFIX))
}

/// Reads the identity a verified end-entity certificate names.
///
/// Only call this on a certificate that rustls has already verified against
/// Nest's CA: it extracts the identity and checks its form, nothing more.
///
/// # Errors
/// [`IdentityError`] when the certificate cannot be parsed, or carries zero
/// or several `nest://` URI SANs, or its URI is malformed.
pub fn peer_identity(end_entity: &CertificateDer<'_>) -> Result<PeerIdentity, IdentityError> {
    let (rest, cert) =
        x509_parser::parse_x509_certificate(end_entity.as_ref()).map_err(IdentityError::Parse)?;
    if !rest.is_empty() {
        return Err(IdentityError::TrailingData(rest.len()));
    }
    let san = cert
        .subject_alternative_name()
        .map_err(IdentityError::SubjectAltName)?;
    let mut uris = san
        .iter()
        .flat_map(|ext| ext.value.general_names.iter())
        .filter_map(|name| match name {
            GeneralName::URI(uri) if is_nest_uri(uri) => Some(*uri),
            _ => None,
        });
    let first = uris.next().ok_or(IdentityError::NoNestUri)?;
    let others = uris.count();
    if others > 0 {
        return Err(IdentityError::SeveralNestUris(others.saturating_add(1)));
    }
    PeerIdentity::from_uri(first)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use rcgen::{CertificateParams, KeyPair, SanType};

    use super::*;

    fn instance(id: &str) -> InstanceId {
        InstanceId::parse(id).unwrap()
    }

    fn self_signed_with_uris(uris: &[&str]) -> CertificateDer<'static> {
        let mut params = CertificateParams::default();
        params.subject_alt_names = uris
            .iter()
            .map(|u| SanType::URI((*u).try_into().unwrap()))
            .collect();
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn uri_round_trips_for_every_role() {
        let ids = [
            PeerIdentity::agent(&instance("6f1c1c3e-2b7a-4d7e-9a52-0d1f3c2b1a00")),
            PeerIdentity::service("svc-1").unwrap(),
            PeerIdentity::relay("relay.a").unwrap(),
        ];
        for id in ids {
            let uri = id.to_uri();
            assert_eq!(PeerIdentity::from_uri(&uri).unwrap(), id);
            assert_eq!(id.to_string(), uri);
        }
        assert_eq!(
            PeerIdentity::agent(&instance("i-1")).to_uri(),
            "nest://agent/i-1"
        );
    }

    #[test]
    fn instance_id_is_only_given_for_agents() {
        let agent = PeerIdentity::agent(&instance("i-1"));
        assert_eq!(agent.instance_id(), Some(instance("i-1")));
        assert_eq!(PeerIdentity::service("i-1").unwrap().instance_id(), None);
        assert_eq!(PeerIdentity::relay("i-1").unwrap().instance_id(), None);
    }

    #[test]
    fn malformed_uris_are_refused() {
        for uri in [
            "https://agent/i-1",
            "nest:/agent/i-1",
            "NEST://agent/i-1",
            "nest://agent",
            "nest://agent/",
            "nest://agent/i-1/extra",
            "nest://agent/i-1?x=1",
            "nest://agent/i%2d1",
            "nest://admin/i-1",
            "nest://Agent/i-1",
            "nest://agent/.hidden",
        ] {
            assert!(PeerIdentity::from_uri(uri).is_err(), "{uri} was accepted");
        }
        assert!(matches!(
            PeerIdentity::from_uri("nest://admin/x"),
            Err(IdentityError::UnknownRole(r)) if r == "admin"
        ));
        assert!(PeerIdentity::service("a b").is_err());
        assert!(PeerIdentity::relay("").is_err());
    }

    #[test]
    fn certificate_without_or_with_several_nest_uris_is_refused() {
        let none = self_signed_with_uris(&["https://example.invalid/x"]);
        assert!(matches!(
            peer_identity(&none),
            Err(IdentityError::NoNestUri)
        ));

        let two = self_signed_with_uris(&["nest://agent/a", "NEST://service/b"]);
        assert!(matches!(
            peer_identity(&two),
            Err(IdentityError::SeveralNestUris(2))
        ));

        let one = self_signed_with_uris(&["https://example.invalid/x", "nest://agent/a"]);
        assert_eq!(
            peer_identity(&one).unwrap(),
            PeerIdentity::agent(&instance("a"))
        );
    }

    #[test]
    fn garbage_certificate_is_refused() {
        let der = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01]);
        assert!(matches!(peer_identity(&der), Err(IdentityError::Parse(_))));
    }
}
