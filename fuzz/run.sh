#!/bin/sh
# Builds the event-decoder fuzzer with clang into a temp dir (no CMake build
# needed) and fuzzes it for SECONDS (default 60), starting from the seed
# corpus in fuzz/corpus. New inputs go to the temp dir, never into the repo.
# Exits non-zero when the fuzzer finds a crash, a leak or a timeout; the temp
# dir holding the reproducer is then kept and its path printed.
#
#   fuzz/run.sh [SECONDS]      CC (default clang) and FUZZ_JOBS (default 1)
#                              may be set in the environment.
set -eu

seconds=${1:-60}
case $seconds in
  ''|*[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
cc=${CC:-clang}
jobs=${FUZZ_JOBS:-1}
work=$(mktemp -d "${TMPDIR:-/tmp}/sc-fuzz.XXXXXX")

# shellcheck disable=SC2046 # pkg-config output is meant to be split
if ! "$cc" -std=c11 -D_GNU_SOURCE -g -O1 -Wall -Wextra -Werror \
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer \
  -I"$root/include" -I"$root" \
  "$here/fuzz_event.c" "$root/sync/event.c" "$root/sync/base64.c" "$root/sync/sha1.c" \
  $(pkg-config --cflags --libs msgpack libcjson) \
  -o "$work/fuzz_event"; then
  rm -rf "$work"
  echo "fuzz/run.sh: build failed" >&2
  exit 1
fi

mkdir "$work/corpus"
# With -jobs, libFuzzer forks that many fuzzers and writes fuzz-N.log into
# the current directory: run from the temp dir.
parallel=
if [ "$jobs" -gt 1 ]; then
  parallel="-jobs=$jobs -workers=$jobs"
fi
status=0
# shellcheck disable=SC2086 # $parallel is empty or two words
(cd "$work" && ./fuzz_event -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
  -max_len=65536 -print_final_stats=1 $parallel \
  -dict="$here/event.dict" -artifact_prefix="$work/" \
  "$work/corpus" "$here/corpus") || status=$?

if [ "$status" -ne 0 ]; then
  echo "fuzz/run.sh: fuzzer failed (exit $status); reproducer and logs in $work" >&2
  ls "$work" >&2
  exit "$status"
fi
rm -rf "$work"
echo "fuzz/run.sh: no failure in ${seconds}s"
