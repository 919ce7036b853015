# Shared set-up for the benchmark scripts: temp dir, process cleanup, nginx/Express/wagate starters.
# Everything listens on 127.0.0.1 only and is stopped on exit.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WAGATE="${WAGATE_BIN:-$ROOT/target/release/wagate}"
NGINX="${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}"
SECRET=test_app_secret
TMP="$(mktemp -d /tmp/wagate-bench.XXXXXX)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$TMP/nginx.pid" ] && kill "$(cat "$TMP/nginx.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

[ -x "$WAGATE" ] || (cd "$ROOT" && cargo build --release --bin wagate)

wait_port() { # host port
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0; sleep 0.1; done
  echo "nothing listening on $1:$2" >&2; return 1
}

start_wagate() { # port admin_port
  sed -e "s#^listen = .*#listen = \"127.0.0.1:$1\"#" -e "s#^admin_listen = .*#admin_listen = \"127.0.0.1:$2\"#" \
      -e "s#^path = \"data/wagate.db\"#path = \"$TMP/wagate-$1.db\"#" "$ROOT/examples/wagate.toml" > "$TMP/wagate-$1.toml"
  "$WAGATE" serve --config "$TMP/wagate-$1.toml" >"$TMP/wagate-$1.log" 2>&1 &
  PIDS+=($!)
  wait_port 127.0.0.1 "$1"
}

start_express() { # port; the reference receiver: express.json() then 200, Node's default keep-alive (5 s)
  if [ ! -d "$TMP/express/node_modules/express" ]; then
    mkdir -p "$TMP/express"
    (cd "$TMP/express" && npm init -y >/dev/null && npm install --silent --no-audit --no-fund express@4 >/dev/null)
  fi
  cat > "$TMP/express/server.js" <<'JS'
const express = require('express');
const app = express();
app.use(express.json({ limit: '4mb' }));
app.post('/webhook', (req, res) => res.sendStatus(200));
app.listen(Number(process.argv[2]), '127.0.0.1');
JS
  node "$TMP/express/server.js" "$1" >"$TMP/express-$1.log" 2>&1 &
  PIDS+=($!)
  wait_port 127.0.0.1 "$1"
}

start_nginx() { # extra server/upstream blocks (http context)
  mkdir -p "$TMP/nginx"
  cat > "$TMP/nginx.conf" <<NGX
worker_processes 1;
pid $TMP/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 20000; }
http {
  access_log off;
  client_body_temp_path $TMP/nginx/body; proxy_temp_path $TMP/nginx/proxy;
  fastcgi_temp_path $TMP/nginx/fcgi; uwsgi_temp_path $TMP/nginx/uwsgi; scgi_temp_path $TMP/nginx/scgi;
  client_max_body_size 4m;
  $1
}
NGX
  "$NGINX" -c "$TMP/nginx.conf" -p "$TMP/nginx"
}

cpu_info() {
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
}
