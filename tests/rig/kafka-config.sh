#!/usr/bin/env bash
# Writes a single-node Kafka's configuration into DIR: log4j2.properties and server.properties
# (data in DIR/kafka-data), listening on 127.0.0.1:PORT with its controller on CONTROLLER_PORT.
# Shared by the rig (start.sh) and the brokers tests start of their own (broker.sh).
#
# Usage: kafka-config.sh DIR PORT CONTROLLER_PORT
set -euo pipefail

if [[ $# -ne 3 ]]; then
  echo "usage: $0 DIR PORT CONTROLLER_PORT" >&2
  exit 2
fi
STATE_DIR=$(cd -- "$1" && pwd)
KAFKA_PORT=$2
CONTROLLER_PORT=$3

LOG4J="$STATE_DIR/log4j2.properties"
cat >"$LOG4J" <<'EOF'
# Kafka 4 logs through log4j2; console only, so everything lands in kafka.log.
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.target = SYSTEM_OUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = info
logger.apachekafka.name = org.apache.kafka
logger.apachekafka.level = info
# The full KafkaConfig dump is logged five times at startup (~1700 lines);
# server.properties beside this file says what was set.
logger.configdump.name = org.apache.kafka.common.config.AbstractConfig
logger.configdump.level = warn
EOF

PROPS="$STATE_DIR/server.properties"
cat >"$PROPS" <<EOF
# Single-node KRaft: this process is both the broker and the only voter.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$STATE_DIR/kafka-data

# One broker: every internal topic must live with a single replica.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
num.partitions=1
# Tests create the topics they use; a typo must fail, not create a topic.
auto.create.topics.enable=false

# Fast start and a small footprint on a 2-core test machine.
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=2
num.recovery.threads.per.data.dir=1
background.threads=2
# The cleaner allocates its whole dedupe buffer on the heap at startup
# (128 MiB by default); test data is tiny.
log.cleaner.dedupe.buffer.size=8388608
EOF
