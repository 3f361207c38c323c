# Installs headers, the library, synccache.pc and a CMake package config, so
# both `pkg-config --libs synccache` and `find_package(synccache)` work.
include(CMakePackageConfigHelpers)

install(TARGETS synccache EXPORT synccacheTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY include/synccache DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

install(EXPORT synccacheTargets NAMESPACE synccache::
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/synccache)
configure_package_config_file(cmake/synccacheConfig.cmake.in
  ${PROJECT_BINARY_DIR}/synccacheConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/synccache)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/synccacheConfigVersion.cmake
  COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/synccacheConfig.cmake
  ${PROJECT_BINARY_DIR}/synccacheConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/synccache)

if(BUILD_SHARED_LIBS)
  set(SC_PC_CFLAGS "")
else()
  set(SC_PC_CFLAGS "-DSC_STATIC")
endif()
# From <prefix>/<libdir>/pkgconfig back up to <prefix>.
file(RELATIVE_PATH SC_PC_UP "/p/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/p")
configure_file(cmake/synccache.pc.in ${PROJECT_BINARY_DIR}/synccache.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/synccache.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
