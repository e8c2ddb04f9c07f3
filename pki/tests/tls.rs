//! The relay's TLS configurations against certificates the CA really
//! issues: mutual TLS 1.3 succeeds only with a client certificate of the
//! same CA that is valid now, and the server name is pinned.
#![allow(clippy::unwrap_used)]
use std::time::Duration;

use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use std::sync::Arc;

use nest_core::ids::InstanceId;
use nest_pki::{
    CertificateAuthority, DEFAULT_SERVER_CERT_LIFETIME, IssueRequest, IssuedCertificate, Validity,
};
use nest_relay::identity::{PeerIdentity, RELAY_SERVER_NAME, peer_identity};
use nest_relay::tls::{ALPN_H2, TlsError, client_config, server_config};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

fn install_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

fn issue(
    ca: &CertificateAuthority,
    identity: PeerIdentity,
    validity: Validity,
) -> IssuedCertificate {
    ca.issue(&IssueRequest {
        identity,
        dns_names: vec![],
        ip_addresses: vec![],
        validity,
    })
    .unwrap()
}

fn agent(ca: &CertificateAuthority, id: &str, validity: Validity) -> IssuedCertificate {
    issue(
        ca,
        PeerIdentity::agent(&InstanceId::parse(id).unwrap()),
        validity,
    )
}

fn relay_server(ca: &CertificateAuthority) -> ServerConfig {
    let relay = issue(
        ca,
        PeerIdentity::relay("relay-1").unwrap(),
        Validity::starting_now(DEFAULT_SERVER_CERT_LIFETIME),
    );
    server_config(
        ca.certificate_pem(),
        &relay.certificate_pem,
        relay.private_key_pem.expose(),
    )
    .unwrap()
}

/// What the server saw of a handshake: its end-entity client
/// certificate, if any.
type Seen = Option<CertificateDer<'static>>;

/// Runs one handshake over an in-memory pipe, then a one-byte echo so
/// that a client refused after its Finished also fails visibly.
async fn handshake(
    server: ServerConfig,
    client: ClientConfig,
) -> (Result<Seen, std::io::Error>, Result<(), std::io::Error>) {
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let acceptor = TlsAcceptor::from(Arc::new(server));
    let connector = TlsConnector::from(Arc::new(client));
    let server_side = async move {
        let mut tls = acceptor.accept(server_io).await?;
        let (_, conn) = tls.get_ref();
        assert_eq!(conn.alpn_protocol(), Some(ALPN_H2));
        let seen = conn.peer_certificates().and_then(|c| c.first().cloned());
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte).await?;
        tls.write_all(&byte).await?;
        tls.shutdown().await?;
        Ok(seen)
    };
    let client_side = async move {
        let name = ServerName::try_from(RELAY_SERVER_NAME).unwrap();
        let mut tls = connector.connect(name, client_io).await?;
        tls.write_all(b"x").await?;
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte).await?;
        Ok(())
    };
    let bounded = async { tokio::join!(server_side, client_side) };
    tokio::time::timeout(Duration::from_secs(10), bounded)
        .await
        .expect("handshake finished")
}

#[tokio::test]
async fn agent_certificate_is_seen_and_names_the_agent() {
    install_provider();
    let ca = CertificateAuthority::generate("test CA").unwrap();
    let cert = agent(
        &ca,
        "i-42",
        Validity::starting_now(Duration::from_secs(3600)),
    );
    let client = client_config(
        ca.certificate_pem(),
        Some((&cert.certificate_pem, cert.private_key_pem.expose())),
    )
    .unwrap();
    let (server, client) = handshake(relay_server(&ca), client).await;
    client.unwrap();
    let seen = server.unwrap().expect("client certificate");
    assert_eq!(
        peer_identity(&seen).unwrap(),
        PeerIdentity::agent(&InstanceId::parse("i-42").unwrap())
    );
}

#[tokio::test]
async fn client_without_certificate_connects_but_presents_none() {
    install_provider();
    let ca = CertificateAuthority::generate("test CA").unwrap();
    let client = client_config(ca.certificate_pem(), None).unwrap();
    let (server, client) = handshake(relay_server(&ca), client).await;
    client.unwrap();
    assert!(server.unwrap().is_none());
}

#[tokio::test]
async fn client_certificate_from_another_ca_is_refused() {
    install_provider();
    let ca = CertificateAuthority::generate("test CA").unwrap();
    let other = CertificateAuthority::generate("other CA").unwrap();
    let cert = agent(
        &other,
        "i-42",
        Validity::starting_now(Duration::from_secs(3600)),
    );
    // The client trusts the real CA, so only the server can refuse.
    let client = client_config(
        ca.certificate_pem(),
        Some((&cert.certificate_pem, cert.private_key_pem.expose())),
    )
    .unwrap();
    let (server, client) = handshake(relay_server(&ca), client).await;
    assert!(server.is_err());
    assert!(client.is_err());
}

#[tokio::test]
async fn expired_client_certificate_is_refused() {
    install_provider();
    let ca = CertificateAuthority::generate("test CA").unwrap();
    let cert = agent(&ca, "i-42", Validity::ended_ago(Duration::from_secs(600)));
    let client = client_config(
        ca.certificate_pem(),
        Some((&cert.certificate_pem, cert.private_key_pem.expose())),
    )
    .unwrap();
    let (server, client) = handshake(relay_server(&ca), client).await;
    let err = server.unwrap_err();
    assert!(err.to_string().to_lowercase().contains("expired"), "{err}");
    assert!(client.is_err());
}

#[tokio::test]
async fn tls12_only_client_is_refused() {
    install_provider();
    let ca = CertificateAuthority::generate("test CA").unwrap();
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.certificate_pem().as_bytes()).unwrap())
        .unwrap();
    let mut client = ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS12])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    client.alpn_protocols = vec![ALPN_H2.to_vec()];
    let (server, client) = handshake(relay_server(&ca), client).await;
    assert!(server.is_err());
    assert!(client.is_err());
}

#[tokio::test]
async fn client_refuses_a_server_from_another_ca() {
    install_provider();
    let ca = CertificateAuthority::generate("test CA").unwrap();
    let other = CertificateAuthority::generate("other CA").unwrap();
    let client = client_config(other.certificate_pem(), None).unwrap();
    let (server, client) = handshake(relay_server(&ca), client).await;
    assert!(server.is_err());
    assert!(client.is_err());
}

#[test]
fn bad_pem_inputs_are_refused() {
    install_provider();
    let ca = CertificateAuthority::generate("test CA").unwrap();
    let relay = issue(
        &ca,
        PeerIdentity::relay("r").unwrap(),
        Validity::starting_now(DEFAULT_SERVER_CERT_LIFETIME),
    );
    let other = issue(
        &ca,
        PeerIdentity::relay("r").unwrap(),
        Validity::starting_now(DEFAULT_SERVER_CERT_LIFETIME),
    );
    let key = relay.private_key_pem.expose();
    assert!(matches!(
        server_config("", &relay.certificate_pem, key),
        Err(TlsError::NoCertificate("CA certificate"))
    ));
    assert!(matches!(
        server_config(ca.certificate_pem(), "junk", key),
        Err(TlsError::NoCertificate("certificate"))
    ));
    assert!(matches!(
        server_config(ca.certificate_pem(), &relay.certificate_pem, "junk"),
        Err(TlsError::Pem {
            what: "private key",
            ..
        })
    ));
    assert!(matches!(
        server_config(
            ca.certificate_pem(),
            &relay.certificate_pem,
            other.private_key_pem.expose()
        ),
        Err(TlsError::Config(_))
    ));
    assert!(matches!(
        client_config("junk", None),
        Err(TlsError::NoCertificate("CA certificate"))
    ));
}
