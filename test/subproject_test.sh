#!/usr/bin/env bash
# synccache as a subproject: a tiny consumer project does
# add_subdirectory(<source> synccache-build) and builds examples/minimal.c
# against the synccache::synccache target, with -std=c11 -pedantic -Werror on
# its own target. Checks that tests, tools and benchmarks default to OFF and
# -Werror is not applied when synccache is not the top-level project, then
# runs the program against a private redis-server on a unix socket in the
# temp dir (always stopped).
#
# usage: subproject_test.sh SOURCE_DIR
set -u
SRC=$1
DIR=$(mktemp -d "${TMPDIR:-/tmp}/sc-subproject-XXXXXX")
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
fails=0
fail() {
    echo "FAIL: $*" >&2
    fails=$((fails + 1))
}

mkdir -p "$DIR/app"
cat >"$DIR/app/CMakeLists.txt" <<CM
cmake_minimum_required(VERSION 3.16)
project(consumer C)
add_subdirectory("$SRC" synccache-build)
add_executable(minimal-sub "$SRC/examples/minimal.c")
set_target_properties(minimal-sub PROPERTIES C_STANDARD 11 C_STANDARD_REQUIRED ON C_EXTENSIONS OFF)
target_compile_options(minimal-sub PRIVATE -pedantic -Wall -Wextra -Werror)
target_link_libraries(minimal-sub PRIVATE synccache::synccache)
CM

if ! cmake -S "$DIR/app" -B "$DIR/build" ${CC:+-DCMAKE_C_COMPILER="$CC"} >"$DIR/configure.log" 2>&1; then
    cat "$DIR/configure.log" >&2
    echo "subproject_test: configure failed" >&2
    exit 1
fi
cache=$DIR/build/CMakeCache.txt
for opt in SC_BUILD_TESTS SC_BUILD_TOOLS SC_BUILD_BENCH SC_WERROR; do
    grep -q "^$opt:BOOL=OFF$" "$cache" || fail "$opt is not OFF by default in a subproject: $(grep "^$opt:" "$cache")"
done
grep -q '^CMAKE_BUILD_TYPE:STRING=$' "$cache" || fail "the subproject set the consumer's CMAKE_BUILD_TYPE: $(grep '^CMAKE_BUILD_TYPE:' "$cache")"
for d in test tools bench examples; do
    [ ! -e "$DIR/build/synccache-build/$d" ] || fail "synccache-build/$d was configured"
done

if ! cmake --build "$DIR/build" -j2 >"$DIR/build.log" 2>&1; then
    cat "$DIR/build.log" >&2
    echo "subproject_test: build failed" >&2
    exit 1
fi
flags=$DIR/build/synccache-build/CMakeFiles/synccache_objects.dir/flags.make
if [ ! -f "$flags" ]; then
    fail "no $flags to check the warning flags in"
elif grep -q -- '-Werror' "$flags"; then
    fail "-Werror is on for synccache's own sources in a subproject"
fi

redis-server --port 0 --unixsocket "$DIR/redis.sock" --dir "$DIR" --logfile "$DIR/redis.log" \
    --save '' --appendonly no >/dev/null 2>&1 &
REDIS_PID=$!
for _ in $(seq 1 100); do
    [ "$(redis-cli -s "$DIR/redis.sock" ping 2>/dev/null)" = PONG ] && break
    sleep 0.05
done
if "$DIR/build/minimal-sub" --socket "$DIR/redis.sock" >"$DIR/out" 2>&1; then
    cat "$DIR/out"
    grep -q 'pod-b read "hello"' "$DIR/out" || fail "minimal-sub printed: $(cat "$DIR/out")"
else
    fail "minimal-sub failed: $(cat "$DIR/out")"
fi
[ "$fails" = 0 ] || exit 1
echo "subproject_test: add_subdirectory consumer builds and runs; tests, tools, benchmarks and -Werror off"
