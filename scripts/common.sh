# Shared by the scripts in this folder: installs what the build needs (Debian/Ubuntu, apt-get)
# and configures + builds a CMake tree. Source it; do not run it.
set -euo pipefail
DS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

ds_install_deps() {
  local pkgs=(cmake ninja-build g++ catch2 libboost-context-dev libbenchmark-dev nlohmann-json3-dev libdnnl-dev "$@")
  local missing=()
  for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if ((${#missing[@]})); then
    echo "== installing: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  # The CUDA toolkit is not a Debian package of the right version; use it where it is installed.
  if ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
    export PATH="/usr/local/cuda/bin:$PATH"
  fi
  if ! command -v nvcc >/dev/null 2>&1; then
    echo "== note: no nvcc found; building the host and simulator targets only"
  fi
}

# ds_build BUILD_DIR [cmake args...]: configure (once) and build every target.
ds_build() {
  local dir="$1"; shift
  local cuda_args=()
  command -v nvcc >/dev/null 2>&1 && cuda_args+=("-DCMAKE_CUDA_COMPILER=$(command -v nvcc)")
  cmake -S "$DS_ROOT" -B "$dir" -G Ninja "${cuda_args[@]}" "$@" >/dev/null
  # DS_BUILD_TARGETS (optional, space-separated) limits the build to those targets.
  if [ -n "${DS_BUILD_TARGETS:-}" ]; then
    # shellcheck disable=SC2086
    cmake --build "$dir" -j "${DS_JOBS:-2}" --target ${DS_BUILD_TARGETS}
  else
    cmake --build "$dir" -j "${DS_JOBS:-2}"
  fi
}
