#!/usr/bin/env bash
# Keep-alive race reproduction: nginx (upstream keepalive) in front of Express (Node's default 5 s
# keep-alive) versus in front of wagate (idle_timeout 75 s), both hit with `wagate loadgen
# burst-idle` gaps swept across 5 s. Prints the failures (502s) seen through each.
# Node 20 closes an idle connection about 6.0 s after the response (keepAliveTimeout 5 s plus its
# timer slack): the gaps straddle that moment, where the race window is a few milliseconds wide.
# Usage: bench/keepalive-race.sh [GAP_RANGE] [STEP] [SWEEPS]   (defaults 5940ms..6060ms 4ms 1)
source "$(dirname "$0")/common.sh"
GAP="${1:-5940ms..6060ms}"; STEP="${2:-4ms}"; SWEEPS="${3:-1}"; SIZE=50

start_express 3000
start_wagate 8080 9090
start_nginx "
  upstream express { server 127.0.0.1:3000; keepalive 32; }
  upstream wagate  { server 127.0.0.1:8080; keepalive 32; }
  server { listen 127.0.0.1:8081; location / { proxy_pass http://express; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }
  server { listen 127.0.0.1:8082; location / { proxy_pass http://wagate;  proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
wait_port 127.0.0.1 8081

run() { # name port
  "$WAGATE" loadgen "http://127.0.0.1:$2/webhook" burst-idle --size $SIZE --connections $SIZE \
    --gap "$GAP" --step "$STEP" --sweeps "$SWEEPS" --app-secret "$SECRET" --quiet --json "$TMP/$1.json" >"$TMP/$1.txt"
  echo "== $1 via nginx"; cat "$TMP/$1.txt"
}
run express 8081
run wagate 8082

cpu_info
echo "command: bench/keepalive-race.sh $GAP $STEP $SWEEPS (burst size $SIZE)"
python3 - "$TMP" <<'PY'
import json, sys
t = sys.argv[1]
print(f"{'target':<18}{'requests':>10}{'failures':>10}{'502':>6}")
for name in ("express", "wagate"):
    s = json.load(open(f"{t}/{name}.json"))
    fails = sum(g["failures"] for g in s.get("gaps", []))
    print(f"{name + ' via nginx':<18}{s['requests']:>10}{fails:>10}{s['status'].get('502', 0):>6}")
PY
