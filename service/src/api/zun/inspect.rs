//! Read-only looks into a running container: `logs`, `top`, `stats`.
//!
//! `top`'s `ps_args` reach `ps` in the instance (dockerd runs it), so only
//! a known-safe set of options is passed on ([`check_ps_args`]); anything
//! else is a 400 naming the field, never an engine failure later.
//!
//! Nest extension: `GET …/logs?follow=true` answers `text/plain` and
//! streams new lines until the container stops or the client hangs up
//! (Zun's logs are one JSON string and cannot be followed).

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::containers::NoParams;
use super::extract::{Flag, Lenient, QueryParams, RequestContext, ZunPath};
use super::views::{StatsView, TopView, stats_view, top_view};
use crate::api::ApiState;
use crate::api::zun::error::ApiError;
use crate::app::{ContainerRef, LogsParams};

/// Query of logs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsQuery {
    #[serde(default)]
    stdout: Option<Flag>,
    #[serde(default)]
    stderr: Option<Flag>,
    #[serde(default)]
    timestamps: Option<Flag>,
    #[serde(default)]
    tail: Option<Lenient<String>>,
    #[serde(default)]
    since: Option<Lenient<String>>,
    #[serde(default)]
    follow: Option<Flag>,
}

fn invalid(name: &str, reason: impl Into<String>) -> ApiError {
    ApiError::InvalidParameter {
        name: name.to_owned(),
        reason: reason.into(),
    }
}

fn parse_logs(q: &LogsQuery) -> Result<LogsParams, ApiError> {
    let tail = match q.tail.as_ref().map(|Lenient(t)| t.as_str()) {
        None | Some("all" | "None" | "") => None,
        Some(t) => Some(
            t.parse::<u64>()
                .map_err(|_| invalid("tail", format!("{t:?} is not 'all' or a count")))?,
        ),
    };
    let since = match q.since.as_ref().map(|Lenient(s)| s.as_str()) {
        None | Some("None" | "") => None,
        Some(s) => Some(parse_since(s).ok_or_else(|| {
            invalid(
                "since",
                format!("{s:?} is not a Unix time or YYYY-MM-DD HH:MM:SS[,mmm]"),
            )
        })?),
    };
    Ok(LogsParams {
        stdout: q.stdout.is_none_or(|Flag(b)| b),
        stderr: q.stderr.is_none_or(|Flag(b)| b),
        timestamps: q.timestamps.is_some_and(|Flag(b)| b),
        tail,
        since,
    })
}

/// Unix seconds from an epoch number or Zun's `YYYY-MM-DD HH:MM:SS,mmm`
/// (read as UTC).
fn parse_since(s: &str) -> Option<i64> {
    if let Ok(secs) = s.parse::<i64>() {
        return Some(secs);
    }
    let (date, time) = s.split_once([' ', 'T'])?;
    let time = time.split([',', '.']).next()?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':').map(|p| p.parse::<i64>().ok());
    let (hh, mm, ss) = (t.next()??, t.next()??, t.next()??);
    let valid = (1..=12).contains(&m)
        && (1..=31).contains(&day)
        && (0..24).contains(&hh)
        && (0..60).contains(&mm)
        && (0..=60).contains(&ss);
    valid.then(|| days_from_civil(y, m, day) * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A container's logs: a JSON string, or with `follow=true` a `text/plain`
/// stream.
#[utoipa::path(get, path = "/v1/containers/{container}/logs", tag = "inspect",
    params(("container" = String, Path), ("stdout" = Option<bool>, Query), ("stderr" = Option<bool>, Query),
           ("timestamps" = Option<bool>, Query), ("tail" = Option<String>, Query, description = "all or a count"),
           ("since" = Option<String>, Query), ("follow" = Option<bool>, Query, description = "Nest: stream text/plain")),
    responses((status = 200, body = String)))]
pub async fn logs(
    State(state): State<ApiState>,
    cx: RequestContext,
    ZunPath(ident): ZunPath<String>,
    QueryParams(query): QueryParams<LogsQuery>,
) -> Result<Response, ApiError> {
    let params = parse_logs(&query)?;
    let container = ContainerRef::parse(&ident);
    if query.follow.is_some_and(|Flag(b)| b) {
        let stream = state
            .app()
            .follow_logs(&cx.call, &container, params)
            .await?;
        let mut response = Body::from_stream(stream).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        return Ok(response);
    }
    let text = state.app().logs(&cx.call, &container, params).await?;
    Ok(Json(text).into_response())
}

/// Query of top.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopQuery {
    #[serde(default)]
    ps_args: Option<Lenient<String>>,
}

/// A container's processes.
#[utoipa::path(get, path = "/v1/containers/{container}/top", tag = "inspect",
    params(("container" = String, Path), ("ps_args" = Option<String>, Query)),
    responses((status = 200, body = TopView)))]
pub async fn top(
    State(state): State<ApiState>,
    cx: RequestContext,
    ZunPath(ident): ZunPath<String>,
    QueryParams(query): QueryParams<TopQuery>,
) -> Result<Json<TopView>, ApiError> {
    let ps_args = match query.ps_args {
        Some(Lenient(a)) if a != "None" && !a.trim().is_empty() => Some(check_ps_args(&a)?),
        _ => None,
    };
    let container = ContainerRef::parse(&ident);
    let list = state.app().top(&cx.call, &container, ps_args).await?;
    Ok(Json(top_view(list)))
}

/// Longest `ps_args` accepted.
const MAX_PS_ARGS: usize = 128;
/// `ps` options `top` passes on: selections and formats whose output
/// keeps the PID column the engine needs to parse it.
const PS_OPTIONS: &[&str] = &[
    "-e", "-A", "-a", "-d", "-N", "-f", "-F", "-l", "-j", "-L", "-T", "-H", "-y", "-w", "-ef",
    "-eF", "-el", "-ely", "-eLf", "-ej", "-efH", "-aux", "a", "u", "x", "ax", "au", "ux", "aux",
    "auxw", "auxww", "axu", "f", "j", "l", "w",
];
/// Fields `-o` may name (`ps -o pid,comm`); the list must include `pid`.
const PS_FIELDS: &[&str] = &[
    "pid", "ppid", "pgid", "sid", "tid", "lwp", "nlwp", "uid", "euid", "ruid", "gid", "user",
    "euser", "ruser", "group", "comm", "args", "cmd", "command", "etime", "etimes", "time", "stat",
    "state", "s", "pcpu", "%cpu", "pmem", "%mem", "rss", "vsz", "sz", "tty", "tname", "nice", "ni",
    "pri", "psr", "start", "stime", "lstart", "c", "f", "wchan", "cls", "rtprio",
];

/// `ps_args`, checked against the options `top` passes on.
///
/// # Errors
/// [`ApiError::Schema`] naming `ps_args` for an unknown option, a field
/// list without `pid`, or a value too long.
fn check_ps_args(args: &str) -> Result<String, ApiError> {
    let refuse = |reason: String| ApiError::Schema {
        field: "ps_args".to_owned(),
        reason,
    };
    if args.len() > MAX_PS_ARGS {
        return Err(refuse(format!("is longer than {MAX_PS_ARGS} characters")));
    }
    let mut words = args.split_whitespace();
    let mut kept = Vec::new();
    while let Some(word) = words.next() {
        if word == "-o" || word == "o" {
            let Some(fields) = words.next() else {
                return Err(refuse(format!(
                    "{word} needs a field list, such as pid,comm"
                )));
            };
            let names: Vec<&str> = fields.split(',').collect();
            if let Some(bad) = names.iter().find(|f| !PS_FIELDS.contains(f)) {
                return Err(refuse(format!(
                    "{bad:?} is not a ps field top accepts (known: {})",
                    PS_FIELDS.join(", ")
                )));
            }
            if !names.contains(&"pid") {
                return Err(refuse("a field list must include pid".to_owned()));
            }
            kept.push(word.to_owned());
            kept.push(fields.to_owned());
        } else if PS_OPTIONS.contains(&word) {
            kept.push(word.to_owned());
        } else {
            return Err(refuse(format!(
                "{word:?} is not a ps option top accepts (known: {}, -o FIELDS)",
                PS_OPTIONS.join(" ")
            )));
        }
    }
    Ok(kept.join(" "))
}

/// A container's resource usage.
#[utoipa::path(get, path = "/v1/containers/{container}/stats", tag = "inspect",
    params(("container" = String, Path)), responses((status = 200, body = StatsView)))]
pub async fn stats(
    State(state): State<ApiState>,
    cx: RequestContext,
    ZunPath(ident): ZunPath<String>,
    QueryParams(NoParams {}): QueryParams<NoParams>,
) -> Result<Json<StatsView>, ApiError> {
    let container = ContainerRef::parse(&ident);
    let stats = state.app().stats(&cx.call, &container).await?;
    Ok(Json(stats_view(&stats)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_reads_both_forms() {
        assert_eq!(parse_since("1700000000"), Some(1_700_000_000));
        assert_eq!(parse_since("1970-01-02 00:00:01,500"), Some(86_401));
        assert_eq!(parse_since("2025-06-28 03:25:27"), Some(1_751_081_127));
        assert_eq!(parse_since("yesterday"), None);
        assert_eq!(parse_since("2025-13-01 00:00:00"), None);
    }

    #[test]
    fn known_ps_options_pass_and_others_name_the_field() {
        assert_eq!(check_ps_args("aux").ok().as_deref(), Some("aux"));
        assert_eq!(check_ps_args(" -ef ").ok().as_deref(), Some("-ef"));
        assert_eq!(
            check_ps_args("-e -o pid,comm,%cpu").ok().as_deref(),
            Some("-e -o pid,comm,%cpu")
        );
        for bad in [
            "--help",
            "-o comm",
            "-o",
            "-o pid,comm=$(id)",
            "aux; rm -rf /",
            "-p 1",
            &"a ".repeat(100),
        ] {
            let err = check_ps_args(bad).expect_err(bad);
            assert!(
                matches!(&err, ApiError::Schema { field, .. } if field == "ps_args"),
                "{bad}: {err:?}"
            );
        }
    }
}
