#!/usr/bin/env bash
# End-to-end dispatch benchmark: signed Meta webhooks -> wagate serve (ingest + dispatch, one
# process) -> a fast local sink. Reports ingest rate, delivery throughput and
# receive -> delivered latency p50/p99. Loopback only; bounded by REQUESTS.
#
#   bench/dispatch.sh [REQUESTS=5000] [MSGS_PER_REQUEST=2] [SENDERS=32] [DURABILITY=fsync]
set -euo pipefail
REQUESTS=${1:-5000}
PER=${2:-2}
SENDERS=${3:-32}
DURABILITY=${4:-fsync}
EVENTS=$((REQUESTS * PER))
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
cargo build --release -q -p wagate
cargo build --release -q -p wagate-dispatch --example dispatch_bench
BIN=target/release/wagate
DRV=target/release/examples/dispatch_bench
DIR=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$DIR"' EXIT

"$DRV" sink "$DIR/sink.addr" "$EVENTS" > "$DIR/sink.out" &
SINK_PID=$!
for _ in $(seq 100); do [ -s "$DIR/sink.addr" ] && break; sleep 0.05; done
cat > "$DIR/wagate.toml" <<TOML
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
[journal]
path = "$DIR/wagate.db"
durability = "$DURABILITY"
[log]
format = "json"
level = "warn,wagate=info"
[[sources]]
name = "meta"
path = "/webhook"
provider = "meta"
verify_token = "t"
app_secrets = ["bench_secret"]
[[targets]]
name = "app"
url = "http://$(cat "$DIR/sink.addr")/hook"
mode = "events"
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
concurrency = 64
[dispatch]
poll_interval = "50ms"
TOML
"$BIN" serve --config "$DIR/wagate.toml" 2> "$DIR/wagate.log" &
for _ in $(seq 100); do grep -q "wagate started" "$DIR/wagate.log" 2>/dev/null && break; sleep 0.05; done
URL="http://$(grep "wagate started" "$DIR/wagate.log" | sed -E 's/.*"webhook":"([^"]+)".*/\1/')/webhook"

echo "wagate dispatch bench: $REQUESTS requests x $PER messages = $EVENTS events, $SENDERS senders, durability=$DURABILITY, $(nproc) cores"
"$DRV" send "$URL" "$REQUESTS" "$PER" "$SENDERS" bench_secret
timeout 120 tail --pid=$SINK_PID -f /dev/null || echo "sink did not receive every event in time"
cat "$DIR/sink.out"
