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

# The manual page: one synccache(3) for the whole API, and for every public
# function a one-line page that sources it, so `man sc_get` works too. The
# names come from the header, so a new function gets its page.
install(FILES docs/man/synccache.3 DESTINATION ${CMAKE_INSTALL_MANDIR}/man3)
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS include/synccache/synccache.h)
file(STRINGS include/synccache/synccache.h _sc_exports REGEX "^SC_EXPORT ")
set(_sc_man_links "")
foreach(_line IN LISTS _sc_exports)
  if(_line MATCHES "[ *](sc_[a-z0-9_]+)\\(")
    set(_page ${PROJECT_BINARY_DIR}/man3/${CMAKE_MATCH_1}.3)
    # Written through configure_file so an unchanged page keeps its time.
    file(WRITE ${PROJECT_BINARY_DIR}/man3.tmp/${CMAKE_MATCH_1}.3 ".so man3/synccache.3\n")
    configure_file(${PROJECT_BINARY_DIR}/man3.tmp/${CMAKE_MATCH_1}.3 ${_page} COPYONLY)
    list(APPEND _sc_man_links ${_page})
  endif()
endforeach()
install(FILES ${_sc_man_links} DESTINATION ${CMAKE_INSTALL_MANDIR}/man3)
