#!/usr/bin/env bash
# GPU check: builds for sm_90a (sm_90 plus the wgmma instructions), runs the `gpu` tests, the demo
# and the GPU benchmarks, and writes logs and JSON into OUTDIR (commit them under
# bench/results/<date>-<device>/).
#
#   scripts/gpu_check.sh OUTDIR            build and run here (a machine with nvcc and a GPU)
#   scripts/gpu_check.sh build             only build (e.g. on a CPU machine) into build-gpu/
#   scripts/gpu_check.sh pack              copy the built binaries, stripped, into build-gpu-pack/
#                                          (same layout, a few tens of MB: small enough to carry to
#                                          a GPU machine instead of the whole build folder)
#   scripts/gpu_check.sh run OUTDIR        only run an existing build (e.g. on a GPU machine that
#                                          received build-gpu-pack/: DS_GPU_BUILD_DIR=build-gpu-pack)
# Environment: DS_GPU_BUILD_DIR (default build-gpu), DS_BENCH_MIN_TIME (default 0.05 s),
# DS_BENCH_FILTER (a --benchmark_filter for every benchmark, default all), DS_STEP_TIMEOUT
# (seconds per test binary, example or benchmark binary, default 300: a hung kernel costs one
# step, and the logs written so far stay in OUTDIR).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
build="${DS_GPU_BUILD_DIR:-$DS_ROOT/build-gpu}"
GPU_TESTS="gpu_tests gate_router_gpu_tests gate_stats_gpu_tests gate_expert_choice_gpu_tests policy_gpu_tests fair_gpu_tests privacy_noise_gpu_tests moe_dispatch_gpu_tests moe_gemm_gpu_tests moe_layer_gpu_tests lora_gpu_tests serve_gpu_tests ep_device_gpu_tests ep_nccl_gpu_tests"
GPU_BENCHES="bench_moe bench_lora bench_ep bench_router bench_policy bench_primitives"  # most telling first, in case device time runs out
GPU_TARGETS="$GPU_TESTS $GPU_BENCHES demo_gpu recommend_gpu serve_gpu ep_gpu"

gpu_build() {
  ds_install_deps
  command -v nvcc >/dev/null 2>&1 || { echo "gpu_check: nvcc not found" >&2; exit 1; }
  cmake -S "$DS_ROOT" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90a \
    -DCMAKE_CUDA_COMPILER="$(command -v nvcc)" -DDEEPSHOCK_HEADER_CHECKS=OFF -DDEEPSHOCK_HOST_FMA=OFF >/dev/null
  cmake --build "$build" -j "${DS_JOBS:-2}" --target ${GPU_TARGETS}
  # Which source the binaries are built from (a pack may travel after later commits).
  echo "$(git -C "$DS_ROOT" rev-parse HEAD 2>/dev/null || echo unknown)$(git -C "$DS_ROOT" diff --quiet HEAD 2>/dev/null || echo '+local changes')" \
    > "$build/BUILT_FROM"
  # Shared libraries the binaries need that a bare GPU machine may lack.
  mkdir -p "$build/lib"
  cp -L /usr/lib/x86_64-linux-gnu/libbenchmark.so.1debian "$build/lib/" 2>/dev/null || true
}

gpu_pack() {
  local pack="${DS_GPU_PACK_DIR:-$DS_ROOT/build-gpu-pack}" f
  rm -rf "$pack"
  mkdir -p "$pack/tests" "$pack/bench" "$pack/examples" "$pack/lib"
  for f in $GPU_TESTS; do cp "$build/tests/$f" "$pack/tests/"; done
  for f in $GPU_BENCHES; do cp "$build/bench/$f" "$pack/bench/"; done
  cp "$build/examples/demo_gpu" "$build/examples/recommend_gpu" "$build/examples/serve_gpu" "$build/examples/ep_gpu" "$pack/examples/"
  cp "$build"/lib/* "$pack/lib/" 2>/dev/null || true
  cp "$build/BUILT_FROM" "$pack/" 2>/dev/null || true
  # Symbols only: the device code lives in the .nv_fatbin section, which strip keeps.
  strip "$pack"/tests/* "$pack"/bench/* "$pack"/examples/*
  du -sh "$pack"
}

gpu_run() {
  local out="$1"
  mkdir -p "$out"
  # libnccl (ep_nccl_gpu_tests) comes from the CUDA toolkit's lib/ (too large to pack).
  export LD_LIBRARY_PATH="$build/lib:/usr/local/cuda/lib64:/usr/local/cuda/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  {
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "commit: $(git -C "$DS_ROOT" rev-parse HEAD 2>/dev/null || echo unknown)"
    echo "binaries built from: $(cat "$build/BUILT_FROM" 2>/dev/null || echo unknown)"
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv 2>&1 || true
  } | tee "$out/device.txt"
  local rc=0 test_rc=0
  step() { timeout -k 10 "${DS_STEP_TIMEOUT:-300}" "$@"; }
  # The gpu tests exit 77 without a device: that is a failure of the GPU check.
  step "$build/tests/gpu_tests" --rng-seed time 2>&1 | tee "$out/gpu_tests.log" || test_rc=$?
  if [ "$test_rc" = 77 ]; then echo "gpu_check: no CUDA device here" >&2; return 1; fi
  rc=$test_rc
  for t in $GPU_TESTS; do
    [ "$t" = gpu_tests ] && continue
    step "$build/tests/$t" --rng-seed time 2>&1 | tee -a "$out/gpu_tests.log" || rc=$?
  done
  step "$build/examples/demo_gpu" 2>&1 | tee "$out/demo.log" || rc=$?
  for q in int8 w8a8 int4 mxfp4 nvfp4 fp8; do  # the quantized experts end to end (each checks itself)
    step "$build/examples/demo_gpu" --quant "$q" 2>&1 | tee -a "$out/demo.log" || rc=$?
  done
  # The model presets as their checkpoints ship them (gpt-oss: MXFP4, biases, clamped SwiGLU;
  # DeepSeek-V3: FP8 blocks, 256 experts; full sizes: the V3 preset needs ~35 GB of host memory).
  for p in gpt-oss-20b deepseek-v3; do
    step "$build/examples/demo_gpu" --preset "$p" 2>&1 | tee -a "$out/demo.log" || rc=$?
  done
  step "$build/examples/demo_gpu" --preset deepseek-v3 --quant fp8a8 2>&1 | tee -a "$out/demo.log" || rc=$?  # FP8 activations
  # LoRA: 4 and 8 adapters of mixed ranks in one batch over bf16 and int4 bases (overhead printed).
  step "$build/examples/demo_gpu" --lora 8 --adapters 4 2>&1 | tee -a "$out/demo.log" || rc=$?
  step "$build/examples/demo_gpu" --lora 64 --adapters 8 --quant int4 2>&1 | tee -a "$out/demo.log" || rc=$?
  step "$build/examples/recommend_gpu" 2>&1 | tee "$out/recommend.log" || rc=$?
  # The batcher in front of the GPU layer, buckets as CUDA graphs (a heavier load than on the CPU).
  step "$build/examples/serve_gpu" --clients 16 --gap-us 200 --ms 1000 2>&1 | tee "$out/serve.log" || rc=$?
  step "$build/examples/serve_gpu" --clients 16 --gap-us 200 --ms 1000 --moe-aware 2>&1 | tee -a "$out/serve.log" || rc=$?
  # Expert parallelism: ranks as threads sharing the GPU, bitwise against one rank (bytes per rank printed).
  step "$build/examples/ep_gpu" --ranks 1,2,4,8 --tokens 256 2>&1 | tee "$out/ep.log" || rc=$?
  for b in $GPU_BENCHES; do
    step "$build/bench/$b" --benchmark_min_time="${DS_BENCH_MIN_TIME:-0.05}" --benchmark_filter="${DS_BENCH_FILTER:-.}" \
      --benchmark_out="$out/$b.json" --benchmark_out_format=json 2>&1 | tee "$out/$b.log" || rc=$?
  done
  echo "gpu_check: finished with status $rc; results in $out"
  return "$rc"
}

case "${1:-}" in
  build) gpu_build ;;
  pack) gpu_pack ;;
  run) gpu_run "${2:?usage: gpu_check.sh run OUTDIR}" ;;
  ""|-h|--help) sed -n '2,16p' "$0"; exit 2 ;;
  *) gpu_build; gpu_run "$1" ;;
esac
