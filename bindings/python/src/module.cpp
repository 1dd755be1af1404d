// The C++ part of the Python package claps (bindings/python/claps/__init__.py
// re-exports it): claps::engine and the stores, bound with pybind11.
#include "binding.hpp"

#include <claps/version.hpp>

PYBIND11_MODULE(_claps, m) {
  m.doc() = "libclaps bound for Python: see the package claps";
  m.attr("__version__") = CLAPS_VERSION_STRING;
  claps::python::bind_errors(m);
  claps::python::bind_stores(m);
  claps::python::bind_engine(m);
}
