# mpt_internal: what our own tests, examples, tools and benchmarks link.
# Warnings, -Werror and sanitizers live here, never on the public mpt target.
add_library(mpt_internal INTERFACE)
if(MPT_USE_SINGLE_HEADER)
  # The generated single header alone: include/ is not on the path, so a
  # header the amalgamation forgot fails to compile.
  target_compile_features(mpt_internal INTERFACE cxx_std_20)
  target_include_directories(mpt_internal INTERFACE ${PROJECT_SOURCE_DIR}/single_include)
  get_target_property(_mpt_deps mpt INTERFACE_LINK_LIBRARIES)
  target_link_libraries(mpt_internal INTERFACE ${_mpt_deps})
else()
  target_link_libraries(mpt_internal INTERFACE mpt::mpt)
endif()
target_compile_options(mpt_internal INTERFACE -Wall -Wextra -Wpedantic $<$<BOOL:${MPT_WERROR}>:-Werror>)
if(MPT_SANITIZE)
  target_compile_options(mpt_internal INTERFACE -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
  target_link_options(mpt_internal INTERFACE -fsanitize=address,undefined)
endif()
find_package(Threads REQUIRED)
target_link_libraries(mpt_internal INTERFACE Threads::Threads)

# ---- one precompiled <mpt/mpt.hpp> per build tree ----------------------------
# Every test, example, tool and benchmark includes the whole library; parsing it is
# about half of a small program's compile (3.5 of 6 s at -O3). mpt_pch parses it once
# and every program reuses that result (GCC checks the flags match, and ours do).
#
# GCC 12 when optimizing: code inlined from a precompiled <immintrin.h> loses its
# system-header status, and -W(maybe-)uninitialized fires on the intrinsics' own
# `__Y = __Y` (GCC bug 105593, fixed in GCC 13), which -Werror makes a failed build.
# There only the test programs use the precompiled header, with those two warnings off;
# the examples, tools and benchmarks instantiate the same library code with every
# warning on, so nothing of the library goes unchecked.
option(MPT_PRECOMPILE_HEADERS "Precompile <mpt/mpt.hpp> once for the tests, examples and benchmarks" ON)
set(_mpt_pch_tests_only OFF)
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13 AND NOT CMAKE_BUILD_TYPE STREQUAL "Debug")
  set(_mpt_pch_tests_only ON)
endif()
if(MPT_PRECOMPILE_HEADERS)
  add_library(mpt_pch OBJECT ${CMAKE_CURRENT_LIST_DIR}/mpt_pch.cpp)
  target_link_libraries(mpt_pch PRIVATE mpt_internal)
  target_precompile_headers(mpt_pch PRIVATE <mpt/mpt.hpp>)
  if(_mpt_pch_tests_only)
    target_compile_options(mpt_pch PRIVATE -Wno-uninitialized -Wno-maybe-uninitialized)
  endif()
endif()

# mpt_use_precompiled_header(<target> [TEST]): compile <target> against mpt_pch's
# header (TEST: a test program, which may use it where the others may not: above).
function(mpt_use_precompiled_header target)
  if(NOT MPT_PRECOMPILE_HEADERS)
    return()
  endif()
  if(_mpt_pch_tests_only)
    if(NOT "TEST" IN_LIST ARGN)
      return()
    endif()
    target_compile_options(${target} PRIVATE -Wno-uninitialized -Wno-maybe-uninitialized)
  endif()
  target_precompile_headers(${target} REUSE_FROM mpt_pch)
endfunction()
