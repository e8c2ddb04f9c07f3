//! The enrollment check: before an agent's first certificate is handed
//! out, the instance driver confirms with the cloud that the instance the
//! enrollment token names really is one Nest booted and that it is up (for
//! `nova`: a server of the expected project, `ACTIVE`, carrying Nest's id
//! in its metadata). A token copied out of user data into some other
//! machine then gets no certificate.
//!
//! It wraps the CA's signer at the seam the relay client serves
//! ([`SigningAuthority`]). That seam is synchronous and is called on a
//! blocking thread (signing is CPU work), so the driver's check runs on
//! the service's runtime through its handle.

use std::sync::Arc;
use std::time::Duration;

use nest_core::backoff::Backoff;
use nest_core::{ErrorKind, InstanceId};
use nest_relay::signing::{SignedCertificate, SigningAuthority, SigningRefusal};

use crate::driver::InstanceDriver;

/// Checks of one enrollment before a cloud that does not answer refuses it.
const CHECK_ATTEMPTS: u32 = 4;
/// First wait between two checks.
const CHECK_RETRY_INITIAL: Duration = Duration::from_millis(500);
/// Longest wait between two checks.
const CHECK_RETRY_MAX: Duration = Duration::from_secs(4);

/// A signer whose enrollments the driver confirms first.
pub struct VerifiedEnrollment {
    signer: Arc<dyn SigningAuthority>,
    driver: Arc<dyn InstanceDriver>,
    runtime: tokio::runtime::Handle,
}

impl VerifiedEnrollment {
    /// Wraps `signer`; checks run on `runtime`.
    pub fn new(
        signer: Arc<dyn SigningAuthority>,
        driver: Arc<dyn InstanceDriver>,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        Self {
            signer,
            driver,
            runtime,
        }
    }
}

impl SigningAuthority for VerifiedEnrollment {
    /// Redeems the token and signs, then asks the driver; a refused check
    /// discards the certificate (the token stays spent: it was single-use
    /// and is now known to have leaked).
    fn enroll(&self, token: &str, csr_pem: &str) -> Result<SignedCertificate, SigningRefusal> {
        let signed = self.signer.enroll(token, csr_pem)?;
        let instance = signed.instance_id.clone();
        let checked = self.runtime.block_on(async {
            // The token is spent now: ride out a short outage of the cloud
            // rather than strand the instance.
            let mut backoff = Backoff::new(CHECK_RETRY_INITIAL, CHECK_RETRY_MAX);
            let mut attempt = 1;
            loop {
                match self.driver.verify_enrollment(&instance).await {
                    Err(e) if e.kind().is_retryable() && attempt < CHECK_ATTEMPTS => {
                        tracing::info!(instance_id = %instance, error = %crate::error_chain(&e), "enrollment check not answered; retrying");
                        attempt += 1;
                        tokio::time::sleep(backoff.next_delay()).await;
                    }
                    other => return other,
                }
            }
        });
        match checked {
            Ok(()) => Ok(signed),
            Err(e) => {
                let reason = crate::error_chain(&e);
                tracing::warn!(instance_id = %instance, %reason, "enrollment refused by the instance check");
                Err(SigningRefusal {
                    kind: if e.kind().is_retryable() {
                        ErrorKind::Unavailable
                    } else {
                        ErrorKind::Forbidden
                    },
                    message: format!("instance {instance} cannot enroll: {reason}"),
                })
            }
        }
    }

    fn renew(
        &self,
        instance: &InstanceId,
        csr_pem: &str,
    ) -> Result<SignedCertificate, SigningRefusal> {
        self.signer.renew(instance, csr_pem)
    }
}
