#!/bin/sh
# Runs every benchmark from an existing build and prints Markdown: hotpath,
# propagation, memory, stampede, tags and cluster (each starts and stops its own private
# redis-server), then hitratio over the public traces next to the published
# figures (read from the traces' README so they are never copied here). Builds
# nothing.
#
# usage: bench/run_all.sh BUILD_DIR [TRACES_DIR]
#   TRACES_DIR defaults to /work/shared/traces; hitratio rows are skipped
#   when bench/hitratio or a trace is missing.
#   RUNS (environment) overrides every bench's number of runs.
set -eu

if [ $# -lt 1 ] || [ ! -d "$1/bench" ]; then
    echo "usage: $0 BUILD_DIR [TRACES_DIR]" >&2
    exit 2
fi
bin=$1/bench
traces=${2:-/work/shared/traces}
runs_opt=${RUNS:+--runs $RUNS}

echo "# synccache benchmarks"
echo
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -m), $(nproc) CPUs, $(uname -r)"
echo

for b in hotpath propagation memory stampede tags cluster; do
    if [ -x "$bin/$b" ]; then
        # shellcheck disable=SC2086 # runs_opt is two words or none
        "$bin/$b" $runs_opt
    else
        echo "($b not built)"
    fi
    echo
done

if [ ! -x "$bin/hitratio" ]; then
    echo "(hitratio not built: hit-ratio table skipped)"
    exit 0
fi

# Published figure for a README row ("OLTP 250") and column (3 = LRU,
# 6 = W-TinyLFU: the first cell of a row is empty in awk's split).
published() {
    [ -r "$traces/README.md" ] || { echo "n/a"; return; }
    awk -F'|' -v row="$1" -v col="$2" '
        { name = $2; gsub(/^ +| +$/, "", name); gsub(/ +/, " ", name) }
        name == row { v = $col; gsub(/ /, "", v); print v; found = 1; exit }
        END { if (!found) print "n/a" }' "$traces/README.md"
}

echo "## hitratio: local store alone, hit ratio % (fill on every miss)"
echo
echo "| trace @ entries | LRU measured | LRU published | W-TinyLFU (lfu) measured | W-TinyLFU published |"
echo "|---|---|---|---|---|"
for spec in "OLTP oltp.arc.gz arc" "GLI gli.lirs.gz lirs"; do
    # shellcheck disable=SC2086 # word splitting of spec is the point
    set -- $spec
    name=$1 file=$traces/$2 fmt=$3
    if [ ! -r "$file" ]; then
        echo "| $name | trace $file missing | | | |"
        continue
    fi
    for cap in 250 500 1000 2000; do
        lru=$("$bin/hitratio" --policy lru --capacity "$cap" --format "$fmt" "$file")
        lfu=$("$bin/hitratio" --policy lfu --capacity "$cap" --format "$fmt" "$file")
        echo "| $name $cap | $lru | $(published "$name $cap" 3) | $lfu | $(published "$name $cap" 6) |"
    done
done
