#!/usr/bin/env bash
# The sweep engine's benchmark: LeNet-300-100 on MNIST over 4 rewind points x 2 seeds x
# 2 controls (short budget). Prints the iterations OpenLTH would train for the same sweep (the
# dense run retrained per rewind point, computed from the plan), the iterations lthc trains,
# and the wall time of a first and of a second, identical run (everything cached).
#
#   bench/sweep.sh            (uses $LTHC_DATA for MNIST; fetches it if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
lthc=$PWD/target/release/lthc
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/sweep.lth" <<'LTH'
import "stdlib/mnist.lth"

experiment lenet_sweep {
  network  = lenet
  data     = mnist
  train    = lenet_adam with { duration = 500 it }
  prune    = lenet_layerwise for 2 levels
  rewind   = [0 it, 50 it, 100 it, 250 it]
  seeds    = 1..2
  controls = [random_reinit, random_prune]
}
LTH
"$lthc" plan --format json "$work/sweep.lth" > "$work/plan.json"
python3 - "$work/plan.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))["totals"]
print(f"OpenLTH-style iterations (dense run per rewind point): {t['requested_iterations']:>9,}")
print(f"lthc plans to train:                                   {t['planned_iterations']:>9,}"
      f"  ({t['requested_iterations'] / t['planned_iterations']:.2f}x less)")
PY
ms() { echo $(( $(date +%s%N) / 1000000 )); }
start=$(ms)
"$lthc" run --quiet --cache "$work/cache" "$work/sweep.lth" > "$work/first.txt"
first=$(( $(ms) - start ))
head -1 "$work/first.txt"
start=$(ms)
"$lthc" run --quiet --cache "$work/cache" "$work/sweep.lth" > "$work/second.txt"
second=$(( $(ms) - start ))
head -1 "$work/second.txt"
echo "first run: $((first / 1000)).$(( first % 1000 / 100 )) s; second, identical run: $((second / 1000)).$(printf '%03d' $((second % 1000))) s"
