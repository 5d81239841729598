// libFuzzer entry of fuzz_run_qa_args (scripts/fuzz.sh run_qa_args SECONDS); the body is in fuzz_run_qa_args.hpp.
#include "fuzz_run_qa_args.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  mpt_fuzz::fuzz_run_qa_args(data, size);
  return 0;
}
