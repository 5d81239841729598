#pragma once
// One optimizer step the way the Trainer does it with a GradScaler:
//   unscale (x 1/scale) -> clip by the global L2 norm -> step, or skip it on
//   inf/NaN gradients -> update the scale.
// Unscaling and clipping are folded into the optimizer's single pass as one
// gradient multiplier; the gradient buffer itself is left untouched.
//
//   grads [n] fp32, the sum of the micro-batches' (scaled) gradients.
//   The norm is global_l2_norm<NormAcc> (fp32 by default, as torch; fp64 on
//   request) of the scaled gradients times 1/scale (exact for power-of-two
//   scales), the same bits for any thread count.
//   clip coefficient = max_grad_norm / (norm + 1e-6), applied when < 1, as
//   torch.nn.utils.clip_grad_norm_.

#include <mpt/core/profile.hpp>
#include <mpt/kernels/global_norm.hpp>
#include <mpt/optim/flat_optimizer.hpp>
#include <mpt/optim/loss_scaler.hpp>

#include <cmath>
#include <cstdint>
#include <optional>
#include <span>

namespace mpt::optim {

struct StepReport {
  float grad_norm = 0.0f;   // unscaled, before clipping: what the Trainer logs
  bool applied = true;      // false when inf/NaN gradients skipped the step
  bool found_inf = false;   // the gradients held an inf or NaN
  float loss_scale = 1.0f;  // the scale for the next backward
  std::int64_t skipped_steps = 0;
  double lr = 0.0;
};

// apply_non_finite = false: inf/NaN gradients never reach the weights, whatever the
// scaler (report.applied is false and the scaler is not updated); the caller stops.
template <class NormAcc = float, Optimizer O, LossScaler Scaler>
StepReport clip_and_step(O& optimizer, Scaler& scaler, std::span<const float> grads, double lr, double max_grad_norm, bool apply_non_finite = true) {
  profile::Region norm_region("gradient norm");
  const float inv_scale = scaler.inv_scale();
  const float scaled_norm = static_cast<float>(kernels::global_l2_norm<NormAcc>(grads));
  norm_region.end();
  const float norm = scaled_norm * inv_scale;
  const bool found_inf = !std::isfinite(scaled_norm);
  float multiplier = inv_scale;
  if (max_grad_norm > 0.0 && !found_inf) {
    const float clip_coef = static_cast<float>(max_grad_norm) / (norm + 1e-6f);
    if (clip_coef < 1.0f) multiplier = inv_scale * clip_coef;
  }
  StepReport report;
  report.grad_norm = norm;
  report.lr = lr;
  report.found_inf = found_inf;
  if (found_inf && !apply_non_finite) {
    report.applied = false;
    report.loss_scale = scaler.scale();
    report.skipped_steps = scaler.skipped_steps();
    return report;
  }
  report.applied = scaler.update(found_inf);
  if (report.applied) {
    MPT_PROFILE("optimizer step");
    optimizer.step(grads, lr, multiplier);
  }
  report.loss_scale = scaler.scale();
  report.skipped_steps = scaler.skipped_steps();
  return report;
}

// Gradient accumulation over micro-batches, as transformers' Trainer: each
// micro-batch's loss is multiplied by loss_multiplier() (1/micro_batches) and
// its gradients are added (+=) to the same fp32 buffer; the optimizer steps
// after the last one and the trainer zeroes the buffer.
class GradientAccumulation {
 public:
  explicit GradientAccumulation(int micro_batches) : micro_batches_(micro_batches) {
    if (micro_batches < 1) throw_error("GradientAccumulation: gradient_accumulation_steps is ", micro_batches, "; it must be at least 1");
  }
  int micro_batches() const noexcept { return micro_batches_; }
  float loss_multiplier() const noexcept { return 1.0f / static_cast<float>(micro_batches_); }
  // Call after each micro-batch's backward: true when the optimizer should step now.
  bool end_micro_batch() noexcept {
    if (++seen_ < micro_batches_) return false;
    seen_ = 0;
    return true;
  }
  int pending() const noexcept { return seen_; }

 private:
  int micro_batches_;
  int seen_ = 0;
};

}  // namespace mpt::optim
