#!/usr/bin/env bash
# Runs a long scenario with repeated faults and samples faultline's own memory (RSS) and open
# file descriptors every 10 s, to show they stay flat:
#
#   bash scripts/soak.sh [SCENARIO] [OUT-DIR]
#
# SCENARIO defaults to scenarios/nats/jetstream-soak.yaml (an hour, the stream leader killed
# every minute). The samples go to OUT-DIR/soak.csv (seconds, rss_kib, fds); at the end the
# script prints the memory and descriptors of the load's first ten minutes (after its first
# minute) and last ten side by side, then those of the drain and check (which read every
# message back), and the run's own verdict. Ctrl-C stops the run (faultline tears its cluster
# down). FAULTLINE_BIN names a faultline binary to use instead of building one (a copy, so
# that builds during the soak do not replace the binary it runs).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scenario="${1:-scenarios/nats/jetstream-soak.yaml}"
out="${2:-reports/soak/$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$out"
bin="${FAULTLINE_BIN:-}"
if [[ -z "$bin" ]]; then
    cargo build --release --quiet
    bin=./target/release/faultline
fi
"$bin" run "$scenario" --out "$out" >"$out/summary.txt" 2>"$out/progress.log" &
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
python3 - "$out/soak.csv" "$out/progress.log" <<'PY'
import csv, re, sys
rows = [(int(r["seconds"]), int(r["rss_kib"]), int(r["fds"])) for r in csv.DictReader(open(sys.argv[1]))]
if not rows:
    sys.exit("no samples")
end = rows[-1][0]
# The load's end, from the run's own progress line; the drain and the check come after it.
load_end = end
for line in open(sys.argv[2], errors="replace"):
    m = re.match(r"\[\s*([0-9.]+)s\] ==> load finished", line)
    if m:
        load_end = float(m.group(1))
def window(lo, hi):
    return [r for r in rows if lo <= r[0] < hi]
def say(name, w):
    if not w:
        return
    rss = [r[1] / 1024 for r in w]
    fds = [r[2] for r in w]
    print(f"{name:<28} RSS {min(rss):7.1f} .. {max(rss):7.1f} MiB   open files {min(fds)} .. {max(fds)}   ({len(w)} samples)")
print(f"soak: {len(rows)} samples over {end / 60:.1f} min, load {load_end / 60:.1f} min")
say("load, first 10 min", window(60, 600))
say("load, last 10 min", window(load_end - 600, load_end))
say("drain and check", window(load_end, end + 1))
PY
tail -n 12 "$out/summary.txt" >&2 || true
echo "soak: faultline exited $status" >&2
exit "$status"
