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
# about half of a small program's compile. mpt_pch parses it once and every program
# reuses that result (GCC checks the flags match, and our programs share them).
# On by default in Debug builds only: when optimizing, GCC 12 loses the system-header
# status of intrinsics inlined from a precompiled header and -Wmaybe-uninitialized
# fires inside <immintrin.h>, which -Werror turns into a failed build.
if(CMAKE_BUILD_TYPE STREQUAL "Debug")
  set(_mpt_pch_default ON)
else()
  set(_mpt_pch_default OFF)
endif()
option(MPT_PRECOMPILE_HEADERS "Precompile <mpt/mpt.hpp> once for the tests, examples and benchmarks" ${_mpt_pch_default})
if(MPT_PRECOMPILE_HEADERS)
  add_library(mpt_pch OBJECT ${CMAKE_CURRENT_LIST_DIR}/mpt_pch.cpp)
  target_link_libraries(mpt_pch PRIVATE mpt_internal)
  target_precompile_headers(mpt_pch PRIVATE <mpt/mpt.hpp>)
endif()

# mpt_use_precompiled_header(<target>): compile <target> against mpt_pch's header.
function(mpt_use_precompiled_header target)
  if(MPT_PRECOMPILE_HEADERS)
    target_precompile_headers(${target} REUSE_FROM mpt_pch)
  endif()
endfunction()
