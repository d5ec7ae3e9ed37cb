#!/usr/bin/env bash
# Training throughput, lthc (burn flex, CPU) against PyTorch (CPU) in the same run, with the
# same thread count. Installs PyTorch from PyPI into bench/.venv on first use (about 4 GB: the
# CUDA build is the only one on PyPI; it runs on the CPU too).
#
#   bench/train_speed.sh [lenet|resnet20] [iterations]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${THREADS:-$(nproc)}
export RAYON_NUM_THREADS=$threads OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads
if [ ! -x bench/.venv/bin/python ]; then
  python3 -m venv bench/.venv
  bench/.venv/bin/pip install --quiet torch
fi
cargo bench --quiet --bench train_speed -- "$@" > bench/.lthc.jsonl
bench/.venv/bin/python bench/torch_train_speed.py "$@" > bench/.torch.jsonl
python3 - <<'PY'
import json
lthc = [json.loads(l) for l in open("bench/.lthc.jsonl") if l.strip()]
torch = {r["network"]: r for r in (json.loads(l) for l in open("bench/.torch.jsonl") if l.strip())}
print(f"{'network':<10} {'batch':>5} {'lthc ex/s':>11} {'torch ex/s':>11} {'ratio':>6} {'lthc MiB':>9} {'torch MiB':>9}")
for r in lthc:
    t = torch[r["network"]]
    print(f"{r['network']:<10} {r['batch']:>5} {r['examples_per_second']:>11.0f} {t['examples_per_second']:>11.0f} "
          f"{r['examples_per_second'] / t['examples_per_second']:>6.2f} {r['peak_rss_mib']:>9.0f} {t['peak_rss_mib']:>9.0f}")
PY
