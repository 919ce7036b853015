#!/usr/bin/env bash
# Ingest throughput and latency, side by side, same signed ~2 KB body, same connection counts:
# nginx `return 200` (HTTP ceiling), wagate direct, wagate behind nginx, Express (express.json()).
# Load comes from wrk (lighter than the targets, so it takes less of the shared CPU).
# Usage: bench/ingest.sh [DURATION_S] [CONNECTIONS...]   (defaults: 10 64 256)
source "$(dirname "$0")/common.sh"
DUR="${1:-10}"; shift || true
CONNS=("${@:-64 256}"); read -r -a CONNS <<<"${CONNS[*]}"
BODY="$ROOT/testdata/payloads/cloud_batch_multi_change_messages_and_statuses.json"
SIG="sha256=$(openssl dgst -sha256 -hmac "$SECRET" -r "$BODY" | cut -d' ' -f1)"

start_express 3000
start_wagate 8080 9090
start_nginx "
  upstream wagate { server 127.0.0.1:8080; keepalive 64; }
  server { listen 127.0.0.1:8090; location / { return 200; } }
  server { listen 127.0.0.1:8091; location / { proxy_pass http://wagate; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
wait_port 127.0.0.1 8091

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

declare -A RPS P99
printf '%-22s %6s %10s %9s %9s %8s %7s\n' target conns req/s p50_ms p99_ms non2xx errors
for c in "${CONNS[@]}"; do
  for t in "nginx-return-200 8090 /" "wagate 8080 /webhook" "wagate-behind-nginx 8091 /webhook" "express 3000 /webhook"; do
    read -r name port path <<<"$t"
    out=$(wrk -t2 -c"$c" -d"${DUR}s" --latency -s "$TMP/post.lua" "http://127.0.0.1:$port$path" | grep RESULT)
    read -r _ n rps p50 p99 non2xx errs <<<"$out"
    RPS[$name-$c]=$rps; P99[$name-$c]=$p99
    printf '%-22s %6s %10s %9s %9s %8s %7s\n' "$name" "$c" "$rps" "$p50" "$p99" "$non2xx" "$errs"
  done
done
echo
for c in "${CONNS[@]}"; do
  python3 -c "
n, w, e = ${RPS[nginx-return-200-$c]}, ${RPS[wagate-$c]}, ${RPS[express-$c]}
print(f'$c connections: wagate/nginx-return-200 = {w/n:.0%} (target >= 50%), wagate/express = {w/e:.1f}x (target >= 10x), wagate p99 = ${P99[wagate-$c]} ms')"
done
cpu_info
echo "command: bench/ingest.sh $DUR ${CONNS[*]} (body $(wc -c <"$BODY") bytes, journal durability fsync)"
