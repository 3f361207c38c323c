#!/usr/bin/env bash
# podsim --metrics-port: while a short simulation runs, pod-1 (port N) and
# pod-2 (port N+1) each answer
# GET /metrics with its sc_metrics_text (HTTP 200, the 0.0.4 content type,
# every family of sc_stats and the three histograms, labelled pod-1), and
# other paths with 404. podsim starts and stops its own private Redis.
#
# usage: podsim_metrics_test.sh PATH/TO/podsim
set -u
# Ports are picked below the kernel's ephemeral range: a client connection's
# local port (a test suite running beside this one holds thousands) makes a
# listen on it fail even with SO_REUSEADDR.
EPHEMERAL_LOW=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
[ "$EPHEMERAL_LOW" -gt 11000 ] 2>/dev/null || EPHEMERAL_LOW=32768
PODSIM=$1
DIR=$(mktemp -d "${TMPDIR:-/tmp}/sc-podsim-metrics-XXXXXX")
PID=
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    rm -rf "$DIR"
}
trap cleanup EXIT

# GET PATH from 127.0.0.1:$PORT with bash's /dev/tcp; the response in $DIR/resp.
http_get() {
    exec 3<>"/dev/tcp/127.0.0.1/$PORT" || return 1
    printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$1" >&3
    cat <&3 >"$DIR/resp"
    exec 3<&-
}

for attempt in $(seq 1 20); do
    PORT=$((10000 + (RANDOM * 32768 + RANDOM) % (EPHEMERAL_LOW - 10002)))
    "$PODSIM" --pods 2 --readers 0 --duration 6 --quiet --no-prefill --keys 100 --rate 200 \
        --report "$DIR/report.html" --metrics-port "$PORT" >"$DIR/out" 2>&1 &
    PID=$!
    for i in $(seq 1 100); do
        grep -q "metrics on http://127.0.0.1:$PORT" "$DIR/out" && break
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.05
    done
    if grep -q "metrics on http" "$DIR/out"; then break; fi
    wait "$PID"
    PID=
    grep -q "Address already in use" "$DIR/out" || { cat "$DIR/out" >&2; exit 1; }
done
[ -n "$PID" ] || { echo "podsim_metrics_test: no free port" >&2; exit 1; }

# Pod 1 starts serving once its cache is open.
ok=
for i in $(seq 1 200); do
    if http_get /metrics 2>/dev/null && head -1 "$DIR/resp" | grep -q '200 OK'; then ok=1; break; fi
    sleep 0.05
done
[ -n "$ok" ] || { echo "podsim_metrics_test: no 200 from /metrics" >&2; cat "$DIR/out" >&2; exit 1; }
sleep 2
fails=0
http_get /metrics || { echo "FAIL: GET /metrics" >&2; exit 1; }
check() {
    grep -Eq -- "$1" "$DIR/resp" || { echo "FAIL: /metrics lacks /$1/" >&2; fails=$((fails + 1)); }
}
check '^Content-Type: text/plain; version=0.0.4'
check '^# TYPE synccache_local_hits_total counter'
check '^synccache_synced\{ns="podsim",pod="pod-1"\} 1'
check '^# TYPE synccache_remote_set_duration_seconds histogram'
check '^synccache_remote_set_duration_seconds_count\{ns="podsim",pod="pod-1"\} [1-9]'
check '^synccache_propagation_delay_seconds_bucket\{ns="podsim",pod="pod-1",le="\+Inf"\} '
check '^synccache_remote_get_duration_seconds_sum\{ns="podsim",pod="pod-1"\} '
[ "$(grep -c '^# TYPE ' "$DIR/resp")" = 48 ] || { echo "FAIL: want 48 families" >&2; fails=$((fails + 1)); }
http_get / || { echo "FAIL: GET /" >&2; fails=$((fails + 1)); }
head -1 "$DIR/resp" | grep -q '404' || { echo "FAIL: / is not 404" >&2; fails=$((fails + 1)); }
# Every pod serves its own numbers, on the next port.
PORT=$((PORT + 1))
http_get /metrics || { echo "FAIL: GET /metrics on pod 2" >&2; exit 1; }
check '^synccache_synced\{ns="podsim",pod="pod-2"\} 1'
grep -q 'pod="pod-1"' "$DIR/resp" && { echo "FAIL: pod-2's port shows pod-1" >&2; fails=$((fails + 1)); }

wait "$PID"
rc=$?
PID=
[ "$rc" = 0 ] || { echo "FAIL: podsim exited $rc" >&2; tail -20 "$DIR/out" >&2; fails=$((fails + 1)); }
[ "$fails" = 0 ] || exit 1
echo "podsim_metrics_test: passed"
