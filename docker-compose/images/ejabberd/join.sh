#!/bin/sh
# faultline-ejabberd-join <node>: started in the background by the entrypoint (before it execs
# the VM) when EJABBERD_JOIN is set. Once the local ejabberd answers `ejabberdctl list_cluster`,
# runs `ejabberdctl join_cluster <node>` (which restarts the local ejabberd application inside
# the running VM with a copy of the cluster's Mnesia schema) until `list_cluster` names <node>,
# retrying every second (e.g. while <node> is not up yet). Then it writes the marker
# /var/lib/ejabberd/.faultline-joined and exits: later starts of the same container skip the
# join (the node's Mnesia schema brings it back into the cluster) and the health check
# (faultline-ejabberd-health) reports healthy only once the marker exists.
# Output goes to the container's log, prefixed with "faultline-ejabberd-join:".
set -u
TARGET="$1"
MARKER=/var/lib/ejabberd/.faultline-joined
[ -e "$MARKER" ] && exit 0
log() { printf 'faultline-ejabberd-join: %s\n' "$*"; }
# ERLANG_NODE (this node's name), as ejabberdctl and the entrypoint see it
. /etc/ejabberd/ejabberdctl.cfg
# every ejabberdctl call boots an Erlang VM: wait until the node is registered with epmd
# before the first one, then poll once a second
until epmd -names 2>/dev/null | grep -q "^name ${ERLANG_NODE%@*} "; do sleep 0.5; done
while :; do
    if nodes="$(ejabberdctl list_cluster 2>/dev/null)"; then
        if printf '%s\n' "$nodes" | grep -qx "$TARGET"; then
            touch "$MARKER"
            log "in the cluster of $TARGET:" $nodes
            exit 0
        fi
        log "ejabberdctl join_cluster $TARGET"
        if out="$(ejabberdctl join_cluster "$TARGET" 2>&1)"; then
            continue
        fi
        log "join_cluster failed:" $out
    fi
    sleep 1
done
