#!/usr/bin/env bash
# Build a tansu 0.6.0 image (Kafka-API broker in Rust, stateless over PostgreSQL) without any
# container registry: the `tansu` binary built by `cargo install` from the Rust crate registry
# (cached outside the clone), on top of the local faultline/debian-base:bookworm image (built by
# ../debian-base if absent). Stands in for `ghcr.io/tansu-io/tansu:0.6.0`.
#
# Usage: bash docker-compose/images/tansu/build.sh [<image-tag>]
#   default tag: faultline/tansu:0.6.0
# Progress lines go to stdout, verbose tool output (cargo, docker build) to stderr.
# Needs `cargo` in PATH when the binary is not cached yet: the build takes about 25 min on 2 cores
# (about 1.4 GB of target directory, kept for later rebuilds).
# Environment overrides (optional):
#   FAULTLINE_REBUILD=1   rebuild this image even if the tag exists (the base and binary are reused)
#   FAULTLINE_CACHE=DIR   where the binary and cargo's target directory live
#                         (default ~/.cache/faultline: DIR/tansu-0.6.0/bin/tansu, DIR/tansu-build)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RECIPE=tansu
TAG="${1:-faultline/tansu:0.6.0}"
TANSU_VERSION=0.6.0
CACHE="${FAULTLINE_CACHE:-$HOME/.cache/faultline}"
ROOT="$CACHE/tansu-$TANSU_VERSION"
BIN="$ROOT/bin/tansu"
source "$HERE/../lib.sh"

preflight
ensure_base

# --- binary ---------------------------------------------------------------------
if [[ -x "$BIN" ]]; then
    say "tansu $TANSU_VERSION binary cached at $BIN, reusing it"
else
    command -v cargo >/dev/null 2>&1 \
        || die "cargo not found in PATH: it is needed once to build tansu $TANSU_VERSION into $BIN (install Rust, or put a built binary there)"
    mkdir -p "$CACHE" || die "cannot create cache directory $CACHE"
    say "cargo install tansu $TANSU_VERSION (postgres storage only) into $ROOT: takes about 25 min on 2 cores ..."
    # --locked: the crate's own Cargo.lock; only the postgres storage engine (no S3, SQLite,
    # data-lake features), which is all the topologies use.
    cargo install tansu --version "$TANSU_VERSION" --locked --no-default-features --features postgres \
        --root "$ROOT" --target-dir "$CACHE/tansu-build" >&2 \
        || die "cargo install tansu $TANSU_VERSION failed (see stderr; is the Rust crate registry reachable?)"
    [[ -x "$BIN" ]] || die "cargo install finished but $BIN is missing"
fi
ver="$("$BIN" --version 2>&1 || true)"
printf '%s\n' "$ver" >&2
[[ "$ver" == *"$TANSU_VERSION"* ]] || die "$BIN reports '$ver', expected $TANSU_VERSION"

# --- image ----------------------------------------------------------------------
new_context
cp "$HERE/Dockerfile" "$WORK/Dockerfile" || die "cannot copy the build context to $WORK"
cp "$BIN" "$WORK/tansu" || die "cannot copy $BIN to the build context"
chmod 0755 "$WORK/tansu"
say "docker build -> $TAG ..."
build_image --build-arg "TANSU_VERSION=$TANSU_VERSION"
got="$(docker run --rm --network none --label faultline.recipe=tansu "$TAG" --version 2>&1 || true)"
[[ "$got" == *"$TANSU_VERSION"* ]] || die "image $TAG runs but 'tansu --version' says '$got'"
say "built $TAG ($got)"
