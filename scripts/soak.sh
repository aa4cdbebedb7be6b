#!/usr/bin/env bash
# Runs a long scenario with repeated faults and samples faultline's own memory (RSS) and open
# file descriptors every 10 s, to show they stay flat:
#
#   bash scripts/soak.sh [SCENARIO] [OUT-DIR]
#
# SCENARIO defaults to scenarios/nats/jetstream-soak.yaml (an hour, the stream leader killed
# every minute). The samples go to OUT-DIR/soak.csv (seconds, rss_kib, fds); at the end the
# script prints the first and last ten minutes' memory and descriptors side by side, and the
# run's own verdict. Ctrl-C stops the run (faultline tears its cluster down).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scenario="${1:-scenarios/nats/jetstream-soak.yaml}"
out="${2:-reports/soak/$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$out"
cargo build --release --quiet
./target/release/faultline run "$scenario" --out "$out" >"$out/summary.txt" 2>"$out/progress.log" &
pid=$!
trap 'kill -INT "$pid" 2>/dev/null || true' INT TERM
echo "soak: faultline pid $pid, scenario $scenario, samples in $out/soak.csv" >&2
echo "seconds,rss_kib,fds" >"$out/soak.csv"
start=$(date +%s)
while kill -0 "$pid" 2>/dev/null; do
    rss=$(awk '/^VmRSS:/{print $2}' "/proc/$pid/status" 2>/dev/null || true)
    fds=$(ls "/proc/$pid/fd" 2>/dev/null | wc -l)
    [[ -n "$rss" ]] && echo "$(($(date +%s) - start)),$rss,$fds" >>"$out/soak.csv"
    sleep 10
done
status=0
wait "$pid" || status=$?
python3 - "$out/soak.csv" <<'PY'
import csv, sys
rows = [(int(r["seconds"]), int(r["rss_kib"]), int(r["fds"])) for r in csv.DictReader(open(sys.argv[1]))]
if not rows:
    sys.exit("no samples")
end = rows[-1][0]
def window(lo, hi):
    w = [r for r in rows if lo <= r[0] < hi]
    return w or rows
def say(name, w):
    rss = [r[1] / 1024 for r in w]
    fds = [r[2] for r in w]
    print(f"{name:<18} RSS {min(rss):7.1f} .. {max(rss):7.1f} MiB   open files {min(fds)} .. {max(fds)}")
print(f"soak: {len(rows)} samples over {end / 60:.1f} min")
say("first 10 min", window(0, 600))
say("last 10 min", window(end - 600, end + 1))
say("whole run", rows)
PY
tail -n 12 "$out/summary.txt" >&2 || true
echo "soak: faultline exited $status" >&2
exit "$status"
