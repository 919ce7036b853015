#!/usr/bin/env bash
# Benchmark of `wagate doctor logs`: builds a log of N lines (default 1,000,000) in /tmp from the
# proxy-log cases (all formats mixed, timestamps shifted so every copy is a new minute) and times
# one run. Usage: bench/doctor-logs.sh [LINES]
set -euo pipefail
cd "$(dirname "$0")/.."
lines="${1:-1000000}"
bin="${WAGATE_BIN:-target/release/wagate}"
[ -x "$bin" ] || cargo build --release --bin wagate
out="$(mktemp /tmp/doctor-logs-bench.XXXXXX.log)"
trap 'rm -f "$out"' EXIT
# One block of every case (comments dropped), then repeated with the minute advanced.
block="$(cat testdata/doctor/proxy-logs/*.log | grep -v '^#')"
per_block="$(printf '%s\n' "$block" | wc -l)"
copies=$(( (lines + per_block - 1) / per_block ))
awk -v copies="$copies" -v want="$lines" -v block="$block" 'BEGIN {
  n = split(block, l, "\n"); printed = 0
  for (c = 0; c < copies && printed < want; c++) {
    # Shift the minute field of every timestamp shape by c (mod 60) so windows move on.
    m = sprintf("%02d", c % 60)
    for (i = 1; i <= n && printed < want; i++) {
      s = l[i]
      gsub(/:1[56]:/, ":" m ":", s); gsub(/ 1[0-9]:[0-9][0-9]:/, " 10:" m ":", s)
      print s; printed++
    }
  }
}' > "$out"
echo "input: $(wc -l < "$out") lines, $(du -h "$out" | cut -f1)"
start=$(date +%s.%N)
"$bin" doctor logs "$out" --format json > /tmp/doctor-logs-bench.json
end=$(date +%s.%N)
python3 -c "import json; d=json.load(open('/tmp/doctor-logs-bench.json')); print('primary:', d['primary'], 'lines:', d['lines'], 'requests:', d['requests'])"
echo "elapsed: $(echo "$end - $start" | bc) s"
/usr/bin/time -f "max RSS: %M KiB" "$bin" doctor logs "$out" --format json > /dev/null
