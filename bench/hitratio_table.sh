#!/usr/bin/env bash
# bench/hitratio_table.sh BUILD_DIR [TRACES_DIR]: the local tier's hit ratio
# on every public trace, as a Markdown table: exact LRU, W-TinyLFU with its
# hill-climbed window (the default), the same with every hit recorded
# (--sample 1), and the static 1% window, beside the published figures of
# the traces' README (Caffeine's simulator) where it has them. Sizes: the
# README's, plus the larger ones of the ARC paper (OLTP) and the LIRS paper
# (GLI). One shard, fill on every miss. Traces are read in place (.gz through
# gzip), never copied.
set -euo pipefail
build=${1:?usage: hitratio_table.sh BUILD_DIR [TRACES_DIR]}
traces=${2:-/work/shared/traces}
hr="$build/bench/hitratio"
readme="$traces/README.md"

# published NAME SIZE COLUMN: a figure from the README's table, or "-".
published() {
  local label="$1 $2" col=$3
  awk -F'|' -v l="$label" -v c="$col" '
    { k = $2; gsub(/^ +| +$/, "", k) }
    k == l { v = $(c + 2); gsub(/ /, "", v); print v; found = 1 }
    END { if (!found) print "-" }' "$readme"
}

echo "| trace @ entries | LRU | W-TinyLFU adaptive (default) | adaptive, every hit recorded | static 1% window | published LRU | published W-TinyLFU | adaptive - LRU | adaptive - published W-TinyLFU |"
echo "|---|---|---|---|---|---|---|---|---|"
run() { # NAME FORMAT FILE SIZES...
  local name=$1 fmt=$2 file=$3
  shift 3
  for c in "$@"; do
    local lru lfu lfu1 st plru pw dl dw
    lru=$("$hr" --policy lru --capacity "$c" --format "$fmt" "$file")
    lfu=$("$hr" --policy lfu --capacity "$c" --format "$fmt" "$file")
    lfu1=$("$hr" --policy lfu --sample 1 --capacity "$c" --format "$fmt" "$file")
    st=$("$hr" --policy lfu-static --capacity "$c" --format "$fmt" "$file")
    plru=$(published "$name" "$c" 1)
    pw=$(published "$name" "$c" 4)
    dl=$(awk -v a="$lfu" -v b="$lru" 'BEGIN { printf "%+.2f", a - b }')
    if [ "$pw" = "-" ]; then dw="-"; else dw=$(awk -v a="$lfu" -v b="$pw" 'BEGIN { printf "%+.2f", a - b }'); fi
    echo "| $name $c | $lru | $lfu | $lfu1 | $st | $plru | $pw | $dl | $dw |"
  done
}
run OLTP arc "$traces/oltp.arc.gz" 250 500 1000 2000 5000 10000 15000
run GLI lirs "$traces/gli.lirs.gz" 250 500 750 1000 1250 1500 1750 2000 2500
