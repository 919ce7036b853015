#!/usr/bin/env bash
# Ingest throughput and latency of each journal backend, side by side, one run: wrk posts the
# signed ~2 KB body of bench/ingest.sh to `wagate serve --role ingest` (no targets) with
# journal.backend = embedded (fsync, os), redis (appendfsync always, everysec), nats, amqp.
# Every broker is an own process on a free loopback port with its files in the temp dir, in
# the durable setting docs/journal.md documents, started before its row and killed after it;
# broker rows use journal.partitions = 4 and a prefix fresh to this run.
# After each row the records the journal holds are counted: every 2xx must be there (a request
# is one record per partition its conversations hash to; wrk may not count a few in-flight ones).
# Usage: bench/backends.sh [DURATION_S] [CONNECTIONS]   (defaults: 10 64; warm-up 2 s per row)
# Env: WAGATE_BIN (default target/release/wagate), RABBITMQ_SERVER (default /usr/lib/rabbitmq/bin/rabbitmq-server).
source "$(dirname "$0")/common.sh"
DUR="${1:-10}"; CONNS="${2:-64}"; WARM=2
BODY="$ROOT/testdata/payloads/cloud_batch_multi_change_messages_and_statuses.json"
SIG="sha256=$(openssl dgst -sha256 -hmac "$SECRET" -r "$BODY" | cut -d' ' -f1)"
RUN="bench$(date +%s)_$$"
RABBIT_SERVER="${RABBITMQ_SERVER:-/usr/lib/rabbitmq/bin/rabbitmq-server}"
NATS_SERVER="$(command -v nats-server || echo /usr/sbin/nats-server)"
GROUPS_=()  # process groups of the brokers (RabbitMQ forks beam.smp, epmd helpers, ...)

stop_groups() {
  for g in "${GROUPS_[@]}"; do kill -KILL -- "-$g" 2>/dev/null || true; done
  GROUPS_=()
}
trap 'stop_groups; cleanup' EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# setsid from a non-interactive shell's background job execs in place: pid = process group id.
spawn_group() { # log cmd...
  local log=$1; shift
  setsid "$@" </dev/null >"$log" 2>&1 &
  BROKER_PID=$!
  GROUPS_+=("$BROKER_PID")
}

stop_broker() {
  kill -KILL -- "-$BROKER_PID" 2>/dev/null || true
  wait "$BROKER_PID" 2>/dev/null || true
  local keep=(); for g in "${GROUPS_[@]}"; do [ "$g" = "$BROKER_PID" ] || keep+=("$g"); done
  GROUPS_=("${keep[@]}")
}

start_redis() { # appendfsync
  BPORT=$(free_port); mkdir -p "$TMP/redis-$1"
  spawn_group "$TMP/redis-$1.log" redis-server --port "$BPORT" --bind 127.0.0.1 --save "" \
    --appendonly yes --appendfsync "$1" --dir "$TMP/redis-$1"
  wait_port 127.0.0.1 "$BPORT"
  for _ in $(seq 50); do [ "$(redis-cli -p "$BPORT" ping 2>/dev/null)" = PONG ] && break; sleep 0.1; done
  BURL="redis://127.0.0.1:$BPORT"
}

start_nats() {
  BPORT=$(free_port); MPORT=$(free_port); mkdir -p "$TMP/nats"
  echo "max_payload: 8MB" > "$TMP/nats/nats.conf"
  spawn_group "$TMP/nats.log" "$NATS_SERVER" -a 127.0.0.1 -p "$BPORT" -m "$MPORT" -js \
    -c "$TMP/nats/nats.conf" -sd "$TMP/nats/js"
  wait_port 127.0.0.1 "$BPORT"
  BURL="nats://127.0.0.1:$BPORT"
}

# An own RabbitMQ node (like crates/wagate/tests/scaleout.rs): own name, cookie (HOME), ports,
# files. Falls back to the service on 127.0.0.1:5672 when it does not come up in 60 s.
RABBIT_NOTE=""
start_rabbit() {
  BPORT=$(free_port); local d="$TMP/rabbit"; mkdir -p "$d"
  RABBIT_NODE="wagate-bench-$BPORT@localhost"
  printf 'listeners.tcp.1 = 127.0.0.1:%s\nloopback_users = none\n' "$BPORT" > "$d/rabbitmq.conf"
  : > "$d/rabbitmq-env.conf"; echo '[].' > "$d/enabled_plugins"
  RABBIT_ENV=(HOME="$d" RABBITMQ_CONF_ENV_FILE="$d/rabbitmq-env.conf" RABBITMQ_CONFIG_FILE="$d/rabbitmq.conf"
    RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins" RABBITMQ_NODENAME="$RABBIT_NODE"
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$BPORT" RABBITMQ_DIST_PORT="$(free_port)"
    RABBITMQ_MNESIA_BASE="$d/mnesia" RABBITMQ_LOG_BASE="$d/log" RABBITMQ_PID_FILE="$d/pid"
    ERL_EPMD_ADDRESS=127.0.0.1)
  local t0=$SECONDS up=""; BROKER_PID=""
  if [ -x "$RABBIT_SERVER" ]; then
    spawn_group "$TMP/rabbit.log" env "${RABBIT_ENV[@]}" "$RABBIT_SERVER"
    for _ in $(seq 600); do
      (exec 3<>"/dev/tcp/127.0.0.1/$BPORT") 2>/dev/null && { up=1; break; }
      kill -0 "$BROKER_PID" 2>/dev/null || break
      sleep 0.1
    done
  fi
  if [ -n "$up" ]; then
    RABBIT_NOTE="amqp: own RabbitMQ node $RABBIT_NODE, up in $((SECONDS - t0)) s"
    BURL="amqp://guest:guest@127.0.0.1:$BPORT/%2f"
  else
    if [ -n "$BROKER_PID" ]; then stop_broker; fi
    RABBIT_NOTE="amqp: an own RabbitMQ node did not start (log: $(tail -n 3 "$TMP/rabbit.log" 2>/dev/null | tr '\n' ' ' || true)); FALLBACK to the service on 127.0.0.1:5672"
    RABBIT_NODE=""; BROKER_PID=""
    BURL="amqp://guest:guest@127.0.0.1:5672/%2f"
  fi
}

rabbitmqctl_() {
  if [ -n "$RABBIT_NODE" ]; then env "${RABBIT_ENV[@]}" /usr/lib/rabbitmq/bin/rabbitmqctl -n "$RABBIT_NODE" "$@"
  else rabbitmqctl "$@"; fi
}

# Records the journal holds: embedded requests, or broker entries summed over the partitions.
stored() { # backend prefix config expected
  case $1 in
    embedded) "$WAGATE" journal stats -c "$3" | python3 -c 'import json,sys; print(json.load(sys.stdin)["stats"]["total"])' ;;
    redis) local n=0; for p in 0 1 2 3; do n=$((n + $(redis-cli -p "$BPORT" xlen "$2:p$p"))); done; echo "$n" ;;
    nats) python3 - "$MPORT" "$2" <<'PY'
import json, sys, urllib.request
jsz = json.load(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/jsz?streams=true", timeout=10))
print(sum(s["state"]["messages"] for a in jsz.get("account_details", [])
          for s in a.get("stream_detail", []) if s["name"] == sys.argv[2] + "_LOG"))
PY
    ;;
    amqp) # RabbitMQ refreshes queue counts every 5 s: poll until they cover the 2xx or stop moving.
      local n last=-1 still=0
      for _ in $(seq 12); do
        n=$(rabbitmqctl_ list_queues -q --no-table-headers name messages 2>/dev/null |
            awk -v q="^$2[.]p[0-9]+\$" '$1 ~ q { n += $2 } END { print n + 0 }')
        if [ "$n" -ge "$4" ]; then break; fi
        if [ "$n" = "$last" ]; then still=$((still + 1)); [ $still -ge 3 ] && break; else still=0; fi
        last=$n; sleep 2
      done
      echo "$n" ;;
  esac
}

python3 - "$BODY" "$SIG" > "$TMP/post.lua" <<'PY'
import json, sys
body = open(sys.argv[1], "rb").read().decode()
print("wrk.method = 'POST'")
print(f"wrk.body = {json.dumps(body)}")
print("wrk.headers['Content-Type'] = 'application/json'")
print(f"wrk.headers['X-Hub-Signature-256'] = '{sys.argv[2]}'")
print("""done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %.1f %.3f %.3f %d %d\\n", summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end""")
PY

declare -A RPS P50 P99 NON2XX ERRS STORED OK
ROWS=(); NOTES=()
run_row() { # name backend durability url
  local name=$1 backend=$2 durability=$3 url=$4 prefix="${RUN}_${1//[^A-Za-z0-9]/_}"
  local port admin cfg="$TMP/$name.toml"
  port=$(free_port); admin=$(free_port)
  cat > "$cfg" <<TOML
[server]
listen = "127.0.0.1:$port"
admin_listen = "127.0.0.1:$admin"
idle_timeout = "75s"
max_body = "4MiB"
ack_timeout = "5s"
[shutdown]
drain_delay = "100ms"
timeout = "5s"
[journal]
backend = "$backend"
path = "$TMP/$name.db"
durability = "$durability"
url = "$url"
prefix = "$prefix"
partitions = $([ "$backend" = embedded ] && echo 1 || echo 4)
[[sources]]
name = "meta"
path = "/webhook"
provider = "meta"
verify_token = "bench"
app_secrets = ["$SECRET"]
TOML
  "$WAGATE" serve --role ingest --config "$cfg" >"$TMP/$name.log" 2>&1 &
  local wpid=$!
  wait_port 127.0.0.1 "$port"
  local warm out n rps p50 p99 non2xx errs wn wnon2xx
  warm=$(wrk -t2 -c"$CONNS" -d"${WARM}s" -s "$TMP/post.lua" "http://127.0.0.1:$port/webhook" | grep RESULT || echo "RESULT 0 0 0 0 0 0")
  read -r _ wn _ _ _ wnon2xx _ <<<"$warm"
  out=$(wrk -t2 -c"$CONNS" -d"${DUR}s" --latency -s "$TMP/post.lua" "http://127.0.0.1:$port/webhook" | grep RESULT || echo "RESULT 0 0 0 0 0 0")
  read -r _ n rps p50 p99 non2xx errs <<<"$out"
  kill -TERM "$wpid"; wait "$wpid" || echo "note: wagate ($name) exited with $?" >&2
  if [ "$backend" = redis ]; then
    NOTES+=("$name: $(redis-cli -p "$BPORT" info persistence | grep -E '^aof_rewrites:' | tr -d '\r' | sed 's/:/ = /') during warm-up and run (background AOF rewrites: fork + rewrite while appends go on)")
  fi
  RPS[$name]=$rps; P50[$name]=$p50; P99[$name]=$p99; NON2XX[$name]=$non2xx; ERRS[$name]=$errs
  OK[$name]=$((wn - wnon2xx + n - non2xx)); STORED[$name]=$(stored "$backend" "$prefix" "$cfg" "${OK[$name]}" || echo "?")
  ROWS+=("$name")
  printf '  %-22s %10s req/s  p50 %7s ms  p99 %8s ms  non-2xx %s  errors %s\n' "$name" "$rps" "$p50" "$p99" "$non2xx" "$errs" >&2
  local bad; bad=$(grep -a -c -E ' (WARN|ERROR) ' "$TMP/$name.log" || true)
  [ "$bad" = 0 ] || { echo "  wagate ($name) logged $bad warnings/errors, first ones:" >&2; grep -a -m3 -E ' (WARN|ERROR) ' "$TMP/$name.log" | cut -c1-300 | sed 's/^/    /' >&2; }
}

PROFILE=$(basename "$(dirname "$WAGATE")")
case $PROFILE in
  release) PROFILE_NOTE="release profile (codegen-units 4, no LTO; \`cargo build --release\`)" ;;
  dist) PROFILE_NOTE="dist profile (release + thin LTO; \`cargo build --profile dist\`)" ;;
  debug) PROFILE_NOTE="DEBUG build: figures are not representative" ;;
  *) PROFILE_NOTE="profile unknown ($WAGATE)" ;;
esac
echo "wagate journal backends: ${DUR} s per row after a ${WARM} s warm-up, $CONNS connections, wrk -t2, loopback" >&2
echo "load average before the run$(uptime | sed 's/.*load average//')" >&2

run_row embedded-fsync embedded fsync ""
run_row embedded-os embedded os ""
start_redis always;   run_row redis-always redis fsync "$BURL"; stop_broker
start_redis everysec; run_row redis-everysec redis os "$BURL"; stop_broker
start_nats;           run_row nats nats fsync "$BURL"; stop_broker
start_rabbit
echo "$RABBIT_NOTE" >&2
run_row amqp amqp fsync "$BURL"
if [ -n "$RABBIT_NODE" ]; then stop_broker
else # the shared service: remove this run's queues
  for q in $(rabbitmqctl list_queues -q --no-table-headers name 2>/dev/null | grep "^${RUN}_"); do
    rabbitmqctl delete_queue "$q" >/dev/null 2>&1 || true
  done
fi

echo
printf '%-16s %-34s %9s %8s %9s %8s %7s %10s %9s\n' backend "broker setting" req/s p50_ms p99_ms non2xx errors stored/2xx "vs fsync"
declare -A SETTING=(
  [embedded-fsync]="SQLite WAL, synchronous=FULL"
  [embedded-os]="SQLite WAL, synchronous=NORMAL"
  [redis-always]="AOF, appendfsync always"
  [redis-everysec]="AOF, appendfsync everysec"
  [nats]="JetStream file store, R1"
  [amqp]="quorum queues, publisher confirms")
[ -n "$RABBIT_NODE" ] || SETTING[amqp]="quorum queues, HOST SERVICE :5672"
for r in "${ROWS[@]}"; do
  ratio=$(python3 -c "a, b = ${RPS[$r]}, ${RPS[embedded-fsync]}; print(f'{a / b:.2f}x' if b else '-')")
  per="${STORED[$r]:-?}/${OK[$r]}"
  printf '%-16s %-34s %9s %8s %9s %8s %7s %10s %9s\n' "$r" "${SETTING[$r]}" "${RPS[$r]}" "${P50[$r]}" "${P99[$r]}" \
    "${NON2XX[$r]}" "${ERRS[$r]}" "$per" "$ratio"
done
echo
echo "stored/2xx: records in the journal after the row / 2xx answers counted by wrk (warm-up included);"
echo "a broker record is one per partition a request's conversations hash to (4 partitions)."
echo "$RABBIT_NOTE"
for n in "${NOTES[@]}"; do echo "$n"; done
echo "binary: $WAGATE, $PROFILE_NOTE, $("$WAGATE" --version), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "brokers: redis-server $(redis-server --version | sed -E 's/.*v=([^ ]+).*/\1/'), nats-server $("$NATS_SERVER" --version | sed 's/.*v//'), RabbitMQ $(dpkg-query -W -f='${Version}' rabbitmq-server 2>/dev/null || echo '?'); files on $(df -T "$TMP" | awk 'NR == 2 { print $2 }') ($TMP)"
cpu_info
echo "command: bench/backends.sh $DUR $CONNS (body $(wc -c <"$BODY") bytes)"
