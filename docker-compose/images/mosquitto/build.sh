#!/usr/bin/env bash
# Build a Mosquitto 2.0.11 image without any container registry: Debian bookworm's
# mosquitto package plus libfaketime, on top of the local faultline/debian-base:bookworm
# image (built by ../debian-base if absent). Stands in for `eclipse-mosquitto:2.0.11`.
#
# Usage: bash docker-compose/images/mosquitto/build.sh [<image-tag>]
#   default tag: faultline/eclipse-mosquitto:2.0.11
# Progress lines go to stdout, verbose tool output to stderr.
# Environment overrides (optional):
#   FAULTLINE_REBUILD=1   rebuild this image even if the tag exists (the base is still reused)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TAG="${1:-faultline/eclipse-mosquitto:2.0.11}"
MOSQUITTO_VERSION=2.0.11
BASE_TAG="faultline/debian-base:bookworm"

say() { printf '%s\n' "$*"; }
die() { printf 'mosquitto: error: %s\n' "$*" >&2; printf 'FAILED: %s\n' "$*"; exit 1; }

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

# --- image ----------------------------------------------------------------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/faultline-mosquitto.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM
cp "$HERE/Dockerfile" "$HERE/mosquitto.conf" "$WORK/" || die "cannot copy the build context to $WORK"

say "docker build -> $TAG (apt-get install mosquitto libfaketime inside the build) ..."
# Without the buildx plugin use the legacy builder explicitly (works with any
# engine, no registry needed: FROM resolves the local base image). With buildx,
# or when the caller set DOCKER_BUILDKIT, keep the CLI's choice.
if [[ -z "${DOCKER_BUILDKIT:-}" ]] && ! docker buildx version >/dev/null 2>&1; then
    export DOCKER_BUILDKIT=0
fi
docker build \
    --build-arg "MOSQUITTO_VERSION=$MOSQUITTO_VERSION" \
    --label faultline.recipe=mosquitto \
    -t "$TAG" "$WORK" >&2 \
    || die "docker build of $TAG failed (see stderr; is the Debian mirror in the base image's sources.list reachable?)"

docker image inspect "$TAG" >/dev/null 2>&1 || die "image $TAG not found after docker build"
# `mosquitto -h` prints its version and usage, then exits non-zero
got="$(docker run --rm --network none --label faultline.recipe=mosquitto "$TAG" -h 2>&1 | head -n1 || true)"
[[ "$got" == *"$MOSQUITTO_VERSION"* ]] || die "image $TAG runs but 'mosquitto -h' says '$got'"
say "built $TAG ($got)"
