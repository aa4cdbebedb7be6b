#!/usr/bin/env bash
# Installs the peer tools `faultline bench peers` compares faultline's generator with, through
# the machine's own apt configuration, and builds the NATS and Kafka ones offline:
#   golang-go + golang-github-nats-io-go-nats-dev   Debian's Go and the official Go NATS client's
#                                                    sources: bench/peers/nats-jspub is built
#                                                    from them (GOPATH mode, nothing fetched)
#   mosquitto-clients                                mosquitto_pub (MQTT)
#   rdkafka_performance                              librdkafka's own benchmark (Kafka API), built
#                                                    from the rdkafka-sys crate's librdkafka
# The built peer goes to ~/.cache/faultline/peers/. Not needed by the tests or by CI.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
missing=()
command -v go >/dev/null 2>&1 || missing+=(golang-go)
dpkg -s golang-github-nats-io-go-nats-dev >/dev/null 2>&1 || missing+=(golang-github-nats-io-go-nats-dev)
command -v mosquitto_pub >/dev/null 2>&1 || missing+=(mosquitto-clients)
if ((${#missing[@]})); then
    sudo_cmd=()
    [[ "$(id -u)" == 0 ]] || sudo_cmd=(sudo)
    echo "installing: ${missing[*]}"
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}"
fi
out="${FAULTLINE_CACHE:-$HOME/.cache/faultline}/peers"
mkdir -p "$out"
gopath=$(mktemp -d); trap 'rm -rf "$gopath"' EXIT
mkdir -p "$gopath/src/faultline-peers"
cp -r "$root/bench/peers/nats-jspub" "$gopath/src/faultline-peers/"
# Debian's Go sources live in /usr/share/gocode; GOPATH mode builds from them with no network.
(cd "$gopath/src/faultline-peers/nats-jspub" &&
    GO111MODULE=off GOPATH="$gopath:/usr/share/gocode" GOFLAGS=-mod=mod GOPROXY=off \
        go build -o "$out/nats-jspub" .)
echo "built $out/nats-jspub ($(go version | cut -d' ' -f3))"
command -v mosquitto_pub >/dev/null && echo "found $(command -v mosquitto_pub)"

# librdkafka's rdkafka_performance, from the librdkafka source of the rdkafka-sys crate and the
# static library `cargo build --release` made of it (the same client faultline links), with the
# cmake build's config.h. Needs a release build first.
manifest=$(cd "$root" && cargo metadata --format-version 1 2>/dev/null |
    python3 -c 'import json,sys; print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"]=="rdkafka-sys"))')
src=$(dirname "$manifest")/librdkafka
built=$(ls -dt "$root"/target/release/build/rdkafka-sys-*/out 2>/dev/null | head -1)
if [[ -n "$built" && -f "$built/lib/librdkafka.a" && -f "$built/build/generated/config.h" ]]; then
    work=$(mktemp -d)
    mkdir -p "$work/lrk"
    cp -r "$src/src" "$src/examples" "$work/lrk/"
    cp "$built/build/generated/config.h" "$work/lrk/config.h"
    (cd "$work/lrk/examples" &&
        gcc -O2 -o "$out/rdkafka_performance" rdkafka_performance.c -I"$built/include/librdkafka" \
            -I../src "$built/lib/librdkafka.a" -lpthread -lrt -lz -lm -ldl -lcurl)
    rm -rf "$work"
    echo "built $out/rdkafka_performance (librdkafka from $(basename "$(dirname "$manifest")"))"
else
    echo "rdkafka_performance not built: run cargo build --release first" >&2
fi
