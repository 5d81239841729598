// mpt_tokenize --vocab FILE [--cased]: one JSON string per input line, one
// {"tokens", "ids", "offsets"} object per output line (code-point offsets).
#include <mpt/mpt.hpp>

#include <nlohmann/json.hpp>

#include <cstring>
#include <iostream>
#include <optional>
#include <string>

int main(int argc, char** argv) {
  std::string vocab;
  std::optional<bool> lower;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--vocab") == 0 && i + 1 < argc) {
      vocab = argv[++i];
    } else if (std::strcmp(argv[i], "--cased") == 0) {
      lower = false;
    } else if (std::strcmp(argv[i], "--uncased") == 0) {
      lower = true;
    } else {
      std::cerr << "usage: mpt_tokenize --vocab FILE [--cased|--uncased] < lines_of_json_strings\n";
      return 2;
    }
  }
  if (vocab.empty()) {
    std::cerr << "mpt_tokenize: --vocab FILE is required\n";
    return 2;
  }
  try {
    const auto tokenizer = mpt::data::WordPieceTokenizer::from_vocab_file(vocab, lower);
    std::string line;
    std::size_t line_number = 0;
    while (std::getline(std::cin, line)) {
      ++line_number;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.empty()) continue;
      nlohmann::json input;
      try {
        input = nlohmann::json::parse(line);
      } catch (const nlohmann::json::exception& e) {
        mpt::throw_error("stdin line ", line_number, ": ", e.what());
      }
      if (!input.is_string()) mpt::throw_error("stdin line ", line_number, ": expected a JSON string");
      const auto encoding = tokenizer.encode(input.get_ref<const std::string&>());
      nlohmann::ordered_json out;
      out["tokens"] = tokenizer.tokens_of(encoding);
      out["ids"] = encoding.ids;
      auto offsets = nlohmann::ordered_json::array();
      for (const auto& span : encoding.offsets) offsets.push_back({span.begin, span.end});
      out["offsets"] = std::move(offsets);
      std::cout << out.dump(-1, ' ', true) << '\n';
    }
  } catch (const std::exception& e) {
    std::cerr << "mpt_tokenize: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
