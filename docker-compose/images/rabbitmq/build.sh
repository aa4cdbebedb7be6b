#!/usr/bin/env bash
# Build a RabbitMQ 3.10 image without any container registry: Debian bookworm's
# rabbitmq-server package (3.10.8) with the MQTT, management and prometheus plugins
# enabled offline, plus libfaketime, on top of the local faultline/debian-base:bookworm
# image (built by ../debian-base if absent). Stands in for `rabbitmq:3.10-management`.
#
# Usage: bash docker-compose/images/rabbitmq/build.sh [<image-tag>]
#   default tag: faultline/rabbitmq:3.10-management
# Progress lines go to stdout, verbose tool output to stderr.
# Environment overrides (optional):
#   FAULTLINE_REBUILD=1   rebuild this image even if the tag exists (the base is still reused)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TAG="${1:-faultline/rabbitmq:3.10-management}"
RABBITMQ_VERSION=3.10.8
BASE_TAG="faultline/debian-base:bookworm"

say() { printf '%s\n' "$*"; }
die() { printf 'rabbitmq: error: %s\n' "$*" >&2; printf 'FAILED: %s\n' "$*"; exit 1; }

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
WORK="$(mktemp -d "${TMPDIR:-/tmp}/faultline-rabbitmq.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM
cp "$HERE/Dockerfile" "$HERE/entrypoint.sh" "$WORK/" || die "cannot copy the build context to $WORK"

say "docker build -> $TAG (apt-get install rabbitmq-server libfaketime inside the build) ..."
# Without the buildx plugin use the legacy builder explicitly (works with any
# engine, no registry needed: FROM resolves the local base image). With buildx,
# or when the caller set DOCKER_BUILDKIT, keep the CLI's choice.
if [[ -z "${DOCKER_BUILDKIT:-}" ]] && ! docker buildx version >/dev/null 2>&1; then
    export DOCKER_BUILDKIT=0
fi
docker build \
    --build-arg "RABBITMQ_VERSION=$RABBITMQ_VERSION" \
    --label faultline.recipe=rabbitmq \
    -t "$TAG" "$WORK" >&2 \
    || die "docker build of $TAG failed (see stderr; is the Debian mirror in the base image's sources.list reachable?)"

docker image inspect "$TAG" >/dev/null 2>&1 || die "image $TAG not found after docker build"
got="$(docker run --rm --network none --label faultline.recipe=rabbitmq --entrypoint /bin/sh "$TAG" \
        -c 'dpkg-query -W -f "\${Version}" rabbitmq-server; echo; cat /etc/rabbitmq/enabled_plugins' 2>&1 || true)"
printf '%s\n' "$got" >&2
[[ "$got" == *"$RABBITMQ_VERSION"* ]] || die "image $TAG runs but its rabbitmq-server package is '$got', expected $RABBITMQ_VERSION"
[[ "$got" == *rabbitmq_mqtt* && "$got" == *rabbitmq_management* && "$got" == *rabbitmq_prometheus* ]] \
    || die "image $TAG lacks enabled plugins (enabled_plugins: '$got')"
say "built $TAG (rabbitmq-server $RABBITMQ_VERSION; plugins mqtt, management, prometheus)"
