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
