//! Nest's own extractors, so that every malformed request is answered in
//! Zun's error format (axum's built-in rejections are plain text).
//!
//! - [`ZunJson`]: a JSON object body (`Content-Type: application/json`,
//!   else 415), checked for unknown fields before it is deserialized.
//! - [`QueryParams`]: the query string; unknown keys are Zun's 400
//!   "Unknown parameters".
//! - [`Params`]: the query string merged with an optional JSON object body,
//!   as pecan merges them (tempest sends `execute`'s command in the body;
//!   zunclient sends it in the query).
//! - [`ZunPath`], [`RequestContext`], [`BaseUrl`]: path segments and what
//!   the middleware put in the request.
//!
//! Values are bool-ish and int-ish the way Zun reads them: [`Flag`] and
//! [`Lenient`] (from [`nest_api_types::zun::values`], since the create
//! body carries them too) accept JSON scalars or their string forms.

use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Path, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde_json::{Map, Value};

use super::microversion::ApiVersion;
use crate::api::ApiState;
use crate::api::zun::error::ApiError;
use crate::app::CallContext;
use crate::auth::Caller;
use crate::domain::RequestId;

pub use nest_api_types::zun::values::{Flag, Lenient};

/// What every authenticated handler needs: who calls, under which request
/// id, at which microversion, and the base URL for links.
#[derive(Clone, Debug)]
pub struct RequestContext {
    /// Caller and request id, as the backend takes them.
    pub call: CallContext,
    /// The negotiated microversion.
    pub version: ApiVersion,
    /// `scheme://host[:port]` for links.
    pub base_url: BaseUrl,
}

impl<S> FromRequestParts<S> for RequestContext
where
    ApiState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let caller = parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or(ApiError::MissingContext("caller"))?;
        let request_id = parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .ok_or(ApiError::MissingContext("request id"))?;
        let version = parts
            .extensions
            .get::<ApiVersion>()
            .copied()
            .ok_or(ApiError::MissingContext("microversion"))?;
        let base_url = BaseUrl::from_request_parts(parts, state).await?;
        Ok(Self {
            call: CallContext { caller, request_id },
            version,
            base_url,
        })
    }
}

/// `scheme://host[:port]` of the service as the client reached it: the
/// configured public URL, else `http://` and the `Host` header (Zun's
/// `pecan.request.host_url`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseUrl(String);

impl BaseUrl {
    /// The URL, without a trailing slash.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The same place with `ws://` or `wss://`.
    pub fn to_websocket(&self) -> String {
        if let Some(rest) = self.0.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = self.0.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            self.0.clone()
        }
    }
}

impl<S> FromRequestParts<S> for BaseUrl
where
    ApiState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let state = ApiState::from_ref(state);
        if let Some(url) = &state.config().public_url {
            return Ok(Self(url.trim_end_matches('/').to_owned()));
        }
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| is_host(h))
            .or_else(|| parts.uri.authority().map(|a| a.as_str()))
            .unwrap_or("localhost");
        Ok(Self(format!("http://{host}")))
    }
}

/// Whether a `Host` header is safe to echo into links.
fn is_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 255
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

/// Path segments, with Zun-format rejections.
pub struct ZunPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ZunPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(t)| Self(t))
            .map_err(|rejection| ApiError::InvalidParameter {
                name: "<path>".into(),
                reason: rejection.body_text(),
            })
    }
}

/// A JSON object body deserialized into `T` (a `deny_unknown_fields`
/// struct).
pub struct ZunJson<T>(pub T);

impl<T, S> FromRequest<S> for ZunJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        check_json_content_type(request.headers())?;
        let bytes = read_body(request, state).await?;
        if bytes.is_empty() {
            return Err(ApiError::Schema {
                field: "<body>".into(),
                reason: "a JSON object body is required".into(),
            });
        }
        let value: Value = serde_json::from_slice(&bytes).map_err(ApiError::MalformedJson)?;
        let Value::Object(map) = value else {
            return Err(ApiError::Schema {
                field: "<body>".into(),
                reason: "must be a JSON object".into(),
            });
        };
        let unexpected = unknown_keys::<T>(&map);
        if !unexpected.is_empty() {
            return Err(ApiError::UnexpectedFields(unexpected));
        }
        deserialize_map(map)
            .map(Self)
            .map_err(|(field, reason)| ApiError::Schema { field, reason })
    }
}

/// The query string deserialized into `T`.
pub struct QueryParams<T>(pub T);

impl<T, S> FromRequestParts<S> for QueryParams<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        params_from_map(query_map(parts.uri.query())).map(Self)
    }
}

/// The query string merged with an optional JSON object body (body keys
/// win), deserialized into `T`. An empty body is ignored whatever its
/// content type (zunclient sends action POSTs with a JSON content type and
/// no body, and DELETE as `application/octet-stream`).
pub struct Params<T>(pub T);

impl<T, S> FromRequest<S> for Params<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let mut map = query_map(request.uri().query());
        let headers = request.headers().clone();
        let bytes = read_body(request, state).await?;
        if !bytes.iter().all(u8::is_ascii_whitespace) {
            check_json_content_type(&headers)?;
            let value: Value = serde_json::from_slice(&bytes).map_err(ApiError::MalformedJson)?;
            match value {
                Value::Object(body) => map.extend(body),
                Value::Null => {}
                _ => {
                    return Err(ApiError::Schema {
                        field: "<body>".into(),
                        reason: "must be a JSON object".into(),
                    });
                }
            }
        }
        params_from_map(map).map(Self)
    }
}

fn check_json_content_type(headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let is_json = content_type.as_deref().is_some_and(|ct| {
        ct.split(';')
            .next()
            .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
    });
    if is_json {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(
            content_type.unwrap_or_else(|| "no content type".into()),
        ))
    }
}

async fn read_body<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(request, state)
        .await
        .map_err(|rejection| ApiError::Schema {
            field: "<body>".into(),
            reason: rejection.body_text(),
        })
}

/// The query string as a JSON object of strings (a repeated key keeps its
/// last value, as webob's `params` does for single-valued reads).
fn query_map(query: Option<&str>) -> Map<String, Value> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect()
}

fn params_from_map<T: DeserializeOwned>(map: Map<String, Value>) -> Result<T, ApiError> {
    let mut unknown = unknown_keys::<T>(&map);
    if !unknown.is_empty() {
        unknown.sort();
        return Err(ApiError::UnknownParameters(unknown));
    }
    deserialize_map(map).map_err(|(name, reason)| ApiError::InvalidParameter { name, reason })
}

fn deserialize_map<T: DeserializeOwned>(map: Map<String, Value>) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize(Value::Object(map)).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "<body>".to_owned()
        } else {
            path
        };
        (field, e.into_inner().to_string())
    })
}

/// Keys of `map` that `T` (a derived struct) does not declare.
fn unknown_keys<T: DeserializeOwned>(map: &Map<String, Value>) -> Vec<String> {
    let Some(fields) = struct_fields::<T>() else {
        return Vec::new();
    };
    map.keys()
        .filter(|k| !fields.contains(&k.as_str()))
        .cloned()
        .collect()
}

/// The field names a derived `Deserialize` struct declares: serde passes
/// them to `deserialize_struct`, which this probe records and refuses.
fn struct_fields<T: DeserializeOwned>() -> Option<&'static [&'static str]> {
    let mut fields = None;
    let _ = T::deserialize(FieldsProbe(&mut fields));
    fields
}

struct FieldsProbe<'a>(&'a mut Option<&'static [&'static str]>);

impl<'de> Deserializer<'de> for FieldsProbe<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = Some(fields);
        Err(de::Error::custom("probe"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        #[serde(default)]
        run: Option<Flag>,
        #[serde(default)]
        timeout: Option<Lenient<u32>>,
    }

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn probe_finds_declared_fields() {
        assert_eq!(struct_fields::<Sample>(), Some(&["run", "timeout"][..]));
        assert_eq!(struct_fields::<u32>(), None);
    }

    #[test]
    fn params_accept_strings_and_scalars() {
        let s: Sample = params_from_map(map(serde_json::json!({"run": "True", "timeout": "10"})))
            .expect("valid");
        assert_eq!((s.run, s.timeout), (Some(Flag(true)), Some(Lenient(10))));
        let s: Sample =
            params_from_map(map(serde_json::json!({"run": false, "timeout": 3}))).expect("valid");
        assert_eq!((s.run, s.timeout), (Some(Flag(false)), Some(Lenient(3))));
        let err = params_from_map::<Sample>(map(serde_json::json!({"z": "1", "a": "2"})));
        assert!(matches!(err, Err(ApiError::UnknownParameters(k)) if k == ["a", "z"]));
        let err = params_from_map::<Sample>(map(serde_json::json!({"timeout": "-1"})));
        assert!(
            matches!(err, Err(ApiError::InvalidParameter { ref name, .. }) if name == "timeout"),
            "{err:?}"
        );
    }

    #[test]
    fn websocket_base_follows_scheme() {
        assert_eq!(BaseUrl("http://h:1".into()).to_websocket(), "ws://h:1");
        assert_eq!(BaseUrl("https://h".into()).to_websocket(), "wss://h");
        assert!(!is_host("h/evil"));
    }
}
