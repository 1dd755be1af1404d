# Debian packages with CPack (`make package`, scripts/package.sh): configure
# with -DCMAKE_INSTALL_PREFIX=/usr and run cpack in the build directory.
#   libclaps-dev  component dev: static libraries, headers, CMake package, .pc
#   clapsd        components server + server_etc: the binary (libclaps linked
#                 in statically), web app, JS client, systemd unit,
#                 /etc/default/clapsd
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME claps)
set(CPACK_PACKAGE_VENDOR "libclaps")
set(CPACK_PACKAGE_CONTACT "libclaps maintainers <claps@localhost>")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
# Both packages share the project's one-line summary; the descriptions below
# follow it.
set(CPACK_DEBIAN_PACKAGE_SECTION devel)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)

set(CPACK_COMPONENTS_ALL dev)
if(TARGET clapsd)
  list(APPEND CPACK_COMPONENTS_ALL server server_etc)
endif()
set(CPACK_COMPONENTS_GROUPING ONE_PER_GROUP)
set(CPACK_COMPONENT_DEV_GROUP libclaps-dev)
set(CPACK_COMPONENT_SERVER_GROUP clapsd)
set(CPACK_COMPONENT_SERVER_ETC_GROUP clapsd)

set(CPACK_DEBIAN_LIBCLAPS-DEV_PACKAGE_NAME libclaps-dev)
set(CPACK_DEBIAN_LIBCLAPS-DEV_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_LIBCLAPS-DEV_DESCRIPTION
  "libclaps, static libraries and headers: it counts claps per article and user, commits them once per tick and fans out totals; with an LMDB store, a libuv driver, a Redis store and bus, and a C API (claps.h).")
# What claps-config.cmake and the .pc files look up to link the static libraries.
set(libclaps_dev_depends "pkg-config, libuv1-dev, liblmdb-dev")
if(CLAPS_REDIS)
  string(APPEND libclaps_dev_depends ", libhiredis-dev")
endif()
set(CPACK_DEBIAN_LIBCLAPS-DEV_PACKAGE_DEPENDS ${libclaps_dev_depends})

set(CPACK_DEBIAN_CLAPSD_PACKAGE_NAME clapsd)
set(CPACK_DEBIAN_CLAPSD_PACKAGE_SECTION net)
set(CPACK_DEBIAN_CLAPSD_DESCRIPTION
  "clapsd serves libclaps over WebSocket, REST and SSE with a demo web app, as a systemd service (clapsd.service, configured in /etc/default/clapsd).")
# The shared libraries clapsd links (libuv, libwebsockets, lmdb, hiredis,
# libjwt, simdjson, libstdc++) from dpkg-shlibdeps (package dpkg-dev).
set(CPACK_DEBIAN_CLAPSD_PACKAGE_SHLIBDEPS ON)
# /etc/default/clapsd is the operator's (kept on upgrade); the maintainer
# scripts reload systemd and stop the service on removal (deploy/debian/clapsd/).
set(clapsd_control ${PROJECT_SOURCE_DIR}/deploy/debian/clapsd)
set(CPACK_DEBIAN_CLAPSD_PACKAGE_CONTROL_EXTRA
  ${clapsd_control}/conffiles ${clapsd_control}/postinst ${clapsd_control}/prerm ${clapsd_control}/postrm)
set(CPACK_DEBIAN_CLAPSD_PACKAGE_CONTROL_STRICT_PERMISSION ON)

include(CPack)
