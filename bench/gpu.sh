#!/usr/bin/env bash
# CUDA, measured: the CUDA tests (tests/gpu.rs: one gradient step of LeNet, ResNet-20, VGG-19's
# first stage and the blocks of ResNet-50, SqueezeNet and Inception-v3 against the CPU backend;
# a ResNet-20 training step and its evaluation; a masked LeNet run keeps pruned weights at
# exactly 0), then training throughput of lthc on CUDA against PyTorch on CUDA. Two halves:
#
#   bench/gpu.sh build   on the development machine (cargo, no GPU needed): builds the CUDA
#                        test and bench executables into bench/gpu/ (git-ignored), stripped
#                        and gzipped (about 20 MiB: the device tool carries 64 MiB at most).
#   bench/gpu.sh         on the GPU machine (no cargo, no network; python3 with PyTorch CUDA,
#                        the driver and NVRTC): runs them, and the `lthc` binary for the tests'
#                        `lthc run --device cuda` sweep. Under 8 minutes. The log also goes to
#                        $OUT/gpu.log where $OUT is set (the device tool brings that folder back).
#
# With the device tool: run(command="bench/gpu.sh", carry=["bench/gpu"], timeout_s=480).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = build ]; then
  mkdir -p bench/gpu
  exe() { # the executable of a compiler-artifact message named $1
    python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == sys.argv[1] and m.get("executable"):
        print(m["executable"])' "$1"
  }
  t=$(cargo test --release --features cuda --test gpu --no-run --message-format=json | exe gpu)
  b=$(cargo bench --features cuda --bench train_speed --no-run --message-format=json | exe train_speed)
  l=$(cargo build --release --features cuda --bin lthc --message-format=json | exe lthc)
  cp "$t" bench/gpu/cuda-tests
  cp "$b" bench/gpu/train-speed
  cp "$l" bench/gpu/lthc
  strip bench/gpu/cuda-tests bench/gpu/train-speed bench/gpu/lthc
  gzip -9 -f bench/gpu/cuda-tests bench/gpu/train-speed bench/gpu/lthc
  du -sh bench/gpu
  exit 0
fi
[ -f bench/gpu/cuda-tests.gz ] || { echo "run 'bench/gpu.sh build' on the development machine first" >&2; exit 2; }
if [ -n "${OUT:-}" ]; then exec > >(tee "$OUT/gpu.log") 2>&1; fi
bin=$(mktemp -d)
for f in cuda-tests train-speed lthc; do gunzip -c "bench/gpu/$f.gz" > "$bin/$f"; chmod +x "$bin/$f"; done
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
# cudarc loads libcuda and NVRTC at run time by name: put CUDA 13's NVRTC on the search path
# when the loader's cache does not know it.
if ! ldconfig -p | grep -q 'libnvrtc\.so'; then
  nvrtc=$(find /usr/local /usr/lib /opt -name 'libnvrtc.so.13*' 2>/dev/null | head -1)
  [ -n "$nvrtc" ] && export LD_LIBRARY_PATH="$(dirname "$nvrtc")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
echo "NVRTC: $(ldconfig -p | grep -o 'libnvrtc\.so[^ ]*' | head -1) LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
echo "== CUDA tests"
LTHC_BIN="$bin/lthc" timeout 240 "$bin/cuda-tests" --ignored --test-threads 1 --nocapture cuda:: \
  || echo "CUDA tests: failed (exit $?)"
echo "== throughput (examples/s), lthc CUDA vs PyTorch CUDA"
for net in lenet resnet20; do
  its=$([ "$net" = lenet ] && echo 2000 || echo 50)
  LTHC_BENCH_DEVICE=cuda timeout 90 "$bin/train-speed" "$net" "$its" || echo "lthc $net: failed"
  BENCH_DEVICE=cuda timeout 90 python3 bench/torch_train_speed.py "$net" "$its" || echo "pytorch $net: failed"
done
echo "== a sweep's LeNet runs sharing the GPU: examples/s of N runs at once (threads, as lthc run --jobs N)"
for jobs in 4 16; do
  LTHC_BENCH_JOBS=$jobs LTHC_BENCH_DEVICE=cuda timeout 90 "$bin/train-speed" lenet 1000 || echo "lthc lenet x$jobs: failed"
done
