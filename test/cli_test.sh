#!/usr/bin/env bash
# synccache-cli against a private redis-server: every command (stats, tail,
# get, invalidate, delete, clear, help) with its output checked, and the
# error cases (wrong address, wrong login, invalid namespace, bad usage).
# The server runs on a free loopback port in a temp dir and is always
# stopped, as are the helper pods and tails this script starts.
#
# usage: cli_test.sh PATH/TO/synccache-cli PATH/TO/cli_test_pod
set -u
# Ports are picked below the kernel's ephemeral range: a client connection's
# local port (a test suite running beside this one holds thousands) makes a
# listen on it fail even with SO_REUSEADDR.
EPHEMERAL_LOW=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
[ "$EPHEMERAL_LOW" -gt 11000 ] 2>/dev/null || EPHEMERAL_LOW=32768

CLI=$1
POD=$2
DIR=$(mktemp -d "${TMPDIR:-/tmp}/sc-cli-test-XXXXXX")
REDIS_PID=
PORT=
BG_PIDS=()
FAILS=0

cleanup() {
    for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null; done
    if [ -n "$REDIS_PID" ]; then
        kill "$REDIS_PID" 2>/dev/null
        wait "$REDIS_PID" 2>/dev/null
    fi
    rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fail() {
    echo "FAIL: $*" >&2
    FAILS=$((FAILS + 1))
}

# The port is free when our server answers on it: its run_id over TCP must be
# the one it gives on its own unix socket (another Redis may own the port).
start_redis() {
    local sock=$DIR/redis.sock
    for attempt in 1 2 3 4 5 6 7 8; do
        PORT=$((10000 + (RANDOM * 32768 + RANDOM) % (EPHEMERAL_LOW - 10002)))
        redis-server --port "$PORT" --bind 127.0.0.1 --unixsocket "$sock" --dir "$DIR" \
            --logfile "$DIR/redis.log" --save '' --appendonly no --protected-mode no >/dev/null 2>&1 &
        REDIS_PID=$!
        for i in $(seq 1 100); do
            if ! kill -0 "$REDIS_PID" 2>/dev/null; then break; fi
            if [ "$(redis-cli -s "$sock" ping 2>/dev/null)" = PONG ]; then
                local a b
                a=$(redis-cli -s "$sock" info server | grep run_id)
                b=$(redis-cli -h 127.0.0.1 -p "$PORT" info server 2>/dev/null | grep run_id)
                if [ -n "$a" ] && [ "$a" = "$b" ]; then return 0; fi
                break
            fi
            sleep 0.05
        done
        kill "$REDIS_PID" 2>/dev/null
        wait "$REDIS_PID" 2>/dev/null
        REDIS_PID=
    done
    echo "cli_test: could not start redis-server (is it installed?)" >&2
    exit 1
}

# run NAME WANT_RC CMD...: runs CMD, keeps stdout in $OUT and stderr in $ERR.
run() {
    local name=$1 want=$2
    shift 2
    OUT=$("$@" 2>"$DIR/stderr")
    RC=$?
    ERR=$(cat "$DIR/stderr")
    if [ "$RC" != "$want" ]; then
        fail "$name: exit $RC, want $want; stdout: $OUT; stderr: $ERR"
    fi
}

# has NAME TEXT PATTERN: TEXT matches the extended regex PATTERN.
has() {
    if ! grep -Eq -- "$3" <<<"$2"; then
        fail "$1: no match for /$3/ in:
$2"
    fi
}

lacks() {
    if grep -Eq -- "$3" <<<"$2"; then
        fail "$1: unexpected match for /$3/ in:
$2"
    fi
}

start_redis
C=("$CLI" -h 127.0.0.1 -p "$PORT")
R=(redis-cli -h 127.0.0.1 -p "$PORT")
NS=ops

# ---- help ----
run help 0 "$CLI" --help
HELP=$OUT
has help "$HELP" '^usage: synccache-cli'
for cmd in stats tail get invalidate delete clear; do
    has help "$HELP" "^  $cmd "
    run "help $cmd" 0 "$CLI" "$cmd" --help
    has "help $cmd" "$OUT" "^usage: synccache-cli \[connection options\] $cmd "
    run "help $cmd (help command)" 0 "$CLI" help "$cmd"
    has "help $cmd (help command)" "$OUT" "^usage: synccache-cli \[connection options\] $cmd "
done
run "help -h" 0 "$CLI" -h
has "help -h" "$OUT" '^commands:'

# ---- tail: started first, it sees everything below ----
"${C[@]}" tail "$NS" --count 6 --seconds 30 >"$DIR/tail.out" 2>"$DIR/tail.err" &
TAIL_PID=$!
BG_PIDS+=("$TAIL_PID")
for i in $(seq 1 100); do
    grep -q listening "$DIR/tail.err" 2>/dev/null && break
    sleep 0.05
done

# Two pods, one per encoding, write; a third stays up for stats.
run "pod msgpack" 0 "$POD" "$PORT" "$NS" pod-m msgpack 0 user:1 alice gone x gone -
run "pod json" 0 "$POD" "$PORT" "$NS" pod-j json 0 user:2 "$(printf 'b"o\nb')"
"$POD" "$PORT" "$NS" pod-live json 120 >"$DIR/live.out" 2>&1 &
LIVE_PID=$!
BG_PIDS+=("$LIVE_PID")
for i in $(seq 1 100); do
    grep -q ready "$DIR/live.out" && break
    sleep 0.05
done

# ---- get ----
run get 0 "${C[@]}" get "$NS" user:1
has get "$OUT" '^value +"alice"$'
has get "$OUT" '^size +5 bytes$'
VERSION=$("${R[@]}" hget "{$NS}:k:user:1" version)
has get "$OUT" "^version +$VERSION\$"
has get "$OUT" '^ttl +none$'
run "get escaped" 0 "${C[@]}" get "$NS" user:2
has "get escaped" "$OUT" '^value +"b\\"o\\nb"$'
run "get raw" 0 "${C[@]}" get "$NS" user:2 --raw
[ "$OUT" = "$(printf 'b"o\nb')" ] || fail "get --raw: got [$OUT]"
run "get absent" 1 "${C[@]}" get "$NS" nosuchkey
has "get absent" "$OUT" '^not found$'
run "get tombstone" 1 "${C[@]}" get "$NS" gone
has "get tombstone" "$OUT" '^not found \(deleted: a tombstone holds version [0-9]+\)$'

# ---- invalidate: a JSON event without a version; Redis keeps the value ----
run invalidate 0 "${C[@]}" invalidate "$NS" user:1
has invalidate "$OUT" '"action":"invalidate"'
has invalidate "$OUT" '"ns":"ops"'
has invalidate "$OUT" '"key":"user:1"'
lacks invalidate "$OUT" 'version'
has invalidate "$OUT" '[1-9][0-9]* subscribers? received it'
[ "$("${R[@]}" hget "{$NS}:k:user:1" value)" = alice ] || fail "invalidate changed the value in Redis"

# ---- delete: through the library (version, tombstone, event) ----
run delete 0 "${C[@]}" delete "$NS" user:1
has delete "$OUT" '^deleted "user:1" in ops \(version [0-9]+'
DV=$("${R[@]}" hget "{$NS}:k:user:1" version)
[ -n "$DV" ] && [ "$DV" -gt "$VERSION" ] || fail "delete left no newer tombstone version ($DV vs $VERSION)"
[ -z "$("${R[@]}" hget "{$NS}:k:user:1" value)" ] || fail "delete left the value"
run "get deleted" 1 "${C[@]}" get "$NS" user:1
has "get deleted" "$OUT" "tombstone holds version $DV"

# ---- tail output: both encodings, one line per event ----
wait "$TAIL_PID"
TAIL_RC=$?
[ "$TAIL_RC" = 0 ] || fail "tail exited $TAIL_RC: $(cat "$DIR/tail.err")"
TAIL=$(cat "$DIR/tail.out")
[ "$(wc -l <<<"$TAIL")" = 6 ] || fail "tail: want 6 lines, got:
$TAIL"
has tail "$TAIL" ' set +msgpack ns="ops" key="user:1" version=[0-9]+ sender="pod-m" inst=[0-9a-f]{16} .*value\(5\)="alice"'
has tail "$TAIL" ' set +msgpack ns="ops" key="gone" '
has tail "$TAIL" ' delete +msgpack ns="ops" key="gone" '
has tail "$TAIL" ' set +json +ns="ops" key="user:2" .*sender="pod-j" .*value\(5\)="b\\"o\\nb"'
has tail "$TAIL" ' invalidate json +ns="ops" key="user:1" version=0 sender="synccache-cli"'
has tail "$TAIL" ' delete +msgpack ns="ops" key="user:1" version=[0-9]+ sender="synccache-cli"'
lacks tail "$TAIL" 'heartbeat'

# tail shows malformed messages and heartbeats when asked; Ctrl-C stops it.
"${C[@]}" tail "$NS" --heartbeats >"$DIR/tail2.out" 2>"$DIR/tail2.err" &
TAIL_PID=$!
BG_PIDS+=("$TAIL_PID")
for i in $(seq 1 100); do
    grep -q listening "$DIR/tail2.err" 2>/dev/null && break
    sleep 0.05
done
"${R[@]}" publish "{$NS}:events" 'not an event' >/dev/null
sleep 0.5
kill -INT "$TAIL_PID"
wait "$TAIL_PID"
TAIL_RC=$?
[ "$TAIL_RC" = 0 ] || fail "tail after Ctrl-C exited $TAIL_RC"
TAIL=$(cat "$DIR/tail2.out")
has "tail malformed" "$TAIL" ' malformed +msgpack 12 bytes: "not an event"'
has "tail heartbeats" "$TAIL" ' heartbeat +json +ns="ops" version=[0-9]+ sender="pod-live"'

# ---- stats: counter, epoch, floor, log, live pods ----
run stats 0 "${C[@]}" stats "$NS"
COUNTER=$("${R[@]}" get "{$NS}:seq")
EPOCH=$("${R[@]}" hget "{$NS}:meta" epoch)
LOGLEN=$("${R[@]}" xlen "{$NS}:log")
has stats "$OUT" "^namespace +ops$"
has stats "$OUT" "^counter +$COUNTER "
has stats "$OUT" "^epoch +$EPOCH$"
has stats "$OUT" '^clear floor +none'
has stats "$OUT" "^event log +$LOGLEN entries, first [0-9]+-0, last $COUNTER-0"
has stats "$OUT" '^live pods +1 '
has stats "$OUT" '^  sender "pod-live"  inst [0-9a-f]{16} '
kill "$LIVE_PID" 2>/dev/null
wait "$LIVE_PID" 2>/dev/null

# ---- clear: through the library (floor, epoch, event) ----
run clear 0 "${C[@]}" clear "$NS"
FLOOR=$("${R[@]}" hget "{$NS}:meta" floor)
[ -n "$FLOOR" ] || fail "clear set no floor"
has clear "$OUT" "^cleared namespace ops \(clear floor $FLOOR;"
[ "$("${R[@]}" hget "{$NS}:meta" epoch)" != "$EPOCH" ] || fail "clear kept the epoch"
run "get cleared" 1 "${C[@]}" get "$NS" user:2
# A key Redis still holds below the floor is absent to the library too.
"${R[@]}" hset "{$NS}:k:old" value stale version 5 >/dev/null
run "get below floor" 1 "${C[@]}" get "$NS" old
has "get below floor" "$OUT" "^not found \(cleared: version 5 is below the clear floor $FLOOR\)$"
# Absent for another reason, at a version above the floor: a value written
# after the clear whose tag was invalidated since (README "Redis key layout":
# the tags field and {ns}:tags), and sc_fetch's cached "not found" (a hash
# with version and empty, no value). Neither was cleared, nor deleted.
"${R[@]}" hset "{$NS}:k:tagged" value v version $((FLOOR + 10)) tags t >/dev/null
"${R[@]}" hset "{$NS}:tags" t $((FLOOR + 20)) >/dev/null
"${R[@]}" hset "{$NS}:meta" tags $((FLOOR + 20)) >/dev/null # as sc_invalidate_tag keeps it
run "get tag-invalidated" 1 "${C[@]}" get "$NS" tagged
lacks "get tag-invalidated" "$OUT" 'cleared|below the clear floor|deleted'
has "get tag-invalidated" "$OUT" '^not found'
"${R[@]}" hset "{$NS}:k:loadedabsent" version $((FLOOR + 30)) empty 1 >/dev/null
run "get cached not-found" 1 "${C[@]}" get "$NS" loadedabsent
lacks "get cached not-found" "$OUT" 'cleared|below the clear floor|deleted|tombstone'
has "get cached not-found" "$OUT" '^not found'
run "stats after clear" 0 "${C[@]}" stats "$NS" --seconds 0.3
has "stats after clear" "$OUT" "^clear floor +$FLOOR "

# ---- unix socket, database, ACL user ----
run socket 1 "$CLI" -s "$DIR/redis.sock" get "$NS" nosuchkey --timeout 500
"${R[@]}" acl setuser ops on '>s3cret' '~*' '&*' '+@all' >/dev/null
run "acl user" 1 "${C[@]}" --user ops --pass s3cret get "$NS" nosuchkey
run "acl env password" 1 env SYNCCACHE_REDIS_PASSWORD=s3cret "${C[@]}" --user ops get "$NS" nosuchkey
run "db 3" 0 "${C[@]}" --db 3 stats other --seconds 0.2
has "db 3" "$OUT" '^counter +none'

# ---- errors ----
run "wrong address" 3 "$CLI" -h 127.0.0.1 -p 1 stats "$NS"
has "wrong address" "$ERR" 'cannot connect to Redis at 127.0.0.1:1: '
run "wrong socket" 3 "$CLI" -s "$DIR/nosuch.sock" stats "$NS"
has "wrong socket" "$ERR" "cannot connect to Redis at $DIR/nosuch.sock"
run "wrong password" 3 "${C[@]}" --user ops --pass wrong stats "$NS"
has "wrong password" "$ERR" 'refused the login of user ops: WRONGPASS'
run "needs login" 3 "${C[@]}" --user nobody --pass x get "$NS" k
has "needs login" "$ERR" 'refused the login'
"${R[@]}" config set requirepass topsecret >/dev/null
run "no password given" 3 "${C[@]}" stats "$NS"
has "no password given" "$ERR" 'needs a login: give --pass'
run "delete needs login" 3 "${C[@]}" delete "$NS" k
has "delete needs login" "$ERR" 'needs a login'
run "right password" 0 "${C[@]}" --pass topsecret stats "$NS" --seconds 0.2
redis-cli -h 127.0.0.1 -p "$PORT" -a topsecret --no-auth-warning config set requirepass '' >/dev/null
for bad in 'a{b' 'x}' "$(printf 'tab\there')" ''; do
    for cmd in "stats" "tail" "get" "invalidate" "delete" "clear"; do
        args=("$bad")
        case $cmd in get | invalidate | delete) args+=(k) ;; esac
        run "invalid namespace $cmd" 2 "${C[@]}" "$cmd" "${args[@]}"
        has "invalid namespace $cmd" "$ERR" 'invalid namespace'
    done
done
run "empty key" 2 "${C[@]}" get "$NS" ''
has "empty key" "$ERR" 'the key is empty'
run "unknown command" 2 "${C[@]}" frobnicate "$NS"
has "unknown command" "$ERR" 'unknown command frobnicate'
run "missing argument" 2 "${C[@]}" get "$NS"
has "missing argument" "$ERR" 'get takes NS KEY'
run "no command" 2 "$CLI"
run "bad port" 2 "$CLI" -p 99999 stats "$NS"
has "bad port" "$ERR" 'bad port'
run "user without password" 2 "${C[@]}" --user ops stats "$NS"
has "user without password" "$ERR" '--user needs a password'

# ---- a key longer than the library's default max_key_bytes (1024) ----
# Pods may raise max_key_bytes to 65535 (what the CLI accepts as a key):
# delete must handle such a key, not fail as if Redis had.
LONG=$(head -c 2000 /dev/zero | tr '\0' k)
FLOOR=$("${R[@]}" hget "{$NS}:meta" floor)
"${R[@]}" hset "{$NS}:k:$LONG" value v version $((${FLOOR:-0} + 1)) >/dev/null
run "get long key" 0 "${C[@]}" get "$NS" "$LONG"
run "delete long key" 0 "${C[@]}" delete "$NS" "$LONG"
[ -z "$("${R[@]}" hget "{$NS}:k:$LONG" value)" ] || fail "delete long key left the value"

# ---- --channel no pod can have (the library takes 1 to 256 bytes) ----
# An invalidate there reaches no pod: bad usage, never "published".
run "empty channel" 2 "${C[@]}" --channel '' invalidate "$NS" k
lacks "empty channel" "$OUT" '^published'
run "long channel" 2 "${C[@]}" --channel "$(head -c 400 /dev/zero | tr '\0' c)" invalidate "$NS" k
lacks "long channel" "$OUT" '^published'

# ---- a partitioned namespace: the key lives in {NS#p}, p from its hash ----
run "pod partitioned" 0 env SC_TEST_PARTITIONS=4 "$POD" "$PORT" parted pod-p json 0 user:1 alice user:2 bob
run "get partitioned" 0 "${C[@]}" get parted user:1
has "get partitioned" "$OUT" '^value +"alice"$'
run "delete partitioned" 0 "${C[@]}" delete parted user:1
run "get partitioned deleted" 1 "${C[@]}" get parted user:1
has "get partitioned deleted" "$OUT" 'tombstone'
run "get partitioned other" 0 "${C[@]}" get parted user:2
run "invalidate partitioned" 0 "${C[@]}" invalidate parted user:2
has "invalidate partitioned" "$OUT" '"ns":"parted#[0-3]".* on \{parted#[0-3]\}:events:'
run "stats partitioned" 0 "${C[@]}" stats parted
has "stats partitioned" "$OUT" '^partitions +4'
run "tail partitioned" 2 "${C[@]}" tail parted --seconds 0.2
has "tail partitioned" "$ERR" 'parted#0 to parted#3'
run "clear partitioned" 0 "${C[@]}" clear parted
run "get partitioned cleared" 1 "${C[@]}" get parted user:2

# ---- --timeout: one range for every command (delete and clear open the
# library, whose redis_timeout_ms is 1..600000) ----
run "timeout 600000 delete" 0 "${C[@]}" --timeout 600000 delete "$NS" k
run "timeout 600001 get" 2 "${C[@]}" --timeout 600001 get "$NS" k
has "timeout 600001 get" "$ERR" 'bad timeout'
run "timeout 600001 delete" 2 "${C[@]}" --timeout 600001 delete "$NS" k
has "timeout 600001 delete" "$ERR" 'bad timeout'

# ---- tail: one line per event, whatever an outside publisher put in inst
# and epoch (a line feed must not forge a second line, nor ESC reach the
# terminal) ----
"${C[@]}" tail hostile --count 1 --seconds 20 >"$DIR/tail3.out" 2>"$DIR/tail3.err" &
TAIL_PID=$!
BG_PIDS+=("$TAIL_PID")
for i in $(seq 1 100); do
    grep -q listening "$DIR/tail3.err" 2>/dev/null && break
    sleep 0.05
done
"${R[@]}" publish "{hostile}:events" \
    '{"action":"invalidate","ns":"hostile","key":"k","sender":"s","version":1,"time":1,"inst":"AB\nFORGED set","epoch":"e\u001b[31m"}' >/dev/null
wait "$TAIL_PID"
[ "$(wc -l <"$DIR/tail3.out")" = 1 ] || fail "tail hostile: not one line: $(cat -A "$DIR/tail3.out")"
grep -q "$(printf '\033')" "$DIR/tail3.out" && fail "tail hostile: a raw ESC byte reached the output"
lacks "tail hostile" "$(cat "$DIR/tail3.out")" '^FORGED'

# ---- stats and get: the same for what anyone with Redis access wrote in
# the namespace's keys (counter, epoch, clear floor, a tombstone's version):
# each stays on its line, and no ESC reaches the terminal ----
ESC=$(printf '\033')
"${R[@]}" set "{hostile2}:seq" "$(printf '9\nFORGED counter\033[31m')" >/dev/null
"${R[@]}" hset "{hostile2}:meta" epoch "$(printf 'e\nFORGED epoch\033[31m')" \
    floor "$(printf '3\nFORGED floor\033[31m')" >/dev/null
run "stats hostile" 0 "${C[@]}" stats hostile2 --seconds 0.2
lacks "stats hostile" "$OUT" '^FORGED'
grep -q "$ESC" <<<"$OUT" && fail "stats hostile: a raw ESC byte reached the output"
has "stats hostile" "$OUT" '^epoch +"e\\nFORGED epoch\\x1b\[31m"$'
"${R[@]}" hset "{hostile3}:k:gone" version "$(printf '7\nFORGED version\033[31m')" >/dev/null
run "get hostile" 1 "${C[@]}" get hostile3 gone
lacks "get hostile" "$OUT" '^FORGED'
grep -q "$ESC" <<<"$OUT" && fail "get hostile: a raw ESC byte reached the output"

# ---- delete and clear keep the event log the namespace's pods keep: its
# pods set event_log_len 30000, the tool's writes must not trim the log to
# the library's default (10000), or a pod that lost its stream for more
# than that flushes instead of catching up ----
ARGS=()
for i in $(seq 1 12000); do ARGS+=("k$i" v); done
run "pod long log" 0 env SC_TEST_LOG_LEN=30000 "$POD" "$PORT" longlog pod-l msgpack 0 "${ARGS[@]}"
BEFORE=$("${R[@]}" xlen "{longlog}:log")
[ "$BEFORE" -ge 12000 ] || fail "pod long log: the log holds $BEFORE entries"
run "delete long log" 0 "${C[@]}" delete longlog k1
AFTER=$("${R[@]}" xlen "{longlog}:log")
[ "$AFTER" -gt "$BEFORE" ] || fail "delete long log: the event log went from $BEFORE to $AFTER entries"
run "clear long log" 0 "${C[@]}" clear longlog
CLEARED=$("${R[@]}" xlen "{longlog}:log")
[ "$CLEARED" -gt "$AFTER" ] || fail "clear long log: the event log went from $AFTER to $CLEARED entries"

if [ "$FAILS" -ne 0 ]; then
    echo "cli_test: $FAILS check(s) failed" >&2
    exit 1
fi
echo "cli_test: all checks passed"
