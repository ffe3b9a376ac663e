#!/usr/bin/env bash
# Validates mislint's --format sarif output with Microsoft's SARIF multitool
# (@microsoft/sarif-multitool on npm, the validator behind the SARIF web validator),
# which checks the OASIS schema and the spec's rules beyond it (SARIF1xxx errors).
#
# Inputs: a tree with a config, a non-UTF-8 config, a non-config and an unreadable file
# (plus a missing path); every fixture directory; and the sample logs of the unit tests in
# src/report/sarif.rs (suppressions, fixes, related locations, non-ASCII, two files).
# Passes only if the multitool reports zero errors for every log (warnings are printed).
#
# The multitool is a self-contained .NET program per platform; it needs nothing but
# libc and, unless DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1, ICU (Debian: libicu72).
# If it cannot be installed or cannot start here, the script says so loudly and exits 0
# (set SARIF_VALIDATE_REQUIRED=1 to make that a failure); it never reports a pass it did
# not get.
#
# Needs: cargo, node + npm. Scratch files go to $SCRATCH (default: a new temp dir),
# never into the repository.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SCRATCH=${SCRATCH:-$(mktemp -d -t mislint-sarif.XXXXXX)}
mkdir -p "$SCRATCH"
NPM_DIR="$SCRATCH/npm"
LOGS="$SCRATCH/logs"
rm -rf "$LOGS" && mkdir -p "$LOGS/samples"

skip() {
  echo "################################################################" >&2
  echo "## SKIPPED: Microsoft SARIF multitool validation did NOT run." >&2
  echo "## Reason: $*" >&2
  echo "################################################################" >&2
  if [ "${SARIF_VALIDATE_REQUIRED:-0}" = 1 ]; then exit 1; fi
  exit 0
}

# 1. The validator.
echo "== installing @microsoft/sarif-multitool into $NPM_DIR"
mkdir -p "$NPM_DIR"
if ! npm install --no-save --no-audit --no-fund --prefix "$NPM_DIR" @microsoft/sarif-multitool >"$SCRATCH/npm.log" 2>&1; then
  cat "$SCRATCH/npm.log" >&2
  skip "npm install @microsoft/sarif-multitool failed (see above)"
fi
# npm >= 11 does not run install scripts unless allowed; the platform package's only
# script is `chmod u+x Sarif.Multitool`, so do it here.
for bin in "$NPM_DIR"/node_modules/@microsoft/sarif-multitool-*/Sarif.Multitool; do
  if [ -f "$bin" ]; then chmod u+x "$bin"; fi
done
multitool() { npx --no-install --prefix "$NPM_DIR" sarif-multitool "$@"; }
if ! multitool --version >"$SCRATCH/version.log" 2>&1; then
  # Without ICU, .NET refuses to start unless told to run culture-invariant.
  export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1
  if ! multitool --version >"$SCRATCH/version.log" 2>&1; then
    cat "$SCRATCH/version.log" >&2
    skip "the sarif-multitool binary does not start on $(uname -sm) (see above)"
  fi
fi
echo "== $(head -n 1 "$SCRATCH/version.log")"

# 2. SARIF to validate.
echo "== building mislint"
(cd "$ROOT" && cargo build --quiet --bin mislint)
MISLINT="${CARGO_TARGET_DIR:-$ROOT/target}/debug/mislint"

lint_to() { # OUT DIR ARGS...: runs mislint in DIR; a crash (status > 2) fails the script
  local out=$1 dir=$2 status=0
  shift 2
  (cd "$dir" && "$MISLINT" --format sarif "$@") >"$out" || status=$?
  if [ "$status" -gt 2 ]; then
    echo "mislint exited with status $status for: $*" >&2
    exit 1
  fi
  echo "   $(basename "$out"): mislint exit status $status"
}

TREE="$SCRATCH/tree"
rm -rf "$TREE" && mkdir -p "$TREE/fw"
cp "$ROOT/fixtures/iptables/compliant.rules" "$TREE/fw/edge.rules"
printf '*filter\n-A FORWARD -m comment --comment "caf\xe9" -j ACCEPT\nCOMMIT\n' >"$TREE/fw/latin1.rules"
printf 'not a firewall config\n' >"$TREE/fw/notes.txt"
cp "$ROOT/fixtures/iptables/shadowed-ldap.rules" "$TREE/fw/locked.rules"
chmod 000 "$TREE/fw/locked.rules" # unreadable, unless we run as root
lint_to "$LOGS/tree.sarif" "$TREE" fw missing.rules
chmod 600 "$TREE/fw/locked.rules"

IPTABLES_ZONES=(--zone eth0=public --zone eth1=perimeter --zone eth2=internal)
for dir in "$ROOT"/fixtures/*/; do
  name=$(basename "$dir")
  lint_to "$LOGS/fixtures-$name.sarif" "$ROOT" "fixtures/$name" \
    --scenario exchange2000-smtp "${IPTABLES_ZONES[@]}"
  lint_to "$LOGS/fixtures-$name-static-rpc.sarif" "$ROOT" "fixtures/$name" \
    --scenario exchange55-browse-ssl --static-rpc "${IPTABLES_ZONES[@]}"
done

echo "== writing the unit tests' sample logs"
(cd "$ROOT" && MISLINT_SARIF_SAMPLES="$LOGS/samples" \
  cargo test --quiet --lib report::sarif::tests::sample_logs_validate_and_can_be_written_out >/dev/null)

# 3. Validate; count errors from the multitool's own SARIF output, where a result
# without `level` takes its rule's default level (SARIF 3.27.10).
count_levels() { # LOG -> prints "errors warnings" and the messages
  node -e '
    const run = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).runs[0];
    const rules = (run.tool.driver.rules || []);
    let errors = 0, warnings = 0;
    for (const r of run.results || []) {
      const rule = r.ruleIndex !== undefined ? rules[r.ruleIndex] : undefined;
      const level = r.level || (rule && rule.defaultConfiguration && rule.defaultConfiguration.level) || "warning";
      const text = r.message.text || (r.message.arguments || []).join(" | ");
      console.error(`     ${level} ${r.ruleId}: ${text}`);
      if (level === "error") errors++; else if (level === "warning") warnings++;
    }
    for (const n of ((run.invocations || [])[0] || {}).toolExecutionNotifications || []) {
      if (n.level === "error") { errors++; console.error(`     tool error: ${n.message.text}`); }
    }
    console.log(`${errors} ${warnings}`);
  ' "$1"
}

failed=0
total=0
for log in "$LOGS"/*.sarif "$LOGS"/samples/*.sarif; do
  total=$((total + 1))
  out="$log.validation"
  echo "== validating ${log#"$LOGS"/}"
  if ! multitool validate "$log" --output "$out" --log ForceOverwrite >"$out.console" 2>&1; then
    cat "$out.console"
    echo "   FAIL: the multitool itself failed"
    failed=$((failed + 1))
    continue
  fi
  if [ ! -s "$out" ]; then
    cat "$out.console"
    echo "   FAIL: the multitool wrote no result log"
    failed=$((failed + 1))
    continue
  fi
  read -r errors warnings < <(count_levels "$out")
  console_errors=$(grep -c ': error ' "$out.console" || true)
  echo "   $errors errors, $warnings warnings"
  if [ "$errors" != 0 ] || [ "$console_errors" != 0 ]; then
    cat "$out.console"
    echo "   FAIL"
    failed=$((failed + 1))
  fi
done

if [ "$total" -lt 3 ]; then
  echo "FAIL: only $total logs were produced" >&2
  exit 1
fi
if [ "$failed" != 0 ]; then
  echo "sarif-validate: $failed of $total SARIF logs have errors" >&2
  exit 1
fi
echo "sarif-validate: all $total SARIF logs pass the SARIF multitool with zero errors"
