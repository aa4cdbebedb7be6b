#!/usr/bin/env bash
# Build a minimal Debian bookworm base image without any container registry:
# debootstrap (minbase) from the Debian mirror named by this machine's apt
# configuration, then `docker import`.
#
# Usage: bash docker-compose/images/debian-base/build.sh [<image-tag>]
#   default tag: faultline/debian-base:bookworm
# Progress lines go to stdout, verbose tool output to stderr.
# Environment overrides (optional):
#   FAULTLINE_DEBIAN_MIRROR  use this mirror URI instead of reading apt's config
#   FAULTLINE_REBUILD=1      rebuild even if the tag already exists
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TAG="${1:-faultline/debian-base:bookworm}"
SUITE=bookworm
INCLUDE="iproute2,iptables,procps,ca-certificates"

say() { printf '%s\n' "$*"; }
die() { printf 'debian-base: error: %s\n' "$*" >&2; printf 'FAILED: %s\n' "$*"; exit 1; }

command -v docker >/dev/null 2>&1 || die "docker CLI not found in PATH"
docker info >/dev/null 2>&1 || die "cannot reach the Docker daemon (is it running, do you have access?)"

if [[ "${FAULTLINE_REBUILD:-0}" != 1 ]] && docker image inspect "$TAG" >/dev/null 2>&1; then
    say "image $TAG already exists, reusing it"
    exit 0
fi

# --- find the Debian mirror from the machine's apt configuration -------------
# deb822 files: the first URI of the first stanza whose Suites list contains
# exactly "bookworm"; then one-line sources.list entries for bookworm.
find_mirror() {
    local f
    shopt -s nullglob
    for f in /etc/apt/sources.list.d/*.sources; do
        awk -v suite="$SUITE" '
            function flush() {
                if (uris != "" && has_suite && !enabled_no) { print uris; found = 1; exit }
                uris = ""; has_suite = 0; enabled_no = 0
            }
            /^[[:space:]]*#/ { next }
            /^[[:space:]]*$/ { flush(); next }
            {
                line = $0
                key = tolower(line); sub(/:.*/, "", key); gsub(/[[:space:]]/, "", key)
                val = line; sub(/^[^:]*:[[:space:]]*/, "", val)
                if (key == "uris") { split(val, u, /[[:space:]]+/); uris = u[1] }
                else if (key == "suites") {
                    n = split(val, s, /[[:space:]]+/)
                    for (i = 1; i <= n; i++) if (s[i] == suite) has_suite = 1
                }
                else if (key == "enabled" && tolower(val) ~ /^no/) enabled_no = 1
            }
            END { if (!found) flush() }
        ' "$f" | head -n1
    done
    local lists=()
    [[ -f /etc/apt/sources.list ]] && lists+=(/etc/apt/sources.list)
    for f in /etc/apt/sources.list.d/*.list; do lists+=("$f"); done
    shopt -u nullglob
    if (( ${#lists[@]} )); then
        # deb [options] URI SUITE COMPONENT...
        awk -v suite="$SUITE" '
            $1 == "deb" {
                i = 2
                if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                if ($(i + 1) == suite) { print $i; exit }
            }
        ' "${lists[@]}" | head -n1
    fi
}

MIRROR="${FAULTLINE_DEBIAN_MIRROR:-}"
if [[ -z "$MIRROR" ]]; then
    MIRROR="$(find_mirror | head -n1 || true)"
fi
[[ -n "$MIRROR" ]] || die "no Debian mirror for '$SUITE' found in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list (set FAULTLINE_DEBIAN_MIRROR)"

# --- debootstrap --------------------------------------------------------------
if ! command -v debootstrap >/dev/null 2>&1; then
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        say "installing debootstrap with apt-get ..."
        { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y debootstrap; } >&2 \
            || die "apt-get install -y debootstrap failed"
    else
        die "debootstrap is not installed; install it (e.g. 'sudo apt-get install -y debootstrap') and retry"
    fi
fi
[[ "$(id -u)" == 0 ]] || die "debootstrap needs root; run this script as root"

KEYRING_ARGS=()
for k in /usr/share/keyrings/debian-archive-keyring.gpg /usr/share/keyrings/debian-archive-bookworm-stable.gpg; do
    if [[ -f "$k" ]]; then KEYRING_ARGS=(--keyring="$k"); break; fi
done

WORK="$(mktemp -d "${TMPDIR:-/tmp}/faultline-debian-base.XXXXXX")"
cleanup() {
    # the rootfs may contain files owned by anyone; rm as the same user that created it
    rm -rf --one-file-system "$WORK" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ROOTFS="$WORK/rootfs"

say "debootstrap $SUITE (minbase, +$INCLUDE) ..."
if ! debootstrap --variant=minbase --include="$INCLUDE" "${KEYRING_ARGS[@]}" \
        "$SUITE" "$ROOTFS" "$MIRROR" >&2; then
    tail -n 5 "$ROOTFS/debootstrap/debootstrap.log" >&2 2>/dev/null || true
    die "debootstrap $SUITE from the apt-configured mirror failed (see stderr)"
fi

say "trimming rootfs ..."
# the image must use the same mirror at build time (apt-get in derived images)
printf 'deb %s %s main\n' "$MIRROR" "$SUITE" > "$ROOTFS/etc/apt/sources.list"
chroot "$ROOTFS" apt-get clean >&2 || true
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin "$ROOTFS"/tmp/* "$ROOTFS"/var/log/*.log 2>/dev/null || true
: > "$ROOTFS/etc/hostname"   # docker sets it per container

say "docker import -> $TAG ..."
if ! tar --numeric-owner -C "$ROOTFS" -c . \
        | docker import \
            --change 'CMD ["/bin/bash"]' \
            --change 'LABEL faultline.recipe=debian-base' \
            --change 'ENV LANG=C.UTF-8' \
            - "$TAG" >&2; then
    die "docker import of the rootfs as $TAG failed"
fi

docker image inspect "$TAG" >/dev/null 2>&1 || die "image $TAG not found after import"
size="$(docker image inspect --format '{{.Size}}' "$TAG")"
say "built $TAG ($(( size / 1024 / 1024 )) MiB)"
