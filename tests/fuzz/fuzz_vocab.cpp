// libFuzzer entry of fuzz_vocab (scripts/fuzz.sh vocab SECONDS); the body is in fuzz_vocab.hpp.
#include "fuzz_vocab.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  mpt_fuzz::fuzz_vocab(data, size);
  return 0;
}
