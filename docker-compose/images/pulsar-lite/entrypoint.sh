#!/bin/sh
# pulsar-lite answers a topic lookup with the address it listens on (0.0.0.0 becomes
# 127.0.0.1), and has no setting to advertise another: so it listens on the container's own
# address, which a client outside the container can reach. exec: the broker is the main
# process, which is what faultline's kill and stop signal.
set -e
ip="$(hostname -i | cut -d' ' -f1)"
exec /pulsar-lite --config /etc/pulsar-lite.toml --addr "$ip:6650" "$@"
