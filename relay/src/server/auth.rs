//! Who is calling: the identity of a gRPC peer, read only from the client
//! certificate that TLS already verified against Nest's CA.

use crate::identity::{PeerIdentity, Role, peer_identity};

/// The verified identity behind `request`, which must hold `role`.
///
/// # Errors
/// `UNAUTHENTICATED` without a client certificate or with one that names no
/// Nest identity; `PERMISSION_DENIED` when it names another role.
pub(crate) fn require<T>(
    request: &tonic::Request<T>,
    role: Role,
) -> Result<PeerIdentity, tonic::Status> {
    let certs = request.peer_certs().ok_or_else(|| {
        tonic::Status::unauthenticated("a client certificate issued by Nest's CA is required")
    })?;
    let end_entity = certs.first().ok_or_else(|| {
        tonic::Status::unauthenticated("a client certificate issued by Nest's CA is required")
    })?;
    let identity = peer_identity(end_entity).map_err(|e| {
        tonic::Status::unauthenticated(format!("client certificate names no Nest identity: {e}"))
    })?;
    if identity.role != role {
        return Err(tonic::Status::permission_denied(format!(
            "a {:?} certificate cannot make this call; it needs a {:?} certificate",
            identity.role, role
        )));
    }
    Ok(identity)
}
