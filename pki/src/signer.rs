//! What the service runs to answer the relay's signing requests: enrollment
//! (one-time token + CSR) and renewal (verified identity + CSR).
//!
//! The instance an agent certificate names always comes from the server
//! side, the token's record or the caller's verified certificate, never
//! from the CSR.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use nest_relay::signing::{SignedCertificate, SigningAuthority, SigningRefusal};

use crate::Validity;
use crate::ca::{AgentCsr, CertificateAuthority, PkiError};
use crate::tokens::{TokenError, TokenStore};
use nest_core::ErrorKind;
use nest_core::ids::InstanceId;

/// Why an enrollment or renewal was refused.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The enrollment token was malformed, unknown, expired or used.
    #[error("enrollment token refused")]
    Token(#[from] TokenError),
    /// The CSR was refused, or signing failed.
    #[error("agent certificate could not be issued")]
    Pki(#[from] PkiError),
}

impl SignError {
    /// How a caller sees this error: bad token → `Unauthenticated`, bad CSR
    /// → `Invalid`, signing failure → `Internal`.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Token(e) => e.kind(),
            Self::Pki(e) => e.kind(),
        }
    }
}

/// Logs why a token was refused, each reason in its own words: a token
/// presented again after its use is the sign of a leak (the user-data it
/// came from was read by someone else), so it is a security event.
fn log_refusal(error: &TokenError) {
    match error {
        TokenError::AlreadyUsed { instance } => tracing::warn!(
            security_event = "enrollment_token_reused",
            instance_id = %instance,
            "security: enrollment refused: the token was already used; the instance's user-data may have leaked"
        ),
        TokenError::Expired { instance } => tracing::info!(
            instance_id = %instance,
            "enrollment refused: the token has expired"
        ),
        TokenError::Unknown => {
            tracing::info!("enrollment refused: the token is unknown (never issued, or purged)");
        }
        TokenError::Malformed => tracing::info!("enrollment refused: the token is malformed"),
        TokenError::TtlTooLong(_) | TokenError::Random(_) => {
            tracing::warn!(error = %error, "enrollment refused");
        }
    }
}

/// A certificate issued to an agent, with what it needs to use it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedAgent {
    /// The agent's new certificate, PEM.
    pub certificate_pem: String,
    /// The CA certificate, PEM, for the agent to verify the relay with.
    pub ca_certificate_pem: String,
    /// The instance the certificate names.
    pub instance_id: InstanceId,
}

/// Issues agent certificates for enrollment and renewal.
pub struct Signer {
    ca: Arc<CertificateAuthority>,
    tokens: Arc<dyn TokenStore>,
    agent_lifetime: Duration,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("agent_lifetime", &self.agent_lifetime)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// A signer issuing agent certificates valid for `agent_lifetime`
    /// (usually [`crate::DEFAULT_AGENT_CERT_LIFETIME`]).
    pub fn new(
        ca: Arc<CertificateAuthority>,
        tokens: Arc<dyn TokenStore>,
        agent_lifetime: Duration,
    ) -> Self {
        Self {
            ca,
            tokens,
            agent_lifetime,
        }
    }

    /// Enrolls a new agent: redeems its one-time token and signs its CSR
    /// for the instance the token was issued for.
    ///
    /// The CSR is checked before the token is redeemed, so a malformed CSR
    /// does not burn the agent's only token.
    ///
    /// # Errors
    /// [`SignError::Pki`] for a bad CSR (kind `Invalid`) or a signing
    /// failure (`Internal`); [`SignError::Token`] for a refused token
    /// (`Unauthenticated`).
    pub fn enroll(&self, token: &str, csr_pem: &str) -> Result<SignedAgent, SignError> {
        let csr = AgentCsr::parse(csr_pem)?;
        let instance = self.tokens.redeem(token).inspect_err(log_refusal)?;
        let signed = self.sign(&csr, instance)?;
        tracing::info!(instance_id = %signed.instance_id, "agent enrolled");
        Ok(signed)
    }

    /// Renews the certificate of the agent of `instance`, which the caller
    /// took from the agent's verified certificate.
    ///
    /// # Errors
    /// [`SignError::Pki`] for a bad CSR (kind `Invalid`) or a signing
    /// failure (`Internal`).
    pub fn renew(&self, instance: &InstanceId, csr_pem: &str) -> Result<SignedAgent, SignError> {
        let csr = AgentCsr::parse(csr_pem)?;
        let signed = self.sign(&csr, instance.clone())?;
        tracing::debug!(instance_id = %signed.instance_id, "agent certificate renewed");
        Ok(signed)
    }

    fn sign(&self, csr: &AgentCsr, instance: InstanceId) -> Result<SignedAgent, PkiError> {
        let validity = Validity::starting_now(self.agent_lifetime);
        let certificate_pem = self.ca.sign_parsed_agent_csr(csr, &instance, validity)?;
        Ok(SignedAgent {
            certificate_pem,
            ca_certificate_pem: self.ca.certificate_pem().to_owned(),
            instance_id: instance,
        })
    }
}

impl SigningAuthority for Signer {
    fn enroll(&self, token: &str, csr_pem: &str) -> Result<SignedCertificate, SigningRefusal> {
        Signer::enroll(self, token, csr_pem)
            .map(SignedAgent::into_certificate)
            .map_err(SignError::into_refusal)
    }

    fn renew(
        &self,
        instance: &InstanceId,
        csr_pem: &str,
    ) -> Result<SignedCertificate, SigningRefusal> {
        Signer::renew(self, instance, csr_pem)
            .map(SignedAgent::into_certificate)
            .map_err(SignError::into_refusal)
    }
}

impl SignedAgent {
    fn into_certificate(self) -> SignedCertificate {
        SignedCertificate {
            certificate_pem: self.certificate_pem,
            ca_certificate_pem: self.ca_certificate_pem,
            instance_id: self.instance_id,
        }
    }
}

impl SignError {
    fn into_refusal(self) -> SigningRefusal {
        SigningRefusal {
            kind: self.kind(),
            message: self.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use rcgen::{CertificateParams, KeyPair, SanType};
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;

    use super::*;
    use crate::{DEFAULT_AGENT_CERT_LIFETIME, MemoryTokenStore};
    use nest_relay::identity::{PeerIdentity, peer_identity};

    fn instance(id: &str) -> InstanceId {
        InstanceId::parse(id).unwrap()
    }

    fn csr_claiming(uri: &str) -> String {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.subject_alt_names = vec![SanType::URI(uri.try_into().unwrap())];
        params.serialize_request(&key).unwrap().pem().unwrap()
    }

    fn signer() -> (Signer, Arc<MemoryTokenStore>) {
        let ca = Arc::new(CertificateAuthority::generate("test CA").unwrap());
        let tokens = Arc::new(MemoryTokenStore::new());
        (
            Signer::new(ca, tokens.clone(), DEFAULT_AGENT_CERT_LIFETIME),
            tokens,
        )
    }

    fn named(pem: &str) -> PeerIdentity {
        peer_identity(&CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()).unwrap()
    }

    /// The log lines `f` writes, as the fmt subscriber renders them.
    fn logged(f: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Lines(Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Lines {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let bytes = lines.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn each_refusal_is_logged_in_its_own_words_and_reuse_is_a_security_event() {
        let (signer, tokens) = signer();
        let token = tokens
            .issue(&instance("i-leaky"), Duration::from_secs(600))
            .unwrap();
        let csr = csr_claiming("nest://agent/i-leaky");
        signer.enroll(token.as_str(), &csr).unwrap();
        let log = logged(|| {
            let _ = signer.enroll(token.as_str(), &csr);
            let _ = signer.enroll(&"0".repeat(64), &csr);
            let _ = signer.enroll("short", &csr);
        });
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(lines.len(), 3, "{log}");
        assert!(
            lines[0].contains("WARN")
                && lines[0].contains("security_event=\"enrollment_token_reused\"")
                && lines[0].contains("instance_id=i-leaky")
                && lines[0].contains("already used"),
            "{log}"
        );
        assert!(lines[1].contains("the token is unknown"), "{log}");
        assert!(lines[2].contains("the token is malformed"), "{log}");
    }

    #[test]
    fn signer_is_shareable_across_tasks() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Signer>();
        assert_send_sync::<CertificateAuthority>();
    }

    #[test]
    fn enrollment_names_the_tokens_instance_not_the_csrs() {
        let (signer, tokens) = signer();
        let token = tokens
            .issue(&instance("i-good"), Duration::from_secs(600))
            .unwrap();
        let signed = signer
            .enroll(token.as_str(), &csr_claiming("nest://agent/i-other"))
            .unwrap();
        assert_eq!(signed.instance_id, instance("i-good"));
        assert_eq!(
            named(&signed.certificate_pem),
            PeerIdentity::agent(&instance("i-good"))
        );
        assert_eq!(signed.ca_certificate_pem, signer.ca.certificate_pem());

        let again = signer
            .enroll(token.as_str(), &csr_claiming("nest://agent/i-good"))
            .unwrap_err();
        assert!(matches!(
            again,
            SignError::Token(TokenError::AlreadyUsed { .. })
        ));
        assert_eq!(again.kind(), ErrorKind::Unauthenticated);
    }

    #[test]
    fn malformed_csr_is_invalid_and_does_not_burn_the_token() {
        let (signer, tokens) = signer();
        let token = tokens
            .issue(&instance("i-1"), Duration::from_secs(600))
            .unwrap();
        let err = signer.enroll(token.as_str(), "garbage").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Invalid);
        let ok = signer
            .enroll(token.as_str(), &csr_claiming("nest://agent/i-1"))
            .unwrap();
        assert_eq!(ok.instance_id, instance("i-1"));
    }

    #[test]
    fn bad_tokens_are_unauthenticated() {
        let (signer, _) = signer();
        let csr = csr_claiming("nest://agent/i-1");
        for token in ["nope", &"0".repeat(64)] {
            let err = signer.enroll(token, &csr).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Unauthenticated, "{token}");
        }
    }

    #[test]
    fn renewal_names_the_callers_instance() {
        let (signer, _) = signer();
        let signed = signer
            .renew(&instance("i-7"), &csr_claiming("nest://service/main"))
            .unwrap();
        assert_eq!(
            named(&signed.certificate_pem),
            PeerIdentity::agent(&instance("i-7"))
        );
        let err = signer.renew(&instance("i-7"), "garbage").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Invalid);
    }
}
