#!/usr/bin/env bash
# Build a single-node Pulsar-protocol broker image without any container registry: the
# pulsar-lite binary from the PyPI wheel `pulsar-lite` (a Rust broker over RocksDB, alpha),
# on top of the local faultline/debian-base:bookworm image (built by ../debian-base if absent).
#
# Usage: bash docker-compose/images/pulsar-lite/build.sh [<image-tag>]
#   default tag: faultline/pulsar-lite:0.2.0
# Progress lines go to stdout, verbose tool output to stderr.
# Environment overrides (optional):
#   FAULTLINE_REBUILD=1   rebuild this image even if the tag exists (the base is still reused)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RECIPE=pulsar-lite
TAG="${1:-faultline/pulsar-lite:0.2.0}"
VERSION=0.2.0
# The binary inside the wheel, as published (sha256 of the file, checked after extraction).
BIN_SHA256=fe0efa852084a257
source "$HERE/../lib.sh"

preflight
ensure_base

fetch_wheel pulsar-lite "$VERSION"

new_context
say "extracting pulsar-lite from $(basename "$WHEEL") ..."
mkdir -p "$WORK/wheel"
python3 -m zipfile -e "$WHEEL" "$WORK/wheel" >&2 || die "python3 -m zipfile -e $WHEEL failed"
BIN=""
shopt -s nullglob
for b in "$WORK"/wheel/*.data/purelib/pulsar_lite/bin/pulsar-lite; do BIN="$b"; break; done
shopt -u nullglob
[[ -n "$BIN" && -f "$BIN" ]] || die "no *.data/purelib/pulsar_lite/bin/pulsar-lite in $(basename "$WHEEL")"
sum="$(sha256sum "$BIN" | cut -c1-16)"
[[ "$sum" == "$BIN_SHA256" ]] || die "pulsar-lite in $(basename "$WHEEL") has sha256 $sum..., expected $BIN_SHA256..."
cp "$BIN" "$WORK/pulsar-lite"
chmod 0755 "$WORK/pulsar-lite"
rm -rf "$WORK/wheel"
cp "$HERE/Dockerfile" "$HERE/entrypoint.sh" "$HERE/pulsar-lite.toml" "$WORK/"

say "docker build -> $TAG ..."
build_image --build-arg "VERSION=$VERSION"
# The binary has no --version; a start that reaches "Server listening" is the check.
got="$(timeout 20 docker run --rm --network none --label faultline.recipe=pulsar-lite \
    --entrypoint /bin/sh "$TAG" -c 'timeout 3 /pulsar-lite --config /etc/pulsar-lite.toml --addr 127.0.0.1:6650 --db-path /tmp/check/data 2>&1; true' || true)"
[[ "$got" == *"Server listening"* ]] || die "image $TAG does not start pulsar-lite: $got"
say "built $TAG"
