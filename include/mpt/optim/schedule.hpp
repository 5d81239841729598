#pragma once
// Learning-rate schedules with transformers' formulas (src/transformers/optimization.py),
// evaluated in double as Python does: lr(step) = base_lr * lr_lambda(step), where
// `step` counts optimizer steps taken so far (0 for the first update, as LambdaLR).
//
//   constant               1
//   constant_with_warmup   step/warmup during warmup, then 1
//   linear                 warmup, then (total - step)/(total - warmup), floored at 0
//   cosine                 warmup, then 0.5(1 + cos(pi * num_cycles * 2 * progress))
//   cosine_with_restarts   warmup, then 0.5(1 + cos(pi * ((num_cycles * progress) mod 1))), 0 after the end
//   polynomial             warmup, then (lr - lr_end)(1 - progress)^power + lr_end, lr_end after the end

#include <mpt/core/error.hpp>
#include <mpt/optim/detail/saved_state.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <string>
#include <string_view>

namespace mpt::optim {

enum class ScheduleKind { constant, constant_with_warmup, linear, cosine, cosine_with_restarts, polynomial };

inline std::string_view schedule_name(ScheduleKind k) noexcept {
  switch (k) {
    case ScheduleKind::constant:
      return "constant";
    case ScheduleKind::constant_with_warmup:
      return "constant_with_warmup";
    case ScheduleKind::linear:
      return "linear";
    case ScheduleKind::cosine:
      return "cosine";
    case ScheduleKind::cosine_with_restarts:
      return "cosine_with_restarts";
    case ScheduleKind::polynomial:
      return "polynomial";
  }
  return "?";
}

// The names of TrainingArguments.lr_scheduler_type.
inline ScheduleKind parse_schedule_kind(std::string_view name) {
  for (auto k : {ScheduleKind::constant, ScheduleKind::constant_with_warmup, ScheduleKind::linear, ScheduleKind::cosine,
                 ScheduleKind::cosine_with_restarts, ScheduleKind::polynomial}) {
    if (name == schedule_name(k)) return k;
  }
  throw_error("lr_scheduler_type '", name, "' is not known: use linear, cosine, cosine_with_restarts, polynomial, constant or constant_with_warmup");
}

// TrainingArguments.get_warmup_steps: warmup_steps if > 0, else ceil(ratio * total).
inline std::int64_t warmup_steps_for(std::int64_t warmup_steps, double warmup_ratio, std::int64_t total_steps) {
  if (warmup_steps > 0) return warmup_steps;
  return static_cast<std::int64_t>(std::ceil(static_cast<double>(total_steps) * warmup_ratio));
}

struct LrSchedule {
  ScheduleKind kind = ScheduleKind::linear;
  double base_lr = 5e-5;
  std::int64_t warmup_steps = 0;
  std::int64_t total_steps = 0;
  double num_cycles = 0.5;  // cosine: 0.5 (half wave); cosine_with_restarts takes 1 by default
  double power = 1.0;       // polynomial
  double lr_end = 1e-7;     // polynomial

  // lr_lambda(step) of transformers.
  double factor(std::int64_t step) const {
    const double s = static_cast<double>(step);
    const double warmup = static_cast<double>(warmup_steps);
    const double total = static_cast<double>(total_steps);
    if (kind == ScheduleKind::constant) return 1.0;
    if (step < warmup_steps) return s / std::max(1.0, warmup);
    switch (kind) {
      case ScheduleKind::constant:
      case ScheduleKind::constant_with_warmup:
        return 1.0;
      case ScheduleKind::linear:
        return std::max(0.0, (total - s) / std::max(1.0, total - warmup));
      case ScheduleKind::cosine: {
        const double progress = (s - warmup) / std::max(1.0, total - warmup);
        return std::max(0.0, 0.5 * (1.0 + std::cos(std::numbers::pi * num_cycles * 2.0 * progress)));
      }
      case ScheduleKind::cosine_with_restarts: {
        const double progress = (s - warmup) / std::max(1.0, total - warmup);
        if (progress >= 1.0) return 0.0;
        return std::max(0.0, 0.5 * (1.0 + std::cos(std::numbers::pi * python_mod1(num_cycles * progress))));
      }
      case ScheduleKind::polynomial: {
        if (!(base_lr > lr_end)) throw_error("polynomial schedule: lr_end (", lr_end, ") must be smaller than the initial lr (", base_lr, ")");
        if (step > total_steps) return lr_end / base_lr;
        if (total_steps == warmup_steps)
          throw_error("polynomial schedule: total_steps equals warmup_steps (", total_steps, "): no steps left to decay over");
        const double pct_remaining = 1.0 - (s - warmup) / (total - warmup);
        return ((base_lr - lr_end) * std::pow(pct_remaining, power) + lr_end) / base_lr;
      }
    }
    return 1.0;
  }

  // The learning rate of optimizer step `step` (0-based).
  double lr(std::int64_t step) const { return base_lr * factor(step); }

  // transformers' get_scheduler with its per-kind defaults (cosine: half a
  // wave; cosine_with_restarts: one cycle; polynomial: power 1, lr_end 1e-7).
  static LrSchedule for_trainer(std::string_view lr_scheduler_type, double learning_rate, std::int64_t warmup_steps, std::int64_t total_steps) {
    LrSchedule s;
    s.kind = parse_schedule_kind(lr_scheduler_type);
    s.base_lr = learning_rate;
    s.warmup_steps = warmup_steps;
    s.total_steps = total_steps;
    s.num_cycles = s.kind == ScheduleKind::cosine_with_restarts ? 1.0 : 0.5;
    return s;
  }

  // The schedule is a pure function of the step: its state is its settings
  // (the step itself is the optimizer's, saved with it).
  nlohmann::json state() const {
    return {{"kind", schedule_name(kind)},
            {"base_lr", base_lr},
            {"warmup_steps", warmup_steps},
            {"total_steps", total_steps},
            {"num_cycles", num_cycles},
            {"power", power},
            {"lr_end", lr_end}};
  }
  void load_state(const nlohmann::json& j) {
    detail::read_saved_state("LrSchedule::load_state", [&] {
      kind = parse_schedule_kind(j.at("kind").get<std::string>());
      base_lr = j.at("base_lr").get<double>();
      warmup_steps = j.at("warmup_steps").get<std::int64_t>();
      total_steps = j.at("total_steps").get<std::int64_t>();
      num_cycles = j.at("num_cycles").get<double>();
      power = j.at("power").get<double>();
      lr_end = j.at("lr_end").get<double>();
    });
  }

 private:
  // Python's float % 1.0 (result has the sign of the divisor).
  static double python_mod1(double x) {
    double r = std::fmod(x, 1.0);
    if (r < 0) r += 1.0;
    return r;
  }
};

}  // namespace mpt::optim
