// make_synthetic_squad: writes train.json and dev.json, the synthetic SQuAD v1.1 task of
// bert_qa --demo (synthetic_squad.hpp tells what it holds).
//
//   make_synthetic_squad [--output_dir DIR] [--seed 42] [--train_paragraphs 6000] [--dev_paragraphs 300]
//                        [--entities_per_paragraph 1..4] [--questions_per_paragraph K]
#include "synthetic_squad.hpp"

#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>
#include <string>

int main(int argc, char** argv) {
  std::string output_dir = "synthetic_squad";
  bert_qa::SyntheticSquadOptions options;

  CLI::App app{"Writes train.json and dev.json, a synthetic SQuAD v1.1 set about invented entities."};
  app.add_option("--output_dir", output_dir, "directory for train.json and dev.json (created if missing)")->capture_default_str();
  app.add_option("--seed", options.seed, "random seed; the same flags give byte-identical files")
      ->capture_default_str()
      ->check(CLI::Validator(  // CLI11 would wrap -1 to 2^64 - 1
          [](std::string& text) { return text.starts_with('-') ? "seed must be a non-negative integer, got " + text : std::string(); }, "",
          "non-negative"));
  app.add_option("--train_paragraphs", options.train_paragraphs, "paragraphs in train.json")->capture_default_str()->check(CLI::Range(1, 10'000'000));
  app.add_option("--dev_paragraphs", options.dev_paragraphs, "paragraphs in dev.json")->capture_default_str()->check(CLI::Range(1, 10'000'000));
  app.add_option("--entities_per_paragraph", options.entities_per_paragraph,
                 "entities described per paragraph; above 1 the question's entity must be matched")
      ->capture_default_str()
      ->check(CLI::Range(1, 4));
  app.add_option("--questions_per_paragraph", options.questions_per_paragraph,
                 "questions per paragraph, one per fact before a fact is asked again in another phrasing; "
                 "0: one per fact, at most 6")
      ->capture_default_str()
      ->check(CLI::Range(0, 27));
  CLI11_PARSE(app, argc, argv);

  try {
    const auto s = bert_qa::write_synthetic_squad(output_dir, options);
    std::printf("wrote %zu paragraphs / %zu questions to %s and %zu / %zu to %s\n", s.train_paragraphs, s.train_questions, s.train.string().c_str(),
                s.dev_paragraphs, s.dev_questions, s.dev.string().c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
