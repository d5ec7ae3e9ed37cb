#!/usr/bin/env bash
# Training throughput, lthc (CPU backend) against PyTorch (CPU) in the same run, with the same
# thread count: LeNet-300-100 at one thread and at all cores, ResNet-20 and VGG-19's first
# stage at all cores. Installs PyTorch from PyPI into bench/.venv on first use (about 4 GB: the
# CUDA build is the only one on PyPI; it runs on the CPU too).
#
#   bench/train_speed.sh ["lenet lenet_sgd ..."] [iterations]
#
# lenet_sgd is LeNet-300-100 with bench/sweep.sh's recipe (SGD 0.1, batch 128). lenet_mnist
# and lenet_sgd_mnist train the same on real MNIST images (fetched if missing), where lthc's
# first layer takes its sparse path (81% of the pixels are blank); on random data it never
# does. Networks: lenet lenet_sgd lenet_mnist lenet_sgd_mnist resnet20 vgg_stage1 (the
# default: all).
#
# BEFORE=<git revision> also times lthc as built at that revision (a git worktree built in
# target/before: the first time that builds the dependencies again, a few minutes), so one run
# gives before/after figures. THREADS overrides "all cores". REPEAT=<n> measures each row n
# times, the builds and PyTorch taking turns, and prints the medians (this machine's speed
# drifts by 10-20% within minutes; turns and medians keep that out of the ratios). "CPU ratio"
# compares examples per CPU second (user + system, all threads) instead of per wall second:
# time the hypervisor takes away ("steal") lengthens wall times only; a thread that spins
# while it waits for work (PyTorch's OpenMP threads do, for a while) counts as busy.
set -euo pipefail
cd "$(dirname "$0")/.."
all=${THREADS:-$(nproc)}
networks=${1:-lenet lenet_sgd lenet_mnist lenet_sgd_mnist resnet20 vgg_stage1}
iterations=${2:-}
repeat=${REPEAT:-1}
if [ ! -x bench/.venv/bin/python ]; then
  python3 -m venv bench/.venv
  bench/.venv/bin/pip install --quiet torch
fi
bench_binary() { # the train_speed bench executable of the tree in $1
  (cd "$1" && cargo bench --quiet --bench train_speed --no-run --message-format=json 2>/dev/null) |
    python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "train_speed" and m.get("executable"):
        print(m["executable"])'
}
mnist=${LTHC_DATA:-${XDG_CACHE_HOME:-$HOME/.cache}/lthc/data}/mnist
if [[ " $networks " == *_mnist* ]] && ! ls "$mnist"/train-images-idx3-ubyte* >/dev/null 2>&1; then
  cargo run --release --quiet -- data fetch mnist >/dev/null
fi
# Keep a copy of each build's executable (both have the same name).
bins=$(mktemp -d)
trap 'rm -rf "$bins"' EXIT
cp "$(bench_binary .)" "$bins/now"
now=$bins/now
before=
if [ -n "${BEFORE:-}" ]; then
  tree=$(mktemp -d)
  git worktree add --quiet --detach "$tree" "$BEFORE"
  trap 'git worktree remove --force "$tree"; rm -rf "$bins"' EXIT
  # Its own target directory: in a shared one, cargo names both trees' artifacts alike and
  # takes the one built last as up to date for the other (its sources are older), so "now"
  # could silently be the other revision.
  cp "$(CARGO_TARGET_DIR=$PWD/target/before bench_binary "$tree")" "$bins/before"
  before=$bins/before
  # Revisions from before the VGG stage was built into the bench get its definition passed in.
  before_has_vgg=$(grep -l vgg_stage1 "$tree/benches/train_speed.rs" || true)
  before_has_sgd=$(grep -l lenet_sgd "$tree/benches/train_speed.rs" || true)
  before_has_mnist=$(grep -l lenet_mnist "$tree/benches/train_speed.rs" || true)
fi
vgg_defs='network vgg_stage1 on [3, 32, 32] { vgg_stage(64, 2), maxpool(2), global_avgpool, dense(10) }'
: > bench/.lthc.jsonl; : > bench/.torch.jsonl; : > bench/.before.jsonl
tag() { sed "s/}\$/, \"run_threads\": $1}/"; }
for net in $networks; do
  if [[ $net == lenet* ]]; then counts=$(printf '%s\n' 1 "$all" | sort -un); else counts=$all; fi
  for t in $counts; do
    export RAYON_NUM_THREADS=$t OMP_NUM_THREADS=$t MKL_NUM_THREADS=$t
    for _ in $(seq "$repeat"); do
      "$now" "$net" $iterations | tag "$t" >> bench/.lthc.jsonl
      if [ -n "$before" ]; then
        if [[ $net == lenet_sgd || $net == *_mnist ]]; then
          # Revisions from before these benches have none: their row stays empty.
          if { [[ $net == *_mnist ]] && [ -n "$before_has_mnist" ]; } ||
            { [[ $net == lenet_sgd ]] && [ -n "$before_has_sgd" ]; }; then
            "$before" "$net" $iterations | tag "$t" >> bench/.before.jsonl
          fi
        else
          LTHC_BENCH_NETWORK=$net LTHC_BENCH_DEFS="$([ "$net" = vgg_stage1 ] && [ -z "$before_has_vgg" ] && echo "$vgg_defs")" \
            "$before" "$net" ${iterations:-$([[ $net == lenet* ]] && echo 3000 || echo 30)} | tag "$t" >> bench/.before.jsonl
        fi
      fi
      bench/.venv/bin/python bench/torch_train_speed.py "$net" $iterations 2>/dev/null | tag "$t" >> bench/.torch.jsonl
    done
  done
done
python3 - <<'PY'
import json
def repeats(path):
    """Every run, grouped by (network, threads)."""
    runs = {}
    for r in (json.loads(l) for l in open(path) if l.strip()):
        runs.setdefault((r["network"], r["run_threads"]), []).append(r)
    return runs
def rows(runs):
    """One row per (network, threads): the run with the median examples/s of its repeats."""
    return {key: sorted(rs, key=lambda r: r["examples_per_second"])[(len(rs) - 1) // 2]
            for key, rs in runs.items()}
def per_cpu_second(rs):
    """The median of the repeats' examples per CPU second (runs without it left out)."""
    rates = sorted(r["iterations"] * r["batch"] / r["cpu_seconds"] for r in rs if r.get("cpu_seconds"))
    return rates[(len(rates) - 1) // 2] if rates else None
lthc_runs, torch_runs = repeats("bench/.lthc.jsonl"), repeats("bench/.torch.jsonl")
lthc, torch, before = rows(lthc_runs), rows(torch_runs), rows(repeats("bench/.before.jsonl"))
def cpu_ratio(key):
    """Examples per CPU second, lthc's over PyTorch's."""
    ours, theirs = per_cpu_second(lthc_runs[key]), per_cpu_second(torch_runs[key])
    return f"{ours / theirs:.2f}" if ours and theirs else "–"
head = f"| network | batch | threads |"
if before:
    head += " before ex/s | before ratio |"
head += " lthc ex/s | PyTorch ex/s | ratio | CPU ratio | lthc peak MiB | PyTorch peak MiB |"
print(head)
print("|" + " --- |" * 3 + " ---: |" * (head.count("|") - 4))
for key, r in lthc.items():
    t = torch[key]
    line = f"| {key[0]} | {r['batch']} | {key[1]} |"
    if before:
        b = before.get(key)  # revisions before lenet_sgd have no row for it
        line += (f" {b['examples_per_second']:,.0f} | {b['examples_per_second'] / t['examples_per_second']:.2f} |"
                 if b else " – | – |")
    line += (f" {r['examples_per_second']:,.0f} | {t['examples_per_second']:,.0f} |"
             f" {r['examples_per_second'] / t['examples_per_second']:.2f} | {cpu_ratio(key)} |"
             f" {r['peak_rss_mib']:.0f} | {t['peak_rss_mib']:.0f} |")
    print(line)
PY
