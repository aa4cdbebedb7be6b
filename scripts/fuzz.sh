#!/usr/bin/env bash
# Fuzzes scenario and compose parsing (fuzz/fuzz_targets/scenario.rs) for a bounded time:
#
#   bash scripts/fuzz.sh [SECONDS]        (default 300)
#
# Each input is a scenario and, after a NUL byte, the compose file it names (compose.yml);
# both are read and validated as `faultline validate` does. A panic, or more than 512 MiB of
# memory, is a finding: libFuzzer stops and writes the input under fuzz/artifacts/scenario/.
# New inputs that reach new code are added to fuzz/corpus/scenario/ (commit the interesting
# ones: a unit test replays the whole corpus on every `cargo test`).
#
# Needs a nightly toolchain (libFuzzer's instrumentation) and cargo-fuzz, which this script
# installs from the crate registry when it is missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds="${1:-300}"

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "fuzz.sh: no nightly toolchain (rustup toolchain list); libFuzzer needs one" >&2
    exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz ..." >&2
    cargo install cargo-fuzz --locked
fi
mkdir -p fuzz/corpus/scenario
exec cargo +nightly fuzz run scenario fuzz/corpus/scenario -- \
    -max_total_time="$seconds" -rss_limit_mb=512 -max_len=65536 -timeout=10
