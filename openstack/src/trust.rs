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

    /// Whether trust `trust_id` still exists, asked with this session's own
    /// token (the trustee may read its trusts): a deleted trust answers
    /// 404 at once, while a token already issued through it may still be
    /// accepted by a service's token cache for minutes.
    ///
    /// # Errors
    /// [`OpenStackError::Refused`] for any other refusal; why the session
    /// could not log in.
    pub async fn trust_exists(
        &self,
        trust_id: &str,
        request_id: &RequestId,
    ) -> Result<bool, OpenStackError> {
        let call = Call::new("keystone", "show a trust").request_id(request_id);
        let url =
            crate::catalog::join_segments(self.identity_url(), &["OS-TRUST", "trusts", trust_id]);
        let response = client::send(self, &call, client::Retry::Idempotent, |http| {
            http.get(url.clone())
        })
        .await?;
        client::done(&call, response, true).await
    }

    /// Deletes trust `trust_id` with the trustor's own `user_token` (a
    /// replaced trust, so that none is left behind); returns whether it
    /// still existed.
    ///
    /// # Errors
    /// [`OpenStackError::Refused`] with Keystone's message (403 when the
    /// token's user is not the trustor).
    pub async fn delete_trust(
        &self,
        user_token: &Secret<String>,
        trust_id: &str,
        request_id: &RequestId,
    ) -> Result<bool, OpenStackError> {
        let call = Call::new("keystone", "delete a trust").request_id(request_id);
        let url =
            crate::catalog::join_segments(self.identity_url(), &["OS-TRUST", "trusts", trust_id]);
        let mut token =
            reqwest::header::HeaderValue::from_str(user_token.expose()).map_err(|_| {
                OpenStackError::Delegation {
                    reason: "the user's token is not a valid header value",
                }
            })?;
        token.set_sensitive(true);
        let response = self
            .http()
            .delete(url.clone())
            .header(AUTH_TOKEN_HEADER, token)
            .header(REQUEST_ID_HEADER, request_id.as_str())
            .timeout(self.request_timeout())
            .send()
            .await
            .map_err(|source| OpenStackError::Request {
                operation: call.operation(),
                url: url.to_string(),
                source,
            })?;
        let existed = client::done(&call, response, true).await?;
        tracing::info!(trust_id, existed, "keystone trust deleted");
        Ok(existed)
    }
}
