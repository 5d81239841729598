#pragma once
// bert_qa's command line: the input split at NUL bytes into argv[1..] -> ArgumentParser::parse.
// Clean outcomes: arguments (exit 0), help (exit 0) or an error message (exit 2); an
// mpt::Error from a value the library refuses.
//
// One parser serves every input, as building one (110 flags) costs far more than a
// parse: parse starts from the defaults each time. Each input is parsed twice and the
// two results must agree, so nothing of one command line leaks into the next
// (test_fuzz_corpus also checks a reused parser against a fresh one).
#include "fuzz_common.hpp"

#include "../../examples/bert_qa/run_qa_args.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

namespace mpt_fuzz {

// Everything a parse produced, as text to compare.
inline std::string describe(const bert_qa::ParseResult& r) {
  nlohmann::ordered_json j = {{"exit_code", r.exit_code}, {"message", r.message}};
  if (r.args) {
    const bert_qa::Arguments& a = *r.args;
    const auto& m = a.model;
    const auto& d = a.data;
    const auto& x = a.mpt;
    j["model"] = {m.model_name_or_path, m.config_name, m.tokenizer_name, m.config_overrides};
    j["data"] = {d.dataset_name,
                 d.train_file,
                 d.validation_file,
                 d.test_file,
                 d.max_seq_length,
                 d.doc_stride,
                 d.pad_to_max_length,
                 d.max_answer_length,
                 d.n_best_size,
                 d.version_2_with_negative,
                 d.null_score_diff_threshold,
                 d.max_train_samples.value_or(-1),
                 d.max_eval_samples.value_or(-1),
                 d.max_predict_samples.value_or(-1),
                 d.preprocessing_num_workers.value_or(-1)};
    j["mpt"] = {x.num_threads.value_or(-1),
                x.master_weights,
                x.early_stopping_patience.value_or(-1),
                x.early_stopping_threshold,
                x.demo,
                x.demo_data_dir,
                x.demo_entities_per_paragraph,
                x.ddp_bucket_cap_mb,
                x.debug_ranks,
                x.profile};
    j["training"] = a.training.to_json();
    j["given"] = a.given;
    j["ignored"] = a.ignored;
  }
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);  // arguments need not be UTF-8
}

// argv of the input: "bert_qa", then the input split at NUL bytes.
inline std::vector<std::string> command_line(const std::uint8_t* data, std::size_t size) {
  std::vector<std::string> words{"bert_qa"};
  const std::string_view text = as_text(data, size);
  for (std::size_t begin = 0; !text.empty() && begin <= text.size();) {
    const std::size_t end = std::min(text.find('\0', begin), text.size());
    words.emplace_back(text.substr(begin, end - begin));
    begin = end + 1;
  }
  return words;
}

inline bert_qa::ParseResult parse_words(bert_qa::ArgumentParser& parser, const std::vector<std::string>& words) {
  std::vector<const char*> argv;
  for (const std::string& w : words) argv.push_back(w.c_str());
  return parser.parse(static_cast<int>(argv.size()), argv.data());
}

inline void fuzz_run_qa_args(const std::uint8_t* data, std::size_t size) {
  static bert_qa::ArgumentParser parser;
  const std::vector<std::string> words = command_line(data, size);
  accept_mpt_errors([&] {
    const bert_qa::ParseResult result = parse_words(parser, words);
    require(result.exit_code == 0 || result.exit_code == 2, "parse exits with 0 or 2");
    require(result.args.has_value() == (result.exit_code == 0 && result.message.empty()), "arguments, or help, or an error");
    require(result.exit_code == 0 || !result.message.empty(), "an error says what is wrong");
    require(describe(parse_words(parser, words)) == describe(result), "the same command line parses the same twice");
  });
}

}  // namespace mpt_fuzz
