#!/usr/bin/env bash
# Installs the peer tools `faultline bench peers` compares faultline's generator with, through
# the machine's own apt configuration, and builds the NATS one offline:
#   golang-go + golang-github-nats-io-go-nats-dev   Debian's Go and the official Go NATS client's
#                                                    sources: bench/peers/nats-jspub is built
#                                                    from them (GOPATH mode, nothing fetched)
#   kcat                                             librdkafka's command-line producer (Kafka API)
#   mosquitto-clients                                mosquitto_pub (MQTT)
# The built peer goes to ~/.cache/faultline/peers/. Not needed by the tests or by CI.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
missing=()
command -v go >/dev/null 2>&1 || missing+=(golang-go)
dpkg -s golang-github-nats-io-go-nats-dev >/dev/null 2>&1 || missing+=(golang-github-nats-io-go-nats-dev)
command -v kcat >/dev/null 2>&1 || missing+=(kcat)
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
for tool in kcat mosquitto_pub; do command -v "$tool" >/dev/null && echo "found $(command -v "$tool")"; done
