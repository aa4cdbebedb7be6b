#!/usr/bin/env bash
# Build an ejabberd 23.01 image without any container registry: Debian bookworm's ejabberd
# package (23.01) configured as an MQTT broker (mod_mqtt on 1883, clients log in with an account registered on start) with the HTTP API
# (mod_http_api on 5280), plus libfaketime, on top of the local faultline/debian-base:bookworm
# image (built by ../debian-base if absent). Stands in for `ejabberd/ecs:23.01`.
#
# Usage: bash docker-compose/images/ejabberd/build.sh [<image-tag>]
#   default tag: faultline/ejabberd:23.01
# Progress lines go to stdout, verbose tool output to stderr.
# Environment overrides (optional):
#   FAULTLINE_REBUILD=1   rebuild this image even if the tag exists (the base is still reused)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RECIPE=ejabberd
TAG="${1:-faultline/ejabberd:23.01}"
EJABBERD_VERSION=23.01
source "$HERE/../lib.sh"

preflight
ensure_base
new_context
cp "$HERE/Dockerfile" "$HERE/entrypoint.sh" "$HERE/join.sh" "$HERE/register.sh" \
    "$HERE/health.sh" "$HERE/ejabberd.yml" "$HERE/ejabberdctl.cfg" "$WORK/" \
    || die "cannot copy the build context to $WORK"

say "docker build -> $TAG (apt-get install ejabberd libfaketime inside the build) ..."
build_image --build-arg "EJABBERD_VERSION=$EJABBERD_VERSION"
got="$(docker run --rm --network none --label faultline.recipe=ejabberd --entrypoint /bin/sh "$TAG" \
        -c 'dpkg-query -W -f "\${Version}" ejabberd; echo; grep -c "module: mod_mqtt" /etc/ejabberd/ejabberd.yml' 2>&1 || true)"
printf '%s\n' "$got" >&2
[[ "$got" == "$EJABBERD_VERSION"* ]] || die "image $TAG runs but its ejabberd package is '$got', expected $EJABBERD_VERSION"
[[ "$got" == *$'\n'1 ]] || die "image $TAG lacks the mod_mqtt listener in /etc/ejabberd/ejabberd.yml ('$got')"
say "built $TAG (ejabberd $EJABBERD_VERSION; mod_mqtt 1883, mod_http_api 5280)"
