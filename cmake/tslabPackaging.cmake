# SPDX-License-Identifier: MIT
# The installed CMake package and pkg-config files. Included by the top-level CMakeLists.txt after
# every subdirectory, so that the targets and everything they link are known.
#
# Both are relocatable: no installed file names the install prefix. The CMake package finds it
# from its own location (PACKAGE_INIT of configure_package_config_file; _IMPORT_PREFIX in the
# exported targets), the .pc files from theirs (${pcfiledir}). So `cmake --install build --prefix
# X` into any X, a DESTDIR staging install and a tree moved after installation all work;
# tests/install/run.sh builds consumers against each.
include(CMakePackageConfigHelpers)

set(tslab_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/tslab)
set(tslab_pc_dir ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# ---- pkg-config: paths relative to the .pc file ---------------------------------------------
# lib/pkgconfig gives ${pcfiledir}/../.., a multiarch lib/x86_64-linux-gnu/pkgconfig
# ${pcfiledir}/../../.. . An absolute CMAKE_INSTALL_LIBDIR or INCLUDEDIR does not move with the
# prefix, so it is written as it is.
if(IS_ABSOLUTE "${tslab_pc_dir}")
  set(TSLAB_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
else()
  file(RELATIVE_PATH tslab_pc_up "/p/${tslab_pc_dir}" "/p")
  string(REGEX REPLACE "/$" "" tslab_pc_up "${tslab_pc_up}")
  set(TSLAB_PC_PREFIX "\${pcfiledir}/${tslab_pc_up}")
endif()
foreach(dir LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${dir}}")
    set(TSLAB_PC_${dir} "${CMAKE_INSTALL_${dir}}")
  else()
    set(TSLAB_PC_${dir} "\${prefix}/${CMAKE_INSTALL_${dir}}")
  endif()
endforeach()

function(tslab_install_pc template name)
  configure_file(${template} ${CMAKE_CURRENT_BINARY_DIR}/${name}.pc @ONLY)
  install(FILES ${CMAKE_CURRENT_BINARY_DIR}/${name}.pc DESTINATION ${tslab_pc_dir})
endfunction()

# ---- What a static library needs at link time -----------------------------------------------
# A static library carries none of its dependencies: its consumers link them. They are read from
# the target's own LINK_LIBRARIES, so a dependency added to the library is carried into the .pc
# files and the CMake package with no other change:
#   PkgConfig::<P>   pkg_check_modules(<P> ... IMPORTED_TARGET <module>): pkg-config <module>
#   ZLIB::ZLIB       find_package(ZLIB): pkg-config zlib
#   Threads::Threads -pthread, already in tslab's own .pc
# Our own targets and generator expressions (build-only flags) are skipped; anything else stops
# the configuration, so that no dependency goes missing from the installed files unnoticed.
# Sets <out_pc> (pkg-config module names) and <out_cmake> (CMake code that finds each one again
# in a consumer, for tslabConfig.cmake).
function(tslab_static_deps target out_pc out_cmake out_libs)
  get_target_property(libs ${target} LINK_LIBRARIES)
  set(pc "")
  set(cm "")
  set(plain "")
  foreach(lib IN LISTS libs)
    if(lib MATCHES "^tslab" OR lib MATCHES "^\\$<" OR lib STREQUAL "Threads::Threads")
      continue()
    elseif(lib MATCHES "^PkgConfig::(.+)$")
      set(module "${${CMAKE_MATCH_1}_MODULE_NAME}")
      if(module STREQUAL "")
        message(FATAL_ERROR "${target} links ${lib}: no module name (pkg_check_modules with one "
                            "module sets ${CMAKE_MATCH_1}_MODULE_NAME)")
      endif()
      list(APPEND pc ${module})
      string(APPEND cm "  _tslab_find_pkg(${CMAKE_MATCH_1} ${module})\n")
    elseif(lib STREQUAL "ZLIB::ZLIB")
      list(APPEND pc zlib)
      string(APPEND cm "  _tslab_find_package(ZLIB ZLIB::ZLIB)\n")
    elseif(lib MATCHES "^[A-Za-z0-9_]+$")
      # A system library by name (m, dl): -l<name> for pkg-config; the exported target already
      # names it for CMake consumers.
      list(APPEND plain "-l${lib}")
    else()
      message(FATAL_ERROR "${target} links ${lib}: cmake/tslabPackaging.cmake does not know how "
                          "its installed consumers find it (pkg-config module, CMake package)")
    endif()
  endforeach()
  list(JOIN pc " " pc)
  list(JOIN plain " " plain)
  set(${out_pc} "${pc}" PARENT_SCOPE)
  set(${out_libs} "${plain}" PARENT_SCOPE)
  set(${out_cmake} "${cm}" PARENT_SCOPE)
endfunction()

# ---- pkg-config files -------------------------------------------------------------------------
tslab_install_pc(${PROJECT_SOURCE_DIR}/cmake/tslab.pc.in tslab)
tslab_install_pc(${PROJECT_SOURCE_DIR}/cmake/tslab-static.pc.in tslab-static)
set(TSLAB_TELEMETRY_STATIC_FINDS "")
if(TARGET tslab_telemetry_static)
  tslab_static_deps(tslab_telemetry_static TSLAB_TELEMETRY_PC_REQUIRES
                    TSLAB_TELEMETRY_STATIC_FINDS TSLAB_TELEMETRY_PC_LIBS)
  # The shared library is built from the same objects: it needs exactly what the static one does.
  tslab_static_deps(tslab_telemetry shared_requires unused unused_libs)
  if(NOT shared_requires STREQUAL TSLAB_TELEMETRY_PC_REQUIRES)
    message(FATAL_ERROR "tslab_telemetry links ${shared_requires}, tslab_telemetry_static "
                        "${TSLAB_TELEMETRY_PC_REQUIRES}: link a dependency to both")
  endif()
  tslab_install_pc(${PROJECT_SOURCE_DIR}/telemetry/cmake/tslab-telemetry.pc.in tslab-telemetry)
  tslab_install_pc(${PROJECT_SOURCE_DIR}/telemetry/cmake/tslab-telemetry-static.pc.in
                   tslab-telemetry-static)
  install(EXPORT tslabTelemetryStaticTargets NAMESPACE tslab:: DESTINATION ${tslab_cmake_dir})
endif()

# ---- CMake package ----------------------------------------------------------------------------
install(EXPORT tslabTargets NAMESPACE tslab:: DESTINATION ${tslab_cmake_dir})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/tslabConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/tslabConfig.cmake INSTALL_DESTINATION ${tslab_cmake_dir})
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/tslabConfigVersion.cmake
  COMPATIBILITY SameMajorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/tslabConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/tslabConfigVersion.cmake
        DESTINATION ${tslab_cmake_dir})
