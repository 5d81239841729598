// libFuzzer entry of fuzz_safetensors (scripts/fuzz.sh safetensors SECONDS); the body is in fuzz_safetensors.hpp.
#include "fuzz_safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  mpt_fuzz::fuzz_safetensors(data, size);
  return 0;
}
