#!/usr/bin/env bash
# Installs the built library into a temp prefix, then builds examples/minimal.c
# outside the tree twice - with pkg-config and with find_package(synccache) -
# and runs both against a private redis-server on a unix socket; checks the
# installed man pages.
set -euo pipefail
src=$1
work=$2
build=$3
rm -rf "$work"
mkdir -p "$work"
prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null

redis-server --port 0 --unixsocket "$work/redis.sock" --save '' --appendonly no \
  --dir "$work" --daemonize no >"$work/redis.log" 2>&1 &
redis_pid=$!
trap 'kill $redis_pid 2>/dev/null || true; wait $redis_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -S "$work/redis.sock" ] && break; sleep 0.05; done

libdir=$(ls -d "$prefix"/lib*/pkgconfig | head -1)
export PKG_CONFIG_PATH=$libdir
export LD_LIBRARY_PATH=$(dirname "$libdir")

# 1. pkg-config (static builds need the private dependencies too)
${CC:-cc} -o "$work/minimal-pc" "$src/examples/minimal.c" \
  $(pkg-config --cflags synccache) $(pkg-config --libs --static synccache)
"$work/minimal-pc" --socket "$work/redis.sock" | tee "$work/out-pc.txt"
grep -q 'pod-b read "hello"' "$work/out-pc.txt"

# 2. find_package
mkdir -p "$work/fp"
cat >"$work/fp/CMakeLists.txt" <<CM
cmake_minimum_required(VERSION 3.16)
project(consumer C)
find_package(synccache REQUIRED)
add_executable(minimal-fp $src/examples/minimal.c)
target_link_libraries(minimal-fp PRIVATE synccache::synccache)
CM
cmake -S "$work/fp" -B "$work/fp/build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/fp/build" >/dev/null
"$work/fp/build/minimal-fp" --socket "$work/redis.sock" | tee "$work/out-fp.txt"
grep -q 'pod-b read "hello"' "$work/out-fp.txt"
# 3. the manual: synccache(3) and one page per function, `man sc_get` works
"$src/test/man_test.sh" "$src" "$prefix"
echo "install test: pkg-config and find_package consumers both work; the man pages are installed"
