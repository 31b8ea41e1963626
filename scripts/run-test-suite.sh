#!/usr/bin/env bash
# `make test`: the whole suite as three pytest sessions, so that the lab's drills overlap
# the rest of the suite instead of following it.
#
# 1. The lab (`-m "lab and not drill"`): its own hosts built and converged twice, alone
#    (the build is CPU-bound: another session's idle shops and databases doubled it), its
#    tests, and the lab kept for step 2.
# 2. At the same time, on two cores: the drills on that lab (`-m drill`, mostly waiting
#    for alert timers; their output goes to reports/drills/make-test.log and is shown
#    when they end) and every test outside the lab (`-m "not lab"`).
# 3. The lab removed, whatever happened.
#
# Every session always runs; the suite fails if any of them does (pytest's exit 5, no
# test collected, included). The slowest tests of each are listed: where the next minutes are.
set -uo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-.venv/bin}
# The lab the test sessions build (tests/lab/conftest.py: TEST_LAB_NAME, TEST_SUBNET_SHIFT).
TEST_LAB_NAME=shoplab-test
TEST_LAB=(LAB_NAME=$TEST_LAB_NAME LAB_SUBNET_SHIFT=100)
DRILLS_LOG=reports/drills/make-test.log

status=0
note() { printf '\n=== make test: %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }
remove_lab() {
    env "${TEST_LAB[@]}" "$BIN/python" -m lab down >/dev/null 2>&1 || true
    rm -rf --one-file-system "lab/state/$TEST_LAB_NAME"  # never into a log volume left mounted
}
trap remove_lab EXIT

note "the lab: build, converge twice, its tests"
LAB_KEEP=1 "$BIN/pytest" -m "lab and not drill" --durations=15 || status=$?

note "the drills on that lab (in the background, log: $DRILLS_LOG) and the suite outside the lab"
mkdir -p "$(dirname "$DRILLS_LOG")"
env "${TEST_LAB[@]}" LAB_REUSE=1 "$BIN/pytest" -m drill --durations=5 >"$DRILLS_LOG" 2>&1 &
drills=$!
"$BIN/pytest" -m "not lab" --durations=25 || status=$?

note "waiting for the drills"
wait "$drills" || status=$?
cat "$DRILLS_LOG"

note "done, exit status $status"
exit "$status"
