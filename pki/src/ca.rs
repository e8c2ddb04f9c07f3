//! The certificate authority: creating, loading and saving it, and issuing
//! leaf certificates.
//!
//! Everything a leaf certificate says (subject, SANs, key usage, extended
//! key usage, validity, CA flag) is decided here from a [`PeerIdentity`],
//! never taken from a CSR: of an agent's CSR only the public key is kept,
//! after its self-signature proves the agent holds the private key.
//!
//! The file functions are blocking; call them at startup or from
//! `spawn_blocking`, never directly inside an async task.

use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PublicKeyData,
    SanType, SerialNumber,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateSigningRequestDer};
use x509_parser::prelude::FromDer;

use crate::{Secret, Validity};
use nest_core::ErrorKind;
use nest_core::ids::InstanceId;
use nest_relay::identity::{IdentityError, PeerIdentity, RELAY_SERVER_NAME, Role};

/// File name of the CA certificate inside the directory given to
/// [`CertificateAuthority::load_or_create`].
pub const CA_CERT_FILE: &str = "ca.pem";

/// File name of the CA private key (mode 0600) inside that directory.
pub const CA_KEY_FILE: &str = "ca-key.pem";

/// Common name of a CA made by [`CertificateAuthority::load_or_create`].
pub const DEFAULT_CA_COMMON_NAME: &str = "Nest CA";

/// How long a generated CA certificate lives.
pub const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);

/// Largest CSR accepted, checked before parsing: a P-256 CSR is under 1 KiB,
/// and the limit bounds the work an unauthenticated caller can cause.
pub const MAX_CSR_PEM_LEN: usize = 16 * 1024;

/// Longest common name X.509 allows (RFC 5280 `ub-common-name`).
const MAX_COMMON_NAME_LEN: usize = 64;

/// Why a CA could not be made, loaded or saved, or a certificate issued.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// The CA's common name is empty or longer than 64 characters.
    #[error("CA common name must be 1 to {MAX_COMMON_NAME_LEN} characters long")]
    BadCommonName,
    /// A key pair could not be generated or a certificate not be signed.
    #[error("key generation or signing failed")]
    Crypto(#[source] rcgen::Error),
    /// Randomness for a serial number was unavailable.
    #[error("random number generator failed")]
    Random(#[source] aws_lc_rs::error::Unspecified),
    /// The CA private key PEM could not be read.
    #[error("CA private key could not be parsed")]
    CaKey(#[source] rcgen::Error),
    /// The CA certificate PEM holds no certificate, or is not PEM.
    #[error("CA certificate PEM holds no certificate")]
    NoCaCertificate,
    /// The CA certificate PEM holds more than one certificate.
    #[error("CA certificate PEM holds {0} certificates; exactly one is expected")]
    SeveralCaCertificates(usize),
    /// The CA certificate PEM is malformed.
    #[error("CA certificate PEM is malformed")]
    CaPem(#[source] rustls_pki_types::pem::Error),
    /// The CA certificate is not valid X.509.
    #[error("CA certificate could not be parsed")]
    CaCertificate(#[source] rcgen::Error),
    /// The CA certificate is not marked as a CA (basicConstraints CA:TRUE).
    #[error("CA certificate is not a CA certificate")]
    NotACa,
    /// The CA private key does not belong to the CA certificate.
    #[error("CA private key does not match the CA certificate")]
    KeyMismatch,
    /// Exactly one of the two CA files exists, so the directory is in a
    /// state this code did not leave it in (or a first start crashed
    /// between the two writes); refusing is safer than overwriting a key.
    #[error(
        "{present} exists but {missing} does not; restore it, or remove both to create a new CA"
    )]
    IncompleteCaDir {
        /// The file that exists.
        present: PathBuf,
        /// The file that is missing.
        missing: PathBuf,
    },
    /// A CA file could not be read or written.
    #[error("{op} {path}")]
    Io {
        /// What was being done: "reading", "writing", "creating".
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying failure.
        #[source]
        source: io::Error,
    },
    /// A CA file is not UTF-8 PEM text.
    #[error("{0} is not UTF-8 text")]
    NotText(PathBuf),
    /// The identity to certify has a name outside the allowed set.
    #[error("identity to certify is invalid")]
    Identity(#[source] IdentityError),
    /// A requested DNS name is not a valid IA5 string.
    #[error("DNS name {name:?} cannot be put in a certificate")]
    BadDnsName {
        /// The name as requested.
        name: String,
        /// Why rcgen refused it.
        #[source]
        source: rcgen::Error,
    },
    /// A validity window whose end is not after its start.
    #[error("certificate validity ends before it starts")]
    EmptyValidity,
    /// The CSR is larger than [`MAX_CSR_PEM_LEN`].
    #[error("CSR is {0} bytes long; at most {MAX_CSR_PEM_LEN} are accepted")]
    CsrTooLarge(usize),
    /// The CSR is not PEM, not a valid PKCS#10 request, carries an
    /// unsupported extension, or its signature does not verify.
    #[error("CSR is malformed or its signature does not verify")]
    Csr(#[source] rcgen::Error),
    /// The CSR's key is not of the algorithm its signature says, so a
    /// certificate for it would be unusable.
    #[error("CSR public key does not match its signature algorithm")]
    CsrKeyMismatch,
}

impl PkiError {
    /// How a caller sees this error: a bad CSR is the requester's fault
    /// (`Invalid`); everything else is the operator's or a bug (`Internal`).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::CsrTooLarge(_) | Self::Csr(_) | Self::CsrKeyMismatch => ErrorKind::Invalid,
            Self::BadCommonName
            | Self::Crypto(_)
            | Self::Random(_)
            | Self::CaKey(_)
            | Self::NoCaCertificate
            | Self::SeveralCaCertificates(_)
            | Self::CaPem(_)
            | Self::CaCertificate(_)
            | Self::NotACa
            | Self::KeyMismatch
            | Self::IncompleteCaDir { .. }
            | Self::Io { .. }
            | Self::NotText(_)
            | Self::Identity(_)
            | Self::BadDnsName { .. }
            | Self::EmptyValidity => ErrorKind::Internal,
        }
    }
}

/// What to put in a certificate issued with a fresh key pair.
#[derive(Clone, Debug)]
pub struct IssueRequest {
    /// Who the certificate names; decides CN, URI SAN and key usages.
    pub identity: PeerIdentity,
    /// Extra DNS SANs (a relay always also gets [`RELAY_SERVER_NAME`]).
    pub dns_names: Vec<String>,
    /// IP address SANs, for peers that verify by address.
    pub ip_addresses: Vec<IpAddr>,
    /// When the certificate is valid.
    pub validity: Validity,
}

/// A certificate and the private key made for it, both PEM.
#[derive(Debug)]
pub struct IssuedCertificate {
    /// The leaf certificate, PEM.
    pub certificate_pem: String,
    /// Its PKCS#8 private key, PEM; never log it.
    pub private_key_pem: Secret<String>,
}

/// An agent's CSR whose signature has been verified; only its public key
/// will be used.
pub(crate) struct AgentCsr {
    csr: CertificateSigningRequestParams,
}

impl AgentCsr {
    /// Bounds, parses and verifies a PEM CSR.
    pub(crate) fn parse(csr_pem: &str) -> Result<Self, PkiError> {
        if csr_pem.len() > MAX_CSR_PEM_LEN {
            return Err(PkiError::CsrTooLarge(csr_pem.len()));
        }
        // Checks the PEM and the PKCS#10 self-signature.
        let csr = CertificateSigningRequestParams::from_pem(csr_pem).map_err(PkiError::Csr)?;
        // rcgen takes the key's algorithm from the *signature* algorithm;
        // re-encoding the key that way must give back the CSR's own
        // SubjectPublicKeyInfo, or the certificate would carry a mangled key.
        let der = CertificateSigningRequestDer::from_pem_slice(csr_pem.as_bytes())
            .map_err(|_| PkiError::Csr(rcgen::Error::CouldNotParseCertificationRequest))?;
        let (_, parsed) =
            x509_parser::certification_request::X509CertificationRequest::from_der(der.as_ref())
                .map_err(|_| PkiError::Csr(rcgen::Error::CouldNotParseCertificationRequest))?;
        if parsed.certification_request_info.subject_pki.raw
            != csr.public_key.subject_public_key_info().as_slice()
        {
            return Err(PkiError::CsrKeyMismatch);
        }
        Ok(Self { csr })
    }
}

/// Nest's certificate authority: an ECDSA P-256 key and its self-signed
/// certificate.
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    certificate_pem: String,
}

impl fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key stays out of Debug output; the Issuer's own Debug elides it.
        f.debug_struct("CertificateAuthority")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// Makes a new CA: ECDSA P-256, valid for ten years (from
    /// [`crate::CLOCK_SKEW_ALLOWANCE`] ago), `CA:TRUE, pathlen:0`, key usage
    /// keyCertSign and cRLSign.
    ///
    /// # Errors
    /// [`PkiError::BadCommonName`] for an empty or over-long name,
    /// [`PkiError::Crypto`] if key generation or signing fails.
    pub fn generate(common_name: &str) -> Result<Self, PkiError> {
        if common_name.is_empty() || common_name.chars().count() > MAX_COMMON_NAME_LEN {
            return Err(PkiError::BadCommonName);
        }
        let key = KeyPair::generate().map_err(PkiError::Crypto)?;
        let validity = Validity::starting_now(CA_LIFETIME);
        let mut params = CertificateParams::default();
        params.distinguished_name = common_name_dn(common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = validity.not_before();
        params.not_after = validity.not_after();
        params.serial_number = Some(random_serial()?);
        let certificate = params.self_signed(&key).map_err(PkiError::Crypto)?;
        Ok(Self {
            certificate_pem: certificate.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads a CA from its certificate and private key, both PEM.
    ///
    /// # Errors
    /// [`PkiError`] when either does not parse, the certificate is not a CA
    /// certificate, or the key is not the certificate's.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, PkiError> {
        let key = KeyPair::from_pem(key_pem).map_err(PkiError::CaKey)?;
        let mut certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes());
        let der = certs
            .next()
            .ok_or(PkiError::NoCaCertificate)?
            .map_err(PkiError::CaPem)?;
        let extra = certs.count();
        if extra > 0 {
            return Err(PkiError::SeveralCaCertificates(extra.saturating_add(1)));
        }
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
            .map_err(|_| PkiError::CaCertificate(rcgen::Error::CouldNotParseCertificate))?;
        let is_ca = cert
            .basic_constraints()
            .map_err(|_| PkiError::CaCertificate(rcgen::Error::CouldNotParseCertificate))?
            .is_some_and(|bc| bc.value.ca);
        if !is_ca {
            return Err(PkiError::NotACa);
        }
        if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(PkiError::KeyMismatch);
        }
        let issuer = Issuer::from_ca_cert_der(&der, key).map_err(PkiError::CaCertificate)?;
        Ok(Self {
            issuer,
            certificate_pem: cert_pem.to_owned(),
        })
    }

    /// Loads the CA from `dir/ca.pem` and `dir/ca-key.pem`, or creates both
    /// (and `dir`, mode 0700) when neither exists.
    ///
    /// Each file is written to a temporary name, flushed to disk and renamed
    /// into place, so a crash never leaves a partial file; the key file is
    /// created with mode 0600 and written first. Not meant for two processes
    /// creating the same CA at once. Blocking.
    ///
    /// # Errors
    /// [`PkiError::IncompleteCaDir`] when only one of the files exists;
    /// [`PkiError::Io`] on file errors; any error of [`Self::from_pem`] or
    /// [`Self::generate`].
    pub fn load_or_create(dir: &Path) -> Result<Self, PkiError> {
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        match (exists(&cert_path)?, exists(&key_path)?) {
            (true, true) => {
                warn_if_key_readable_by_others(&key_path);
                let cert = read_text(&cert_path)?;
                let key = read_text(&key_path)?;
                Self::from_pem(&cert, &key)
            }
            (true, false) => Err(PkiError::IncompleteCaDir {
                present: cert_path,
                missing: key_path,
            }),
            (false, true) => Err(PkiError::IncompleteCaDir {
                present: key_path,
                missing: cert_path,
            }),
            (false, false) => {
                let ca = Self::generate(DEFAULT_CA_COMMON_NAME)?;
                DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(|source| io_error("creating", dir, source))?;
                // Key first: a crash between the two renames then leaves a
                // key without a certificate, which is refused on the next
                // start instead of a certificate nobody can sign with.
                write_atomically(dir, CA_KEY_FILE, ca.key_pem().as_bytes(), 0o600)?;
                write_atomically(dir, CA_CERT_FILE, ca.certificate_pem.as_bytes(), 0o644)?;
                File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|source| io_error("syncing", dir, source))?;
                tracing::info!(dir = %dir.display(), "created a new certificate authority");
                Ok(ca)
            }
        }
    }

    /// The CA certificate, PEM, as agents and servers trust it.
    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    /// The CA private key, PKCS#8 PEM, for writing it out. Never log it.
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// Issues a certificate for `req.identity` with a freshly generated
    /// ECDSA P-256 key pair.
    ///
    /// Relay certificates get EKU serverAuth and always the DNS SAN
    /// [`RELAY_SERVER_NAME`]; service certificates clientAuth and
    /// serverAuth; agent certificates clientAuth only.
    ///
    /// # Errors
    /// [`PkiError::Identity`] or [`PkiError::BadDnsName`] for names that
    /// cannot go in a certificate; [`PkiError::Crypto`] if generation or
    /// signing fails.
    pub fn issue(&self, req: &IssueRequest) -> Result<IssuedCertificate, PkiError> {
        let params = leaf_params(
            &req.identity,
            &req.dns_names,
            &req.ip_addresses,
            req.validity,
        )?;
        let key = KeyPair::generate().map_err(PkiError::Crypto)?;
        let certificate = params
            .signed_by(&key, &self.issuer)
            .map_err(PkiError::Crypto)?;
        Ok(IssuedCertificate {
            certificate_pem: certificate.pem(),
            private_key_pem: Secret::new(key.serialize_pem()),
        })
    }

    /// Signs an agent's CSR for `instance`, returning the certificate PEM.
    ///
    /// The CSR's signature must verify; then everything in it but the
    /// public key is ignored: subject, SANs, key usages, validity and CA
    /// flag are set here, naming `instance` only.
    ///
    /// # Errors
    /// [`PkiError::CsrTooLarge`], [`PkiError::Csr`] or
    /// [`PkiError::CsrKeyMismatch`] for a bad CSR (kind `Invalid`);
    /// [`PkiError::Crypto`] if signing fails.
    pub fn sign_agent_csr(
        &self,
        csr_pem: &str,
        instance: &InstanceId,
        validity: Validity,
    ) -> Result<String, PkiError> {
        let csr = AgentCsr::parse(csr_pem)?;
        self.sign_parsed_agent_csr(&csr, instance, validity)
    }

    /// Signs an already verified CSR; see [`Self::sign_agent_csr`].
    pub(crate) fn sign_parsed_agent_csr(
        &self,
        csr: &AgentCsr,
        instance: &InstanceId,
        validity: Validity,
    ) -> Result<String, PkiError> {
        let params = leaf_params(&PeerIdentity::agent(instance), &[], &[], validity)?;
        let certificate = params
            .signed_by(&csr.csr.public_key, &self.issuer)
            .map_err(PkiError::Crypto)?;
        Ok(certificate.pem())
    }
}

/// A client certificate signed for a person (a Docker CLI user), not for
/// a Nest process.
#[derive(Debug)]
pub struct SignedClient {
    /// The certificate, PEM.
    pub certificate_pem: String,
    /// Its serial number, lowercase hex: the key the caller records it under.
    pub serial_hex: String,
}

/// Which URI a user's client certificate carries: not a `nest://` peer
/// identity, so no relay ever accepts it as an agent, relay or service.
pub const USER_URI_PREFIX: &str = "urn:nest:user:";

impl CertificateAuthority {
    /// Signs a user's CSR as a client certificate (EKU clientAuth only)
    /// with common name `user` and the URI `urn:nest:user:<user>`. As for
    /// agents, only the CSR's public key is kept; the caller records the
    /// returned serial with whom it stands for.
    ///
    /// # Errors
    /// [`PkiError::CsrTooLarge`], [`PkiError::Csr`] or
    /// [`PkiError::CsrKeyMismatch`] for a bad CSR (kind `Invalid`);
    /// [`PkiError::BadCommonName`] for an empty or over-long `user`;
    /// [`PkiError::Crypto`] if signing fails.
    pub fn sign_user_csr(
        &self,
        csr_pem: &str,
        user: &str,
        validity: Validity,
    ) -> Result<SignedClient, PkiError> {
        if user.is_empty() || user.chars().count() > MAX_COMMON_NAME_LEN {
            return Err(PkiError::BadCommonName);
        }
        let csr = AgentCsr::parse(csr_pem)?;
        let uri = format!("{USER_URI_PREFIX}{user}")
            .try_into()
            .map_err(PkiError::Crypto)?;
        let serial = random_serial()?;
        let serial_hex = serial.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        let mut params = CertificateParams::default();
        params.distinguished_name = common_name_dn(user);
        params.subject_alt_names = vec![SanType::URI(uri)];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.not_before = validity.not_before();
        params.not_after = validity.not_after();
        params.serial_number = Some(serial);
        params.use_authority_key_identifier_extension = true;
        let certificate = params
            .signed_by(&csr.csr.public_key, &self.issuer)
            .map_err(PkiError::Crypto)?;
        Ok(SignedClient {
            certificate_pem: certificate.pem(),
            serial_hex,
        })
    }
}

/// Builds a leaf certificate's parameters from the identity alone; the one
/// place that decides what a Nest leaf certificate says.
fn leaf_params(
    identity: &PeerIdentity,
    dns_names: &[String],
    ip_addresses: &[IpAddr],
    validity: Validity,
) -> Result<CertificateParams, PkiError> {
    identity.validate().map_err(PkiError::Identity)?;
    let uri = identity.to_uri().try_into().map_err(PkiError::Crypto)?;
    let mut sans = vec![SanType::URI(uri)];
    let mut dns: Vec<&str> = dns_names.iter().map(String::as_str).collect();
    if identity.role == Role::Relay && !dns.contains(&RELAY_SERVER_NAME) {
        dns.push(RELAY_SERVER_NAME);
    }
    for name in dns {
        let ia5 = name.try_into().map_err(|source| PkiError::BadDnsName {
            name: name.to_owned(),
            source,
        })?;
        sans.push(SanType::DnsName(ia5));
    }
    sans.extend(ip_addresses.iter().copied().map(SanType::IpAddress));

    let mut params = CertificateParams::default();
    params.distinguished_name = common_name_dn(&identity.name);
    params.subject_alt_names = sans;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = match identity.role {
        Role::Agent => vec![ExtendedKeyUsagePurpose::ClientAuth],
        Role::Service => vec![
            ExtendedKeyUsagePurpose::ClientAuth,
            ExtendedKeyUsagePurpose::ServerAuth,
        ],
        Role::Relay => vec![ExtendedKeyUsagePurpose::ServerAuth],
    };
    params.not_before = validity.not_before();
    params.not_after = validity.not_after();
    // rcgen's default serial is a hash of the public key, which would repeat
    // when an agent renews with the same key; RFC 5280 wants them unique.
    params.serial_number = Some(random_serial()?);
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

fn common_name_dn(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn
}

/// A random positive 16-byte serial number (RFC 5280 allows up to 20).
fn random_serial() -> Result<SerialNumber, PkiError> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).map_err(PkiError::Random)?;
    // Clear the top bit so the DER INTEGER stays positive, and set the next
    // one so the encoding never shrinks below 16 bytes.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

fn io_error(op: &'static str, path: &Path, source: io::Error) -> PkiError {
    PkiError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

fn exists(path: &Path) -> Result<bool, PkiError> {
    path.try_exists()
        .map_err(|source| io_error("checking", path, source))
}

fn read_text(path: &Path) -> Result<String, PkiError> {
    let bytes = fs::read(path).map_err(|source| io_error("reading", path, source))?;
    String::from_utf8(bytes).map_err(|_| PkiError::NotText(path.to_owned()))
}

fn warn_if_key_readable_by_others(path: &Path) {
    if let Ok(meta) = fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %path.display(),
            mode = format_args!("{:o}", meta.permissions().mode() & 0o777),
            "CA private key is readable by group or others; chmod 600 it"
        );
    }
}

/// Writes `dir/name` so that it either has the whole content or does not
/// exist: temporary file (created with `mode`), fsync, rename.
fn write_atomically(dir: &Path, name: &str, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    let tmp = dir.join(format!(".{name}.tmp"));
    // A temporary file left by a crash is garbage; create_new below must not
    // trip over it.
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => return Err(io_error("removing", &tmp, source)),
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|source| io_error("creating", &tmp, source))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|source| io_error("writing", &tmp, source))?;
    drop(file);
    let path = dir.join(name);
    fs::rename(&tmp, &path).map_err(|source| io_error("renaming into", &path, source))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use rustls::pki_types::UnixTime;
    use rustls::server::WebPkiClientVerifier;
    use x509_parser::extensions::GeneralName;

    use super::*;
    use crate::{DEFAULT_AGENT_CERT_LIFETIME, DEFAULT_SERVER_CERT_LIFETIME};
    use nest_relay::identity::peer_identity;

    fn instance(id: &str) -> InstanceId {
        InstanceId::parse(id).unwrap()
    }

    fn der(pem: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
    }

    /// Verifies `leaf_pem` as a client certificate against `ca` with the
    /// same webpki code the relay's TLS uses.
    fn verify_client(ca: &CertificateAuthority, leaf_pem: &str) -> Result<(), rustls::Error> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der(ca.certificate_pem())).unwrap();
        let verifier = WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
        )
        .build()
        .unwrap();
        verifier
            .verify_client_cert(&der(leaf_pem), &[], UnixTime::now())
            .map(drop)
    }

    /// A CSR from a key the "agent" holds, claiming whatever it likes.
    fn csr_claiming(cn: &str, uri: &str) -> (String, KeyPair) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = common_name_dn(cn);
        params.subject_alt_names = vec![
            SanType::URI(uri.try_into().unwrap()),
            SanType::DnsName(RELAY_SERVER_NAME.try_into().unwrap()),
        ];
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let csr = params.serialize_request(&key).unwrap().pem().unwrap();
        (csr, key)
    }

    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            let mut r = [0u8; 8];
            aws_lc_rs::rand::fill(&mut r).unwrap();
            let hex: String = r.iter().map(|b| format!("{b:02x}")).collect();
            Self(std::env::temp_dir().join(format!("nest-pki-{}-{hex}", std::process::id())))
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn ca_round_trips_through_pem_and_still_issues_valid_certificates() {
        let ca = CertificateAuthority::generate("test CA").unwrap();
        let reloaded = CertificateAuthority::from_pem(ca.certificate_pem(), &ca.key_pem()).unwrap();
        assert_eq!(reloaded.certificate_pem(), ca.certificate_pem());
        assert_eq!(reloaded.key_pem(), ca.key_pem());

        let ca_der = der(ca.certificate_pem());
        let (_, cert) = x509_parser::parse_x509_certificate(ca_der.as_ref()).unwrap();
        let bc = cert.basic_constraints().unwrap().unwrap().value;
        assert!(bc.ca);
        assert_eq!(bc.path_len_constraint, Some(0));
        let ku = cert.key_usage().unwrap().unwrap().value;
        assert!(ku.key_cert_sign() && ku.crl_sign() && !ku.digital_signature());
        let lifetime = cert.validity().time_to_expiration().unwrap();
        assert!(lifetime > time::Duration::days(3649));

        let issued = reloaded
            .issue(&IssueRequest {
                identity: PeerIdentity::agent(&instance("i-1")),
                dns_names: vec![],
                ip_addresses: vec![],
                validity: Validity::starting_now(DEFAULT_AGENT_CERT_LIFETIME),
            })
            .unwrap();
        verify_client(&ca, &issued.certificate_pem).unwrap();
    }

    #[test]
    fn from_pem_refuses_mismatched_key_and_non_ca_certificate() {
        let a = CertificateAuthority::generate("a").unwrap();
        let b = CertificateAuthority::generate("b").unwrap();
        assert!(matches!(
            CertificateAuthority::from_pem(a.certificate_pem(), &b.key_pem()),
            Err(PkiError::KeyMismatch)
        ));
        let leaf = a
            .issue(&IssueRequest {
                identity: PeerIdentity::service("svc").unwrap(),
                dns_names: vec![],
                ip_addresses: vec![],
                validity: Validity::starting_now(DEFAULT_SERVER_CERT_LIFETIME),
            })
            .unwrap();
        assert!(matches!(
            CertificateAuthority::from_pem(&leaf.certificate_pem, leaf.private_key_pem.expose()),
            Err(PkiError::NotACa)
        ));
        assert!(matches!(
            CertificateAuthority::from_pem("garbage", &a.key_pem()),
            Err(PkiError::NoCaCertificate)
        ));
        assert!(matches!(
            CertificateAuthority::from_pem(a.certificate_pem(), "garbage"),
            Err(PkiError::CaKey(_))
        ));
        let two = format!("{}{}", a.certificate_pem(), b.certificate_pem());
        assert!(matches!(
            CertificateAuthority::from_pem(&two, &a.key_pem()),
            Err(PkiError::SeveralCaCertificates(2))
        ));
    }

    #[test]
    fn load_or_create_creates_once_then_reuses_with_a_private_key_file() {
        let tmp = TempDir::new();
        let dir = tmp.0.join("ca");
        let first = CertificateAuthority::load_or_create(&dir).unwrap();
        let key_mode = fs::metadata(dir.join(CA_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(key_mode & 0o777, 0o600);
        let dir_mode = fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        assert_eq!(
            fs::read_to_string(dir.join(CA_CERT_FILE)).unwrap(),
            first.certificate_pem()
        );
        let leftovers: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");

        let second = CertificateAuthority::load_or_create(&dir).unwrap();
        assert_eq!(second.certificate_pem(), first.certificate_pem());
        assert_eq!(second.key_pem(), first.key_pem());
    }

    #[test]
    fn load_or_create_refuses_a_key_without_its_certificate() {
        let tmp = TempDir::new();
        let ca = CertificateAuthority::load_or_create(&tmp.0).unwrap();
        fs::remove_file(tmp.0.join(CA_CERT_FILE)).unwrap();
        assert!(matches!(
            CertificateAuthority::load_or_create(&tmp.0),
            Err(PkiError::IncompleteCaDir { .. })
        ));
        // Nothing was overwritten.
        assert_eq!(
            fs::read_to_string(tmp.0.join(CA_KEY_FILE)).unwrap(),
            ca.key_pem()
        );
        assert!(!tmp.0.join(CA_CERT_FILE).exists());
    }

    #[test]
    fn agent_certificate_names_the_given_instance_not_what_the_csr_claims() {
        let ca = CertificateAuthority::generate("test CA").unwrap();
        let (csr, agent_key) = csr_claiming("i-evil", "nest://service/main");
        let pem = ca
            .sign_agent_csr(
                &csr,
                &instance("i-good"),
                Validity::starting_now(DEFAULT_AGENT_CERT_LIFETIME),
            )
            .unwrap();
        let der = der(&pem);
        assert_eq!(
            peer_identity(&der).unwrap(),
            PeerIdentity::agent(&instance("i-good"))
        );

        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
        let cn: Vec<_> = cert
            .subject()
            .iter_common_name()
            .map(|cn| cn.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(cn, ["i-good"]);
        let sans: Vec<_> = cert
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names
            .clone();
        assert_eq!(sans, [GeneralName::URI("nest://agent/i-good")]);
        assert!(!cert.basic_constraints().unwrap().unwrap().value.ca);
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        // The certificate carries the agent's key, so only the agent can use it.
        assert_eq!(
            cert.public_key().subject_public_key.data.as_ref(),
            agent_key.public_key_raw()
        );
        let left = cert.validity().time_to_expiration().unwrap();
        assert!(left <= time::Duration::hours(12) && left > time::Duration::hours(11));
        verify_client(&ca, &pem).unwrap();
    }

    #[test]
    fn user_certificate_names_the_user_and_is_no_peer_identity() {
        let ca = CertificateAuthority::generate("test CA").unwrap();
        let (csr, user_key) = csr_claiming("root", "nest://service/main");
        let signed = ca
            .sign_user_csr(
                &csr,
                "alice",
                Validity::starting_now(Duration::from_secs(3600)),
            )
            .unwrap();
        let der = der(&signed.certificate_pem);
        // A relay refuses it: it names no nest:// identity.
        assert!(peer_identity(&der).is_err());
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
        let serial: String = cert
            .raw_serial()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(serial, signed.serial_hex);
        let cn: Vec<_> = cert
            .subject()
            .iter_common_name()
            .map(|cn| cn.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(cn, ["alice"]);
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        assert!(!cert.basic_constraints().unwrap().unwrap().value.ca);
        assert_eq!(
            cert.public_key().subject_public_key.data.as_ref(),
            user_key.public_key_raw()
        );
        verify_client(&ca, &signed.certificate_pem).unwrap();
        assert!(matches!(
            ca.sign_user_csr(
                "garbage",
                "alice",
                Validity::starting_now(Duration::from_secs(60))
            ),
            Err(PkiError::Csr(_))
        ));
    }

    #[test]
    fn garbage_tampered_and_oversized_csrs_are_refused() {
        let ca = CertificateAuthority::generate("test CA").unwrap();
        let v = Validity::starting_now(DEFAULT_AGENT_CERT_LIFETIME);
        let id = instance("i-1");

        let err = ca.sign_agent_csr("not a csr", &id, v).unwrap_err();
        assert!(matches!(err, PkiError::Csr(_)));
        assert_eq!(err.kind(), ErrorKind::Invalid);

        // Flip one byte inside the signed part: the signature must fail.
        let (csr, _) = csr_claiming("i-1", "nest://agent/i-1");
        let mut der = CertificateSigningRequestDer::from_pem_slice(csr.as_bytes())
            .unwrap()
            .as_ref()
            .to_vec();
        let pos = der.windows(3).position(|w| w == b"i-1").unwrap();
        der[pos] = b'j';
        let tampered = pem_encode("CERTIFICATE REQUEST", &der);
        let err = ca.sign_agent_csr(&tampered, &id, v).unwrap_err();
        assert!(
            matches!(
                err,
                PkiError::Csr(rcgen::Error::InvalidCertificationRequestSignature)
            ),
            "{err:?}"
        );

        let huge = format!("{csr}{}", " ".repeat(MAX_CSR_PEM_LEN));
        assert!(matches!(
            ca.sign_agent_csr(&huge, &id, v),
            Err(PkiError::CsrTooLarge(_))
        ));
    }

    #[test]
    fn issued_certificates_carry_role_specific_names_and_usages() {
        let ca = CertificateAuthority::generate("test CA").unwrap();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let relay = ca
            .issue(&IssueRequest {
                identity: PeerIdentity::relay("relay-1").unwrap(),
                dns_names: vec!["relay.example".into()],
                ip_addresses: vec![ip],
                validity: Validity::starting_now(DEFAULT_SERVER_CERT_LIFETIME),
            })
            .unwrap();
        let relay_der = der(&relay.certificate_pem);
        let (_, cert) = x509_parser::parse_x509_certificate(relay_der.as_ref()).unwrap();
        let sans = cert
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names
            .clone();
        assert!(sans.contains(&GeneralName::URI("nest://relay/relay-1")));
        assert!(sans.contains(&GeneralName::DNSName(RELAY_SERVER_NAME)));
        assert!(sans.contains(&GeneralName::DNSName("relay.example")));
        assert!(sans.contains(&GeneralName::IPAddress(&[192, 0, 2, 7])));
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && !eku.client_auth);
        // The fresh key is the certificate's.
        let key = KeyPair::from_pem(relay.private_key_pem.expose()).unwrap();
        assert_eq!(
            cert.public_key().subject_public_key.data.as_ref(),
            key.public_key_raw()
        );
        assert_eq!(format!("{:?}", relay.private_key_pem), "<redacted>");

        let service = ca
            .issue(&IssueRequest {
                identity: PeerIdentity::service("svc").unwrap(),
                dns_names: vec![],
                ip_addresses: vec![],
                validity: Validity::starting_now(DEFAULT_SERVER_CERT_LIFETIME),
            })
            .unwrap();
        let service_der = der(&service.certificate_pem);
        let (_, cert) = x509_parser::parse_x509_certificate(service_der.as_ref()).unwrap();
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && eku.client_auth);

        let bad = ca.issue(&IssueRequest {
            identity: PeerIdentity {
                role: Role::Service,
                name: "a/b".into(),
            },
            dns_names: vec![],
            ip_addresses: vec![],
            validity: Validity::starting_now(DEFAULT_SERVER_CERT_LIFETIME),
        });
        assert!(matches!(bad, Err(PkiError::Identity(_))));
    }

    #[test]
    fn renewals_with_the_same_key_get_distinct_serials() {
        let ca = CertificateAuthority::generate("test CA").unwrap();
        let (csr, _) = csr_claiming("x", "nest://agent/x");
        let v = Validity::starting_now(DEFAULT_AGENT_CERT_LIFETIME);
        let serial = |pem: &str| {
            let der = der(pem);
            let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
            cert.raw_serial().to_vec()
        };
        let a = ca.sign_agent_csr(&csr, &instance("i-1"), v).unwrap();
        let b = ca.sign_agent_csr(&csr, &instance("i-1"), v).unwrap();
        assert_ne!(serial(&a), serial(&b));
    }

    fn pem_encode(label: &str, der: &[u8]) -> String {
        const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in der.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(char::from(B64[((n >> (18 - 6 * i)) & 63) as usize]));
                } else {
                    out.push('=');
                }
            }
        }
        let body: Vec<&str> = out
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            body.join("\n")
        )
    }
}
