// claps.Error and the handling of exceptions raised by Python callbacks.
#include "binding.hpp"

#include <string>

namespace claps::python {

namespace {

// Owned by the module (module_::add_object keeps a reference), which lives
// until the interpreter ends.
PyObject* error_type = nullptr;

}  // namespace

void bind_errors(py::module_& m) {
  error_type = PyErr_NewExceptionWithDoc(
      "claps.Error",
      "An error of libclaps (claps::errc), raised at once by a call that failed; nothing was done.\n\n"
      "Attributes:\n"
      "  code: the wire name, as docs/protocol.md's error frames carry it (e.g. 'invalid_article';\n"
      "        'bad_request' for invalid_user, invalid_op_id, invalid_count; 'unavailable' for every\n"
      "        store error).\n"
      "  name: the code's own name (claps::errc_name, e.g. 'invalid_count', 'store_full').\n"
      "  reason: why, when clients may act on it ('store_full'), else ''.\n"
      "  message: a sentence a user can act on.",
      PyExc_Exception, nullptr);
  if (error_type == nullptr) throw py::error_already_set();
  m.add_object("Error", py::handle(error_type));
}

void raise_error(std::error_code ec, std::string_view message) {
  const std::string text = message.empty() ? ec.message() : std::string(message);
  const std::string code(wire_name(ec));
  py::object type = py::reinterpret_borrow<py::object>(error_type);
  py::object exc = type(code + ": " + text);
  exc.attr("code") = code;
  exc.attr("name") = std::string(errc_name(ec));
  exc.attr("reason") = std::string(wire_reason(ec));
  exc.attr("message") = text;
  PyErr_SetObject(error_type, exc.ptr());
  throw py::error_already_set();
}

void raise_misuse(const char* message) {
  PyErr_SetString(PyExc_RuntimeError, message);
  throw py::error_already_set();
}

void callback_errors::keep(py::error_already_set& e) {
  if (!first_) {
    first_.emplace(std::move(e));
    return;
  }
  e.restore();
  PyErr_WriteUnraisable(nullptr);
}

void callback_errors::rethrow_first() {
  if (!first_) return;
  py::error_already_set e = std::move(*first_);
  first_.reset();
  throw e;
}

}  // namespace claps::python
