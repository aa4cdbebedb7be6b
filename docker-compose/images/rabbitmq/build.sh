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
RECIPE=rabbitmq
TAG="${1:-faultline/rabbitmq:3.10-management}"
RABBITMQ_VERSION=3.10.8
source "$HERE/../lib.sh"

preflight
ensure_base
new_context
cp "$HERE/Dockerfile" "$HERE/entrypoint.sh" "$WORK/" || die "cannot copy the build context to $WORK"

say "docker build -> $TAG (apt-get install rabbitmq-server libfaketime inside the build) ..."
build_image --build-arg "RABBITMQ_VERSION=$RABBITMQ_VERSION"
got="$(docker run --rm --network none --label faultline.recipe=rabbitmq --entrypoint /bin/sh "$TAG" \
        -c 'dpkg-query -W -f "\${Version}" rabbitmq-server; echo; cat /etc/rabbitmq/enabled_plugins' 2>&1 || true)"
printf '%s\n' "$got" >&2
[[ "$got" == *"$RABBITMQ_VERSION"* ]] || die "image $TAG runs but its rabbitmq-server package is '$got', expected $RABBITMQ_VERSION"
[[ "$got" == *rabbitmq_mqtt* && "$got" == *rabbitmq_management* && "$got" == *rabbitmq_prometheus* ]] \
    || die "image $TAG lacks enabled plugins (enabled_plugins: '$got')"
say "built $TAG (rabbitmq-server $RABBITMQ_VERSION; plugins mqtt, management, prometheus)"
