#!/bin/sh
# faultline-ejabberd-register <user> <password>: started in the background by the entrypoint
# (before it execs the VM) when EJABBERD_USER is set. Once the local ejabberd answers, registers
# <user>@localhost with `ejabberdctl register` (an account that already exists counts as done,
# e.g. after a restart), retrying every second; then writes the marker
# /var/lib/ejabberd/.faultline-registered, which the health check waits for. The account lives
# in Mnesia and so is shared by the whole cluster: one node registering it is enough. MQTT
# clients log in with it (mod_mqtt maps a CONNECT to <username>@<host>/<client id>).
# Output goes to the container's log, prefixed with "faultline-ejabberd-register:".
set -u
USER_NAME="$1"
PASSWORD="$2"
MARKER=/var/lib/ejabberd/.faultline-registered
log() { printf 'faultline-ejabberd-register: %s\n' "$*"; }
. /etc/ejabberd/ejabberdctl.cfg
until epmd -names 2>/dev/null | grep -q "^name ${ERLANG_NODE%@*} "; do sleep 0.5; done
while :; do
    if out="$(ejabberdctl register "$USER_NAME" localhost "$PASSWORD" 2>&1)" \
        || printf '%s' "$out" | grep -q 'already registered'; then
        touch "$MARKER"
        log "$USER_NAME@localhost: $out"
        exit 0
    fi
    sleep 1
done
