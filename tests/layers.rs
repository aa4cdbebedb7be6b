//! The layer order of `harness/src`, checked from the source text (no Docker): a module may
//! import only from a lower floor (or from inside itself), and no file outside
//! `harness/src/families/` names a broker. docs/architecture.md explains the floors; this test
//! is what keeps them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Floors from the ground up; the top-level modules of `harness/src` on each.
const FLOORS: &[&[&str]] = &[
    // The shared vocabulary: no imports from the crate at all.
    &[
        "yaml",
        "schema",
        "http",
        "progress",
        "history",
        "rng",
        "payload",
        "endpoint",
        "fault_kind",
        "powerfs",
        "procstat",
    ],
    &["target", "check", "cluster"],
    &["families"],
    &["faults", "workload"],
    &["scenario"],
    &["schedule", "report", "render"],
    &["run"],
    &["capacity"],
];

/// What a file outside `families/` must not name (the registry line and comments aside).
const BROKER_WORDS: &[&str] = &[
    "nats",
    "jetstream",
    "mqtt",
    "rabbitmq",
    "mosquitto",
    "ejabberd",
    "emqx",
    "kafka",
    "tansu",
    "pulsar",
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("harness/src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`faults/loss.rs` -> `faults`), or `None` for the
/// crate root and the binary.
fn module_of(file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src()).unwrap();
    let first = rel.components().next()?.as_os_str().to_string_lossy();
    let name = first.trim_end_matches(".rs").to_string();
    (name != "lib" && name != "main").then_some(name)
}

/// The code of a file: its inline test module (from a `#[cfg(test)]` before `mod NAME {`,
/// by convention at the end) and comments left out.
fn code(file: &Path) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    let mut out = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim() == "#[cfg(test)]" {
            let next = lines.peek().map(|l| l.trim()).unwrap_or_default();
            if next.ends_with('{') {
                break;
            }
            // A test-only module in a file of its own: see `test_files`.
            lines.next();
            continue;
        }
        if !line.trim_start().starts_with("//") {
            out.push(line);
        }
    }
    out.join("\n")
}

/// Files of test-only modules: `#[cfg(test)]` before `mod NAME;` makes `NAME.rs` beside the
/// declaring file (or in its folder, for a `mod.rs` or `lib.rs`) a test file.
fn test_files(files: &[PathBuf]) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(file).unwrap();
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            if line.trim() != "#[cfg(test)]" {
                continue;
            }
            let Some(next) = lines.next() else { break };
            let Some(name) = next
                .trim()
                .trim_start_matches("pub(crate) ")
                .strip_prefix("mod ")
                .and_then(|r| r.strip_suffix(';'))
            else {
                continue;
            };
            let stem = file.file_stem().unwrap_or_default();
            let dir = if stem == "mod" || stem == "lib" {
                file.parent().unwrap().to_path_buf()
            } else {
                file.with_extension("")
            };
            out.insert(dir.join(format!("{name}.rs")));
        }
    }
    out
}

/// Every top-level module a piece of code reaches through `crate::`, including the names of a
/// grouped `use crate::{a::X, b}`.
fn crate_modules(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level names of the group, up to its matching brace.
            let mut depth = 1;
            let mut start = true;
            for (k, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 1 => start = true,
                    c if start && depth == 1 && !c.is_whitespace() => {
                        start = false;
                        out.insert(ident(&group[k..]));
                    }
                    _ => {}
                }
                if depth == 0 {
                    break;
                }
            }
        } else {
            out.insert(ident(rest));
        }
    }
    out.remove("");
    out
}

fn floor_of(module: &str) -> Option<usize> {
    FLOORS.iter().position(|f| f.contains(&module))
}

#[test]
fn every_module_imports_only_from_lower_floors() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let tests = test_files(&files);
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for file in files.iter().filter(|f| !tests.contains(*f)) {
        let Some(module) = module_of(file) else {
            continue;
        };
        seen.insert(module.clone());
        let Some(floor) = floor_of(&module) else {
            problems.push(format!(
                "{module} is on no floor: add it to FLOORS and docs/architecture.md"
            ));
            continue;
        };
        for used in crate_modules(&code(file)) {
            if used == module {
                continue;
            }
            match floor_of(&used) {
                Some(f) if f < floor => {}
                Some(f) => problems.push(format!(
                    "{} (floor {floor}) imports {used} (floor {f}): a module imports only from lower floors",
                    file.display()
                )),
                None => problems.push(format!(
                    "{} imports {used}, which is on no floor",
                    file.display()
                )),
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The table must not name modules that are gone.
    for module in FLOORS.iter().flat_map(|f| f.iter()) {
        assert!(
            seen.contains(*module),
            "FLOORS names {module}, which is gone"
        );
    }
}

#[test]
fn no_file_outside_the_families_names_a_broker() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let tests = test_files(&files);
    let families = src().join("families");
    let mut problems = Vec::new();
    for file in files
        .iter()
        .filter(|f| !f.starts_with(&families) && !tests.contains(*f))
    {
        for (n, line) in code(file).lines().enumerate() {
            let lower = line.to_lowercase();
            let words: BTreeSet<&str> = lower.split(|c: char| !c.is_ascii_alphanumeric()).collect();
            for broker in BROKER_WORDS.iter().filter(|b| words.contains(**b)) {
                problems.push(format!(
                    "{} names {broker} (code line {}): {}",
                    file.display(),
                    n + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn test_only_modules_are_left_out() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let tests = test_files(&files);
    assert!(tests.contains(&src().join("check/tests.rs")), "{tests:?}");
    assert!(tests.contains(&src().join("report/tests.rs")), "{tests:?}");
    // A `#[cfg(test)] mod x;` among the declarations hides only that line.
    let kept = code(&src().join("check/mod.rs"));
    assert!(kept.contains("pub fn analyze"), "{kept}");
}

#[test]
fn the_import_reader_sees_grouped_and_inline_paths() {
    let code = "use crate::history::{Kind, Op};\nuse crate::{cluster::Cluster, faults::{self, x}};\nlet a = crate::http::get();";
    let found: Vec<String> = crate_modules(code).into_iter().collect();
    assert_eq!(found, vec!["cluster", "faults", "history", "http"]);
}
