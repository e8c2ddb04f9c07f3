//! Keystone trusts (`OS-TRUST`): how a tenant's user delegates to Nest's
//! service user the right to act in the tenant's project, so that a boot
//! or a delete long after the user's token expired still works, with the
//! user's roles and nothing more (never admin powers).
//!
//! The trust is created with the *user's* token, at the moment the user
//! asks for something that may need a server; Nest then logs in with its
//! own password scoped to the trust ([`crate::Session::for_tenant`]).

use nest_core::{RequestId, Secret};
use serde::Deserialize;

use crate::client;
use crate::error::OpenStackError;
use crate::session::{AUTH_TOKEN_HEADER, Call, REQUEST_ID_HEADER, Session};

/// What a trust delegates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustRequest {
    /// The user delegating (the token's user).
    pub trustor_user_id: String,
    /// Nest's service user.
    pub trustee_user_id: String,
    /// The project the trust acts in.
    pub project_id: String,
    /// Role names delegated: the user's own roles on the project.
    pub roles: Vec<String>,
}

#[derive(Deserialize)]
struct TrustBody {
    trust: TrustCreated,
}

#[derive(Deserialize)]
struct TrustCreated {
    id: String,
}

impl Session {
    /// Creates a trust with the trustor's own `user_token`; returns its id.
    /// The trust impersonates the trustor (servers are the user's, as if
    /// the user had booted them) and never expires: it ends when the user
    /// deletes it or loses the roles.
    ///
    /// # Errors
    /// [`OpenStackError::Refused`] with Keystone's message (403 when the
    /// token may not delegate, e.g. a trust-scoped or application
    /// credential token).
    pub async fn create_trust(
        &self,
        user_token: &Secret<String>,
        trust: &TrustRequest,
        request_id: &RequestId,
    ) -> Result<String, OpenStackError> {
        let call = Call::new("keystone", "create a trust").request_id(request_id);
        let url = crate::catalog::join_segments(self.identity_url(), &["OS-TRUST", "trusts"]);
        let body = serde_json::json!({"trust": {
            "trustor_user_id": trust.trustor_user_id,
            "trustee_user_id": trust.trustee_user_id,
            "project_id": trust.project_id,
            "impersonation": true,
            "roles": trust.roles.iter().map(|name| serde_json::json!({"name": name})).collect::<Vec<_>>(),
        }});
        let mut token =
            reqwest::header::HeaderValue::from_str(user_token.expose()).map_err(|_| {
                OpenStackError::Delegation {
                    reason: "the user's token is not a valid header value",
                }
            })?;
        token.set_sensitive(true);
        let response = self
            .http()
            .post(url.clone())
            .header(AUTH_TOKEN_HEADER, token)
            .header(REQUEST_ID_HEADER, request_id.as_str())
            .timeout(self.request_timeout())
            .json(&body)
            .send()
            .await
            .map_err(|source| OpenStackError::Request {
                operation: call.operation(),
                url: url.to_string(),
                source,
            })?;
        let created: TrustBody = client::json(&call, response).await?;
        tracing::info!(
            trust_id = %created.trust.id,
            project_id = %trust.project_id,
            trustor = %trust.trustor_user_id,
            "keystone trust created"
        );
        Ok(created.trust.id)
    }
}
