//! The CA's certificates name exactly the identity the relay reads back
//! from them, for every role.
#![allow(clippy::unwrap_used)]

use nest_core::InstanceId;
use nest_pki::{CertificateAuthority, IssueRequest, Validity};
use nest_relay::identity::{PeerIdentity, peer_identity};
use rustls_pki_types::CertificateDer;

fn instance(id: &str) -> InstanceId {
    InstanceId::parse(id).unwrap()
}

fn issue(ca: &CertificateAuthority, identity: PeerIdentity) -> CertificateDer<'static> {
    let issued = ca
        .issue(&IssueRequest {
            identity,
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
            validity: Validity::starting_now(std::time::Duration::from_secs(3600)),
        })
        .unwrap();
    use rustls_pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(issued.certificate_pem.as_bytes()).unwrap()
}

#[test]
fn peer_identity_reads_each_role_from_an_issued_certificate() {
    let ca = CertificateAuthority::generate("test CA").unwrap();
    for id in [
        PeerIdentity::agent(&instance("i-42")),
        PeerIdentity::service("service-a").unwrap(),
        PeerIdentity::relay("relay-a").unwrap(),
    ] {
        let der = issue(&ca, id.clone());
        assert_eq!(peer_identity(&der).unwrap(), id);
    }
}
