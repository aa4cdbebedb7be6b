//! Baselines on disk: one result.json, or a directory of them (one per earlier run, as
//! `--save-baseline` writes them), and the gate that holds a run's result against them.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::RunResult;
use crate::check::regression;
use crate::check::verdict::Outcome;

/// The results a baseline path holds: the file itself, or every `*.json` in the directory.
pub fn load(path: &Path) -> Result<Vec<Value>, String> {
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| format!("baseline {}: {e}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(format!(
                "baseline {}: the directory holds no result (*.json)",
                path.display()
            ));
        }
        files
    } else {
        vec![path.to_path_buf()]
    };
    files
        .iter()
        .map(|f| {
            let text =
                std::fs::read_to_string(f).map_err(|e| format!("baseline {}: {e}", f.display()))?;
            let v: Value = serde_json::from_str(&text)
                .map_err(|e| format!("baseline {}: not a result.json: {e}", f.display()))?;
            if !v["faults"].is_array() {
                return Err(format!(
                    "baseline {}: not a faultline result.json (no `faults`)",
                    f.display()
                ));
            }
            Ok(v)
        })
        .collect()
}

/// Holds `result` against the baseline at `path`: one check per number both have (a JUnit
/// case each), the comparisons in `result.regression`, and the verdict updated: a regression
/// fails the run.
pub fn gate(result: &mut RunResult, path: &Path) -> Result<(), String> {
    let baseline = load(path)?;
    let ours = serde_json::to_value(&*result).map_err(|e| e.to_string())?;
    let mut differs = Vec::new();
    for b in &baseline {
        if b["scenario"] != ours["scenario"] {
            differs.push(b["scenario"].as_str().unwrap_or("?").to_string());
        }
    }
    let gate = regression::compare(
        &ours,
        &baseline,
        &result.regression_limits,
        &path.display().to_string(),
    );
    for c in &gate.comparisons {
        let outcome = if c.regressed {
            Outcome::Failed
        } else {
            Outcome::Held
        };
        result.checks.push(
            &format!("regression: {}", c.name),
            outcome,
            c.message.clone(),
        );
    }
    if gate.comparisons.is_empty() {
        result.checks.push(
            "regression",
            Outcome::Undecided,
            format!(
                "regression: the run and the baseline {} have no number in common",
                path.display()
            ),
        );
    }
    result.checks.settle();
    result.verdict = result.checks.verdict;
    if !differs.is_empty() {
        differs.sort();
        differs.dedup();
        result.notes.push(format!(
            "the baseline holds runs of another scenario ({}): compared all the same",
            differs.join(", ")
        ));
    }
    result.notes.extend(gate.notes.iter().cloned());
    result.regression = Some(gate);
    Ok(())
}

/// Adds the run's result.json (in `out_dir`) to the baseline directory `dir` as
/// `<run id>.json`; only a run that passed becomes part of a baseline.
pub fn save(out_dir: &Path, dir: &Path) -> Result<PathBuf, String> {
    let from = out_dir.join("result.json");
    let result: Value = std::fs::read_to_string(&from)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
        .map_err(|e| format!("read {}: {e}", from.display()))?;
    if result["verdict"] != "pass" {
        return Err(format!(
            "not added to the baseline {}: the run did not pass",
            dir.display()
        ));
    }
    let run_id = result["run_id"].as_str().unwrap_or("run");
    std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let to = dir.join(format!("{run_id}.json"));
    std::fs::copy(&from, &to)
        .map_err(|e| format!("copy {} to {}: {e}", from.display(), to.display()))?;
    Ok(to)
}
