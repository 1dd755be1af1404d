# cmake -DPAGE=docs/bindings/c.md -DOUT=file.c -P extract_example.cmake
# Writes the ```c block between the page's "example: begin" and "example: end"
# markers to OUT, so that the suite compiles and runs what the page shows.
file(READ ${PAGE} page)
string(REGEX MATCH "example: begin -->\n```c\n(.*)\n```\n<!-- [^\n]* example: end" found "${page}")
if(NOT found)
  message(FATAL_ERROR "${PAGE} has no ```c block between its example markers")
endif()
file(WRITE ${OUT}.new "${CMAKE_MATCH_1}\n")
file(COPY_FILE ${OUT}.new ${OUT} ONLY_IF_DIFFERENT)
