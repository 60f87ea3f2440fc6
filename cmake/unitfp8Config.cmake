# CMake package configuration for unitfp8, installed by `cargo cinstall` into
# <prefix>/share/cmake/unitfp8/. Use it with
#
#   find_package(unitfp8 0.1 REQUIRED)        # CMAKE_PREFIX_PATH=<prefix> if not a system prefix
#   target_link_libraries(app PRIVATE unitfp8::unitfp8)
#
# unitfp8::unitfp8 is the shared library (libunitfp8.so.0) with the include directory of
# unitfp8.h; unitfp8::unitfp8_static (defined when libunitfp8.a is installed) is the static
# library with the system libraries it needs (Libs.private of the installed unitfp8.pc).
# Sets unitfp8_VERSION (read from the installed header), unitfp8_INCLUDE_DIR, unitfp8_LIBRARY,
# unitfp8_STATIC_LIBRARY.

get_filename_component(_unitfp8_prefix "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)

find_path(unitfp8_INCLUDE_DIR unitfp8.h
  PATHS "${_unitfp8_prefix}/include" NO_DEFAULT_PATH)
find_library(unitfp8_LIBRARY NAMES unitfp8
  PATHS "${_unitfp8_prefix}/lib" "${_unitfp8_prefix}/lib64"
        "${_unitfp8_prefix}/lib/${CMAKE_LIBRARY_ARCHITECTURE}"
  NO_DEFAULT_PATH)

find_library(unitfp8_STATIC_LIBRARY NAMES libunitfp8.a
  PATHS "${_unitfp8_prefix}/lib" "${_unitfp8_prefix}/lib64"
        "${_unitfp8_prefix}/lib/${CMAKE_LIBRARY_ARCHITECTURE}"
  NO_DEFAULT_PATH)

include("${CMAKE_CURRENT_LIST_DIR}/unitfp8ConfigVersion.cmake")
set(unitfp8_VERSION "${PACKAGE_VERSION}")

if(NOT unitfp8_INCLUDE_DIR OR (NOT unitfp8_LIBRARY AND NOT unitfp8_STATIC_LIBRARY))
  set(unitfp8_FOUND FALSE)
  set(unitfp8_NOT_FOUND_MESSAGE
    "unitfp8.h or libunitfp8 not found under ${_unitfp8_prefix} (include/, lib/)")
  return()
endif()

if(unitfp8_LIBRARY MATCHES "\\.a$")
  # Only the static library is installed (cargo cinstall --library-type staticlib).
  set(unitfp8_LIBRARY "")
endif()
if(unitfp8_LIBRARY AND NOT TARGET unitfp8::unitfp8)
  add_library(unitfp8::unitfp8 SHARED IMPORTED)
  set_target_properties(unitfp8::unitfp8 PROPERTIES
    IMPORTED_LOCATION "${unitfp8_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${unitfp8_INCLUDE_DIR}")
endif()
if(unitfp8_STATIC_LIBRARY AND NOT TARGET unitfp8::unitfp8_static)
  # The system libraries a static link needs: Libs.private of the unitfp8.pc next to it.
  get_filename_component(_unitfp8_libdir "${unitfp8_STATIC_LIBRARY}" DIRECTORY)
  set(_unitfp8_private "")
  if(EXISTS "${_unitfp8_libdir}/pkgconfig/unitfp8.pc")
    file(STRINGS "${_unitfp8_libdir}/pkgconfig/unitfp8.pc" _unitfp8_line REGEX "^Libs.private:")
    string(REGEX REPLACE "^Libs.private:[ ]*" "" _unitfp8_line "${_unitfp8_line}")
    separate_arguments(_unitfp8_flags UNIX_COMMAND "${_unitfp8_line}")
    foreach(_flag IN LISTS _unitfp8_flags)
      if(_flag MATCHES "^-l(.+)$")
        list(APPEND _unitfp8_private "${CMAKE_MATCH_1}")
      endif()
    endforeach()
    if(_unitfp8_private)
      list(REMOVE_DUPLICATES _unitfp8_private)
    endif()
  endif()
  add_library(unitfp8::unitfp8_static STATIC IMPORTED)
  set_target_properties(unitfp8::unitfp8_static PROPERTIES
    IMPORTED_LOCATION "${unitfp8_STATIC_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${unitfp8_INCLUDE_DIR}"
    INTERFACE_LINK_LIBRARIES "${_unitfp8_private}")
  unset(_unitfp8_libdir)
  unset(_unitfp8_private)
  unset(_unitfp8_line)
  unset(_unitfp8_flags)
endif()
set(unitfp8_FOUND TRUE)
unset(_unitfp8_prefix)
