//! A scenario and its compose file from arbitrary bytes (split at the first NUL), validated as
//! `faultline validate` does: never a panic, memory bounded (scripts/fuzz.sh sets the limit).
#![no_main]

use libfuzzer_sys::fuzz_target;

thread_local! {
    static DIR: tempfile::TempDir = tempfile::tempdir().expect("a temporary directory");
}

fuzz_target!(|data: &[u8]| {
    DIR.with(|dir| {
        faultline::scenario::fuzzing::scenario_and_compose(data, dir.path());
    });
});
