// Replays every committed fuzz input through its target's function: the seed corpora
// (corpus/<name>/) and the reproducers of bugs fuzzing found (regressions/<name>/), so
// the ordinary and the sanitizer builds keep checking them. A file fails the test when
// its target lets anything but mpt::Error escape (see fuzz_common.hpp).
#include "fuzz_bert_config.hpp"
#include "fuzz_optimizer_state.hpp"
#include "fuzz_safetensors.hpp"
#include "fuzz_squad.hpp"
#include "fuzz_tokenizer.hpp"
#include "fuzz_trainer_state.hpp"
#include "fuzz_vocab.hpp"
#if MPT_FUZZ_HAVE_CLI11
#include "fuzz_run_qa_args.hpp"
#endif

#include <mpt/io/file.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

namespace {

using Target = void (*)(const std::uint8_t*, std::size_t);

// The files of corpus/<name>/ and regressions/<name>/, in a stable order.
std::vector<std::filesystem::path> inputs_of(const std::string& name) {
  std::vector<std::filesystem::path> files;
  for (const char* kind : {"corpus", "regressions"}) {
    const std::filesystem::path dir = std::filesystem::path(MPT_FUZZ_DIR) / kind / name;
    if (!std::filesystem::is_directory(dir)) continue;
    for (const auto& entry : std::filesystem::directory_iterator(dir))
      if (entry.is_regular_file()) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

void replay(const std::string& name, Target target) {
  const auto files = inputs_of(name);
  INFO("target ", name);
  REQUIRE_MESSAGE(!files.empty(), "tests/fuzz/corpus/", name, "/ holds no seed inputs");
  for (const auto& file : files) {
    const std::vector<std::byte> bytes = mpt::io::read_file(file);
    INFO("input ", file.string());
    CHECK_NOTHROW(target(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()));
  }
  MESSAGE(name, ": ", files.size(), " inputs replayed");
}

}  // namespace

TEST_CASE("fuzz corpus: safetensors") { replay("safetensors", mpt_fuzz::fuzz_safetensors); }
TEST_CASE("fuzz corpus: bert_config") { replay("bert_config", mpt_fuzz::fuzz_bert_config); }
TEST_CASE("fuzz corpus: squad") { replay("squad", mpt_fuzz::fuzz_squad); }
TEST_CASE("fuzz corpus: squad_jsonl") { replay("squad_jsonl", mpt_fuzz::fuzz_squad_jsonl); }
TEST_CASE("fuzz corpus: tokenizer") { replay("tokenizer", mpt_fuzz::fuzz_tokenizer); }
TEST_CASE("fuzz corpus: vocab") { replay("vocab", mpt_fuzz::fuzz_vocab); }
TEST_CASE("fuzz corpus: trainer_state") { replay("trainer_state", mpt_fuzz::fuzz_trainer_state); }
TEST_CASE("fuzz corpus: optimizer_state") { replay("optimizer_state", mpt_fuzz::fuzz_optimizer_state); }
#if MPT_FUZZ_HAVE_CLI11
TEST_CASE("fuzz corpus: run_qa_args") { replay("run_qa_args", mpt_fuzz::fuzz_run_qa_args); }
#endif

#if MPT_FUZZ_HAVE_CLI11
// The fuzz target parses every input with one parser; a user's program may too.
TEST_CASE("run_qa_args: a parser reused for many command lines gives what a new one gives") {
  std::vector<std::vector<std::string>> lines = {
      {"bert_qa", "--do_train", "--learning_rate", "3e-5", "--bf16", "--output_dir", "out", "--no_pad_to_max_length", "--max_train_samples", "8",
       "--master_weights", "split_master", "--logging_strategy", "epoch", "--num_threads", "1", "--cache_dir", "x", "--demo"},
      {"bert_qa", "--do_eval", "--validation_file", "dev.json"},
      {"bert_qa", "--do_trian"},
      {"bert_qa", "--learning_rate", "fast"},
      {"bert_qa", "--help"},
      {"bert_qa", "--save_strategy", "sometimes"},
      {"bert_qa", "--eval_strategy", "epoch", "--do_eval", "--pad_to_max_length", "false", "--version_2_with_negative"},
      {"bert_qa"},
  };
  for (const auto& file : inputs_of("run_qa_args")) {
    const std::vector<std::byte> bytes = mpt::io::read_file(file);
    lines.push_back(mpt_fuzz::command_line(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()));
  }
  const auto outcome = [](bert_qa::ArgumentParser& parser, const std::vector<std::string>& words) {
    try {
      return mpt_fuzz::describe(mpt_fuzz::parse_words(parser, words));
    } catch (const mpt::Error& e) {
      return std::string("mpt::Error: ") + e.what();
    }
  };
  bert_qa::ArgumentParser reused;
  for (int round = 0; round < 2; ++round) {
    for (const auto& words : lines) {
      bert_qa::ArgumentParser fresh;
      INFO("round ", round, ", command line of ", words.size(), " words: ", words.size() > 1 ? words[1] : std::string());
      CHECK(outcome(reused, words) == outcome(fresh, words));
    }
  }
}
#endif
