#pragma once
// Reading a saved state (optimizer, loss scaler, LR schedule) whose JSON may lack a
// field or hold one of another type: nlohmann's exception becomes an mpt::Error that
// names what was being loaded.
//
//   detail::read_saved_state("DynamicLossScaler::load_state", [&] { scale_ = j.at("scale").get<float>(); ... });

#include <mpt/core/error.hpp>

#include <nlohmann/json.hpp>

#include <string_view>
#include <utility>

namespace mpt::optim::detail {

template <class Read>
void read_saved_state(std::string_view what, Read&& read) {
  try {
    std::forward<Read>(read)();
  } catch (const nlohmann::json::exception& e) {
    throw_error(what, ": the saved state lacks a field or holds one of another type (", e.what(),
                "); it was not written by mpt's save_optimizer_state, or it was edited");
  }
}

}  // namespace mpt::optim::detail
