#!/usr/bin/env bash
# Builds every target and runs the test suite (labels host, sim, gpu; gpu tests show as skipped
# without a device), DS_JOBS (default 2) at a time. Extra arguments go to ctest, e.g. `-L sim`
# or `-R host`. DS_CMAKE_ARGS (optional) adds configure arguments, e.g. CI's
# -DDEEPSHOCK_GPU_TESTS_FAST_BUILD=ON.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ds_install_deps
build="${DS_BUILD_DIR:-$DS_ROOT/build}"
# shellcheck disable=SC2086
ds_build "$build" ${DS_CMAKE_ARGS:-}
cd "$build"
ctest --output-on-failure -j "${DS_JOBS:-2}" "$@"
