#!/bin/sh
# faultline/ejabberd entrypoint (runs as user ejabberd): write the Erlang cookie, start the
# one-shot cluster join in the background when asked, then replace this shell by the Erlang VM
# (erl -> erlexec -> beam.smp, each an exec) so that beam.smp is PID 1 and receives docker's
# signals directly. `ejabberdctl foreground` cannot be used: it runs erl as a child, not exec.
#
# Environment:
#   ERLANG_COOKIE          the Erlang cookie (same on every node of a cluster)
#   EJABBERD_JOIN          a node to join on first start, e.g. ejabberd@e1 (see faultline-ejabberd-join)
#   EJABBERD_USER, EJABBERD_PASSWORD
#                          an account to register on start (see faultline-ejabberd-register)
#   EJABBERD_NODE          node name (default ejabberd@<short hostname>)
# Arguments are passed on to erl (e.g. `-kernel prevent_overlapping_partitions false`).
set -eu
SPOOL_DIR=/var/lib/ejabberd
CONFIG_DIR=/etc/ejabberd
# ERLANG_NODE, ERL_OPTIONS, EJABBERD_CONFIG_PATH, CONTRIB_MODULES_CONF_DIR
. "$CONFIG_DIR/ejabberdctl.cfg"

if [ -n "${ERLANG_COOKIE:-}" ]; then
    # the VM and the control nodes (docker exec ejabberdctl) read it from $HOME
    rm -f "$SPOOL_DIR/.erlang.cookie"
    ( umask 077; printf '%s' "$ERLANG_COOKIE" > "$SPOOL_DIR/.erlang.cookie" )
    chmod 0400 "$SPOOL_DIR/.erlang.cookie"
fi

# the same environment ejabberdctl gives the server
export HOME="$SPOOL_DIR" \
    EJABBERD_CONFIG_PATH \
    EJABBERD_LOG_PATH=/var/log/ejabberd/ejabberd.log \
    ERL_INETRC="$CONFIG_DIR/inetrc" \
    ERL_LIBS=/usr/lib/x86_64-linux-gnu \
    ERL_MAX_PORTS=32000 \
    ERL_MAX_ETS_TABLES=1400 \
    CONTRIB_MODULES_CONF_DIR
cd "$SPOOL_DIR"

if [ -n "${EJABBERD_JOIN:-}" ] && [ "$EJABBERD_JOIN" != "$ERLANG_NODE" ]; then
    # waits for this node, joins once, leaves a marker; a restarted member rejoins by itself
    # (its Mnesia schema lists the cluster), so this does nothing once the marker exists
    /usr/local/bin/faultline-ejabberd-join "$EJABBERD_JOIN" </dev/null &
fi

if [ -n "${EJABBERD_USER:-}" ]; then
    /usr/local/bin/faultline-ejabberd-register "$EJABBERD_USER" "${EJABBERD_PASSWORD:-}" </dev/null &
fi

# -sname for a short node name, -name for a fully qualified one (as ejabberdctl decides)
NAME_FLAG=-name
[ "$ERLANG_NODE" = "${ERLANG_NODE%.*}" ] && NAME_FLAG=-sname
# shellcheck disable=SC2086  # ERL_OPTIONS is a list of arguments
exec /usr/bin/erl "$NAME_FLAG" "$ERLANG_NODE" +K true +P 250000 $ERL_OPTIONS \
    -mnesia dir "\"$SPOOL_DIR\"" -s ejabberd -noinput "$@"
