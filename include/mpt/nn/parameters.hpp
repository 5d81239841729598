#pragma once
// Parameters<P>: every parameter of a model in flat buffers with one offset
// table, named as Hugging Face names them.
//
//   master   P::master_t  what the optimizer updates and checkpoints hold
//   compute  P::param_t   the copy matmuls read (bf16 under bf16_mixed);
//                         the same memory as master when the types agree
//   grad     P::grad_t    gradients; backward accumulates (+=) into them,
//                         only the trainer zeroes them
//
// Layers declare their parameters once (declare), the model allocates
// (allocate), and from then on the buffers never move, so the optimizer step
// and a gradient all-reduce are single passes over contiguous memory.

#include <mpt/core/bf16_convert.hpp>
#include <mpt/core/error.hpp>
#include <mpt/core/tensor.hpp>
#include <mpt/policy/precision.hpp>

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <vector>

namespace mpt::nn {

// What a parameter is for: decides its initialization and whether weight
// decay applies (transformers exempts biases and LayerNorm weights).
enum class ParamRole { linear_weight, linear_bias, embedding, norm_weight, norm_bias };

inline bool weight_decay_applies(ParamRole role) noexcept {
  return role == ParamRole::linear_weight || role == ParamRole::embedding;
}

struct ParamEntry {
  std::string name;         // e.g. bert.encoder.layer.3.attention.self.query.weight
  Shape shape;
  std::size_t offset = 0;   // in elements, the same in every flat buffer
  ParamRole role = ParamRole::linear_weight;
  std::size_t size() const noexcept { return shape.numel(); }
};

// Index of a parameter in its Parameters (returned by declare).
using ParamId = std::size_t;

template <PrecisionPolicy P>
class Parameters {
 public:
  using master_t = typename P::master_t;
  using param_t = typename P::param_t;
  using grad_t = typename P::grad_t;

  // Registers a parameter; only before allocate(). Names are unique.
  ParamId declare(std::string name, Shape shape, ParamRole role) {
    if (allocated_) throw_error("Parameters::declare(", name, "): declare every parameter before allocate()");
    if (index_.count(name)) throw_error("Parameters::declare: '", name, "' is declared twice");
    const ParamId id = entries_.size();
    index_.emplace(name, id);
    entries_.push_back({std::move(name), shape, total_, role});
    total_ += round_up(shape.numel());
    return id;
  }

  // Allocates the flat buffers (zeroed). Offsets are 16-element aligned so
  // every parameter starts on a 64-byte boundary in the fp32 buffers.
  void allocate() {
    if (allocated_) return;
    master_ = AlignedBuffer<master_t>(total_);
    if constexpr (separate_compute) compute_ = AlignedBuffer<param_t>(total_);
    grad_ = AlignedBuffer<grad_t>(total_);
    allocated_ = true;
  }

  std::span<const ParamEntry> entries() const noexcept { return entries_; }
  const ParamEntry& entry(ParamId id) const { return entries_.at(id); }
  // The parameter with this name, or nullptr.
  const ParamEntry* find(std::string_view name) const {
    auto it = index_.find(std::string(name));
    return it == index_.end() ? nullptr : &entries_[it->second];
  }
  std::size_t count() const noexcept { return entries_.size(); }
  // Number of scalar parameters (without alignment padding).
  std::size_t numel() const noexcept {
    std::size_t n = 0;
    for (const auto& e : entries_) n += e.size();
    return n;
  }

  TensorView<master_t> master(ParamId id) { return view(master_.data(), id); }
  TensorView<const master_t> master(ParamId id) const { return view(master_.data(), id); }
  TensorView<const param_t> compute(ParamId id) const {
    if constexpr (separate_compute) {
      return view(compute_.data(), id);
    } else {
      return view(master_.data(), id);
    }
  }
  TensorView<grad_t> grad(ParamId id) { return view(grad_.data(), id); }
  TensorView<const grad_t> grad(ParamId id) const { return view(grad_.data(), id); }

  // Whole buffers, padding included (padding stays zero).
  std::span<master_t> master_flat() noexcept { return {master_.data(), master_.size()}; }
  std::span<grad_t> grad_flat() noexcept { return {grad_.data(), grad_.size()}; }
  std::span<const grad_t> grad_flat() const noexcept { return {grad_.data(), grad_.size()}; }
  std::span<param_t> compute_flat() noexcept {
    if constexpr (separate_compute) {
      return {compute_.data(), compute_.size()};
    } else {
      return {master_.data(), master_.size()};
    }
  }

  // Rewrites the compute copy from the master weights (after loading or
  // initializing; the optimizer does this itself in its update pass).
  void sync_compute_copy() {
    if constexpr (separate_compute) {
      if constexpr (std::is_same_v<master_t, float> && std::is_same_v<param_t, bf16>) {
        convert(std::span<const float>(master_.data(), master_.size()), std::span<bf16>(compute_.data(), compute_.size()));
      } else {
        for (std::size_t i = 0; i < master_.size(); ++i) compute_[i] = static_cast<param_t>(master_[i]);
      }
    }
  }

  void zero_grad() noexcept {
    for (grad_t& g : grad_) g = grad_t(0);
  }

  // Bytes held, for the memory report.
  std::size_t master_bytes() const noexcept { return master_.size() * sizeof(master_t); }
  std::size_t compute_bytes() const noexcept { return separate_compute ? compute_.size() * sizeof(param_t) : 0; }
  std::size_t grad_bytes() const noexcept { return grad_.size() * sizeof(grad_t); }

 private:
  static constexpr bool separate_compute = !std::is_same_v<master_t, param_t>;
  static constexpr std::size_t round_up(std::size_t n) noexcept { return (n + 15) / 16 * 16; }

  template <class T>
  TensorView<T> view(T* base, ParamId id) const {
    if (!allocated_) throw_error("Parameters: '", entries_.at(id).name, "' is read before allocate()");
    const ParamEntry& e = entries_.at(id);
    return TensorView<T>(base + e.offset, e.shape);
  }

  std::vector<ParamEntry> entries_;
  std::unordered_map<std::string, ParamId> index_;
  std::size_t total_ = 0;
  bool allocated_ = false;
  AlignedBuffer<master_t> master_;
  AlignedBuffer<param_t> compute_;
  AlignedBuffer<grad_t> grad_;
};

}  // namespace mpt::nn
