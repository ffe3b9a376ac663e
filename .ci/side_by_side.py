#!/usr/bin/env python3
"""Interleaved timing of two mislint binaries and the tokenize floor on one file.

On a noisy VM, runs of one binary drift by 10-30 % over a minute; hyperfine runs each
command's rounds back to back, so drift can land on one binary only. Here every round
runs the floor, the base and the new binary, in alternating order, and the table gives
medians, minimums and ratios to the floor of the same rounds, and the median user CPU
time of each binary. Not run in CI.

    .ci/side_by_side.py BASE NEW FILE ROUNDS [extra mislint flags...]
    .ci/side_by_side.py /tmp/old/mislint target/release/mislint \\
        /tmp/mislint-bench/pfsense-100000.xml 20 --no-fixes

The floor binary is the one .ci/bench.sh builds (BENCH_DIR/floor_tokenize). iptables
files get the generator's zones, as in .ci/bench.sh.

PAUSE=S sleeps S seconds before every run. Back to back, a run finds the memory the
last one freed still in the VM; this VM hands free memory back to its host within
seconds, and a run after a pause faults it in again, as one lint per commit does.
BASE_ENV and NEW_ENV (K=V,K=V) set environment variables for one side, so that one
binary can be compared with itself:

    PAUSE=4 BASE_ENV=MIMALLOC_ALLOW_THP=1 .ci/side_by_side.py \
        target/release/mislint target/release/mislint FILE 5 --no-fixes
"""
import os
import statistics
import subprocess
import sys
import time


def main() -> None:
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    base, new, path, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    extra = sys.argv[5:]
    bench_dir = os.environ.get("BENCH_DIR", "/tmp/mislint-bench")
    zones = []
    if "iptables" in os.path.basename(path):
        zones = ["--zone", "eth0=public", "--zone", "eth1=internal", "--zone", "eth2=perimeter"]
    args = [path, *zones, "--scenario", "exchange2000-smtp", "--format", "json", "--no-config", *extra]
    commands = {
        "floor": [os.path.join(bench_dir, "floor_tokenize"), path],
        "base": [base, *args],
        "new": [new, *args],
    }
    envs = {
        "floor": None,
        "base": side_env("BASE_ENV"),
        "new": side_env("NEW_ENV"),
    }
    pause = float(os.environ.get("PAUSE", "0"))
    times = {name: [] for name in commands}
    # User CPU time as well: on this VM wall time swings with other guests, while the
    # CPU a run spends moves far less, so small changes show there first.
    user = {name: [] for name in commands}
    for i in range(rounds):
        order = list(commands) if i % 2 == 0 else list(reversed(commands))
        for name in order:
            time.sleep(pause)
            start = time.perf_counter()
            child = subprocess.Popen(
                commands[name],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=envs[name],
            )
            _, _, usage = os.wait4(child.pid, 0)
            times[name].append((time.perf_counter() - start) * 1000)
            user[name].append(usage.ru_utime * 1000)
    med = {k: statistics.median(v) for k, v in times.items()}
    low = {k: min(v) for k, v in times.items()}
    cpu = {k: statistics.median(v) for k, v in user.items()}
    print(
        f"{os.path.basename(path):22} {' '.join(extra) or 'default':12}"
        f"{f' pause {pause:g} s' if pause else ''}"
        f" floor {med['floor']:7.1f}"
        f" | base {med['base']:7.1f} ms ({med['base'] / med['floor']:.2f}x)"
        f" | new {med['new']:7.1f} ms ({med['new'] / med['floor']:.2f}x)"
        f" | minimums {low['floor']:.1f} / {low['base']:.1f} / {low['new']:.1f} ms"
        f" | user CPU base {cpu['base']:.1f} / new {cpu['new']:.1f} ms"
    )


def side_env(variable: str) -> "dict[str, str] | None":
    """This process's environment plus the K=V,K=V pairs in `variable`, if it is set."""
    pairs = os.environ.get(variable)
    if not pairs:
        return None
    env = dict(os.environ)
    env.update(pair.split("=", 1) for pair in pairs.split(","))
    return env


if __name__ == "__main__":
    main()
