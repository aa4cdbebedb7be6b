#!/usr/bin/env bash
# Screenshots a run's report.html with headless Chromium (installed by install-packages.sh),
# fetching nothing: every request goes to a proxy address where nothing listens.
#   scripts/screenshot-report.sh <run-dir | page.html> <out.png> [width] [height]
# (a run directory's report.html, or any page: a capacity directory's capacity.html)
set -euo pipefail
dir=${1:?run directory or page}; out=${2:?output png}; w=${3:-1200}; h=${4:-2300}
if [ -f "$dir" ]; then page=$(realpath "$dir"); else page=$(realpath "$dir")/report.html; fi
profile=$(mktemp -d); trap 'rm -rf "$profile"' EXIT
chromium --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking \
    --disable-component-update --disable-sync --user-data-dir="$profile" \
    --proxy-server=http://127.0.0.1:9 --proxy-bypass-list='<-loopback>' \
    --hide-scrollbars --window-size="$w,$h" --screenshot="$(realpath -m "$out")" \
    "file://$page" 2>/dev/null
echo "wrote $out"
