#pragma once
// trainer_state.json text -> TrainerState::from_json_text; an accepted state survives a round trip.
#include "fuzz_common.hpp"

#include <mpt/train/trainer_state.hpp>

namespace mpt_fuzz {

inline void fuzz_trainer_state(const std::uint8_t* data, std::size_t size) {
  accept_mpt_errors([&] {
    const auto state = mpt::train::TrainerState::from_json_text(as_text(data, size), "trainer_state.json");
    const auto written = state.to_json();
    const auto again = mpt::train::TrainerState::from_json_text(written.dump(2), "written trainer_state.json");
    require(again.to_json() == written, "trainer_state.json written and read back is the same state");
  });
}

}  // namespace mpt_fuzz
