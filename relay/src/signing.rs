//! The seam between the relay client and whoever signs agents'
//! certificates (the service's CA, in `nest-pki`): the client serves
//! signing requests through it, so neither the agent nor the relay links
//! the CA code.

use nest_core::{ErrorKind, InstanceId};

/// What answers agents' certificate requests: the service's CA. The relay
/// client knows only this seam, so the agent and the relay never link the
/// CA code.
pub trait SigningAuthority: Send + Sync + 'static {
    /// Signs the CSR of a first enrollment, redeeming `token`.
    ///
    /// # Errors
    /// [`SigningRefusal`] with the kind and reason the agent is told.
    fn enroll(&self, token: &str, csr_pem: &str) -> Result<SignedCertificate, SigningRefusal>;

    /// Signs a renewal CSR of an agent whose identity the relay verified.
    ///
    /// # Errors
    /// [`SigningRefusal`] with the kind and reason the agent is told.
    fn renew(
        &self,
        instance: &InstanceId,
        csr_pem: &str,
    ) -> Result<SignedCertificate, SigningRefusal>;
}

/// A certificate issued to an agent.
#[derive(Clone, Debug)]
pub struct SignedCertificate {
    /// The agent's certificate, PEM.
    pub certificate_pem: String,
    /// The CA certificate it chains to, PEM.
    pub ca_certificate_pem: String,
    /// The instance the certificate names.
    pub instance_id: InstanceId,
}

/// Why a certificate request was refused, as the agent is told.
#[derive(Clone, Debug)]
pub struct SigningRefusal {
    /// The classification.
    pub kind: ErrorKind,
    /// The reason.
    pub message: String,
}
