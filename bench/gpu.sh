#!/usr/bin/env bash
# CUDA, measured: the CUDA tests (tests/gpu.rs: one gradient step of LeNet, ResNet-20, VGG-19's
# first stage and the blocks of ResNet-50, SqueezeNet and Inception-v3 against the CPU backend;
# a ResNet-20 training step and its evaluation; a masked LeNet run keeps pruned weights at
# exactly 0; an IMP sweep through `lthc run --device cuda`), then training throughput of lthc
# on CUDA (convolutions as products of the unfolded input, src/nn/kernels/unfold_conv.rs)
# against PyTorch on CUDA, N LeNet runs sharing the GPU, and the same with burn's autotuned
# kernels (`--features cuda,autotune`) for as long as the time allows. Two halves:
#
#   bench/gpu.sh build   on the development machine (cargo, no GPU needed): builds the test and
#                        bench executables of both variants and the `lthc` binary into
#                        bench/gpu/ (git-ignored), stripped and gzipped (about 45 MiB: the
#                        device tool carries 64 MiB at most).
#   bench/gpu.sh         on the GPU machine (no cargo, no network; python3 with PyTorch CUDA,
#                        the driver and NVRTC): runs them. 7.5 minutes at most. The log also
#                        goes to $OUT/gpu.log where $OUT is set (the device tool brings it back).
#
# With the device tool: run(command="bench/gpu.sh", carry=["bench/gpu"], timeout_s=480).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = build ]; then
  mkdir -p bench/gpu
  rm -f bench/gpu/*.gz
  exe() { # the executable of a compiler-artifact message named $1
    python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == sys.argv[1] and m.get("executable"):
        print(m["executable"])' "$1"
  }
  # $1: the features; $2: the names' suffix
  variant() {
    cp "$(cargo test --release --features "$1" --test gpu --no-run --message-format=json | exe gpu)" "bench/gpu/cuda-tests$2"
    cp "$(cargo bench --features "$1" --bench train_speed --no-run --message-format=json | exe train_speed)" "bench/gpu/train-speed$2"
  }
  variant cuda ""
  variant cuda,autotune -autotune
  cp "$(cargo build --release --features cuda --bin lthc --message-format=json | exe lthc)" bench/gpu/lthc
  strip bench/gpu/*
  gzip -9 -f bench/gpu/*
  du -sh bench/gpu
  exit 0
fi
[ -f bench/gpu/cuda-tests.gz ] || { echo "run 'bench/gpu.sh build' on the development machine first" >&2; exit 2; }
if [ -n "${OUT:-}" ]; then exec > >(tee "$OUT/gpu.log") 2>&1; fi
bin=$(mktemp -d)
for f in bench/gpu/*.gz; do n=$(basename "$f" .gz); gunzip -c "$f" > "$bin/$n"; chmod +x "$bin/$n"; done
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
# cudarc loads libcuda and NVRTC at run time by name: put CUDA 13's NVRTC on the search path
# when the loader's cache does not know it.
if ! ldconfig -p | grep -q 'libnvrtc\.so'; then
  nvrtc=$(find /usr/local /usr/lib /opt -name 'libnvrtc.so.13*' 2>/dev/null | head -1)
  [ -n "$nvrtc" ] && export LD_LIBRARY_PATH="$(dirname "$nvrtc")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
echo "NVRTC: $(ldconfig -p | grep -o 'libnvrtc\.so[^ ]*' | head -1) LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
end=$((SECONDS + 450)) # the whole script: 7.5 minutes
left() { # seconds for the next stage: at most $1, never past the end
  local l=$((end - SECONDS)); [ "$l" -lt "$1" ] && echo $((l > 1 ? l : 1)) || echo "$1"
}
echo "== CUDA tests"
LTHC_BIN="$bin/lthc" timeout "$(left 150)" "$bin/cuda-tests" --ignored --test-threads 1 --nocapture cuda:: \
  || echo "CUDA tests: failed (exit $?)"
echo "== throughput (examples/s), lthc CUDA vs PyTorch CUDA"
for net in lenet resnet20 vgg_stage1; do
  its=$([ "$net" = lenet ] && echo 2000 || echo 50)
  LTHC_BENCH_DEVICE=cuda timeout "$(left 60)" "$bin/train-speed" "$net" "$its" || echo "lthc $net: failed"
  BENCH_DEVICE=cuda timeout "$(left 60)" python3 bench/torch_train_speed.py "$net" "$its" || echo "pytorch $net: failed"
done
echo "== a sweep's LeNet runs sharing the GPU: examples/s of N runs at once (threads, as lthc run --jobs N)"
for jobs in 2 4 8; do
  LTHC_BENCH_JOBS=$jobs LTHC_BENCH_DEVICE=cuda timeout "$(left 40)" "$bin/train-speed" lenet 1000 || echo "lthc lenet x$jobs: failed"
done
# Autotune compiles each shape's candidate kernels with NVRTC on first use (minutes for
# ResNet-20); cubecl.toml keeps the compiled kernels and the choices under target/, so the tests
# after the bench reuse them.
echo "== --features cuda,autotune (minimal tuning; what is left of the time)"
printf '[compilation]\ncache = "target"\n\n[autotune]\nlevel = "minimal"\ncache = "target"\n' > cubecl.toml
for net in resnet20 lenet; do
  its=$([ "$net" = lenet ] && echo 2000 || echo 50)
  LTHC_BENCH_DEVICE=cuda timeout "$(left 240)" "$bin/train-speed-autotune" "$net" "$its" || echo "lthc autotune $net: failed or out of time"
done
timeout "$(left 200)" "$bin/cuda-tests-autotune" --ignored --test-threads 1 --nocapture \
  cuda::one_step cuda::a_resnet20 || echo "CUDA tests with autotune: failed or out of time (exit $?)"
rm -f cubecl.toml
