#pragma once
// StopSignals: SIGINT and SIGTERM ask a training run to stop cleanly. While a
// StopSignals lives, the first such signal is recorded (the loop finishes its
// optimizer step, writes a checkpoint and returns); the handler then steps
// aside, so a second Ctrl-C ends the process at once, as people expect.

#include <csignal>

namespace mpt::train {

class StopSignals {
 public:
  StopSignals() {
    received_flag() = 0;
    struct sigaction action {};
    action.sa_handler = &StopSignals::handle;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESETHAND;  // the second signal takes the default action
    ::sigaction(SIGINT, &action, &previous_int_);
    ::sigaction(SIGTERM, &action, &previous_term_);
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
  ~StopSignals() {
    ::sigaction(SIGINT, &previous_int_, nullptr);
    ::sigaction(SIGTERM, &previous_term_, nullptr);
  }

  // 0, or the signal that asked to stop (SIGINT or SIGTERM).
  static int received() noexcept { return received_flag(); }

 private:
  static volatile std::sig_atomic_t& received_flag() noexcept {
    static volatile std::sig_atomic_t flag = 0;
    return flag;
  }
  static void handle(int signal) noexcept {
    if (received_flag() == 0) received_flag() = signal;
  }
  struct sigaction previous_int_ {
  }, previous_term_{};
};

}  // namespace mpt::train
