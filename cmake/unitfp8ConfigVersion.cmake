# Version check for find_package(unitfp8 X.Y): the version is read from the installed header's
# UNITFP8_VERSION_* macros. Compatible: the same major version and at least the requested one;
# for 0.x the same minor version too.

get_filename_component(_unitfp8_header "${CMAKE_CURRENT_LIST_DIR}/../../../include/unitfp8.h" ABSOLUTE)
set(PACKAGE_VERSION "")
if(EXISTS "${_unitfp8_header}")
  foreach(_part MAJOR MINOR PATCH)
    file(STRINGS "${_unitfp8_header}" _line REGEX "^#define UNITFP8_VERSION_${_part} [0-9]+$")
    string(REGEX REPLACE "^#define UNITFP8_VERSION_${_part} ([0-9]+)$" "\\1" _unitfp8_${_part} "${_line}")
  endforeach()
  set(PACKAGE_VERSION "${_unitfp8_MAJOR}.${_unitfp8_MINOR}.${_unitfp8_PATCH}")
endif()

if(NOT PACKAGE_VERSION MATCHES "^[0-9]+\\.[0-9]+\\.[0-9]+$")
  set(PACKAGE_VERSION_UNSUITABLE TRUE)
elseif(PACKAGE_FIND_VERSION)
  if(PACKAGE_VERSION VERSION_LESS PACKAGE_FIND_VERSION
     OR NOT PACKAGE_FIND_VERSION_MAJOR EQUAL _unitfp8_MAJOR
     OR (_unitfp8_MAJOR EQUAL 0 AND PACKAGE_FIND_VERSION_COUNT GREATER 1
         AND NOT PACKAGE_FIND_VERSION_MINOR EQUAL _unitfp8_MINOR))
    set(PACKAGE_VERSION_COMPATIBLE FALSE)
  else()
    set(PACKAGE_VERSION_COMPATIBLE TRUE)
    if(PACKAGE_VERSION VERSION_EQUAL PACKAGE_FIND_VERSION)
      set(PACKAGE_VERSION_EXACT TRUE)
    endif()
  endif()
else()
  set(PACKAGE_VERSION_COMPATIBLE TRUE)
endif()
unset(_unitfp8_header)
