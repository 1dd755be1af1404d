// The defaults of claps::store: a store of one node keeps no journal and
// decides nothing across nodes.
#include <claps/error.hpp>
#include <claps/store.hpp>

namespace claps {

std::error_code store::read_journal(journal_table, std::string_view, std::size_t, std::vector<journal_row>&,
                                    std::string& next) {
  next.clear();
  return make_error_code(errc::bad_request);
}

std::error_code store::arbitrate(std::span<const op_intent>, arbitrate_handler) {
  return make_error_code(errc::store_disconnected);
}

}  // namespace claps
