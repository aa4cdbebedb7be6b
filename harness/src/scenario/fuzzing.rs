//! One input of the scenario fuzzer (`fuzz/`, run by `scripts/fuzz.sh`), also replayed over
//! the committed corpus by a unit test: a scenario and the compose file it names, read and
//! validated as `faultline validate` does. Whatever the bytes, this returns (never panics) and
//! its memory stays bounded (the YAML reader's node cap and file size limit).

use std::path::Path;

/// The name the scenario's `cluster.compose` must use to reach the compose half of an input.
pub const COMPOSE_FILE: &str = "compose.yml";

/// Validates one input, in `dir`: the bytes before the first NUL are the scenario, the bytes
/// after it the compose file (`compose.yml` next to it). Returns how many problems were found
/// (0: valid).
pub fn scenario_and_compose(data: &[u8], dir: &Path) -> usize {
    let (scenario, compose) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    // The shipped recipes, where the compose files' `local-image` entries look for them.
    let images = dir.join("images");
    if !images.exists() {
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("docker-compose/images");
        let _ = std::os::unix::fs::symlink(shipped, &images);
    }
    let scenario_file = dir.join("scenario.yaml");
    if std::fs::write(&scenario_file, scenario).is_err()
        || std::fs::write(dir.join(COMPOSE_FILE), compose).is_err()
    {
        return 0;
    }
    match super::load(&scenario_file) {
        Ok(_) => 0,
        Err(problems) => {
            // Every problem renders with its source line, as validate prints it.
            let source = String::from_utf8_lossy(scenario);
            for p in &problems {
                let _ = p.render(&source);
            }
            problems.len()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every input of the committed corpus (fuzz/corpus/scenario) goes through again: no panic.
    #[test]
    fn the_fuzz_corpus_replays_without_a_panic() {
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/scenario");
        let dir = tempfile::tempdir().unwrap();
        let mut inputs = 0;
        let mut valid = 0;
        for entry in std::fs::read_dir(&corpus).expect("the committed corpus") {
            let data = std::fs::read(entry.unwrap().path()).unwrap();
            if scenario_and_compose(&data, dir.path()) == 0 {
                valid += 1;
            }
            inputs += 1;
        }
        assert!(inputs >= 30, "only {inputs} corpus inputs");
        // The seeds include every shipped scenario, valid: the corpus reaches past the parser.
        assert!(valid >= 10, "only {valid} of {inputs} inputs valid");
    }
}
