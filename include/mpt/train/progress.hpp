#pragma once
// ProgressCallback: what a person watching the run sees.
//
// On a terminal: one line, redrawn in place (tqdm's layout), with the running loss
//    37%|███▋      | 370/1000 [00:12<00:20, 30.10 it/s, loss=1.234]
// and log entries printed above it as Python dicts, as transformers prints them;
// evaluations get their own bar. When stdout is not a terminal (CI, a pipe, a
// file) or --disable_tqdm: no bar, plain lines — every log entry, with the step,
// rate and time left in front.

#include <mpt/train/callbacks.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>

#include <unistd.h>

namespace mpt::train {

// A double as Python's repr() writes it: shortest round-trip digits, exponent form
// below 1e-4 and from 1e16, two-digit exponents ("4.5e-05", "0.5", "12.0").
inline std::string python_float(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  std::string s(buf, r.ptr);
  const auto e = s.find('e');
  const int exp = std::stoi(s.substr(e + 1));
  std::string mantissa = s.substr(0, e);
  const bool negative = mantissa[0] == '-';
  if (negative) mantissa.erase(0, 1);
  std::string digits;
  for (char c : mantissa)
    if (c != '.') digits += c;
  std::string out;
  if (exp >= -4 && exp < 16) {
    if (exp < 0) {
      out = "0." + std::string(static_cast<std::size_t>(-exp - 1), '0') + digits;
    } else if (static_cast<int>(digits.size()) <= exp + 1) {
      out = digits + std::string(static_cast<std::size_t>(exp + 1) - digits.size(), '0') + ".0";
    } else {
      out = digits.substr(0, static_cast<std::size_t>(exp + 1)) + "." + digits.substr(static_cast<std::size_t>(exp + 1));
    }
  } else {
    out = digits.substr(0, 1) + (digits.size() > 1 ? "." + digits.substr(1) : "");
    char e_buf[16];
    std::snprintf(e_buf, sizeof e_buf, "e%c%02d", exp < 0 ? '-' : '+', std::abs(exp));
    out += e_buf;
  }
  return negative ? "-" + out : out;
}

// A JSON object printed as a Python dict: {'loss': 1.2345, 'epoch': 0.5}.
inline std::string python_dict(const nlohmann::ordered_json& j) {
  std::string s = "{";
  bool first = true;
  for (const auto& [key, value] : j.items()) {
    s += (first ? "'" : ", '") + key + "': ";
    first = false;
    if (value.is_number_float()) {
      s += python_float(value.get<double>());
    } else if (value.is_string()) {
      s += "'" + value.get<std::string>() + "'";
    } else if (value.is_boolean()) {
      s += value.get<bool>() ? "True" : "False";
    } else if (value.is_null()) {
      s += "None";
    } else {
      s += value.dump();
    }
  }
  return s + "}";
}

// h:mm:ss or mm:ss, as tqdm.
inline std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto total = static_cast<long long>(seconds + 0.5);
  char buf[32];
  if (total >= 3600) {
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", total / 3600, total / 60 % 60, total % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%02lld:%02lld", total / 60, total % 60);
  }
  return buf;
}

// One bar: total units, a smoothed rate, redrawn on the line it owns.
class ProgressBar {
 public:
  using clock = std::chrono::steady_clock;
  ProgressBar(std::FILE* out, std::string label, std::size_t total, std::size_t start = 0)
      : out_(out), label_(std::move(label)), total_(total), done_(start), first_(start), started_(clock::now()) {}

  void update(std::size_t done, const std::string& postfix = {}) {
    done_ = done;
    postfix_ = postfix;
    const auto now = clock::now();
    if (done_ < total_ && now - last_draw_ < std::chrono::milliseconds(100)) return;  // at most 10 redraws a second
    last_draw_ = now;
    draw();
  }
  // Prints a line above the bar and redraws the bar under it.
  void print_above(const std::string& line) {
    std::fprintf(out_, "\r\033[K%s\n", line.c_str());
    draw();
  }
  void close() {
    if (closed_) return;
    draw();
    std::fputc('\n', out_);
    std::fflush(out_);
    closed_ = true;
  }
  double rate() const {
    const double elapsed = std::chrono::duration<double>(clock::now() - started_).count();
    return elapsed > 0 ? static_cast<double>(done_ - first_) / elapsed : 0.0;
  }
  double elapsed() const { return std::chrono::duration<double>(clock::now() - started_).count(); }

 private:
  void draw() {
    const double fraction = total_ > 0 ? static_cast<double>(done_) / static_cast<double>(total_) : 1.0;
    constexpr int width = 20;
    const double filled = fraction * width;
    static const char* const partial[] = {"", "▏", "▎", "▍", "▌", "▋", "▊", "▉"};
    std::string bar;
    const int whole = static_cast<int>(filled);
    for (int i = 0; i < whole; ++i) bar += "█";
    int cells = whole;
    if (whole < width) {
      bar += partial[static_cast<int>((filled - whole) * 8)];
      ++cells;
    }
    bar += std::string(static_cast<std::size_t>(width - cells), ' ');
    const double r = rate();
    const double left = r > 0 ? static_cast<double>(total_ - done_) / r : NAN;
    char speed[32];
    if (r >= 1.0 || r == 0.0) {
      std::snprintf(speed, sizeof speed, "%.2f it/s", r);
    } else {
      std::snprintf(speed, sizeof speed, "%.2f s/it", 1.0 / r);
    }
    std::fprintf(out_, "\r\033[K%s%3d%%|%s| %zu/%zu [%s<%s, %s%s%s]", label_.c_str(), static_cast<int>(fraction * 100), bar.c_str(), done_, total_,
                 format_duration(elapsed()).c_str(), format_duration(left).c_str(), speed, postfix_.empty() ? "" : ", ", postfix_.c_str());
    std::fflush(out_);
  }

  std::FILE* out_;
  std::string label_;
  std::size_t total_, done_, first_;
  clock::time_point started_, last_draw_{};
  std::string postfix_;
  bool closed_ = false;
};

class ProgressCallback : public TrainerCallback {
 public:
  // interactive: draw bars (default: stdout is a terminal).
  explicit ProgressCallback(std::FILE* out = stdout) : ProgressCallback(out, ::isatty(::fileno(out)) != 0) {}
  ProgressCallback(std::FILE* out, bool interactive) : out_(out), interactive_(interactive) {}
  std::string name() const override { return "ProgressCallback"; }
  bool main_process_only() const override { return true; }

  void on_train_begin(const TrainingArguments& args, const TrainerState& state, TrainerControl&) override {
    bars_ = interactive_ && !args.disable_tqdm;
    start_step_ = state.global_step;
    started_ = ProgressBar::clock::now();
    if (bars_) {
      train_bar_.emplace(out_, "", static_cast<std::size_t>(state.max_steps), static_cast<std::size_t>(state.global_step));
    }
  }
  void on_step_end(const TrainingArguments&, const TrainerState& state, TrainerControl&, const StepInfo& step) override {
    running_loss_ = running_loss_ < 0 ? step.loss : 0.9 * running_loss_ + 0.1 * step.loss;
    if (train_bar_) train_bar_->update(static_cast<std::size_t>(state.global_step), "loss=" + short_number(running_loss_));
  }
  void on_log(const TrainingArguments&, const TrainerState& state, TrainerControl&, const nlohmann::ordered_json& logs) override {
    if (train_bar_) {
      train_bar_->print_above(python_dict(logs));
      return;
    }
    const double elapsed = std::chrono::duration<double>(ProgressBar::clock::now() - started_).count();
    const double rate = elapsed > 0 ? static_cast<double>(state.global_step - start_step_) / elapsed : 0.0;
    const double left = rate > 0 ? static_cast<double>(state.max_steps - state.global_step) / rate : NAN;
    std::fprintf(out_, "[step %lld/%lld, %.2f it/s, %s left] %s\n", static_cast<long long>(state.global_step),
                 static_cast<long long>(state.max_steps), rate, format_duration(left).c_str(), python_dict(logs).c_str());
    std::fflush(out_);
  }
  void on_prediction_step(const TrainingArguments&, const TrainerState&, TrainerControl&, std::size_t done, std::size_t total) override {
    if (!bars_) return;
    if (!eval_bar_) {
      if (train_bar_) std::fputc('\n', out_);
      eval_bar_.emplace(out_, "eval ", total);
    }
    eval_bar_->update(done);
    if (done == total) {
      eval_bar_->close();
      eval_bar_.reset();
      if (train_bar_) std::fprintf(out_, "\033[1A");  // back onto the training bar's line
    }
  }
  void on_train_end(const TrainingArguments&, const TrainerState&, TrainerControl&) override {
    if (train_bar_) train_bar_->close();
    train_bar_.reset();
  }

 private:
  static std::string short_number(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.4g", v);
    return buf;
  }
  std::FILE* out_;
  bool interactive_;
  bool bars_ = false;
  std::optional<ProgressBar> train_bar_, eval_bar_;
  double running_loss_ = -1.0;
  std::int64_t start_step_ = 0;
  ProgressBar::clock::time_point started_{};
};

}  // namespace mpt::train
