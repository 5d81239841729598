// libFuzzer entry of fuzz_tokenizer (scripts/fuzz.sh tokenizer SECONDS); the body is in fuzz_tokenizer.hpp.
#include "fuzz_tokenizer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  mpt_fuzz::fuzz_tokenizer(data, size);
  return 0;
}
