#!/usr/bin/env bash
# Memory at many open idle keep-alive connections: wagate's RSS before and after N connections
# that each made one request and stay idle, plus /readyz latency while they are open.
# Usage: bench/idle-rss.sh [CONNECTIONS]   (default 10000; target: RSS <= 64 MB at 10 000)
source "$(dirname "$0")/common.sh"
N="${1:-10000}"
ulimit -n "$(ulimit -Hn)"  # each side holds N sockets
start_wagate 8080 9090
PID="${PIDS[-1]}"
rss() { awk '/VmRSS/ {print $2}' "/proc/$PID/status"; }
before=$(rss)
out=$(python3 - "$N" "$PID" <<'PY'
import socket, sys, time
n, pid = int(sys.argv[1]), sys.argv[2]
req = b"GET /webhook?hub.mode=subscribe&hub.verify_token=test-verify-token&hub.challenge=1 HTTP/1.1\r\nHost: b\r\n\r\n"
socks = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", 8080))
    s.sendall(req)
    socks.append(s)
for s in socks:  # every connection answered once, now idle (keep-alive)
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(4096)
time.sleep(12)  # idle connections park after 2 s; jemalloc purges freed pages within ~10 s
rss = int([l for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS")][0].split()[1])
lat = []
for _ in range(20):
    t = time.perf_counter()
    a = socket.create_connection(("127.0.0.1", 9090))
    a.sendall(b"GET /readyz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    while a.recv(4096):
        pass
    a.close()
    lat.append((time.perf_counter() - t) * 1000)
print(f"{rss} {max(lat):.2f}")
PY
)
read -r during readyz_ms <<<"$out"
printf '%-34s %10s\n' "wagate RSS before (MiB)" "$((before / 1024))"
printf '%-34s %10s\n' "wagate RSS with $N idle conns (MiB)" "$((during / 1024))"
printf '%-34s %10s\n' "/readyz max latency meanwhile (ms)" "$readyz_ms"
python3 -c "print(f'per idle connection: {($during - $before) / $N:.1f} KiB; target RSS <= 64 MiB at 10 000: ' + ('met' if $during / 1024 <= 64 else 'missed'))"
cpu_info
echo "command: bench/idle-rss.sh $N"
