//! Result sets and how they are printed: table, csv, json, line, list.

use rusqlite::types::ValueRef;

/// One value of a result, as the shell shows it.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    /// Only the size is kept: bytes are not shown.
    Blob(usize),
}

impl Cell {
    pub fn from_value(v: ValueRef<'_>) -> Cell {
        match v {
            ValueRef::Null => Cell::Null,
            ValueRef::Integer(i) => Cell::Integer(i),
            ValueRef::Real(f) => Cell::Real(f),
            ValueRef::Text(t) => Cell::Text(String::from_utf8_lossy(t).into_owned()),
            ValueRef::Blob(b) => Cell::Blob(b.len()),
        }
    }

    /// The text shown in table, line and list modes.
    pub fn display(&self) -> String {
        match self {
            Cell::Null => "NULL".to_string(),
            Cell::Integer(i) => i.to_string(),
            Cell::Real(f) => f.to_string(),
            Cell::Text(t) => t.clone(),
            Cell::Blob(n) => format!("<blob {n} bytes>"),
        }
    }

    fn json(&self) -> serde_json::Value {
        match self {
            Cell::Null => serde_json::Value::Null,
            Cell::Integer(i) => (*i).into(),
            Cell::Real(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Cell::Text(t) => t.clone().into(),
            Cell::Blob(n) => format!("<blob {n} bytes>").into(),
        }
    }

    fn csv(&self) -> String {
        match self {
            Cell::Null => String::new(),
            Cell::Text(t) if t.contains([',', '"', '\n', '\r']) => {
                format!("\"{}\"", t.replace('"', "\"\""))
            }
            other => other.display(),
        }
    }
}

/// Column names and rows of one statement.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResultSet {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

/// Output formats, as the sqlite3 shell's `.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Table,
    Csv,
    Json,
    Line,
    List,
}

impl Mode {
    pub fn parse(name: &str) -> Option<Mode> {
        Some(match name {
            "table" | "box" => Mode::Table,
            "csv" => Mode::Csv,
            "json" => Mode::Json,
            "line" => Mode::Line,
            "list" => Mode::List,
            _ => return None,
        })
    }
}

/// Renders `rs`; `width` is the terminal width for tables, if known.
pub fn render(rs: &ResultSet, mode: Mode, headers: bool, width: Option<u16>) -> String {
    match mode {
        Mode::Table => {
            let mut table = comfy_table::Table::new();
            table.load_style(comfy_table::presets::UTF8_FULL_CONDENSED);
            match width {
                Some(w) => {
                    table
                        .set_width(w)
                        .set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
                }
                None => {
                    table.force_no_tty();
                }
            }
            if headers {
                table.set_header(rs.columns.clone());
            }
            for row in &rs.rows {
                table.add_row(row.iter().map(Cell::display).collect::<Vec<_>>());
            }
            format!("{table}\n")
        }
        Mode::Csv => {
            let mut out = String::new();
            if headers {
                let names: Vec<String> = rs
                    .columns
                    .iter()
                    .map(|c| Cell::Text(c.clone()).csv())
                    .collect();
                out.push_str(&names.join(","));
                out.push('\n');
            }
            for row in &rs.rows {
                let cells: Vec<String> = row.iter().map(Cell::csv).collect();
                out.push_str(&cells.join(","));
                out.push('\n');
            }
            out
        }
        Mode::Json => {
            let rows: Vec<serde_json::Value> = rs
                .rows
                .iter()
                .map(|row| {
                    let obj: serde_json::Map<String, serde_json::Value> = rs
                        .columns
                        .iter()
                        .cloned()
                        .zip(row.iter().map(Cell::json))
                        .collect();
                    serde_json::Value::Object(obj)
                })
                .collect();
            format!("{}\n", serde_json::Value::Array(rows))
        }
        Mode::Line => {
            let wide = rs.columns.iter().map(|c| c.len()).max().unwrap_or(0);
            let mut out = String::new();
            for (i, row) in rs.rows.iter().enumerate() {
                if i > 0 {
                    out.push('\n');
                }
                for (name, cell) in rs.columns.iter().zip(row) {
                    out.push_str(&format!("{name:>wide$} = {}\n", cell.display()));
                }
            }
            out
        }
        Mode::List => {
            let mut out = String::new();
            if headers {
                out.push_str(&rs.columns.join("|"));
                out.push('\n');
            }
            for row in &rs.rows {
                let cells: Vec<String> = row.iter().map(Cell::display).collect();
                out.push_str(&cells.join("|"));
                out.push('\n');
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ResultSet {
        ResultSet {
            columns: vec!["op".into(), "n".into(), "data".into()],
            rows: vec![
                vec![
                    Cell::Text("create".into()),
                    Cell::Integer(3),
                    Cell::Blob(4096),
                ],
                vec![Cell::Text("a,\"b\"".into()), Cell::Null, Cell::Real(1.5)],
            ],
        }
    }

    #[test]
    fn csv_quotes_and_leaves_null_empty() {
        assert_eq!(
            render(&sample(), Mode::Csv, true, None),
            "op,n,data\ncreate,3,<blob 4096 bytes>\n\"a,\"\"b\"\"\",,1.5\n"
        );
    }

    #[test]
    fn json_keeps_types() {
        let out = render(&sample(), Mode::Json, true, None);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v[0]["n"], 3);
        assert_eq!(v[1]["n"], serde_json::Value::Null);
        assert_eq!(v[0]["data"], "<blob 4096 bytes>");
    }

    #[test]
    fn line_and_list_modes() {
        assert_eq!(
            render(&sample(), Mode::List, false, None),
            "create|3|<blob 4096 bytes>\na,\"b\"|NULL|1.5\n"
        );
        assert!(render(&sample(), Mode::Line, true, None).starts_with("  op = create\n   n = 3\n"));
    }
}
