#!/usr/bin/env bash
# LoadKit's side-by-side benchmark. Release build; loopback only; every measurement bounded.
#   Benchmarks/run.sh            # all sections
#   Benchmarks/run.sh http       # one section: record | http | stomp | held | fixture-held
# Knobs: BENCH_SECONDS (10), BENCH_CONNECTIONS (50), BENCH_HELD (19000), BENCH_HOLD_SECONDS (30),
# BENCH_FIXTURE_HELD (10000), BENCH_FIXTURE_HOLD_SECONDS (60). Client-side programs run on core 0,
# servers (nginx, the fixture) on core 1.
# Installs nginx, wrk and hey from Debian packages when missing. Prints one table with LoadKit's
# figures beside the peers' figures from the same run, with ratios and whether each target is met.
set -euo pipefail
cd "$(dirname "$0")/.."
SECTIONS=${*:-"record http stomp held fixture-held"}
DURATION=${BENCH_SECONDS:-10}
CONNS=${BENCH_CONNECTIONS:-50}
HELD=${BENCH_HELD:-19000}
OUT=$(mktemp -d /tmp/loadkit-bench.XXXXXX)
ROWS="$OUT/rows.tsv"
: > "$ROWS"
row() { printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" >> "$ROWS"; }   # name loadkit peer ratio verdict

need() {
  local missing=()
  for p in "$@"; do command -v "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]} (apt-get)…" >&2
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
echo "building loadkit (release)…" >&2
swift build -c release --product loadkit >/dev/null
swift build -c release --product loadkit-fixture >/dev/null
BIN=$(swift build -c release --show-bin-path)
LK="$BIN/loadkit"

for s in $SECTIONS; do case "$s" in
record)
  "$LK" bench record | tee "$OUT/record.txt" >&2
  ns_rec=$(awk '/^histogram_record_ns/{print $2}' "$OUT/record.txt")
  ns_inc=$(awk '/^counter_increment_ns/{print $2}' "$OUT/record.txt")
  row "histogram record (ns)" "$ns_rec" "-" "-" "$(awk -v v="$ns_rec" 'BEGIN{print (v<=50)?"met (<= 50)":"MISSED (<= 50)"}')"
  ns_rrec=$(awk '/^recorder_record_ns/{print $2}' "$OUT/record.txt")
  row "MetricsRecorder record via handle (ns)" "$ns_rrec" "-" "-" "-"
  row "counter increment (ns)" "$ns_inc" "-" "-" "-"
  ;;
http)
  need nginx wrk hey taskset
  PORT=18080
  ND="$OUT/nginx"; mkdir -p "$ND"
  sed "s#__DIR__#$ND#g; s#__PORT__#$PORT#g" Benchmarks/nginx.conf.template > "$ND/nginx.conf"
  taskset -c 1 nginx -c "$ND/nginx.conf" -p "$ND" & NGINX=$!
  trap 'kill $NGINX 2>/dev/null || true' EXIT
  for i in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$PORT/hello" && break; sleep 0.1; done
  URL="http://127.0.0.1:$PORT/hello"
  # Everything client-side is pinned to core 0; nginx has core 1.
  # CPU actually obtained by each client (user+sys / elapsed), so a busy machine shows up in the table.
  cpu_of() { if [ -x /usr/bin/time ]; then /usr/bin/time -o "$1" -f "%e %U %S" "${@:2}"; else echo "0 0 0" > "$1"; "${@:2}"; fi; }
  pct() { awk '{ if ($1 > 0) printf "%.0f", 100 * ($2 + $3) / $1; else print "?" }' "$1"; }
  cpu_of "$OUT/wrk.time" taskset -c 0 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "$URL" > "$OUT/wrk.txt"
  cpu_of "$OUT/hey.time" taskset -c 0 hey -c "$CONNS" -z "${DURATION}s" "$URL" > "$OUT/hey.txt"
  taskset -c 0 "$LK" bench http --url "$URL" --connections "$CONNS" --seconds "$DURATION" > "$OUT/loadkit-http.txt"
  taskset -c 0 "$LK" bench http --url "$URL" --connections "$CONNS" --seconds "$DURATION" --mode tasks > "$OUT/loadkit-http-tasks.txt"
  cat "$OUT/loadkit-http.txt" "$OUT/loadkit-http-tasks.txt" >&2
  wrk_cpu=$(pct "$OUT/wrk.time"); hey_cpu=$(pct "$OUT/hey.time")
  lk_cpu=$(awk '/^client_cpu_percent/{print $2}' "$OUT/loadkit-http.txt")
  lkt_rps=$(awk '/^requests_per_second/{print $2}' "$OUT/loadkit-http-tasks.txt")
  lkt_cpu=$(awk '/^client_cpu_percent/{print $2}' "$OUT/loadkit-http-tasks.txt")
  wrk_rps=$(awk '/^Requests\/sec/{print $2}' "$OUT/wrk.txt")
  hey_rps=$(awk '/Requests\/sec/{print $2}' "$OUT/hey.txt")
  lk_rps=$(awk '/^requests_per_second/{print $2}' "$OUT/loadkit-http.txt")
  wrk_p50=$(awk '$1=="50%"{print $2}' "$OUT/wrk.txt"); wrk_p99=$(awk '$1=="99%"{print $2}' "$OUT/wrk.txt")
  lk_p50=$(awk '/^p50_us/{print $2"us"}' "$OUT/loadkit-http.txt"); lk_p99=$(awk '/^p99_us/{print $2"us"}' "$OUT/loadkit-http.txt")
  r_wrk=$(awk -v a="$lk_rps" -v b="$wrk_rps" 'BEGIN{printf "%.2f", a/b}')
  r_hey=$(awk -v a="$lk_rps" -v b="$hey_rps" 'BEGIN{printf "%.2f", a/b}')
  r_tw=$(awk -v a="$lkt_rps" -v b="$wrk_rps" 'BEGIN{printf "%.2f", a/b}')
  row "HTTP req/s, 1 core, $CONNS conns vs wrk (closedLoop)" "$lk_rps (cpu ${lk_cpu}%)" "wrk $wrk_rps (cpu ${wrk_cpu}%)" "$r_wrk" "$(awk -v r="$r_wrk" 'BEGIN{print (r>=0.7)?"met (>= 0.70)":"MISSED (>= 0.70)"}')"
  row "HTTP req/s, 1 core, $CONNS conns vs hey (closedLoop)" "$lk_rps (cpu ${lk_cpu}%)" "hey $hey_rps (cpu ${hey_cpu}%)" "$r_hey" "$(awk -v r="$r_hey" 'BEGIN{print (r>1)?"met (> 1)":"MISSED (> 1)"}')"
  row "HTTP req/s via execute(), a task per connection" "$lkt_rps (cpu ${lkt_cpu}%)" "wrk $wrk_rps" "$r_tw" "-"
  hey_p50=$(awk '$1=="50%"{printf "%.0fus", $3*1e6}' "$OUT/hey.txt"); hey_p99=$(awk '$1=="99%"{printf "%.0fus", $3*1e6}' "$OUT/hey.txt")
  row "HTTP latency p50 / p99" "$lk_p50 / $lk_p99" "wrk $wrk_p50 / $wrk_p99" "-" "-"
  row "HTTP latency p50 / p99" "$lk_p50 / $lk_p99" "hey $hey_p50 / $hey_p99" "-" "-"
  kill $NGINX 2>/dev/null || true; trap - EXIT
  ;;
stomp)
  # Client pinned to core 0; the bench pins the fixture process to core 1.
  taskset -c 0 "$LK" bench stomp --fixture "$BIN/loadkit-fixture" --seconds "$DURATION" | tee "$OUT/stomp.txt" >&2
  fps=$(awk '/^stomp_frames_per_second /{print $2}' "$OUT/stomp.txt")
  fcpu=$(awk '/^stomp_client_cpu_percent/{print $2}' "$OUT/stomp.txt")
  wsps=$(awk '/^websocket_messages_per_second /{print $2}' "$OUT/stomp.txt")
  wcpu=$(awk '/^websocket_client_cpu_percent/{print $2}' "$OUT/stomp.txt")
  fan=$(awk '/^fanout/{print $2}' "$OUT/stomp.txt")
  wspc=$(awk '/^websocket_messages_per_second_per_core/{print $2}' "$OUT/stomp.txt")
  row "STOMP MESSAGE frames/s, client on 1 core ($fan pub x sub)" "$fps (cpu ${fcpu}%)" "-" "-" "$(awk -v v="$fps" 'BEGIN{print (v>=200000)?"met (>= 200000)":"MISSED (>= 200000)"}')"
  row "WebSocket messages/s, client on 1 core (same fan-out)" "$wsps (cpu ${wcpu}%)" "-" "-" "-"
  row "WebSocket messages per client CPU-second" "$wspc" "-" "-" "-"
  ;;
held)
  HS=${BENCH_HOLD_SECONDS:-30}
  taskset -c 0 "$LK" bench held --fixture "$BIN/loadkit-fixture" --connections "$HELD" --hold-seconds "$HS" | tee "$OUT/held.txt" >&2
  held=$(awk '/^held_connections/{print $2}' "$OUT/held.txt")
  drops=$(awk '/^dropped_during_hold/{print $2}' "$OUT/held.txt")
  kb=$(awk '/^client_rss_kb_per_connection/{print $2}' "$OUT/held.txt")
  cpu=$(awk '/^client_idle_cpu_percent/{print $2}' "$OUT/held.txt")
  row "held STOMP-over-WS conns, one process, ${HS}s hb 10s" "$held (drops $drops)" "-" "-" "$(awk -v v="$held" -v t="$HELD" -v d="$drops" 'BEGIN{print (v>=t && d==0)?"met (>= "t", no drops)":"MISSED (>= "t", no drops)"}')"
  row "client RSS per held connection (KB)" "$kb" "-" "-" "$(awk -v v="$kb" 'BEGIN{print (v<=8)?"met (<= 8)":"MISSED (<= 8)"}')"
  row "client idle CPU (% of a core)" "$cpu" "-" "-" "$(awk -v v="$cpu" 'BEGIN{print (v<10)?"met (< 10)":"MISSED (< 10)"}')"
  ;;
fixture-held)
  # Issue 4: the fixture process alone holding 10,000 STOMP sessions idle with heart-beats.
  FN=${BENCH_FIXTURE_HELD:-10000}; FS=${BENCH_FIXTURE_HOLD_SECONDS:-60}
  taskset -c 0 "$LK" bench held --fixture "$BIN/loadkit-fixture" --connections "$FN" --hold-seconds "$FS" | tee "$OUT/fixture-held.txt" >&2
  fh=$(awk '/^fixture_stomp_sessions/{print $2}' "$OUT/fixture-held.txt")
  fd=$(awk '/^dropped_during_hold/{print $2}' "$OUT/fixture-held.txt")
  fkb=$(awk '/^fixture_rss_kb_per_connection/{print $2}' "$OUT/fixture-held.txt")
  fcpu=$(awk '/^fixture_idle_cpu_percent/{print $2}' "$OUT/fixture-held.txt")
  row "fixture: STOMP sessions held ${FS}s, hb 10s" "$fh (drops $fd)" "-" "-" "$(awk -v v="$fh" -v t="$FN" -v d="$fd" 'BEGIN{print (v>=t && d==0)?"met (>= "t", no drops)":"MISSED (>= "t", no drops)"}')"
  row "fixture RSS per session (KB) / idle CPU (%)" "$fkb / $fcpu" "-" "-" "-"
  ;;
*) echo "unknown section $s" >&2; exit 2 ;;
esac; done

echo
echo "LoadKit benchmark — $(date -u +%Y-%m-%dT%H:%MZ) — $(nproc) cores — swift $(swift --version 2>&1 | awk '/Swift version/{print $3; exit}') — load avg at start $LOAD_START, at end $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-60s | %-24s | %-24s | %-6s | %s\n' "measure" "LoadKit" "peer (same run)" "ratio" "target"
printf '%s\n' "-------------------------------------------------------------+--------------------------+--------------------------+--------+------------------"
while IFS=$'\t' read -r a b c d e; do printf '%-60s | %-24s | %-24s | %-6s | %s\n' "$a" "$b" "$c" "$d" "$e"; done < "$ROWS"
echo "(raw outputs in $OUT)"
