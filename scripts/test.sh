#!/usr/bin/env bash
# Builds every target and runs the test suite (labels host, sim, gpu; gpu tests show as skipped
# without a device), DS_JOBS (default 2) at a time. Extra arguments go to ctest, e.g. `-L sim`
# or `-R host`.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ds_install_deps
build="${DS_BUILD_DIR:-$DS_ROOT/build}"
ds_build "$build"
cd "$build"
ctest --output-on-failure -j "${DS_JOBS:-2}" "$@"
