# Warning and sanitizer settings for deepshock's own tests, benchmarks and examples.
# Applied per target (never directory-wide) through deepshock_project_options().

function(deepshock_project_options target)
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
