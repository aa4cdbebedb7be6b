#!/bin/sh
# faultline/rabbitmq entrypoint (runs as user rabbitmq): write the Erlang cookie, then replace
# this shell by the Erlang VM (rabbitmq-server script -> erl -> erlexec -> beam.smp, each an
# exec), so that beam.smp is PID 1 and receives docker's signals directly.
set -eu
RMQ_HOME=/var/lib/rabbitmq
if [ -n "${RABBITMQ_ERLANG_COOKIE:-}" ]; then
    # the server reads the variable itself; the file is for CLI tools (docker exec rabbitmqctl)
    rm -f "$RMQ_HOME/.erlang.cookie"
    ( umask 077; printf '%s' "$RABBITMQ_ERLANG_COOKIE" > "$RMQ_HOME/.erlang.cookie" )
    chmod 0400 "$RMQ_HOME/.erlang.cookie"
fi
cd "$RMQ_HOME"
export HOME="$RMQ_HOME" RUNNING_UNDER_SYSTEMD=true
exec /usr/lib/rabbitmq/bin/rabbitmq-server "$@"
