//! nest-api-types: the request and response bodies of Nest's HTTP API, as
//! plain serde types that the service renders and parses and that a client
//! (`osc`) deserializes and sends. It depends on no other Nest crate and
//! holds no behaviour: building a view from the application's types and
//! validating a body stay in the service, so a client links only serde.
//!
//! Every type is both `Serialize` and `Deserialize`. Request bodies refuse
//! unknown fields when read and leave out unset fields when written;
//! response views write exactly the JSON the service answers and read
//! leniently, so that a client also understands OpenStack Zun's own
//! answers.
//!
//! # Layout
//! - [`zun`]: the Zun-compatible REST API (containers, actions, hosts,
//!   images, version documents, errors), one module per resource.
//!
//! # Features
//! - `openapi`: derives `utoipa::ToSchema` on every type, for the OpenAPI
//!   document the service serves. Clients leave it off.
#![warn(missing_docs)]

pub mod zun;
