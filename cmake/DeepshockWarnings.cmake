# Warning and sanitizer settings for deepshock's own tests, benchmarks and examples.
# Applied per target (never directory-wide) through deepshock_project_options().

# The simulator's tensor-core models spend most of their time in std::fma. With the build
# machine's FMA instructions (-mfma) that is one instruction instead of a libm call; the result is
# the same (a fused multiply-add is exactly rounded either way), and -ffp-contract=off keeps every
# other expression rounded as written. Probed by running a program, so binaries built here are
# meant to run on a machine like this one; scripts/gpu_check.sh, whose binaries travel to a GPU
# machine, turns it off (DEEPSHOCK_HOST_FMA=OFF).
set(DEEPSHOCK_HOST_FMA_FLAGS "")
if(DEEPSHOCK_HOST_FMA AND NOT CMAKE_CROSSCOMPILING)
  include(CheckCXXSourceRuns)
  include(CMakePushCheckState)
  cmake_push_check_state(RESET)
  set(CMAKE_REQUIRED_FLAGS "-mfma -ffp-contract=off")
  check_cxx_source_runs([=[
    #include <cmath>
    int main(int argc, char**) {
      __builtin_cpu_init();
      if (!__builtin_cpu_supports("fma")) return 1;
      volatile float a = 1.0f + 0x1p-23f * static_cast<float>(argc);
      return std::fma(a, a, -a * a) != 0.0f ? 0 : 1;
    }]=] DEEPSHOCK_HAVE_HOST_FMA)
  cmake_pop_check_state()
  if(DEEPSHOCK_HAVE_HOST_FMA)
    set(DEEPSHOCK_HOST_FMA_FLAGS -mfma -ffp-contract=off)
  endif()
endif()

function(deepshock_project_options target)
  foreach(f IN LISTS DEEPSHOCK_HOST_FMA_FLAGS)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:${f}>)
  endforeach()
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Wno-unused-parameter>
    $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall --Werror=cross-execution-space-call>)
  if(DEEPSHOCK_SANITIZER STREQUAL "address")
    # ASan + UBSan. nvcc splits -Xcompiler at commas, so every flag goes on its own.
    set(_flags -fsanitize=address -fsanitize=undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
  elseif(DEEPSHOCK_SANITIZER STREQUAL "thread")
    set(_flags -fsanitize=thread -fno-omit-frame-pointer)
  else()
    set(_flags "")
  endif()
  foreach(f IN LISTS _flags)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:${f}> $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=${f}>)
    target_link_options(${target} PRIVATE ${f})
  endforeach()
endfunction()

# DEEPSHOCK_GPU_TESTS_FAST_BUILD (CI, which has no GPU, turns it on): the gpu test binaries and
# the CUDA examples are compiled with the device optimizer at -O1 (-Xcicc -O1). Every kernel is
# still compiled for every architecture, in about a third of the time (the grouped GEMM suite for
# sm_90a: 49 s instead of 148 s, cicc 8 s instead of 79 s); ptxas notes that wgmma chains cross
# function calls there. The benchmarks (with the ptxas spill check) and scripts/gpu_check.sh keep
# -O3: use a build without the option on a GPU (demo.sh and gpu_check.sh make one).
option(DEEPSHOCK_GPU_TESTS_FAST_BUILD "Compile the gpu test binaries and CUDA examples with the device optimizer at -O1 (build checks without a GPU)" OFF)
function(deepshock_fast_device_options target)
  deepshock_project_options(${target})
  if(DEEPSHOCK_GPU_TESTS_FAST_BUILD)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-Xcicc=-O1>)
  endif()
endfunction()
