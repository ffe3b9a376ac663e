#!/usr/bin/env bash
# Runs mislint through pre-commit exactly as a firewall repository would use it:
# pre-commit (from PyPI, in a venv) clones this checkout at its HEAD commit, builds it
# with `cargo install` (language: rust, per .pre-commit-hooks.yaml) and runs the hook.
#
# Expectations, each reported as PASS/FAIL:
#   1. a compliant iptables config (fixtures/iptables/compliant.rules) passes;
#   2. a bad one (fixtures/iptables/shadowed-ldap.rules) fails the hook, and the output
#      shows the finding (mislint exit status 1, `missing-port`, the file name);
#   3. a file the `files` pattern does not match (README.md) is not passed to mislint.
# 1 and 2 need the iptables parser; with the parser stub every config is a parse error.
#
# Only HEAD is tested: pre-commit clones the commit, so uncommitted changes are not seen
# (the script warns). Scratch files go to $SCRATCH (default: a new temp dir); the
# pre-commit cache is kept there too, never in ~/.cache.
#
# Needs: git, python3 (with venv), cargo; PyPI and crates.io reachable (or a warm cache).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SCRATCH=${SCRATCH:-$(mktemp -d -t mislint-pre-commit.XXXXXX)}
mkdir -p "$SCRATCH"
export PRE_COMMIT_HOME="$SCRATCH/pre-commit-cache"
REV=$(git -C "$ROOT" rev-parse HEAD)
if [ -n "$(git -C "$ROOT" status --porcelain -- .pre-commit-hooks.yaml src Cargo.toml Cargo.lock)" ]; then
  echo "warning: $ROOT has uncommitted changes; pre-commit tests the commit $REV only" >&2
fi

echo "== installing pre-commit into $SCRATCH/venv"
if [ ! -x "$SCRATCH/venv/bin/pre-commit" ]; then
  python3 -m venv "$SCRATCH/venv"
  "$SCRATCH/venv/bin/pip" install --quiet --disable-pip-version-check pre-commit
fi
PRE_COMMIT="$SCRATCH/venv/bin/pre-commit"
echo "== $("$PRE_COMMIT" --version)"

echo "== making a firewall repository in $SCRATCH/fwrepo"
REPO="$SCRATCH/fwrepo"
rm -rf "$REPO"
mkdir -p "$REPO/firewalls"
cp "$ROOT/fixtures/iptables/compliant.rules" "$REPO/firewalls/edge-good.rules"
cp "$ROOT/fixtures/iptables/shadowed-ldap.rules" "$REPO/firewalls/edge-bad.rules"
printf '# firewall configs\n' >"$REPO/README.md"
cat >"$REPO/.pre-commit-config.yaml" <<EOF
repos:
  - repo: $ROOT
    rev: $REV
    hooks:
      - id: mislint
        args: [--scenario, exchange2000-smtp,
               --zone, eth0=public, --zone, eth1=perimeter, --zone, eth2=internal]
EOF
git -C "$REPO" init --quiet
git -C "$REPO" add -A
git -C "$REPO" -c user.name=ci -c user.email=ci@example.invalid commit --quiet -m "configs"

failures=0
check() { # NAME EXPECTED-STATUS ACTUAL-STATUS OUTPUT-FILE [TEXT THAT MUST APPEAR...]
  local name=$1 want=$2 got=$3 out=$4 ok=1
  shift 4
  if [ "$want" = fail ] && [ "$got" = 0 ]; then ok=0; fi
  if [ "$want" = pass ] && [ "$got" != 0 ]; then ok=0; fi
  for text in "$@"; do
    if ! grep -qF -- "$text" "$out"; then
      echo "   missing from the output: $text"
      ok=0
    fi
  done
  if [ "$ok" = 1 ]; then
    echo "PASS: $name (hook exit status $got)"
  else
    echo "FAIL: $name (hook exit status $got, expected to $want); output:"
    sed 's/^/   | /' "$out"
    failures=$((failures + 1))
  fi
}

run_hook() { # OUTPUT-FILE FILES...: prints the exit status
  local out=$1 status=0
  shift
  (cd "$REPO" && "$PRE_COMMIT" run mislint --color never --files "$@") >"$out" 2>&1 || status=$?
  echo "$status"
}

echo "== installing the hook (clones $ROOT at $REV and runs cargo install; slow the first time)"
if ! (cd "$REPO" && "$PRE_COMMIT" install-hooks --color never) >"$SCRATCH/install.log" 2>&1; then
  cat "$SCRATCH/install.log"
  [ -f "$PRE_COMMIT_HOME/pre-commit.log" ] && cat "$PRE_COMMIT_HOME/pre-commit.log"
  echo "FAIL: pre-commit could not install the mislint hook"
  exit 1
fi
echo "   installed in ${SECONDS}s"

status=$(run_hook "$SCRATCH/good.log" firewalls/edge-good.rules)
check "compliant config passes" pass "$status" "$SCRATCH/good.log"

status=$(run_hook "$SCRATCH/bad.log" firewalls/edge-bad.rules)
# mislint's status 1 means findings; 2 would mean it could not read or parse the file.
check "shadowed LDAP config fails with its finding" fail "$status" "$SCRATCH/bad.log" \
  "exit code: 1" "firewalls/edge-bad.rules" "missing-port"

status=$(run_hook "$SCRATCH/other.log" README.md)
check "README.md is not passed to mislint" pass "$status" "$SCRATCH/other.log" \
  "no files to check"

if [ "$failures" != 0 ]; then
  echo "pre-commit-test: $failures expectation(s) failed" >&2
  exit 1
fi
echo "pre-commit-test: all expectations hold"
