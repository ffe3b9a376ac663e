#!/usr/bin/env bash
# Runs one fuzz target for a time budget on one core, seeded from fixtures/ and
# ../shared/corpus/ (copied into a scratch directory, never into the repo).
# Usage: fuzz/run.sh TARGET SECONDS [LIBFUZZER-FLAGS...]   (TARGET: iptables, asa, pfsense, pipeline)
# Stable toolchain: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags; no sanitizer,
# since the crate forbids unsafe code and a panic is what we look for.
set -euo pipefail
target=${1:?target}
secs=${2:-300}
shift 2 || shift $#
root="$(cd "$(dirname "$0")/.." && pwd)"
seeds="${TMPDIR:-/tmp}/mislint-fuzz-seeds/$target"
rm -rf "$seeds" && mkdir -p "$seeds"
case "$target" in
  iptables) dirs="fixtures/iptables ../shared/corpus/iptables ../shared/corpus/iptables-extension-tests" ;;
  asa) dirs="fixtures/asa ../shared/corpus/asa" ;;
  pfsense) dirs="fixtures/pfsense ../shared/corpus/pfsense" ;;
  pipeline) dirs="fixtures ../shared/corpus" ;;
  *) echo "unknown target $target" >&2; exit 2 ;;
esac
for d in $dirs; do
  find "$root/$d" -type f ! -name '*.md' ! -name '*.toml' -exec cp -t "$seeds" {} + 2>/dev/null || true
done
mkdir -p "$root/fuzz/corpus/$target"
cd "$root/fuzz"
RUSTC_BOOTSTRAP=1 exec cargo fuzz run -O -s none "$target" "corpus/$target" "$seeds" -- \
  -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
  -max_len=65536 -print_final_stats=1 "$@"
