// libFuzzer entry of fuzz_squad_jsonl (scripts/fuzz.sh squad_jsonl SECONDS); the body is in fuzz_squad.hpp.
#include "fuzz_squad.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  mpt_fuzz::fuzz_squad_jsonl(data, size);
  return 0;
}
