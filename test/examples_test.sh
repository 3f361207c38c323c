#!/usr/bin/env bash
# Runs the examples (profile_cache: a typed wrapper over sc_fetch;
# event_loop: a pod on the application's own libevent loop) against a
# private redis-server on a unix socket in a temp dir, stopped on every
# exit. Each example exits non-zero when a step did not behave as it says.
#
# usage: examples_test.sh PATH/TO/profile_cache PATH/TO/event_loop
set -u
[ $# -gt 0 ] || { echo "usage: examples_test.sh EXAMPLE..." >&2; exit 2; }
DIR=$(mktemp -d "${TMPDIR:-/tmp}/sc-examples-XXXXXX")
REDIS_PID=
cleanup() {
    if [ -n "$REDIS_PID" ]; then
        kill "$REDIS_PID" 2>/dev/null
        wait "$REDIS_PID" 2>/dev/null
    fi
    rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

redis-server --port 0 --unixsocket "$DIR/redis.sock" --dir "$DIR" --logfile "$DIR/redis.log" \
    --save '' --appendonly no >/dev/null 2>&1 &
REDIS_PID=$!
for _ in $(seq 1 100); do
    [ "$(redis-cli -s "$DIR/redis.sock" ping 2>/dev/null)" = PONG ] && break
    kill -0 "$REDIS_PID" 2>/dev/null || break
    sleep 0.05
done
[ "$(redis-cli -s "$DIR/redis.sock" ping 2>/dev/null)" = PONG ] || {
    echo "examples_test: could not start redis-server" >&2
    exit 1
}

fails=0
for exe in "$@"; do
    name=$(basename "$exe")
    # The socket once as an argument, once from the environment.
    if ! "$exe" --socket "$DIR/redis.sock" >"$DIR/$name.out" 2>&1; then
        echo "FAIL: $name --socket" >&2
        cat "$DIR/$name.out" >&2
        fails=$((fails + 1))
        continue
    fi
    cat "$DIR/$name.out"
    grep -q "^$name: all steps behaved as described$" "$DIR/$name.out" ||
        { echo "FAIL: $name printed no success line" >&2; fails=$((fails + 1)); }
    if ! SYNCCACHE_REDIS_SOCKET=$DIR/redis.sock "$exe" >"$DIR/$name.env.out" 2>&1; then
        echo "FAIL: $name with SYNCCACHE_REDIS_SOCKET" >&2
        cat "$DIR/$name.env.out" >&2
        fails=$((fails + 1))
    fi
done
[ "$fails" = 0 ] || exit 1
echo "examples_test: passed"
