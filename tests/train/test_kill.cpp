// SIGKILL at any moment, including inside checkpoint writes: every restart resumes
// from the last complete checkpoint, no checkpoint is ever corrupt, and the final
// weights equal those of a run that was never interrupted.
//
// The process killed is this test program itself, running only the "kill test child"
// case below (skipped in a normal run): no second program to build, and the Trainer it
// runs is the one test_trainer.cpp instantiates (test_train is a unity build).
#include "trainer_fixtures.hpp"

#include <doctest/doctest.h>
#include <mpt/mpt.hpp>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace {
namespace fs = std::filesystem;

// (doctest splits a --test-case filter at commas: none in the name.)
constexpr const char* child_case = "kill test child: the tiny BERT trains 24 steps and resumes from its last checkpoint";

// Starts the child: this program, running `child_case` alone, training into `out`;
// `kill_at` sets MPT_KILL_AT. Returns its pid.
pid_t spawn_child(const fs::path& out, const std::string& kill_at) {
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string variable = *e;
    if (variable.rfind("MPT_KILL_AT=", 0) != 0 && variable.rfind("MPT_KILL_CHILD_OUTPUT_DIR=", 0) != 0) env_strings.push_back(variable);
  }
  if (!kill_at.empty()) env_strings.push_back("MPT_KILL_AT=" + kill_at);
  env_strings.push_back("MPT_KILL_CHILD_OUTPUT_DIR=" + out.string());
  std::vector<char*> env;
  for (auto& s : env_strings) env.push_back(s.data());
  env.push_back(nullptr);
  std::string program = "/proc/self/exe", only = std::string("--test-case=") + child_case, no_skip = "--no-skip", quiet = "--minimal";
  char* argv[] = {program.data(), only.data(), no_skip.data(), quiet.data(), nullptr};
  pid_t pid = 0;
  REQUIRE(posix_spawn(&pid, program.c_str(), nullptr, nullptr, argv, env.data()) == 0);
  return pid;
}

int wait_child(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}

void check_every_checkpoint(const fs::path& out) {
  for (const auto& c : mpt::train::list_checkpoints(out)) {
    CAPTURE(c.folder);
    CHECK_NOTHROW(mpt::train::verify_checkpoint(c.folder));
  }
}

std::vector<std::byte> final_model(const fs::path& out) { return mpt::io::read_file(out / "final" / "model.safetensors"); }
}  // namespace

// The child the test below starts and kills: trains the tiny BERT (bf16, split masters)
// for 24 steps with a checkpoint every 2, resuming from the output folder's last
// checkpoint as run_qa does, and saves the final model to OUTPUT_DIR/final.
//   MPT_KILL_CHILD_OUTPUT_DIR=<folder>
//   MPT_KILL_AT=<fault point>:<n>   SIGKILL itself at the n-th time that point is reached
//                                   ("model written", "optimizer written", "files written",
//                                   "before rename", "renamed")
TEST_CASE(child_case* doctest::skip()) {
  const char* output_dir = std::getenv("MPT_KILL_CHILD_OUTPUT_DIR");
  REQUIRE_MESSAGE(output_dir != nullptr, "run by the kill test only, with MPT_KILL_CHILD_OUTPUT_DIR set");
  using P = mpt::precision::bf16_mixed;
  if (const char* at = std::getenv("MPT_KILL_AT")) {
    const std::string spec = at;
    const auto colon = spec.rfind(':');
    const std::string point = spec.substr(0, colon);
    const int n = std::stoi(spec.substr(colon + 1));
    mpt::train::checkpoint_fault_hook() = [point, n, seen = 0](std::string_view where) mutable {
      if (where == point && ++seen == n) std::raise(SIGKILL);
    };
  }
  mpt::train::TrainingArguments args;
  args.output_dir = output_dir;
  args.do_train = true;
  args.learning_rate = 2e-3;
  args.warmup_ratio = 0.1;
  args.per_device_train_batch_size = 4;
  args.gradient_accumulation_steps = 2;
  args.max_steps = 24;
  args.logging_steps = 1;
  args.save_steps = 2;
  args.save_total_limit = 3;
  args.seed = 5;
  const auto features = fixtures::random_qa_features(48, 24, 9);
  mpt::nn::BertForQuestionAnswering<P> model(fixtures::tiny_bert_config());
  model.init_weights(13);
  mpt::train::Trainer<decltype(model), mpt::optim::AdamW<P, mpt::optim::weights::split_master>> trainer(model, args);
  std::FILE* null = std::fopen("/dev/null", "w");
  trainer.set_output(null);
  trainer.set_progress(std::make_unique<mpt::train::ProgressCallback>(null, false));
  const auto checkpoint = mpt::train::detect_checkpoint(args);
  trainer.train(mpt::train::QaTrainSet{features}, checkpoint);
  trainer.save_model(fs::path(args.output_dir) / "final");
  std::fclose(null);
}

TEST_CASE("SIGKILL at 20+ moments: restarts resume from the last complete checkpoint, the result is the uninterrupted one") {
  const fs::path reference = fs::temp_directory_path() / ("mpt_kill_reference_" + std::to_string(::getpid()));
  const fs::path out = fs::temp_directory_path() / ("mpt_kill_run_" + std::to_string(::getpid()));
  fs::remove_all(reference);
  fs::remove_all(out);

  const auto started = std::chrono::steady_clock::now();
  REQUIRE(WEXITSTATUS(wait_child(spawn_child(reference, ""))) == 0);
  const auto full_us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started).count();
  const auto expected = final_model(reference);

  // Kills inside checkpoint writes, at each named point (the n-th time it is reached in that process).
  const std::vector<std::string> points = {"model written:1", "optimizer written:2", "files written:1", "before rename:3",
                                           "renamed:2",       "model written:4",     "before rename:1", "optimizer written:5"};
  int killed = 0;
  for (const std::string& point : points) {
    const int status = wait_child(spawn_child(out, point));
    CAPTURE(point);
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) ++killed;
    check_every_checkpoint(out);
  }
  // Kills at random moments of a run (from the start of the process, so also while loading a checkpoint);
  // a run that finishes first is wiped, and the next starts again from nothing.
  const unsigned seed = std::random_device{}();
  MESSAGE("random kill times: seed " << seed << ", uninterrupted run " << full_us / 1000 << " ms");
  std::mt19937 rng(seed);
  std::uniform_int_distribution<long long> when(0, full_us);
  int random_kills = 0, runs = 0;
  for (; random_kills < 14 && runs < 80; ++runs) {
    const pid_t pid = spawn_child(out, "");
    std::this_thread::sleep_for(std::chrono::microseconds(when(rng)));
    ::kill(pid, SIGKILL);
    const int status = wait_child(pid);
    check_every_checkpoint(out);
    if (WIFSIGNALED(status)) {
      ++random_kills;
    } else {
      CHECK(final_model(out) == expected);  // it finished before the kill: the same result
      fs::remove_all(out);
    }
  }
  killed += random_kills;
  MESSAGE(killed << " runs killed (" << random_kills << " at random moments, in " << runs << " runs)");
  CHECK(killed >= 20);

  // The last restart runs to the end.
  REQUIRE(WEXITSTATUS(wait_child(spawn_child(out, ""))) == 0);
  check_every_checkpoint(out);
  CHECK(final_model(out) == expected);
  fs::remove_all(reference);
  fs::remove_all(out);
}
