# Finds mpt's dependencies. Used by our own build and, installed, by
# mptConfig.cmake, so that downstream projects resolve the same targets.
include(CMakeFindDependencyMacro)
# Debian 12's xsimdTargets.cmake links a target `xtl` that its config never
# looks for: find xtl first or linking xsimd fails with `cannot find -lxtl`.
find_dependency(xtl)
find_dependency(xsimd)
find_dependency(Eigen3 3.4 NO_MODULE)
find_dependency(TBB)
find_dependency(nlohmann_json 3)
find_dependency(PkgConfig)
if(NOT TARGET PkgConfig::utf8proc)
  pkg_check_modules(utf8proc REQUIRED IMPORTED_TARGET GLOBAL libutf8proc)
endif()
