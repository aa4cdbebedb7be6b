//! Writes JSON values as block-style YAML, the form people read and `kubectl apply` takes:
//! keys in the order the value holds them, multi-line strings as literal blocks, and every
//! string that a YAML reader could take for something else (a number, a boolean, null) quoted.

use serde_json::Value;

/// One document, ending in a newline.
pub fn document(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Object(m) if !m.is_empty() => map(m, 0, &mut out),
        Value::Array(a) if !a.is_empty() => seq(a, 0, &mut out),
        other => {
            out.push_str(&scalar(other, 0));
            out.push('\n');
        }
    }
    out
}

fn pad(indent: usize, out: &mut String) {
    out.extend(std::iter::repeat_n(' ', indent));
}

fn map(m: &serde_json::Map<String, Value>, indent: usize, out: &mut String) {
    for (i, (k, v)) in m.iter().enumerate() {
        // The first key of a map that is a sequence item sits on the item's line.
        if i > 0 || !out.ends_with("- ") {
            pad(indent, out);
        }
        out.push_str(&string(k, indent));
        out.push(':');
        value_after_key(v, indent, out);
    }
}

fn seq(a: &[Value], indent: usize, out: &mut String) {
    for (i, v) in a.iter().enumerate() {
        if i > 0 || !out.ends_with("- ") {
            pad(indent, out);
        }
        out.push_str("- ");
        match v {
            Value::Object(m) if !m.is_empty() => map(m, indent + 2, out),
            Value::Array(a) if !a.is_empty() => seq(a, indent + 2, out),
            other => {
                out.push_str(&scalar(other, indent + 2));
                out.push('\n');
            }
        }
    }
}

fn value_after_key(v: &Value, indent: usize, out: &mut String) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            map(m, indent + 2, out);
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            seq(a, indent, out);
        }
        other => {
            out.push(' ');
            out.push_str(&scalar(other, indent + 2));
            out.push('\n');
        }
    }
}

fn scalar(v: &Value, indent: usize) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string(s, indent),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
    }
}

/// A string as a plain scalar when it reads back as that same string, as a literal block when
/// it is several lines that a block keeps exactly, otherwise double-quoted (JSON's escapes are
/// YAML's).
fn string(s: &str, indent: usize) -> String {
    if plain(s) {
        return s.to_string();
    }
    if s.contains('\n')
        && s.ends_with('\n')
        && !s.ends_with("\n\n")
        && !s.starts_with([' ', '\t', '\n'])
        && !s.contains(['\r', '\u{feff}'])
    {
        let mut out = String::from("|");
        for line in s.lines() {
            out.push('\n');
            if !line.is_empty() {
                out.extend(std::iter::repeat_n(' ', indent.max(2)));
                out.push_str(line);
            }
        }
        return out;
    }
    serde_json::to_string(s).expect("a string serializes")
}

fn plain(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "null", "true", "false", "yes", "no", "on", "off", "y", "n", "~",
    ];
    let first_ok = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '/');
    first_ok
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./-:@".contains(c))
        && !s.ends_with(':')
        && !WORDS.contains(&s.to_ascii_lowercase().as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round_trip(v: &Value) {
        let text = document(v);
        let node = crate::yaml::parse(&text).unwrap().unwrap();
        assert_eq!(&node.to_json(), v, "written as:\n{text}");
    }

    #[test]
    fn what_is_written_reads_back_as_the_same_value() {
        round_trip(&json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "fl-run", "labels": {"faultline.run": "20261202-x"}},
            "data": {
                "port": "8222",
                "flag": "true",
                "empty": "",
                "colon": "a: b",
                "hash": "a #b",
                "conf": "listen: 0.0.0.0:4222\njetstream {\n  store_dir: /data\n}\n",
                "no_newline": "two\nlines",
                "quote": "say \"hi\"\n"
            },
            "items": [
                {"name": "n1", "args": ["-js", "--routes", "nats://n1:6222"], "n": 3},
                [],
                {},
                [1, 2.5, null, false]
            ],
            "empty_list": [],
            "empty_map": {}
        }));
    }

    #[test]
    fn strings_that_read_as_something_else_are_quoted() {
        assert_eq!(document(&json!({"a": "8222"})), "a: \"8222\"\n");
        assert_eq!(document(&json!({"a": "yes"})), "a: \"yes\"\n");
        assert_eq!(document(&json!({"a": "-js"})), "a: \"-js\"\n");
        assert_eq!(document(&json!({"a": "nats:2.15.1"})), "a: nats:2.15.1\n");
    }
}
