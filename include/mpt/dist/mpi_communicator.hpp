#pragma once
// MpiCommunicator: the Communicator over MPI (Open MPI from Debian: libopenmpi-dev,
// openmpi-bin). Not part of mpt/mpt.hpp: a program that wants it includes this
// header and links MPI (CMake: the mpt_mpi target, which also defines MPT_WITH_MPI).
//
//   int main(int argc, char** argv) {
//     mpt::dist::MpiCommunicator comm(argc, argv);    // MPI_Init_thread (FUNNELED) ... MPI_Finalize
//     trainer.set_communicator(comm);
//
// Only the thread that created it calls MPI (mpt's worker threads never do).
// launched_by_mpirun() tells a program whether to create one at all.

#ifndef MPT_SINGLE_HEADER  // single_include/mpt/mpt.hpp holds the Communicator already
#include <mpt/dist/communicator.hpp>
#endif

#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

namespace mpt::dist {

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(int& argc, char**& argv) {
    int provided = 0;
    if (MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
      throw_error("MPI_Init_thread failed: start the program with mpirun");
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    // Errors come back as codes (checked below) instead of ending the job silently.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  }
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;
  ~MpiCommunicator() override {
    if (!pending_.empty()) MPI_Waitall(static_cast<int>(pending_.size()), pending_.data(), MPI_STATUSES_IGNORE);
    MPI_Finalize();
  }

  // Whether this process was started by mpirun / mpiexec (Open MPI, MPICH, PMIx).
  static bool launched_by_mpirun() noexcept {
    for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE"})
      if (std::getenv(v) != nullptr) return true;
    return false;
  }

  int rank() const noexcept override { return rank_; }
  int size() const noexcept override { return size_; }

  void allreduce_sum(std::span<float> data) override {
    for (auto [p, n] : chunks(data.data(), data.size()))
      check(MPI_Allreduce(MPI_IN_PLACE, p, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
  }
  void allreduce_sum(std::span<double> data) override {
    for (auto [p, n] : chunks(data.data(), data.size()))
      check(MPI_Allreduce(MPI_IN_PLACE, p, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
  }
  void start_allreduce_sum(std::span<float> data) override {
    for (auto [p, n] : chunks(data.data(), data.size())) {
      MPI_Request request;
      check(MPI_Iallreduce(MPI_IN_PLACE, p, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &request), "MPI_Iallreduce");
      pending_.push_back(request);
    }
  }
  void progress() override {
    if (pending_.empty()) return;
    int done = 0;
    check(MPI_Testall(static_cast<int>(pending_.size()), pending_.data(), &done, MPI_STATUSES_IGNORE), "MPI_Testall");
    if (done) pending_.clear();
  }
  void wait_all() override {
    if (pending_.empty()) return;
    check(MPI_Waitall(static_cast<int>(pending_.size()), pending_.data(), MPI_STATUSES_IGNORE), "MPI_Waitall");
    pending_.clear();
  }
  void broadcast(std::span<std::byte> data, int root) override {
    for (auto [p, n] : chunks(data.data(), data.size())) check(MPI_Bcast(p, n, MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast");
  }
  void barrier() override { check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier"); }
  std::vector<std::string> allgather(const std::string& mine) override {
    int length = static_cast<int>(mine.size());
    std::vector<int> lengths(static_cast<std::size_t>(size_)), offsets(static_cast<std::size_t>(size_));
    check(MPI_Allgather(&length, 1, MPI_INT, lengths.data(), 1, MPI_INT, MPI_COMM_WORLD), "MPI_Allgather");
    int total = 0;
    for (int r = 0; r < size_; ++r) offsets[static_cast<std::size_t>(r)] = total, total += lengths[static_cast<std::size_t>(r)];
    std::string all(static_cast<std::size_t>(total), '\0');
    check(MPI_Allgatherv(mine.data(), length, MPI_CHAR, all.data(), lengths.data(), offsets.data(), MPI_CHAR, MPI_COMM_WORLD), "MPI_Allgatherv");
    std::vector<std::string> out;
    for (int r = 0; r < size_; ++r)
      out.push_back(
          all.substr(static_cast<std::size_t>(offsets[static_cast<std::size_t>(r)]), static_cast<std::size_t>(lengths[static_cast<std::size_t>(r)])));
    return out;
  }
  [[noreturn]] void abort(const std::string& message, int code) override {
    std::fprintf(stderr, "%s\n", message.c_str());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code);
    std::exit(code);  // MPI_Abort does not return; this keeps [[noreturn]] honest
  }

 private:
  // MPI counts are int: buffers beyond 2^31 elements go in pieces.
  template <class T>
  static std::vector<std::pair<T*, int>> chunks(T* data, std::size_t n) {
    constexpr std::size_t most = INT_MAX / 2;
    std::vector<std::pair<T*, int>> out;
    for (std::size_t at = 0; at < n; at += most) out.emplace_back(data + at, static_cast<int>(std::min(most, n - at)));
    return out;
  }
  void check(int code, const char* what) const {
    if (code == MPI_SUCCESS) return;
    char text[MPI_MAX_ERROR_STRING];
    int length = 0;
    MPI_Error_string(code, text, &length);
    throw_error("rank ", rank_, ": ", what, " failed: ", std::string(text, static_cast<std::size_t>(length)));
  }

  int rank_ = 0, size_ = 1;
  std::vector<MPI_Request> pending_;
};

}  // namespace mpt::dist
