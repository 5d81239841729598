#pragma once
// bert_qa's command line: the input split at NUL bytes into argv[1..] -> ArgumentParser::parse.
// Clean outcomes: arguments (exit 0), help (exit 0) or an error message (exit 2); an
// mpt::Error from a value the library refuses.
#include "fuzz_common.hpp"

#include "../../examples/bert_qa/run_qa_args.hpp"

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

namespace mpt_fuzz {

inline void fuzz_run_qa_args(const std::uint8_t* data, std::size_t size) {
  std::vector<std::string> words{"bert_qa"};
  const std::string_view text = as_text(data, size);
  for (std::size_t begin = 0; !text.empty() && begin <= text.size();) {
    const std::size_t end = std::min(text.find('\0', begin), text.size());
    words.emplace_back(text.substr(begin, end - begin));
    begin = end + 1;
  }
  std::vector<const char*> argv;
  for (const std::string& w : words) argv.push_back(w.c_str());
  accept_mpt_errors([&] {
    bert_qa::ArgumentParser parser;
    const bert_qa::ParseResult result = parser.parse(static_cast<int>(argv.size()), argv.data());
    require(result.exit_code == 0 || result.exit_code == 2, "parse exits with 0 or 2");
    require(result.args.has_value() == (result.exit_code == 0 && result.message.empty()), "arguments, or help, or an error");
    require(result.exit_code == 0 || !result.message.empty(), "an error says what is wrong");
  });
}

}  // namespace mpt_fuzz
