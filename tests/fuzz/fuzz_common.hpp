#pragma once
// What every fuzz target shares. A target is a plain function
// `void fuzz_<name>(const std::uint8_t* data, std::size_t size)` in fuzz_<name>.hpp:
// it feeds the bytes to the library and treats mpt::Error (the library's refusal of
// bad input) as a fine outcome. Anything else escaping it is a bug: a crash or a
// sanitizer report under libFuzzer (fuzz_<name>.cpp), a failure in test_fuzz_corpus,
// which replays corpus/<name>/ and regressions/<name>/ in the ordinary builds.

#include <mpt/core/error.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string_view>
#include <vector>

namespace mpt_fuzz {

// A promise the library broke on input it accepted (not a clean refusal).
class InvariantViolation : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

inline void require(bool ok, const char* what) {
  if (!ok) throw InvariantViolation(what);
}

inline std::string_view as_text(const std::uint8_t* data, std::size_t size) { return {reinterpret_cast<const char*>(data), size}; }

inline std::vector<std::byte> as_bytes(const std::uint8_t* data, std::size_t size) {
  std::vector<std::byte> bytes(size);
  if (size > 0) std::memcpy(bytes.data(), data, size);
  return bytes;
}

// Runs `body`; an mpt::Error it throws is the documented answer to bad input.
template <class Body>
void accept_mpt_errors(Body&& body) {
  try {
    body();
  } catch (const mpt::Error&) {
  }
}

}  // namespace mpt_fuzz
