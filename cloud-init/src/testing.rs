//! Sample inputs for tests, here and in crates that use this one (enable the
//! `testing` feature), such as the service's `local` instance driver.
//!
//! The CA "certificate" is only shaped like one: this crate checks PEM
//! structure, never DER, so no real key material is needed or committed.

use crate::bootstrap::{AgentBootstrap, AgentSource, EnrollmentToken};

/// A PEM block with the shape [`AgentBootstrap::validate`] accepts. Not a
/// parseable certificate.
pub const SAMPLE_CA_PEM: &str = "-----BEGIN CERTIFICATE-----\n\
MIIBkTCB+6ADAgECAhRuZXN0LWNsb3VkLWluaXQtdGVzdDANBgkqhkiG9w0BAQsF\n\
ADAUMRIwEAYDVQQDDAlOZXN0IFRlc3Q=\n\
-----END CERTIFICATE-----\n";

/// A well-formed enrollment token (64 lowercase hex characters).
pub const SAMPLE_TOKEN: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// A valid bootstrap with every optional field set and a baked agent.
pub fn sample_bootstrap() -> AgentBootstrap {
    AgentBootstrap {
        instance_id: "6f9a1c2e-4b7d-4e0f-9a3b-2c1d0e9f8a7b".to_owned(),
        relay_addr: "relay.nest.example:7443".to_owned(),
        relay_server_name: Some("relay.nest.internal".to_owned()),
        ca_certificate_pem: SAMPLE_CA_PEM.to_owned(),
        enrollment_token: EnrollmentToken::new(SAMPLE_TOKEN),
        docker_socket: Some("/run/docker.sock".to_owned()),
        agent_source: AgentSource::default(),
    }
}

/// [`sample_bootstrap`] with the agent downloaded instead of baked.
pub fn sample_download_bootstrap() -> AgentBootstrap {
    AgentBootstrap {
        agent_source: AgentSource::Download {
            url: "https://downloads.nest.example/agent/v0.1.0/nest-agent".to_owned(),
            sha256: "ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789".to_owned(),
        },
        ..sample_bootstrap()
    }
}
