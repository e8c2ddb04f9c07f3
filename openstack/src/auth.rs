//! How a session proves who it is to Keystone: the auth methods
//! ([`AuthMethod`]: password, application credential, token), what the
//! token is scoped to ([`Scope`]), and the authority a tenant delegates to
//! Nest ([`TenantAuthority`]) so that Nest can act in the tenant's own
//! project and the cloud enforces the tenant's quotas.
//!
//! This module only builds `POST /v3/auth/tokens` bodies; the session sends
//! them. Every secret is a [`Secret`], so no `Debug` here shows one.

use nest_core::Secret;
use serde_json::{Value, json};

use crate::error::OpenStackError;

/// Credentials a session logs in with, and the scope of its tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    /// A user's password (Keystone's `password` method).
    Password {
        /// The user, by name within a domain.
        user: NamedUser,
        /// The user's password.
        password: Secret<String>,
        /// What the tokens are scoped to.
        scope: Scope,
    },
    /// An application credential (Keystone's `application_credential`
    /// method); its project and roles are fixed when it is created.
    ApplicationCredential {
        /// The application credential's id.
        id: String,
        /// Its secret.
        secret: Secret<String>,
    },
    /// An existing token, exchanged for a (re)scoped one (Keystone's
    /// `token` method). Stops working when that token expires.
    Token {
        /// The existing token.
        token: Secret<String>,
        /// What the new tokens are scoped to.
        scope: Scope,
    },
}

/// A Keystone user named within its domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedUser {
    /// The user's name.
    pub name: String,
    /// The name of the user's domain (`Default` in most clouds).
    pub domain_name: String,
}

/// What a token is scoped to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// A project, by name within a domain.
    Project {
        /// The project's name.
        name: String,
        /// The name of the project's domain.
        domain_name: String,
    },
    /// A trust (`OS-TRUST:trust`): the token acts for the trustor, in the
    /// trust's project, with the trust's roles.
    Trust {
        /// The trust's id.
        trust_id: String,
    },
}

/// The authority a tenant gave Nest to act in its project, carried with a
/// boot request to drivers that act in the cloud (the `nova` driver). The
/// `local` driver needs none.
///
/// `Debug` never shows the application credential's secret.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum TenantAuthority {
    /// No authority: the driver acts as itself, or not in a cloud at all.
    #[default]
    None,
    /// A Keystone trust whose trustee is Nest's service user: Nest logs in
    /// with its own password, scoped to the trust.
    Trust {
        /// The trust's id.
        trust_id: String,
    },
    /// An application credential the tenant created for Nest.
    ApplicationCredential {
        /// The application credential's id.
        id: String,
        /// Its secret.
        secret: Secret<String>,
    },
}

impl AuthMethod {
    /// Who logs in, for messages and logs: never a secret.
    pub fn principal(&self) -> String {
        match self {
            Self::Password {
                user,
                scope: Scope::Trust { trust_id },
                ..
            } => format!("user {:?} (trust {trust_id:?})", user.name),
            Self::Password { user, .. } => format!("user {:?}", user.name),
            Self::ApplicationCredential { id, .. } => format!("application credential {id:?}"),
            Self::Token { .. } => "a token".to_owned(),
        }
    }

    /// The same credentials acting for the tenant through `authority`.
    ///
    /// A trust is used by the trustee's own password login scoped to the
    /// trust, so it needs [`AuthMethod::Password`]; an application
    /// credential replaces the credentials altogether.
    ///
    /// # Errors
    /// [`OpenStackError::NoTenantAuthority`] for [`TenantAuthority::None`];
    /// [`OpenStackError::Delegation`] when the authority cannot be used
    /// with these credentials.
    pub(crate) fn for_tenant(&self, authority: &TenantAuthority) -> Result<Self, OpenStackError> {
        match (authority, self) {
            (TenantAuthority::None, _) => Err(OpenStackError::NoTenantAuthority),
            (TenantAuthority::Trust { trust_id }, Self::Password { user, password, .. }) => {
                Ok(Self::Password {
                    user: user.clone(),
                    password: password.clone(),
                    scope: Scope::Trust {
                        trust_id: trust_id.clone(),
                    },
                })
            }
            (TenantAuthority::Trust { .. }, _) => Err(OpenStackError::Delegation {
                reason: "a trust is used with the trustee's password: set auth_type = \"password\"",
            }),
            (TenantAuthority::ApplicationCredential { id, secret }, _) => {
                Ok(Self::ApplicationCredential {
                    id: id.clone(),
                    secret: secret.clone(),
                })
            }
        }
    }

    /// The body of `POST /v3/auth/tokens` for these credentials.
    pub(crate) fn login_body(&self) -> Value {
        let (identity, scope) = match self {
            Self::Password {
                user,
                password,
                scope,
            } => (
                json!({
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": user.name,
                            "domain": { "name": user.domain_name },
                            "password": password.expose(),
                        }
                    }
                }),
                Some(scope),
            ),
            Self::ApplicationCredential { id, secret } => (
                json!({
                    "methods": ["application_credential"],
                    "application_credential": { "id": id, "secret": secret.expose() }
                }),
                // An application credential's scope is its own; Keystone
                // refuses a login that asks for another.
                None,
            ),
            Self::Token { token, scope } => (
                json!({ "methods": ["token"], "token": { "id": token.expose() } }),
                Some(scope),
            ),
        };
        let mut auth = json!({ "identity": identity });
        if let Some(scope) = scope {
            auth["scope"] = match scope {
                Scope::Project { name, domain_name } => {
                    json!({ "project": { "name": name, "domain": { "name": domain_name } } })
                }
                Scope::Trust { trust_id } => json!({ "OS-TRUST:trust": { "id": trust_id } }),
            };
        }
        json!({ "auth": auth })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn password() -> AuthMethod {
        AuthMethod::Password {
            user: NamedUser {
                name: "nest".into(),
                domain_name: "Default".into(),
            },
            password: Secret::new("svc-pass".into()),
            scope: Scope::Project {
                name: "service".into(),
                domain_name: "Default".into(),
            },
        }
    }

    #[test]
    fn password_login_is_scoped_to_the_project() {
        let body = password().login_body();
        assert_eq!(
            body,
            json!({"auth": {
                "identity": {"methods": ["password"], "password": {"user": {
                    "name": "nest", "domain": {"name": "Default"}, "password": "svc-pass"}}},
                "scope": {"project": {"name": "service", "domain": {"name": "Default"}}}
            }})
        );
    }

    #[test]
    fn a_trust_is_the_trustees_password_scoped_to_the_trust() {
        let trust = TenantAuthority::Trust {
            trust_id: "t-1".into(),
        };
        let method = password()
            .for_tenant(&trust)
            .expect("password can use a trust");
        assert_eq!(method.principal(), "user \"nest\" (trust \"t-1\")");
        let body = method.login_body();
        assert_eq!(
            body["auth"]["scope"],
            json!({"OS-TRUST:trust": {"id": "t-1"}})
        );
        assert_eq!(body["auth"]["identity"]["methods"], json!(["password"]));

        let app = AuthMethod::ApplicationCredential {
            id: "ac".into(),
            secret: Secret::new("s".into()),
        };
        assert!(matches!(
            app.for_tenant(&trust),
            Err(OpenStackError::Delegation { .. })
        ));
        assert!(matches!(
            app.for_tenant(&TenantAuthority::None),
            Err(OpenStackError::NoTenantAuthority)
        ));
    }

    #[test]
    fn an_application_credential_login_has_no_scope() {
        let tenant = TenantAuthority::ApplicationCredential {
            id: "ac-1".into(),
            secret: Secret::new("tenant-secret".into()),
        };
        let body = password()
            .for_tenant(&tenant)
            .expect("any session can use an application credential")
            .login_body();
        assert_eq!(
            body,
            json!({"auth": {"identity": {
                "methods": ["application_credential"],
                "application_credential": {"id": "ac-1", "secret": "tenant-secret"}
            }}})
        );
    }

    #[test]
    fn debug_never_shows_a_secret() {
        let tenant = TenantAuthority::ApplicationCredential {
            id: "ac-1".into(),
            secret: Secret::new("tenant-secret".into()),
        };
        let shown = format!("{tenant:?} {:?}", password());
        assert!(!shown.contains("tenant-secret"), "{shown}");
        assert!(!shown.contains("svc-pass"), "{shown}");
        assert!(shown.contains("ac-1"), "{shown}");
        let token = AuthMethod::Token {
            token: Secret::new("gAAAA-token".into()),
            scope: Scope::Trust {
                trust_id: "t".into(),
            },
        };
        assert!(!format!("{token:?}").contains("gAAAA"));
        assert_eq!(token.principal(), "a token");
    }
}
