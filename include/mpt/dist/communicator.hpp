#pragma once
// Communicator: what data-parallel training needs from the processes it runs on
// — rank and size, all-reduce of flat buffers (blocking, or started and waited
// for, so gradients travel while backward computes the rest), broadcast,
// barrier, all-gather of small strings, and an abort that ends every process.
// It sees buffers, never layers.
//
//   SingleProcess   the default: one process, every call a no-op
//   MpiCommunicator dist/mpi_communicator.hpp, over Open MPI (compiled only where
//                   MPI is found; include it explicitly: mpt/mpt.hpp does not)

#include <mpt/core/error.hpp>

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

namespace mpt::dist {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const noexcept = 0;
  virtual int size() const noexcept = 0;
  bool is_main() const noexcept { return rank() == 0; }

  // data = the sum of every rank's data, on every rank.
  virtual void allreduce_sum(std::span<float> data) = 0;
  virtual void allreduce_sum(std::span<double> data) = 0;
  // The same, started now and finished by wait_all(); progress() lets the transport
  // move (call it between pieces of computation). `data` must not be touched until then.
  virtual void start_allreduce_sum(std::span<float> data) = 0;
  virtual void progress() = 0;
  virtual void wait_all() = 0;

  virtual void broadcast(std::span<std::byte> data, int root) = 0;
  virtual void barrier() = 0;
  // Every rank's string, in rank order, on every rank (small payloads: checksums, names).
  virtual std::vector<std::string> allgather(const std::string& mine) = 0;
  // Ends every process of the job with `message` (printed by this rank) and exit `code`.
  [[noreturn]] virtual void abort(const std::string& message, int code) = 0;
};

class SingleProcess final : public Communicator {
 public:
  int rank() const noexcept override { return 0; }
  int size() const noexcept override { return 1; }
  void allreduce_sum(std::span<float>) override {}
  void allreduce_sum(std::span<double>) override {}
  void start_allreduce_sum(std::span<float>) override {}
  void progress() override {}
  void wait_all() override {}
  void broadcast(std::span<std::byte>, int) override {}
  void barrier() override {}
  std::vector<std::string> allgather(const std::string& mine) override { return {mine}; }
  [[noreturn]] void abort(const std::string& message, int code) override {
    std::fprintf(stderr, "%s\n", message.c_str());
    std::exit(code);
  }
};

// The one-process communicator everything uses unless given another.
inline Communicator& single_process() {
  static SingleProcess instance;
  return instance;
}

}  // namespace mpt::dist
