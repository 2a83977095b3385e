#!/usr/bin/env bash
# RabbitMQ for the AMQP tests, bound to 127.0.0.1 only.
#
#   .ci/rabbitmq.sh          install (apt-get, when missing), start, wait until it answers
#   .ci/rabbitmq.sh stop     stop the node started here
#
# The node listens for AMQP on 127.0.0.1:5672 (guest/guest, which RabbitMQ
# allows from loopback only), Erlang distribution on 127.0.0.1:25672, and
# epmd on 127.0.0.1:4369. Node name: rabbit@localhost (WEFT_RABBITMQ_NODE in
# the tests). Needs root for apt-get and for the broker's data directory.
set -euo pipefail

NODE="${WEFT_RABBITMQ_NODE:-rabbit@localhost}"
TIMEOUT="${RABBITMQ_START_TIMEOUT:-120}"

export RABBITMQ_NODENAME="$NODE"
export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
export RABBITMQ_NODE_PORT=5672
export RABBITMQ_DIST_PORT=25672
export ERL_EPMD_ADDRESS=127.0.0.1
# Keep the distribution listener on loopback as well.
export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"

ctl() { rabbitmqctl -n "$NODE" "$@"; }

if [[ "${1:-start}" == "stop" ]]; then
  if ctl status >/dev/null 2>&1; then
    ctl stop
    echo "rabbitmq: stopped $NODE"
  else
    echo "rabbitmq: $NODE is not running"
  fi
  exit 0
fi

if ! command -v rabbitmq-server >/dev/null 2>&1; then
  echo "rabbitmq: installing rabbitmq-server with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends rabbitmq-server
  # The package may start a node of its own bound to every interface: stop
  # it, so the one started below (loopback only) is the only one.
  (service rabbitmq-server stop || rabbitmqctl stop) >/dev/null 2>&1 || true
fi

if ctl status >/dev/null 2>&1; then
  echo "rabbitmq: $NODE already running"
else
  echo "rabbitmq: starting $NODE on 127.0.0.1:5672"
  rabbitmq-server -detached
fi

# await_startup fails at once while the node is not up yet; retry until the
# deadline, then let await_startup wait for the boot itself.
deadline=$((SECONDS + TIMEOUT))
until ctl await_startup --timeout "$TIMEOUT" >/dev/null 2>&1; do
  if ((SECONDS >= deadline)); then
    echo "rabbitmq: $NODE did not start within ${TIMEOUT}s" >&2
    ls /var/log/rabbitmq/ >&2 2>/dev/null && tail -n 50 /var/log/rabbitmq/*.log >&2 2>/dev/null || true
    exit 1
  fi
  sleep 1
done
echo "rabbitmq: $NODE is up"
