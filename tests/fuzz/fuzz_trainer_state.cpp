// libFuzzer entry of fuzz_trainer_state (scripts/fuzz.sh trainer_state SECONDS); the body is in fuzz_trainer_state.hpp.
#include "fuzz_trainer_state.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  mpt_fuzz::fuzz_trainer_state(data, size);
  return 0;
}
