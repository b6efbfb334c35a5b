#!/usr/bin/env bash
# The main job: builds deepshock and runs the demo (a whole MoE layer, DeepSeek-V2-Lite by default)
# on the GPU when there is one, otherwise on the CPU. Arguments go to the demo (--help lists them).
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
  echo "== no GPU here: running the layer on the CPU (demo_sim)"
fi
exec "$build/examples/demo_sim" "$@"
