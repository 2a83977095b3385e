#!/usr/bin/env bash
# Installs rabbitmq-server with apt-get when it is missing. Starts nothing:
# the AMQP tests start and stop a RabbitMQ node of their own (own name,
# ports, epmd and data directory under a temporary folder; see
# test/setup/rabbitmq.ts). Needs root for apt-get.
set -euo pipefail

if command -v rabbitmq-server >/dev/null 2>&1; then
  echo "rabbitmq: rabbitmq-server is installed"
  exit 0
fi

echo "rabbitmq: installing rabbitmq-server with apt-get"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends rabbitmq-server
# The package may start the system's node (bound to every interface); the
# tests do not use it, so stop the one the install just started.
(service rabbitmq-server stop || rabbitmqctl stop) >/dev/null 2>&1 || true
