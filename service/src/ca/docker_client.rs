//! The Docker endpoint's client certificates at the TLS layer (issue #8).
//!
//! The handshake takes any client certificate whose private key the client
//! proves ([`ProvenKeyVerifier`]: rustls still checks the CertificateVerify
//! signature), or none, so that a certificate of another CA or an expired
//! one is answered with Docker's error body, which the CLI prints, rather
//! than a TLS alert, which it cannot explain. [`ClientCertificateJudge::judge`]
//! then decides, once per connection and before any request is served,
//! whether the chain is Nest's and within its validity. Its answer,
//! [`ClientCertificate`], is the only way a serial reaches
//! authentication: a [`VerifiedSerial`] can be made nowhere else.
//!
//! What a verified serial stands for (issued here, not revoked) is the
//! application layer's question (`app::DockerCertificates`).

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::{CertificateDer, UnixTime};

/// The handshake's client certificate verifier: offers client
/// authentication without requiring it, accepts any certificate at the
/// handshake, and leaves the proof of possession of its key (the
/// signature checks) to the WebPki verifier it wraps.
#[derive(Debug)]
pub struct ProvenKeyVerifier {
    webpki: Arc<dyn ClientCertVerifier>,
}

impl ProvenKeyVerifier {
    /// Signature checks by `webpki` (the verifier over Nest's CA).
    pub fn new(webpki: Arc<dyn ClientCertVerifier>) -> Self {
        Self { webpki }
    }
}

impl ClientCertVerifier for ProvenKeyVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        // A token in X-Auth-Token works without a certificate.
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // No hints: Go's TLS client (the docker CLI) sends only a
        // certificate whose issuer is hinted, so with Nest's CA hinted a
        // certificate of another CA would silently not be sent and the
        // refusal would say "no credential" instead of "unknown CA".
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Judged after the handshake by `ClientCertificateJudge::judge`,
        // so that a refusal can be said in Docker's error body.
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// The serial (lowercase hex) of a client certificate whose chain was
/// verified against Nest's CA and was within its validity when the
/// connection was made. Only [`ClientCertificateJudge::judge`] makes one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedSerial(String);

impl VerifiedSerial {
    /// The serial, lowercase hex.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a client certificate is not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CertificateRefusal {
    /// The chain does not lead to Nest's CA.
    #[error("the client certificate was not issued by Nest's certificate authority")]
    UnknownIssuer,
    /// Its validity ended (RFC 3339 time).
    #[error("the client certificate expired at {0}")]
    Expired(String),
    /// Its validity has not begun (RFC 3339 time).
    #[error("the client certificate is not valid before {0}")]
    NotYetValid(String),
    /// It was revoked (the time recorded).
    #[error("the client certificate was revoked at {0}")]
    Revoked(String),
    /// Nest's CA signed it, but not for the Docker endpoint (an agent's
    /// or a server's certificate).
    #[error("the client certificate was not issued for the Docker endpoint")]
    NotIssued,
    /// Anything else that makes the chain unusable (bad encoding, bad
    /// signature, not for client authentication).
    #[error("the client certificate cannot be used ({0})")]
    Unusable(String),
}

/// What a connection's client certificate is, as the judge found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientCertificate {
    /// None was presented (a token may stand in).
    Absent,
    /// Nest's, and valid when the connection was made.
    Verified(VerifiedSerial),
    /// Presented, and refused.
    Refused(CertificateRefusal),
}

/// Judges a connection's client certificate chain against Nest's CA.
#[derive(Clone, Debug)]
pub struct ClientCertificateJudge {
    webpki: Arc<dyn ClientCertVerifier>,
}

impl ClientCertificateJudge {
    /// Chains are verified by `webpki` (the verifier over Nest's CA).
    pub fn new(webpki: Arc<dyn ClientCertVerifier>) -> Self {
        Self { webpki }
    }

    /// The verdict on `chain` (end entity first, as TLS delivered it) at
    /// `now`: the one place a client certificate is judged.
    pub fn judge(&self, chain: Option<&[CertificateDer<'_>]>, now: UnixTime) -> ClientCertificate {
        let Some((end_entity, intermediates)) = chain.and_then(<[_]>::split_first) else {
            return ClientCertificate::Absent;
        };
        match self
            .webpki
            .verify_client_cert(end_entity, intermediates, now)
        {
            Ok(_) => match serial_of(end_entity) {
                Some(serial) => ClientCertificate::Verified(VerifiedSerial(serial)),
                // webpki parsed it, so x509-parser should too.
                None => ClientCertificate::Refused(CertificateRefusal::Unusable(
                    "unreadable serial number".into(),
                )),
            },
            Err(e) => ClientCertificate::Refused(refusal_of(&e)),
        }
    }
}

/// The refusal a verification error means.
fn refusal_of(e: &rustls::Error) -> CertificateRefusal {
    let rustls::Error::InvalidCertificate(e) = e else {
        return CertificateRefusal::Unusable(e.to_string());
    };
    match e {
        // A bad signature on the chain: an issuer that names itself like
        // Nest's CA but holds another key.
        CertificateError::UnknownIssuer | CertificateError::BadSignature => {
            CertificateRefusal::UnknownIssuer
        }
        CertificateError::ExpiredContext { not_after, .. } => {
            CertificateRefusal::Expired(rfc3339(*not_after))
        }
        CertificateError::Expired => CertificateRefusal::Expired("an earlier time".into()),
        CertificateError::NotValidYetContext { not_before, .. } => {
            CertificateRefusal::NotYetValid(rfc3339(*not_before))
        }
        CertificateError::NotValidYet => CertificateRefusal::NotYetValid("a later time".into()),
        other => CertificateRefusal::Unusable(other.to_string()),
    }
}

fn rfc3339(t: UnixTime) -> String {
    i64::try_from(t.as_secs())
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{} seconds after the epoch", t.as_secs()))
}

/// The serial of a DER certificate, lowercase hex.
fn serial_of(certificate: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate.as_ref()).ok()?;
    Some(
        parsed
            .raw_serial()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Duration;

    use nest_pki::{CertificateAuthority, Validity};
    use rustls_pki_types::pem::PemObject;

    use super::*;

    fn judge_for(ca: &CertificateAuthority) -> ClientCertificateJudge {
        let (_, judge) = crate::ca::docker_client_verifiers(ca).expect("verifiers");
        judge
    }

    fn user_certificate(
        ca: &CertificateAuthority,
        validity: Validity,
    ) -> (CertificateDer<'static>, String) {
        let (cert, serial, _) = user_certificate_and_key(ca, validity);
        (cert, serial)
    }

    /// A certificate for a new key, its serial and the key (PKCS#8 DER).
    fn user_certificate_and_key(
        ca: &CertificateAuthority,
        validity: Validity,
    ) -> (CertificateDer<'static>, String, Vec<u8>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let csr = rcgen::CertificateParams::default()
            .serialize_request(&key)
            .unwrap()
            .pem()
            .unwrap();
        let signed = ca.sign_user_csr(&csr, "user-1", validity).unwrap();
        (
            CertificateDer::from_pem_slice(signed.certificate_pem.as_bytes()).unwrap(),
            signed.serial_hex,
            key.serialize_der(),
        )
    }

    /// Always presents one certificate and key, matching or not.
    #[derive(Debug)]
    struct Present(Arc<rustls::sign::CertifiedKey>);

    impl rustls::client::ResolvesClientCert for Present {
        fn resolve(
            &self,
            _hints: &[&[u8]],
            _schemes: &[SignatureScheme],
        ) -> Option<Arc<rustls::sign::CertifiedKey>> {
            Some(self.0.clone())
        }

        fn has_certs(&self) -> bool {
            true
        }
    }

    fn signing_key(pkcs8: Vec<u8>) -> Arc<dyn rustls::sign::SigningKey> {
        let der = rustls_pki_types::PrivateKeyDer::Pkcs8(pkcs8.into());
        rustls::crypto::aws_lc_rs::sign::any_supported_type(&der).unwrap()
    }

    /// A handshake with the Docker endpoint's real configuration, in
    /// memory; the server's view of the client's chain, or which side
    /// failed and why.
    fn handshake(
        ca: &CertificateAuthority,
        presented: Option<rustls::sign::CertifiedKey>,
    ) -> Result<Option<Vec<CertificateDer<'static>>>, String> {
        let server_tls = crate::ca::docker_server_tls(ca, "127.0.0.1").unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca.certificate_pem().as_bytes()).unwrap())
            .unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let client_config = match presented {
            Some(key) => builder.with_client_cert_resolver(Arc::new(Present(Arc::new(key)))),
            None => builder.with_no_client_auth(),
        };
        let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let mut client = rustls::ClientConnection::new(Arc::new(client_config), name).unwrap();
        let mut server = rustls::ServerConnection::new(Arc::new(server_tls.config)).unwrap();
        for _ in 0..16 {
            let mut wire = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut wire).unwrap();
            }
            server.read_tls(&mut wire.as_slice()).unwrap();
            server
                .process_new_packets()
                .map_err(|e| format!("server: {e}"))?;
            let mut wire = Vec::new();
            while server.wants_write() {
                server.write_tls(&mut wire).unwrap();
            }
            client.read_tls(&mut wire.as_slice()).unwrap();
            client
                .process_new_packets()
                .map_err(|e| format!("client: {e}"))?;
            if !client.is_handshaking() && !server.is_handshaking() {
                return Ok(server.peer_certificates().map(<[_]>::to_vec));
            }
        }
        Err("the handshake did not finish".into())
    }

    #[test]
    fn the_handshake_takes_any_certificate_whose_key_the_client_proves() {
        let ca = ca_named("nest");
        // Nest's, another CA's and an expired one: all through, to be
        // judged afterwards.
        let another = ca_named("another");
        let expired = Validity::ended_ago(Duration::from_secs(3600));
        for (issuer, validity) in [
            (&ca, Validity::starting_now(Duration::from_secs(3600))),
            (&another, Validity::starting_now(Duration::from_secs(3600))),
            (&ca, expired),
        ] {
            let (cert, _, key) = user_certificate_and_key(issuer, validity);
            let presented = rustls::sign::CertifiedKey::new(vec![cert.clone()], signing_key(key));
            let chain = handshake(&ca, Some(presented)).expect("the handshake succeeds");
            assert_eq!(chain, Some(vec![cert]));
        }
        // None at all: through, with no chain.
        assert_eq!(handshake(&ca, None), Ok(None));
    }

    #[test]
    fn the_handshake_refuses_a_certificate_whose_key_the_client_does_not_hold() {
        let ca = ca_named("nest");
        let (cert, _, _) =
            user_certificate_and_key(&ca, Validity::starting_now(Duration::from_secs(3600)));
        // Another key of the same kind signs the CertificateVerify.
        let other_key = rcgen::KeyPair::generate().unwrap().serialize_der();
        let presented = rustls::sign::CertifiedKey::new(vec![cert], signing_key(other_key));
        let refused = handshake(&ca, Some(presented)).expect_err("refused");
        assert_eq!(refused, "server: invalid peer certificate: BadSignature");
    }

    fn ca_named(name: &str) -> CertificateAuthority {
        CertificateAuthority::generate(name).unwrap()
    }

    #[test]
    fn a_certificate_of_nests_ca_within_its_validity_is_verified_with_its_serial() {
        let ca = ca_named("nest");
        let (cert, serial) =
            user_certificate(&ca, Validity::starting_now(Duration::from_secs(3600)));
        let verdict = judge_for(&ca).judge(Some(&[cert]), UnixTime::now());
        let ClientCertificate::Verified(verified) = verdict else {
            panic!("{verdict:?}");
        };
        assert_eq!(verified.as_str(), serial);
    }

    #[test]
    fn no_certificate_is_absent() {
        let judge = judge_for(&ca_named("nest"));
        assert_eq!(
            judge.judge(None, UnixTime::now()),
            ClientCertificate::Absent
        );
        assert_eq!(
            judge.judge(Some(&[]), UnixTime::now()),
            ClientCertificate::Absent
        );
    }

    #[test]
    fn a_certificate_of_another_ca_is_refused_as_unknown_issuer() {
        let (cert, _) = user_certificate(
            &ca_named("another"),
            Validity::starting_now(Duration::from_secs(3600)),
        );
        assert_eq!(
            judge_for(&ca_named("nest")).judge(Some(&[cert]), UnixTime::now()),
            ClientCertificate::Refused(CertificateRefusal::UnknownIssuer)
        );
    }

    #[test]
    fn a_certificate_of_another_ca_of_the_same_name_is_refused_as_unknown_issuer() {
        let (cert, _) = user_certificate(
            &ca_named("nest"),
            Validity::starting_now(Duration::from_secs(3600)),
        );
        assert_eq!(
            judge_for(&ca_named("nest")).judge(Some(&[cert]), UnixTime::now()),
            ClientCertificate::Refused(CertificateRefusal::UnknownIssuer)
        );
    }

    #[test]
    fn a_self_signed_certificate_is_refused_as_unknown_issuer() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["me".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        assert_eq!(
            judge_for(&ca_named("nest")).judge(Some(&[cert.der().clone()]), UnixTime::now()),
            ClientCertificate::Refused(CertificateRefusal::UnknownIssuer)
        );
    }

    #[test]
    fn an_expired_certificate_is_refused_naming_its_end() {
        let ca = ca_named("nest");
        let not_after = time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let validity = Validity::new(not_after - time::Duration::HOUR, not_after).unwrap();
        let (cert, _) = user_certificate(&ca, validity);
        assert_eq!(
            judge_for(&ca).judge(Some(&[cert]), UnixTime::now()),
            ClientCertificate::Refused(CertificateRefusal::Expired("2023-11-14T22:13:20Z".into()))
        );
    }

    #[test]
    fn a_certificate_not_yet_valid_is_refused_naming_its_start() {
        let ca = ca_named("nest");
        let (cert, _) = user_certificate(&ca, Validity::starting_now(Duration::from_secs(3600)));
        // Judged an hour before it was made: its start is after then.
        let earlier = UnixTime::since_unix_epoch(
            UnixTime::now()
                .as_secs()
                .checked_sub(3600)
                .map(Duration::from_secs)
                .unwrap(),
        );
        let verdict = judge_for(&ca).judge(Some(&[cert]), earlier);
        assert!(
            matches!(
                verdict,
                ClientCertificate::Refused(CertificateRefusal::NotYetValid(_))
            ),
            "{verdict:?}"
        );
    }

    #[test]
    fn garbage_is_refused_as_unusable() {
        let verdict = judge_for(&ca_named("nest")).judge(
            Some(&[CertificateDer::from(b"not a certificate".to_vec())]),
            UnixTime::now(),
        );
        assert!(
            matches!(
                verdict,
                ClientCertificate::Refused(CertificateRefusal::Unusable(_))
            ),
            "{verdict:?}"
        );
    }
}
