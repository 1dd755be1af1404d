# Looks for what the Node.js addon (bindings/node) is built with: node, and the
# npm packages node-api-headers and node-addon-api as node resolves them from
# bindings/node (the repository's node_modules: root package.json).
# Sets CLAPS_NODE_FOUND, CLAPS_NODE_API_HEADERS_DIR, CLAPS_NODE_ADDON_API_DIR,
# and CLAPS_NODE_MISSING (what was not found, for the status message).
set(CLAPS_NODE_FOUND OFF)
set(CLAPS_NODE_MISSING "")
find_program(CLAPS_NODE_PROGRAM node)
if(NOT CLAPS_NODE_PROGRAM)
  set(CLAPS_NODE_MISSING "node")
  return()
endif()
foreach(pkg node-api-headers node-addon-api)
  execute_process(
    COMMAND ${CLAPS_NODE_PROGRAM} -p "require('path').dirname(require.resolve('${pkg}/package.json'))"
    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}/bindings/node
    OUTPUT_VARIABLE dir OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0 OR NOT EXISTS "${dir}")
    list(APPEND CLAPS_NODE_MISSING "the npm package ${pkg} (npm install)")
    set(dir "")
  endif()
  if(pkg STREQUAL "node-api-headers")
    set(CLAPS_NODE_API_HEADERS_DIR "${dir}/include")
  else()
    set(CLAPS_NODE_ADDON_API_DIR "${dir}")
  endif()
endforeach()
if(NOT CLAPS_NODE_MISSING)
  set(CLAPS_NODE_FOUND ON)
endif()
