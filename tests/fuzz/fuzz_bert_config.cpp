// libFuzzer entry of fuzz_bert_config (scripts/fuzz.sh bert_config SECONDS); the body is in fuzz_bert_config.hpp.
#include "fuzz_bert_config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  mpt_fuzz::fuzz_bert_config(data, size);
  return 0;
}
