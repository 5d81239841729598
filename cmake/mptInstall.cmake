include(GNUInstallDirs)
include(CMakePackageConfigHelpers)
set(MPT_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/mpt)

install(TARGETS mpt EXPORT mptTargets)
install(DIRECTORY include/mpt DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT mptTargets NAMESPACE mpt:: DESTINATION ${MPT_CMAKE_DIR})
export(EXPORT mptTargets NAMESPACE mpt:: FILE ${PROJECT_BINARY_DIR}/mptTargets.cmake)

configure_package_config_file(cmake/mptConfig.cmake.in ${PROJECT_BINARY_DIR}/mptConfig.cmake
  INSTALL_DESTINATION ${MPT_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/mptConfigVersion.cmake
  COMPATIBILITY SameMinorVersion ARCH_INDEPENDENT)
install(FILES ${PROJECT_BINARY_DIR}/mptConfig.cmake ${PROJECT_BINARY_DIR}/mptConfigVersion.cmake
  cmake/mptDependencies.cmake DESTINATION ${MPT_CMAKE_DIR})
