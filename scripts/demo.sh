#!/usr/bin/env bash
# The main job: builds deepshock and runs the demo (MoE router preview) on the GPU when there is
# one, otherwise in the CPU SIMT simulator. Arguments go to the demo (--preset, --reps, --seed).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ds_install_deps
build="${DS_BUILD_DIR:-$DS_ROOT/build}"
targets=(demo_sim)
command -v nvcc >/dev/null 2>&1 && targets+=(demo_gpu)
cmake -S "$DS_ROOT" -B "$build" -G Ninja >/dev/null
cmake --build "$build" -j "${DS_JOBS:-2}" --target "${targets[@]}"
if [ -x "$build/examples/demo_gpu" ]; then
  set +e
  "$build/examples/demo_gpu" "$@"
  rc=$?
  set -e
  [ "$rc" -ne 77 ] && exit "$rc"
  echo "== no GPU here: running the same kernel in the CPU simulator"
fi
exec "$build/examples/demo_sim" "$@"
