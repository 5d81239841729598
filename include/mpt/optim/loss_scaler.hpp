#pragma once
// Loss scaling as a policy. The trainer multiplies the loss by scale() before
// backward; the optimizer step multiplies gradients by inv_scale() and asks
// update(found_inf) whether to apply the step.
//
//   NoLossScaling       scale 1, never skips (the default for bf16: its range is fp32's)
//   StaticLossScaler    a fixed scale; a step with inf/NaN gradients is skipped
//   DynamicLossScaler   torch.cuda.amp.GradScaler semantics: initial 2^16,
//                       x2 after growth_interval (2000) clean steps in a row,
//                       x0.5 and skip the step on inf/NaN
//
// Every scaler reports its scale and the number of skipped steps, and saves
// and restores its state as JSON scalars.

#include <mpt/core/error.hpp>
#include <mpt/optim/detail/saved_state.hpp>

#include <nlohmann/json.hpp>

#include <cmath>
#include <concepts>
#include <cstdint>
#include <string>

namespace mpt::optim {

class NoLossScaling {
 public:
  static constexpr const char* name = "none";
  float scale() const noexcept { return 1.0f; }
  float inv_scale() const noexcept { return 1.0f; }
  // Returns whether to apply the step. Without scaling inf/NaN gradients are
  // applied as PyTorch would apply them: the caller sees them in the norm.
  bool update(bool /*found_inf*/) noexcept { return true; }
  std::int64_t skipped_steps() const noexcept { return 0; }
  nlohmann::json state() const { return {{"type", name}}; }
  void load_state(const nlohmann::json&) {}
};

class StaticLossScaler {
 public:
  static constexpr const char* name = "static";
  explicit StaticLossScaler(float scale = 65536.0f) : scale_(scale) {
    if (!(scale > 0.0f)) throw_error("StaticLossScaler: scale ", scale, " must be positive");
  }
  float scale() const noexcept { return scale_; }
  float inv_scale() const noexcept { return static_cast<float>(1.0 / static_cast<double>(scale_)); }
  bool update(bool found_inf) noexcept {
    if (found_inf) ++skipped_;
    return !found_inf;
  }
  std::int64_t skipped_steps() const noexcept { return skipped_; }
  nlohmann::json state() const { return {{"type", name}, {"scale", scale_}, {"skipped_steps", skipped_}}; }
  void load_state(const nlohmann::json& j) {
    detail::read_saved_state("StaticLossScaler::load_state", [&] {
      scale_ = j.at("scale").get<float>();
      skipped_ = j.at("skipped_steps").get<std::int64_t>();
    });
  }

 private:
  float scale_;
  std::int64_t skipped_ = 0;
};

struct DynamicLossScalerOptions {
  float init_scale = 65536.0f;
  float growth_factor = 2.0f;
  float backoff_factor = 0.5f;
  std::int64_t growth_interval = 2000;
};

class DynamicLossScaler {
 public:
  static constexpr const char* name = "dynamic";
  explicit DynamicLossScaler(DynamicLossScalerOptions options = {}) : options_(options), scale_(options.init_scale) {
    if (!(options.init_scale > 0.0f) || !(options.growth_factor > 1.0f) || !(options.backoff_factor < 1.0f) || !(options.backoff_factor > 0.0f) ||
        options.growth_interval < 1) {
      throw_error(
          "DynamicLossScaler: options need init_scale > 0, growth_factor > 1, 0 < backoff_factor < 1 and "
          "growth_interval >= 1 (got ",
          options.init_scale, ", ", options.growth_factor, ", ", options.backoff_factor, ", ", options.growth_interval, ")");
    }
  }
  float scale() const noexcept { return scale_; }
  // GradScaler: the reciprocal in double, then rounded to float.
  float inv_scale() const noexcept { return static_cast<float>(1.0 / static_cast<double>(scale_)); }

  // GradScaler.update after GradScaler.step: returns whether the step was applied.
  bool update(bool found_inf) noexcept {
    if (found_inf) {
      scale_ *= options_.backoff_factor;
      growth_tracker_ = 0;
      ++skipped_;
      return false;
    }
    if (++growth_tracker_ == options_.growth_interval) {
      const float grown = scale_ * options_.growth_factor;
      if (std::isfinite(grown)) scale_ = grown;  // as GradScaler: never grow to Inf
      growth_tracker_ = 0;
    }
    return true;
  }
  std::int64_t skipped_steps() const noexcept { return skipped_; }
  std::int64_t growth_tracker() const noexcept { return growth_tracker_; }

  nlohmann::json state() const {
    return {{"type", name},
            {"scale", scale_},
            {"growth_factor", options_.growth_factor},
            {"backoff_factor", options_.backoff_factor},
            {"growth_interval", options_.growth_interval},
            {"growth_tracker", growth_tracker_},
            {"skipped_steps", skipped_}};
  }
  void load_state(const nlohmann::json& j) {
    detail::read_saved_state("DynamicLossScaler::load_state", [&] {
      if (j.at("type") != name)
        throw_error("DynamicLossScaler::load_state: the saved scaler is '", j.at("type").get<std::string>(), "', not dynamic");
      scale_ = j.at("scale").get<float>();
      options_.growth_factor = j.at("growth_factor").get<float>();
      options_.backoff_factor = j.at("backoff_factor").get<float>();
      options_.growth_interval = j.at("growth_interval").get<std::int64_t>();
      growth_tracker_ = j.at("growth_tracker").get<std::int64_t>();
      skipped_ = j.at("skipped_steps").get<std::int64_t>();
    });
  }

 private:
  DynamicLossScalerOptions options_;
  float scale_;
  std::int64_t growth_tracker_ = 0;
  std::int64_t skipped_ = 0;
};

template <class S>
concept LossScaler = requires(S s, const S cs, bool b, const nlohmann::json& j) {
  { cs.scale() } -> std::same_as<float>;
  { cs.inv_scale() } -> std::same_as<float>;
  { s.update(b) } -> std::same_as<bool>;
  { cs.skipped_steps() } -> std::same_as<std::int64_t>;
  { cs.state() } -> std::same_as<nlohmann::json>;
  s.load_state(j);
};

}  // namespace mpt::optim
