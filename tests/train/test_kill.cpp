// SIGKILL at any moment, including inside checkpoint writes: every restart resumes
// from the last complete checkpoint, no checkpoint is ever corrupt, and the final
// weights equal those of a run that was never interrupted.
#include <doctest/doctest.h>
#include <mpt/mpt.hpp>

#include <chrono>
#include <csignal>
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

// Starts the child; `kill_at` sets MPT_KILL_AT. Returns its pid.
pid_t spawn_child(const fs::path& out, const std::string& kill_at) {
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::string(*e).rfind("MPT_KILL_AT=", 0) != 0) env_strings.emplace_back(*e);
  }
  if (!kill_at.empty()) env_strings.push_back("MPT_KILL_AT=" + kill_at);
  std::vector<char*> env;
  for (auto& s : env_strings) env.push_back(s.data());
  env.push_back(nullptr);
  std::string program = MPT_TRAINER_KILL_CHILD, dir = out.string();
  char* argv[] = {program.data(), dir.data(), nullptr};
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
