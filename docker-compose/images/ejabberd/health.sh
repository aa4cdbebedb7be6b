#!/bin/bash
# faultline-ejabberd-health: exit 0 when the MQTT listener (1883) is open and, on a node started
# with EJABBERD_JOIN, the cluster join has completed and, with EJABBERD_USER, the account is
# registered (their markers exist). Looks at the listening socket instead of connecting,
# which would log a line per check.
[[ -n "$(ss -Hltn 'sport = :1883')" ]] || exit 1
[[ -z "${EJABBERD_JOIN:-}" || -e /var/lib/ejabberd/.faultline-joined ]] || exit 1
[[ -z "${EJABBERD_USER:-}" || -e /var/lib/ejabberd/.faultline-registered ]]
