#!/usr/bin/env bash
# Whole-process benchmark (not run in CI): regenerates the inputs of issue 8 in a scratch
# directory, times `mislint … --format json` (with and without `--no-fixes`) against the
# tokenize floor and `cat` on the same files with hyperfine, records peak RSS with
# /usr/bin/time -v, and prints a markdown table (the one in docs/performance.md). Also
# lints a directory of 1,000 small configs to show that both cores work.
#
#   .ci/bench.sh                 # every size, 5 runs each
#   SIZES="1000 10000" RUNS=10 .ci/bench.sh
#   BENCH_DIR=/tmp/x .ci/bench.sh   # scratch directory (default /tmp/mislint-bench)
#   SINGLE=5 PAUSE=4 .ci/bench.sh   # single runs, each after a pause (default 3 runs, 4 s)
#
# hyperfine runs a command back to back, and each run finds the memory the last one
# freed still in the VM. A lint runs once per commit: the "single run" columns time
# `--no-fixes` and the floor once each after a pause, long enough for this VM to hand the
# freed memory back to its host, as medians of SINGLE such runs.
#
# Needs: python3, hyperfine, /usr/bin/time (Debian: apt-get install -y hyperfine time).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
GEN=$ROOT/../shared/bench/gen_configs.py
FLOOR_SRC=$ROOT/../shared/bench/floor_tokenize.rs
DIR=${BENCH_DIR:-/tmp/mislint-bench}
SIZES=${SIZES:-1000 10000 100000}
RUNS=${RUNS:-5}
SINGLE=${SINGLE:-3}
PAUSE=${PAUSE:-4}
SCENARIO=(--scenario exchange2000-smtp --format json --no-config)
# iptables interface names carry no zone: the generator's WAN, LAN and DMZ.
IPT_ZONES=(--zone eth0=public --zone eth1=internal --zone eth2=perimeter)

for tool in python3 hyperfine /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "bench: $tool is missing" >&2; exit 1; }
done
mkdir -p "$DIR"
cargo build --release --quiet
MISLINT=$ROOT/target/release/mislint
[ -x "$DIR/floor_tokenize" ] || rustc -C opt-level=3 "$FLOOR_SRC" -o "$DIR/floor_tokenize"

input() { # FORMAT RULES -> path, generated once
    local ext=cfg
    [ "$1" = pfsense ] && ext=xml
    local f=$DIR/$1-$2.$ext
    [ -s "$f" ] || python3 "$GEN" --format "$1" --rules "$2" --seed 1 -o "$f" 2>/dev/null
    echo "$f"
}

echo "# mislint benchmark: $(date -u +%FT%TZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# commit $(git rev-parse --short HEAD), runs per command: $RUNS (median)"
echo
single_ms() { # COMMAND... -> milliseconds of one run after the pause
    sleep "$PAUSE"
    local start end
    start=$(date +%s%N)
    "$@" >/dev/null 2>&1 || true
    end=$(date +%s%N)
    echo $(((end - start) / 1000))e-3
}

echo "| input | size | cat | floor | mislint | ratio to floor | MB/s | --no-fixes | ratio | single run floor | single run --no-fixes | ratio | peak RSS | RSS limit |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for fmt in iptables asa pfsense; do
    for n in $SIZES; do
        f=$(input "$fmt" "$n")
        extra=()
        [ "$fmt" = iptables ] && extra=("${IPT_ZONES[@]}")
        lint="$MISLINT $f ${extra[*]} ${SCENARIO[*]}"
        json=$DIR/hf-$fmt-$n.json
        # -i: mislint exits 1 when it reports errors, which is a normal outcome here.
        hyperfine -N -i -w 1 -r "$RUNS" --export-json "$json" \
            "cat $f" "$DIR/floor_tokenize $f" "$lint" "$lint --no-fixes" >/dev/null 2>&1
        # mislint's exit status 1 (findings at error level) is a normal outcome here.
        rss_kb=$( (/usr/bin/time -v $lint 2>&1 >/dev/null || true) | awk -F': ' '/Maximum resident/ {print $2}')
        singles=""
        for _ in $(seq "$SINGLE"); do
            singles="$singles $(single_ms "$DIR/floor_tokenize" "$f"):$(single_ms $lint --no-fixes)"
        done
        python3 - "$json" "$f" "$n" "$rss_kb" "$fmt" "$singles" <<'PY'
import json, os, statistics, sys
path, f, n, rss_kb, fmt = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
pairs = [p.split(":") for p in sys.argv[6].split()]
single_floor = statistics.median(float(a) for a, _ in pairs) / 1000
single_lint = statistics.median(float(b) for _, b in pairs) / 1000
res = json.load(open(path))["results"]
cat, floor, lint, bare = (r["median"] for r in res)
size = os.path.getsize(f)
limit = size + 256 * n + 8 * 2**20
ms = lambda s: f"{s * 1000:.1f} ms"
print(f"| {fmt} {n // 1000}k | {size / 1e6:.1f} MB | {ms(cat)} | {ms(floor)} | {ms(lint)} "
      f"| {lint / floor:.1f}x | {size / 1e6 / lint:.0f} | {ms(bare)} | {bare / floor:.1f}x "
      f"| {ms(single_floor)} | {ms(single_lint)} | {single_lint / single_floor:.1f}x "
      f"| {rss_kb / 1024:.0f} MiB | {limit / 2**20:.0f} MiB |")
PY
    done
done

# A directory of 1,000 small configs (100 rules each, the three dialects in turn): files
# are linted in parallel with rayon, so User+Sys should exceed Elapsed on 2 cores.
many=$DIR/many
if [ "$(ls "$many" 2>/dev/null | wc -l)" -ne 1000 ]; then
    mkdir -p "$many"
    for i in $(seq 0 999); do
        case $((i % 3)) in
            0) python3 "$GEN" --format iptables --rules 100 --seed "$i" -o "$many/ipt-$i.cfg" ;;
            1) python3 "$GEN" --format asa --rules 100 --seed "$i" -o "$many/asa-$i.cfg" ;;
            2) python3 "$GEN" --format pfsense --rules 100 --seed "$i" -o "$many/pf-$i.xml" ;;
        esac 2>/dev/null
    done
fi
echo
echo "1,000 configs ($(du -sh "$many" | cut -f1)) in one run:"
(/usr/bin/time -v "$MISLINT" "$many" "${IPT_ZONES[@]}" "${SCENARIO[@]}" 2>&1 >/dev/null || true) |
    grep -E 'User time|System time|Elapsed|Percent of CPU|Maximum resident'
