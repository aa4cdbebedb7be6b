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
RECIPE=mosquitto
TAG="${1:-faultline/eclipse-mosquitto:2.0.11}"
MOSQUITTO_VERSION=2.0.11
source "$HERE/../lib.sh"

preflight
ensure_base
new_context
cp "$HERE/Dockerfile" "$HERE/mosquitto.conf" "$WORK/" || die "cannot copy the build context to $WORK"

say "docker build -> $TAG (apt-get install mosquitto libfaketime inside the build) ..."
build_image --build-arg "MOSQUITTO_VERSION=$MOSQUITTO_VERSION"
# `mosquitto -h` prints its version and usage, then exits non-zero
got="$(docker run --rm --network none --label faultline.recipe=mosquitto "$TAG" -h 2>&1 | head -n1 || true)"
[[ "$got" == *"$MOSQUITTO_VERSION"* ]] || die "image $TAG runs but 'mosquitto -h' says '$got'"
say "built $TAG ($got)"
