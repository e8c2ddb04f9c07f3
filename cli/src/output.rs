//! Printing results for people and for scripts, as `openstack` does: a
//! list is a table by default, one object is `key: value` lines (the
//! proposal's `ports: [12.34.56.78:222]`); `-f json|yaml|value|table|text`
//! and `-c COLUMN` choose otherwise. JSON and YAML carry the values as
//! values (lists stay lists); the other formats print them as text.

use std::fmt::Write as _;

use serde_json::{Map, Value};

use crate::args::{Format, OutputArgs};
use crate::error::CliError;

/// One object: named fields in display order.
pub type Record = Vec<(&'static str, Value)>;

/// Prints one object.
pub fn print_record(record: Record, output: &OutputArgs) -> Result<(), CliError> {
    let record = select(record, &output.columns)?;
    print!(
        "{}",
        render_record(&record, output.format.unwrap_or(Format::Text))
    );
    Ok(())
}

/// Prints a list of objects that share their fields.
pub fn print_list(
    columns: &[&'static str],
    rows: Vec<Record>,
    output: &OutputArgs,
) -> Result<(), CliError> {
    let wanted = pick(columns, &output.columns)?;
    let rows: Vec<Record> = rows
        .into_iter()
        .map(|row| {
            row.into_iter()
                .filter(|(k, _)| wanted.contains(k))
                .collect()
        })
        .collect();
    print!(
        "{}",
        render_list(&wanted, &rows, output.format.unwrap_or(Format::Table))
    );
    Ok(())
}

/// The columns `-c` asks for (case and `-`/`_`/space insensitive), in
/// the order asked; all when none.
fn pick(columns: &[&'static str], asked: &[String]) -> Result<Vec<&'static str>, CliError> {
    if asked.is_empty() {
        return Ok(columns.to_vec());
    }
    let norm = |s: &str| s.to_lowercase().replace(['-', ' '], "_");
    asked
        .iter()
        .map(|a| {
            columns
                .iter()
                .find(|c| norm(c) == norm(a))
                .copied()
                .ok_or_else(|| {
                    CliError::Usage(format!(
                        "no column {a:?}; the columns are: {}",
                        columns.join(", ")
                    ))
                })
        })
        .collect()
}

fn select(record: Record, asked: &[String]) -> Result<Record, CliError> {
    let keys: Vec<&'static str> = record.iter().map(|(k, _)| *k).collect();
    let wanted = pick(&keys, asked)?;
    let mut record = record;
    let mut out = Vec::with_capacity(wanted.len());
    for key in wanted {
        if let Some(i) = record.iter().position(|(k, _)| *k == key) {
            out.push(record.swap_remove(i));
        }
    }
    Ok(out)
}

/// A value as text: lists as `[a, b]`, maps as `k=v, ...`, null empty.
pub fn text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(text).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| format!("{k}={}", text(v)))
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

fn to_object(record: &Record) -> Value {
    let map: Map<String, Value> = record
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    Value::Object(map)
}

fn pretty_json(value: &Value) -> String {
    let mut out = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    out.push('\n');
    out
}

fn yaml(value: &Value) -> String {
    yaml_serde::to_string(value).unwrap_or_else(|_| pretty_json(value))
}

/// Renders one object.
pub fn render_record(record: &Record, format: Format) -> String {
    match format {
        Format::Json => pretty_json(&to_object(record)),
        Format::Yaml => yaml(&to_object(record)),
        Format::Value => record.iter().fold(String::new(), |mut out, (_, v)| {
            let _ = writeln!(out, "{}", text(v));
            out
        }),
        Format::Text => record.iter().fold(String::new(), |mut out, (k, v)| {
            let _ = writeln!(out, "{k}: {}", text(v));
            out
        }),
        Format::Table => {
            let rows: Vec<Vec<String>> = record
                .iter()
                .map(|(k, v)| vec![(*k).to_owned(), text(v)])
                .collect();
            table(&["field".into(), "value".into()], &rows)
        }
    }
}

/// Renders a list.
pub fn render_list(columns: &[&'static str], rows: &[Record], format: Format) -> String {
    match format {
        Format::Json => pretty_json(&Value::Array(rows.iter().map(to_object).collect())),
        Format::Yaml => yaml(&Value::Array(rows.iter().map(to_object).collect())),
        Format::Value => rows.iter().fold(String::new(), |mut out, row| {
            let line: Vec<String> = row.iter().map(|(_, v)| text(v)).collect();
            let _ = writeln!(out, "{}", line.join(" "));
            out
        }),
        Format::Text => rows
            .iter()
            .map(|row| render_record(row, Format::Text))
            .collect::<Vec<_>>()
            .join("\n"),
        Format::Table => {
            let headings: Vec<String> = columns.iter().map(|c| (*c).to_owned()).collect();
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|row| row.iter().map(|(_, v)| text(v)).collect())
                .collect();
            table(&headings, &cells)
        }
    }
}

/// An ASCII table in `openstack`'s shape.
fn table(headings: &[String], rows: &[Vec<String>]) -> String {
    let width = |s: &str| s.chars().count();
    let mut widths: Vec<usize> = headings.iter().map(|h| width(h)).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(width(cell));
            }
        }
    }
    let rule = widths.iter().fold(String::from("+"), |mut out, w| {
        out.push_str(&"-".repeat(w + 2));
        out.push('+');
        out
    });
    let line = |cells: &[String]| {
        let mut out = String::from("|");
        for (i, w) in widths.iter().enumerate() {
            let cell = cells.get(i).map(String::as_str).unwrap_or("");
            let _ = write!(out, " {cell}{} |", " ".repeat(w - width(cell)));
        }
        out
    };
    let mut out = format!("{rule}\n{}\n{rule}\n", line(headings));
    for row in rows {
        out.push_str(&line(row));
        out.push('\n');
    }
    if !rows.is_empty() {
        out.push_str(&rule);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn record() -> Record {
        vec![
            ("uuid", json!("2a27")),
            ("ports", json!(["10.0.0.5:222"])),
            ("labels", json!({"a": "1"})),
            ("workdir", Value::Null),
        ]
    }

    #[test]
    fn text_is_one_key_value_line_per_field() {
        assert_eq!(
            render_record(&record(), Format::Text),
            "uuid: 2a27\nports: [10.0.0.5:222]\nlabels: a=1\nworkdir: \n"
        );
        let json: Value =
            serde_json::from_str(&render_record(&record(), Format::Json)).expect("json");
        assert_eq!(json["ports"][0], "10.0.0.5:222");
        assert!(render_record(&record(), Format::Yaml).contains("uuid: 2a27"));
    }

    #[test]
    fn columns_are_picked_loosely_and_unknown_ones_named() {
        let picked = select(record(), &["PORTS".into(), "uuid".into()]).expect("known");
        assert_eq!(
            render_record(&picked, Format::Value),
            "[10.0.0.5:222]\n2a27\n"
        );
        let err = select(record(), &["nope".into()]).expect_err("unknown");
        assert!(err.to_string().contains("uuid, ports"), "{err}");
    }

    #[test]
    fn tables_line_up() {
        let rows = vec![vec![("name", json!("web")), ("status", json!("Running"))]];
        let out = render_list(&["name", "status"], &rows, Format::Table);
        assert_eq!(
            out,
            "+------+---------+\n| name | status  |\n+------+---------+\n| web  | Running |\n+------+---------+\n"
        );
    }
}
