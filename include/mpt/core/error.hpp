#pragma once
// mpt::Error: the one exception type the library throws for bad input, bad
// shapes and bad files. Messages name the place (file, tensor, operation),
// what was found, and what would fix it.

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace mpt {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {
// Streams every argument into one string: concat("shape ", s, " vs ", t).
template <class... Args>
std::string concat(Args&&... args) {
  std::ostringstream out;
  (out << ... << std::forward<Args>(args));
  return out.str();
}
}  // namespace detail

// throw_error("file ", path, ": truncated") builds the message and throws.
template <class... Args>
[[noreturn]] void throw_error(Args&&... args) {
  throw Error(detail::concat(std::forward<Args>(args)...));
}

}  // namespace mpt
