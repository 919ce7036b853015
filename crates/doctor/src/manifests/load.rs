//! Reading YAML input: files, folders (`*.yaml`, `*.yml`, recursively) or stdin (`-`);
//! multi-document streams and `kind: List` are flattened into one [`Document`] per object.
//!
//! Each document is parsed untyped (into `serde_json::Value`), so YAML scalars keep their type:
//! an unquoted `30` or `true` annotation stays a number/bool and can be reported (the API server
//! rejects non-string annotation and ConfigMap values).

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// One Kubernetes (or `DoctorAppProfile`) object with its origin.
#[derive(Debug, Clone)]
pub struct Document {
    /// File name as given (`-` for stdin).
    pub file: String,
    /// 1-based line of the document's first line in `file`.
    pub start_line: usize,
    /// The document's source text (for line look-ups).
    pub text: String,
    /// The untyped value.
    pub value: Value,
}

impl Document {
    /// `kind`, or empty.
    pub fn kind(&self) -> &str {
        self.value.get("kind").and_then(Value::as_str).unwrap_or("")
    }

    /// `metadata.name`, or empty.
    pub fn name(&self) -> &str {
        self.value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// `metadata.namespace`, or empty.
    pub fn namespace(&self) -> &str {
        self.value
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// `Kind namespace/name` (or `Kind name` without a namespace).
    pub fn object(&self) -> String {
        match self.namespace() {
            "" => format!("{} {}", self.kind(), self.name()),
            ns => format!("{} {}/{}", self.kind(), ns, self.name()),
        }
    }

    /// Absolute 1-based line of the first line containing `needle` (e.g. a key), if any.
    pub fn line_of(&self, needle: &str) -> Option<usize> {
        self.text
            .lines()
            .position(|l| l.contains(needle))
            .map(|i| self.start_line + i)
    }
}

/// Input errors (exit code 2).
#[derive(Debug)]
pub struct LoadError(pub String);

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Loads every path (`-` = stdin). Folders are walked recursively in name order.
pub fn load_paths(paths: &[PathBuf]) -> Result<Vec<Document>, LoadError> {
    let mut docs = Vec::new();
    for p in paths {
        if p.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| LoadError(format!("-: cannot read stdin: {e}")))?;
            docs.extend(parse_str("-", &text)?);
        } else {
            load_path(p, &mut docs, true)?;
        }
    }
    Ok(docs)
}

fn load_path(p: &Path, docs: &mut Vec<Document>, explicit: bool) -> Result<(), LoadError> {
    let meta = std::fs::metadata(p).map_err(|e| LoadError(format!("{}: {e}", p.display())))?;
    if meta.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
            .map_err(|e| LoadError(format!("{}: {e}", p.display())))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for e in entries {
            load_path(&e, docs, false)?;
        }
        return Ok(());
    }
    let is_yaml = matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"));
    if !explicit && !is_yaml {
        return Ok(());
    }
    let text =
        std::fs::read_to_string(p).map_err(|e| LoadError(format!("{}: {e}", p.display())))?;
    docs.extend(parse_str(&p.display().to_string(), &text)?);
    Ok(())
}

/// Parses a multi-document YAML stream.
pub fn parse_str(file: &str, text: &str) -> Result<Vec<Document>, LoadError> {
    let mut out = Vec::new();
    for (start_line, chunk) in split_documents(text) {
        let meaningful = chunk.lines().any(|l| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with('#') && !t.starts_with('%')
        });
        if !meaningful {
            continue;
        }
        let value: Value = serde_saphyr::from_str(&chunk).map_err(|e| {
            LoadError(format!(
                "{file}: YAML document starting at line {start_line}: {e}"
            ))
        })?;
        flatten(file, start_line, &chunk, value, &mut out);
    }
    Ok(out)
}

fn flatten(file: &str, start_line: usize, text: &str, value: Value, out: &mut Vec<Document>) {
    if !value.is_object() {
        return;
    }
    let is_list = value
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k.ends_with("List"));
    if is_list {
        if let Some(Value::Array(items)) = value.get("items") {
            for item in items.clone() {
                flatten(file, start_line, text, item, out);
            }
        }
        return;
    }
    out.push(Document {
        file: file.to_string(),
        start_line,
        text: text.to_string(),
        value,
    });
}

/// Splits at `---` document markers; returns (1-based first line, text) pairs.
fn split_documents(text: &str) -> Vec<(usize, String)> {
    let mut docs = Vec::new();
    let mut cur = String::new();
    let mut cur_start = 1;
    for (i, line) in text.lines().enumerate() {
        let is_marker = line == "---" || line.starts_with("--- ") || line.starts_with("---\t");
        if is_marker || line == "..." {
            docs.push((cur_start, std::mem::take(&mut cur)));
            cur_start = i + 2;
            if let Some(rest) = line.strip_prefix("--- ") {
                // `--- key: value` starts the next document on the marker line.
                cur.push_str(rest);
                cur.push('\n');
                cur_start = i + 1;
            }
            continue;
        }
        cur.push_str(line);
        cur.push('\n');
    }
    docs.push((cur_start, cur));
    docs
}

/// Scalar as text (`30` -> `"30"`, `true` -> `"true"`); `None` for maps, lists and null.
pub fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_with_lines_and_types() {
        let text = "# c\n---\nkind: A\nmetadata: {name: a}\n---\nkind: B\nx: 30\ny: true\n";
        let docs = parse_str("t", text).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].kind(), "B");
        assert!(docs[1].value["x"].is_number());
        assert!(docs[1].value["y"].is_boolean());
        assert_eq!(docs[1].line_of("y:"), Some(8));
    }

    #[test]
    fn list_is_flattened_and_errors_have_lines() {
        let docs = parse_str("t", "kind: List\nitems:\n- kind: A\n- kind: B\n").unwrap();
        assert_eq!(docs.len(), 2);
        let err = parse_str("t", "kind: A\n  bad: [\n").unwrap_err();
        assert!(err.0.contains("line"), "{}", err.0);
    }
}
