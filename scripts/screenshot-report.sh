#!/usr/bin/env bash
# Screenshots a run's report.html with headless Chromium (installed by install-packages.sh),
# fetching nothing: every request goes to a proxy address where nothing listens.
#   scripts/screenshot-report.sh <run-dir> <out.png> [width] [height]
set -euo pipefail
dir=${1:?run directory}; out=${2:?output png}; w=${3:-1200}; h=${4:-2300}
profile=$(mktemp -d); trap 'rm -rf "$profile"' EXIT
chromium --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking \
    --disable-component-update --disable-sync --user-data-dir="$profile" \
    --proxy-server=http://127.0.0.1:9 --proxy-bypass-list='<-loopback>' \
    --hide-scrollbars --window-size="$w,$h" --screenshot="$(realpath -m "$out")" \
    "file://$(realpath "$dir")/report.html" 2>/dev/null
echo "wrote $out"
