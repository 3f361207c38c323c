#!/usr/bin/env bash
# The podsim HTML report: a short run with one fault (a 600 ms CLIENT PAUSE)
# must produce every chart (throughput, hit ratio, propagation delay,
# errors/s, stale reads, sync state), axis titles on each, the fault drawn
# as a shaded interval with its duration, per-pod lines told apart by dash
# pattern, and the fault list with the recovery after the fault. A second
# run without --report must write its report next to the podsim binary
# (the build folder), not into the current directory. podsim starts and
# stops its own private Redis.
#
# usage: podsim_report_test.sh PATH/TO/podsim
set -u
PODSIM=$1
DIR=$(mktemp -d "${TMPDIR:-/tmp}/sc-podsim-report-XXXXXX")
trap 'rm -rf "$DIR"' EXIT
fails=0
fail() {
    echo "FAIL: $*" >&2
    fails=$((fails + 1))
}

if ! "$PODSIM" --pods 2 --readers 0 --duration 6 --quiet --no-prefill --keys 100 --rate 200 \
    --fault-pause-redis 2:600 --report "$DIR/report.html" >"$DIR/out" 2>&1; then
    cat "$DIR/out" >&2
    echo "podsim_report_test: podsim failed" >&2
    exit 1
fi
H=$DIR/report.html
[ -s "$H" ] || { echo "podsim_report_test: no report written" >&2; exit 1; }

for id in chart-throughput chart-hit-ratio chart-propagation chart-errors chart-stale-reads chart-sync; do
    grep -q "<svg id='$id'" "$H" || fail "chart $id is missing"
done
charts=$(grep -c "<svg id='chart-" "$H")
[ "$(grep -c "<text class='axis-title'" "$H")" -ge $((2 * charts)) ] || fail "a chart lacks an axis title"
grep -q "time since the workload started (s)" "$H" || fail "no x axis title"
for t in 'operations per second' 'local hits / lookups (%)' 'errors per second' 'reads per second' '>pods<'; do
    grep -qF "$t" "$H" || fail "no y axis title '$t'"
done
# The fault: one shaded band per chart, with its duration.
[ "$(grep -c "<rect class='fault'" "$H")" -ge "$charts" ] || fail "the fault is not shaded on every chart"
grep -q "<rect class='fault' [^>]*><title>F1 at [0-9.]* s, 0.60 s: CLIENT PAUSE 600 ALL" "$H" ||
    fail "the fault band does not carry its duration"
grep -q ">F1 0.60 s</text>" "$H" || fail "the fault band is not labelled with its duration"
# The fault list: duration and recovery.
grep -q "<li>F1 at [0-9.]* s, lasted 0.60 s: <b>CLIENT PAUSE 600 ALL</b>" "$H" || fail "the fault list lacks F1 and its duration"
grep -Eq "<span class='recovery'>recovery: hit ratio [0-9.]+% before, lowest [0-9.]+% after .*(within 2 points again by [0-9.]+ s after|not back within 2 points).*(synced again within [0-9.]+ s|no pod seen unsynced)" "$H" ||
    fail "the fault list lacks the recovery after F1"
# Per-pod lines: pod-2 is dashed where pod-1 is solid.
grep -q "stroke-dasharray='7 3'/><text x='[0-9]*' y='37' font-size='12'>pod-2<" "$H" || fail "pod-2's legend line is not dashed"
grep -q "pods synced (mean over the second)" "$H" || fail "the sync chart has no synced series"
grep -q "propagation delay p50" "$H" || fail "the summary table does not say propagation delay"
grep -q "what each fault cost" "$DIR/out" || fail "the summary does not print what the fault cost"

# Default --report: next to the binary, never the current directory.
(cd "$DIR" && "$PODSIM" --pods 2 --readers 0 --duration 1 --quiet --no-prefill --keys 20 --rate 50 >"$DIR/out2" 2>&1) ||
    fail "podsim without --report failed: $(tail -5 "$DIR/out2")"
path=$(sed -n 's/^report: //p' "$DIR/out2")
want=$(cd "$(dirname "$PODSIM")" && pwd)/podsim-report.html
[ "$path" = "$want" ] || fail "default report went to '$path', want '$want'"
[ -s "$want" ] || fail "no default report at $want"
[ ! -e "$DIR/podsim-report.html" ] || fail "the default report was written to the current directory"

[ "$fails" = 0 ] || exit 1
echo "podsim_report_test: passed"
