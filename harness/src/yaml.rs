//! YAML documents as trees of nodes that remember their line and column, plus the small typed
//! readers the scenario and compose loaders use to turn them into configuration.
//!
//! Serde-based YAML loaders stop at the first problem. A scenario is a user interface, so the
//! readers here record every problem in a [`Diagnostics`] and carry on, letting `validate` report
//! all of them at once, each with `file:line:column` and what was expected.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

/// A position in a source file: line and column, both 1-based.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl Pos {
    fn from_span(span: &Span) -> Pos {
        Pos {
            line: span.start.line(),
            col: span.start.col() + 1,
        }
    }
}

/// One YAML node and where it starts.
#[derive(Clone, Debug)]
pub struct Node {
    pub value: Value,
    pub pos: Pos,
}

#[derive(Clone, Debug)]
pub enum Value {
    /// A scalar as written. `quoted` is true for quoted and block scalars, which are always
    /// strings (so `"10"` is not a number and `"null"` is not null).
    Scalar {
        text: String,
        quoted: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// True for an empty plain scalar, `~` or `null`.
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, quoted: false } if text.is_empty() || text == "~" || text == "null")
    }

    /// The node as JSON, as an editor's YAML language server sees it (YAML 1.2 core schema):
    /// a plain scalar that reads as null, a boolean or a number becomes one, every other
    /// scalar a string. Used to hold a scenario to its JSON Schema.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Scalar { text, quoted: true } => J::String(text.clone()),
            Value::Scalar { .. } if self.is_null() => J::Null,
            Value::Scalar { text, .. } => match text.as_str() {
                "true" => J::Bool(true),
                "false" => J::Bool(false),
                t => {
                    let digits = t.replace('_', "");
                    if let Ok(i) = digits.parse::<i64>() {
                        J::from(i)
                    } else if let Some(f) = digits
                        .parse::<f64>()
                        .ok()
                        .filter(|f| f.is_finite() && digits.chars().any(|c| c.is_ascii_digit()))
                        .and_then(serde_json::Number::from_f64)
                    {
                        J::Number(f)
                    } else {
                        J::String(t.to_string())
                    }
                }
            },
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| {
                        let key = match &k.value {
                            Value::Scalar { text, .. } => text.clone(),
                            _ => k.describe(),
                        };
                        (key, v.to_json())
                    })
                    .collect(),
            ),
        }
    }

    /// A short description of the node's kind for error messages.
    pub fn describe(&self) -> String {
        match &self.value {
            Value::Scalar { .. } if self.is_null() => "nothing (null)".to_string(),
            Value::Scalar { text, .. } => format!("{text:?}"),
            Value::Seq(_) => "a list".to_string(),
            Value::Map(_) => "a mapping".to_string(),
        }
    }
}

/// The most nodes a document may hold, aliases expanded: far above any scenario or topology,
/// far below what a file of nested aliases (a "billion laughs") would expand to.
pub const MAX_NODES: usize = 100_000;

/// The largest file a scenario, a topology or a config file it names may be.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// Reads a configuration file whole, refusing what is not a regular file (a device, a FIFO)
/// and what is larger than [`MAX_FILE_BYTES`], so that no input can make faultline read
/// without end.
pub fn read_bounded(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(format!(
            "{} bytes, more than the {} a configuration file may have",
            meta.len(),
            MAX_FILE_BYTES
        ));
    }
    let mut text = String::new();
    std::fs::File::open(path)
        .map_err(|e| e.to_string())?
        .take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(format!(
            "more than the {MAX_FILE_BYTES} bytes a configuration file may have"
        ));
    }
    Ok(text)
}

fn size(node: &Node) -> usize {
    1 + match &node.value {
        Value::Scalar { .. } => 0,
        Value::Seq(items) => items.iter().map(size).sum(),
        Value::Map(entries) => entries.iter().map(|(k, v)| size(k) + size(v)).sum(),
    }
}

/// Parses a YAML document into a [`Node`] tree. An empty document gives `None`. A document
/// of more than [`MAX_NODES`] nodes, aliases expanded, is refused before it is built.
pub fn parse(src: &str) -> Result<Option<Node>, (Pos, String)> {
    enum Frame {
        Seq(Pos, Vec<Node>, usize),
        Map(Pos, Vec<(Node, Node)>, Option<Node>, usize),
    }
    let mut stack: Vec<Frame> = Vec::new();
    // Each anchored node with its size, so that an alias is counted before it is copied.
    let mut anchors: HashMap<usize, (Node, usize)> = HashMap::new();
    let mut nodes = 0usize;
    let mut root: Option<Node> = None;
    let mut documents = 0;

    for item in Parser::new_from_str(src) {
        let (event, span) = item.map_err(|e| {
            let m = e.marker();
            (
                Pos {
                    line: m.line(),
                    col: m.col() + 1,
                },
                e.info().to_string(),
            )
        })?;
        let pos = Pos::from_span(&span);
        let grows = match &event {
            Event::Scalar(..) | Event::SequenceStart(..) | Event::MappingStart(..) => 1,
            Event::Alias(id) => anchors.get(id).map_or(0, |(_, n)| *n),
            _ => 0,
        };
        nodes = nodes.saturating_add(grows);
        if nodes > MAX_NODES {
            return Err((
                pos,
                format!("more than {MAX_NODES} nodes with aliases expanded: refused (nested aliases can grow a small file without bound)"),
            ));
        }
        let (done, anchor) = match event {
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err((
                        pos,
                        "expected a single YAML document, found a second one".into(),
                    ));
                }
                continue;
            }
            Event::Scalar(text, style, anchor, _) => (
                Node {
                    value: Value::Scalar {
                        text: text.into_owned(),
                        quoted: style != ScalarStyle::Plain,
                    },
                    pos,
                },
                anchor,
            ),
            Event::Alias(id) => match anchors.get(&id) {
                Some((node, _)) => (node.clone(), 0),
                None => return Err((pos, "alias refers to an unknown anchor".into())),
            },
            Event::SequenceStart(anchor, _) => {
                stack.push(Frame::Seq(pos, Vec::new(), anchor));
                continue;
            }
            Event::MappingStart(anchor, _) => {
                stack.push(Frame::Map(pos, Vec::new(), None, anchor));
                continue;
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq(p, items, anchor)) => (
                    Node {
                        value: Value::Seq(items),
                        pos: p,
                    },
                    anchor,
                ),
                _ => return Err((pos, "unbalanced sequence end".into())),
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map(p, entries, _, anchor)) => (
                    Node {
                        value: Value::Map(entries),
                        pos: p,
                    },
                    anchor,
                ),
                _ => return Err((pos, "unbalanced mapping end".into())),
            },
            _ => continue,
        };
        if anchor != 0 {
            let n = size(&done);
            anchors.insert(anchor, (done.clone(), n));
        }
        match stack.last_mut() {
            Some(Frame::Seq(_, items, _)) => items.push(done),
            Some(Frame::Map(_, entries, pending, _)) => match pending.take() {
                None => *pending = Some(done),
                Some(key) => entries.push((key, done)),
            },
            None => root = Some(done),
        }
    }
    Ok(root.filter(|n| !n.is_null()))
}

/// Reads and parses the YAML file at `path`; a file that cannot be read, is empty or is not
/// YAML is a problem in `d` (`what` names the file in messages: "scenario", "compose file").
pub fn load_file(path: &Path, what: &str, d: &mut Diagnostics) -> Option<Node> {
    let src = match read_bounded(path) {
        Ok(s) => s,
        Err(e) => {
            d.error(Pos::default(), format!("cannot read {what}: {e}"));
            return None;
        }
    };
    match parse(&src) {
        Ok(Some(root)) => Some(root),
        Ok(None) => {
            d.error(Pos::default(), format!("{what} is empty"));
            None
        }
        Err((pos, msg)) => {
            d.error(pos, format!("invalid YAML: {msg}"));
            None
        }
    }
}

/// One problem found in a configuration file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub pos: Pos,
    pub message: String,
}

impl Diagnostic {
    /// The problem as the CLI prints it: the message, where, and the line of `source` it is
    /// on with carets under the value it is about (annotate-snippets):
    ///
    /// ```text
    /// error: s.yaml:9:21: faults[0].kind: fault kind clock-skew ...
    ///   |
    /// 9 |   - { at: 5s, kind: clock-skew, target: n1 }
    ///   |                     ^^^^^^^^^^
    /// ```
    ///
    /// Just the message with its position when the problem is with the file as a whole or the
    /// line is not in `source`.
    pub fn render(&self, source: &str) -> String {
        use annotate_snippets::{Level, Renderer, Snippet};
        let Some(line) = self
            .pos
            .line
            .checked_sub(1)
            .and_then(|i| source.lines().nth(i))
        else {
            return format!("error: {self}");
        };
        // The value starts at the column (in characters); it ends at the next blank or the
        // end of its flow collection entry.
        let start: usize = line
            .chars()
            .take(self.pos.col.saturating_sub(1))
            .map(char::len_utf8)
            .sum();
        let len: usize = line[start..]
            .chars()
            .take_while(|c| !c.is_whitespace() && !matches!(c, ',' | '}' | ']'))
            .map(char::len_utf8)
            .sum();
        let end = (start + len.max(1)).min(line.len().max(start));
        // The first line stays `file:line:column: message`, which editors and CI logs link.
        let title = self.to_string();
        let message = Level::Error.title(&title).snippet(
            Snippet::source(line)
                .line_start(self.pos.line)
                .annotation(Level::Error.span(start..end)),
        );
        let rendered = Renderer::plain().render(message).to_string();
        rendered
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Line 0: the problem is with the file as a whole (missing, unreadable, empty).
        if self.pos.line == 0 {
            return write!(f, "{}: {}", self.file.display(), self.message);
        }
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.pos.line,
            self.pos.col,
            self.message
        )
    }
}

/// Collects every problem found while reading one or more files.
#[derive(Debug, Default)]
pub struct Diagnostics {
    file: PathBuf,
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn new(file: &Path) -> Self {
        Diagnostics {
            file: file.to_path_buf(),
            items: Vec::new(),
        }
    }

    /// Records a problem in the file currently being read.
    pub fn error(&mut self, pos: Pos, message: impl Into<String>) {
        self.items.push(Diagnostic {
            file: self.file.clone(),
            pos,
            message: message.into(),
        });
    }

    /// Reads another file with the same collector; returns the previous file to restore.
    pub fn switch_file(&mut self, file: &Path) -> PathBuf {
        std::mem::replace(&mut self.file, file.to_path_buf())
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn into_vec(self) -> Vec<Diagnostic> {
        self.items
    }
}

/// The entries of a mapping, checked against the keys the reader knows.
///
/// Unknown and repeated keys are reported when the reader is made; `get` marks nothing, so the
/// reader can be consulted in any order.
pub struct Fields<'a> {
    entries: &'a [(Node, Node)],
    pub pos: Pos,
    path: String,
}

/// `path: ` before a message about the node at `path`; nothing for the document itself.
fn prefix(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("{path}: ")
    }
}

impl<'a> Fields<'a> {
    /// Reads `node` as a mapping whose keys must come from `allowed`. `path` names the node in
    /// messages ("workload", "faults[2]").
    pub fn new(node: &'a Node, allowed: &[&str], path: &str, d: &mut Diagnostics) -> Option<Self> {
        let Value::Map(entries) = &node.value else {
            d.error(
                node.pos,
                format!(
                    "{}expected a mapping, found {}",
                    prefix(path),
                    node.describe()
                ),
            );
            return None;
        };
        let mut seen: Vec<&str> = Vec::new();
        for (key, _) in entries {
            let Value::Scalar { text, .. } = &key.value else {
                d.error(key.pos, format!("{}expected a plain key", prefix(path)));
                continue;
            };
            if !allowed.contains(&text.as_str()) {
                d.error(
                    key.pos,
                    format!(
                        "{}unknown key `{text}`: expected one of {}",
                        prefix(path),
                        allowed.join(", ")
                    ),
                );
            } else if seen.contains(&text.as_str()) {
                d.error(key.pos, format!("{}key `{text}` given twice", prefix(path)));
            }
            seen.push(text);
        }
        Some(Fields {
            entries,
            pos: node.pos,
            path: path.to_string(),
        })
    }

    pub fn get(&self, key: &str) -> Option<&'a Node> {
        self.entries.iter().find_map(|(k, v)| match &k.value {
            Value::Scalar { text, .. } if text == key => Some(v),
            _ => None,
        })
    }

    /// Like `get`, but reports a missing key.
    pub fn require(&self, key: &str, what: &str, d: &mut Diagnostics) -> Option<&'a Node> {
        let found = self.get(key);
        if found.is_none() {
            d.error(
                self.pos,
                format!("{}missing key `{key}`: expected {what}", prefix(&self.path)),
            );
        }
        found
    }

    /// The dotted path of a child key, for messages.
    pub fn path_of(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }
}

/// A scalar's text, or an error naming what was expected.
pub fn string<'a>(node: &'a Node, path: &str, d: &mut Diagnostics) -> Option<&'a str> {
    match &node.value {
        Value::Scalar { text, .. } if !node.is_null() => Some(text),
        _ => {
            d.error(
                node.pos,
                format!("{path}: expected a string, found {}", node.describe()),
            );
            None
        }
    }
}

/// A plain (unquoted) scalar, for numbers and booleans.
fn plain(node: &Node) -> Option<&str> {
    match &node.value {
        Value::Scalar {
            text,
            quoted: false,
        } => Some(text),
        _ => None,
    }
}

/// A whole number within `min..=max`.
pub fn integer(node: &Node, path: &str, min: u64, max: u64, d: &mut Diagnostics) -> Option<u64> {
    match plain(node).and_then(|t| t.replace('_', "").parse::<u64>().ok()) {
        Some(v) if (min..=max).contains(&v) => Some(v),
        _ => {
            d.error(
                node.pos,
                format!(
                    "{path}: expected {}, found {}",
                    if max == u64::MAX {
                        format!("a whole number of at least {min}")
                    } else {
                        format!("a whole number from {min} to {max}")
                    },
                    node.describe()
                ),
            );
            None
        }
    }
}

/// A finite number greater than zero.
pub fn positive_number(node: &Node, path: &str, d: &mut Diagnostics) -> Option<f64> {
    match plain(node).and_then(|t| t.replace('_', "").parse::<f64>().ok()) {
        Some(v) if v.is_finite() && v > 0.0 => Some(v),
        _ => {
            d.error(
                node.pos,
                format!(
                    "{path}: expected a number greater than zero, found {}",
                    node.describe()
                ),
            );
            None
        }
    }
}

/// A share written in percent ("20%", "0.1%"), from 0 % to `max_percent`, as a fraction
/// (0.2); `expected` says what the key takes, for the message.
pub fn share(
    node: &Node,
    path: &str,
    max_percent: f64,
    expected: &str,
    d: &mut Diagnostics,
) -> Option<f64> {
    let parsed = match &node.value {
        Value::Scalar { text, .. } => text
            .trim()
            .strip_suffix('%')
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite() && (0.0..=max_percent).contains(v)),
        _ => None,
    };
    if parsed.is_none() {
        d.error(
            node.pos,
            format!("{path}: expected {expected}, found {}", node.describe()),
        );
    }
    parsed.map(|v| v / 100.0)
}

/// One of a fixed set of words.
pub fn choice<'a>(
    node: &Node,
    path: &str,
    options: &[&'a str],
    d: &mut Diagnostics,
) -> Option<&'a str> {
    let text = string(node, path, d)?;
    let found = options.iter().find(|o| **o == text).copied();
    if found.is_none() {
        d.error(
            node.pos,
            format!(
                "{path}: expected one of {}, found {text:?}",
                options.join(", ")
            ),
        );
    }
    found
}

/// A duration written as "30s", "250ms", "2m" or "1m30s".
pub fn duration(node: &Node, path: &str, d: &mut Diagnostics) -> Option<Duration> {
    let parsed = match &node.value {
        Value::Scalar { text, .. } => parse_duration(text),
        _ => None,
    };
    if parsed.is_none() {
        d.error(
            node.pos,
            format!(
                "{path}: expected a duration such as \"30s\", \"250ms\" or \"1m30s\", found {}",
                node.describe()
            ),
        );
    }
    parsed
}

/// Parses "1h", "2m", "30s", "250ms", "1m30s"; a bare number is not accepted because its unit
/// would be a guess.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "ms" => number / 1000.0,
            "s" => number,
            "m" => number * 60.0,
            "h" => number * 3600.0,
            _ => return None,
        };
        // No scenario lasts a year: larger values (or ones a float cannot hold) are refused
        // rather than overflow the sums that schedule faults from them.
        total = total.checked_add(Duration::try_from_secs_f64(seconds).ok()?)?;
        if total > MAX_DURATION {
            return None;
        }
        rest = &rest[unit_len..];
    }
    Some(total)
}

/// The longest duration a scenario may state.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// A list, or an error.
pub fn list<'a>(node: &'a Node, path: &str, d: &mut Diagnostics) -> Option<&'a [Node]> {
    match &node.value {
        Value::Seq(items) => Some(items),
        _ => {
            d.error(
                node.pos,
                format!("{path}: expected a list, found {}", node.describe()),
            );
            None
        }
    }
}

#[cfg(test)]
mod excerpt_tests {
    use super::*;

    fn at(line: usize, col: usize) -> Diagnostic {
        Diagnostic {
            file: PathBuf::from("s.yaml"),
            pos: Pos { line, col },
            message: "m".into(),
        }
    }

    #[test]
    fn the_caret_sits_under_the_value() {
        let src = "faults:\n  - { at: 5s, kind: clock-skew, target: n1 }\n";
        assert_eq!(
            at(2, 21).render(src),
            "error: s.yaml:2:21: m\n  |\n2 |   - { at: 5s, kind: clock-skew, target: n1 }\n  |                     ^^^^^^^^^^\n  |"
        );
        assert_eq!(
            at(2, 45).render(src).lines().nth(3),
            Some("  |                                             ^"),
            "past the last value: one caret"
        );
        assert_eq!(
            at(0, 0).render(src),
            "error: s.yaml: m",
            "the file as a whole"
        );
        assert_eq!(at(9, 1).render(src), "error: s.yaml:9:1: m", "no such line");
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let root = parse("a: 1\nb:\n  c: x\n").unwrap().unwrap();
        let Value::Map(entries) = &root.value else {
            panic!("not a map")
        };
        assert_eq!(entries[0].0.pos, Pos { line: 1, col: 1 });
        assert_eq!(entries[1].1.pos.line, 3);
        let Value::Map(inner) = &entries[1].1.value else {
            panic!("not a map")
        };
        assert_eq!(inner[0].1.pos, Pos { line: 3, col: 6 });
    }

    #[test]
    fn syntax_errors_have_positions() {
        let (pos, msg) = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(pos.line >= 1, "{pos:?} {msg}");
    }

    #[test]
    fn unknown_and_repeated_keys_are_all_reported() {
        let root = parse("x: 1\ny: 2\nx: 3\nz: 4\n").unwrap().unwrap();
        let mut d = Diagnostics::new(Path::new("s.yaml"));
        Fields::new(&root, &["x", "y"], "top", &mut d).unwrap();
        let msgs: Vec<String> = d.into_vec().iter().map(|e| e.to_string()).collect();
        assert_eq!(
            msgs,
            vec![
                "s.yaml:3:1: top: key `x` given twice",
                "s.yaml:4:1: top: unknown key `z`: expected one of x, y",
            ]
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        // Found by the fuzzer: a number too large for a Duration panicked.
        assert_eq!(parse_duration("99999999999999999999999999h"), None);
        assert_eq!(parse_duration("8784h"), Some(MAX_DURATION));
        assert_eq!(parse_duration("8785h"), None);
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("30"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("3 s"), None);
        assert_eq!(parse_duration("10x"), None);
    }

    /// Nested aliases: ten levels of ten copies, 10^10 nodes expanded, from 12 lines.
    pub(crate) fn laughs() -> String {
        let mut doc = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for i in 1..10 {
            let p = i - 1;
            doc.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        doc
    }

    #[test]
    fn nested_aliases_are_refused_before_they_are_expanded() {
        let (pos, msg) = parse(&laughs()).unwrap_err();
        assert!(
            msg.starts_with("more than 100000 nodes with aliases expanded"),
            "{msg}"
        );
        // Refused where the count ran over, long before the last line.
        assert!(pos.line <= 6, "{pos:?}");
        // A few aliases are fine, and expanded.
        let root = parse("base: &b {x: 1}\nuse: *b\n").unwrap().unwrap();
        assert_eq!(
            root.to_json(),
            serde_json::json!({"base": {"x": 1}, "use": {"x": 1}})
        );
    }

    #[test]
    fn only_regular_files_of_bounded_size_are_read() {
        assert_eq!(
            read_bounded(Path::new("/dev/zero")).unwrap_err(),
            "not a regular file"
        );
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.yaml");
        std::fs::write(&big, vec![b'#'; (MAX_FILE_BYTES + 1) as usize]).unwrap();
        assert!(read_bounded(&big)
            .unwrap_err()
            .contains("more than the 1048576"));
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo");
        assert_eq!(read_bounded(&fifo).unwrap_err(), "not a regular file");
        std::fs::write(dir.path().join("ok.yaml"), "a: 1\n").unwrap();
        assert_eq!(read_bounded(&dir.path().join("ok.yaml")).unwrap(), "a: 1\n");
    }

    #[test]
    fn quoted_numbers_are_not_numbers() {
        let root = parse("n: \"10\"\n").unwrap().unwrap();
        let mut d = Diagnostics::new(Path::new("s.yaml"));
        let f = Fields::new(&root, &["n"], "", &mut d).unwrap();
        assert_eq!(integer(f.get("n").unwrap(), "n", 0, 100, &mut d), None);
        assert_eq!(d.into_vec().len(), 1);
    }

    #[test]
    fn aliases_copy_their_anchor() {
        let root = parse("a: &x [1, 2]\nb: *x\n").unwrap().unwrap();
        let Value::Map(entries) = &root.value else {
            panic!()
        };
        assert!(matches!(&entries[1].1.value, Value::Seq(items) if items.len() == 2));
    }
}
