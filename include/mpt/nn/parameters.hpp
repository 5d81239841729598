#pragma once
// Parameters<P>: every parameter of a model in flat buffers with one offset
// table, named as Hugging Face names them. Each byte has one owner:
//
//   grad     P::grad_t    gradients of every parameter, one flat buffer;
//                         backward accumulates (+=), only the trainer zeroes
//   master   P::master_t  the weights the optimizer updates and checkpoints hold
//   compute  P::param_t   the copy matmuls read (bf16 under bf16_mixed)
//
// Parameters come in two kinds, decided by their role (see reads_compute_copy):
//
//   full-precision  embeddings, LayerNorm  the model reads the master itself (autocast
//                   [0, full_count())      leaves these in fp32), so they have no compute copy
//   matmul          Linear weights, biases the model reads the compute copy; under a
//                   [full_count(), size)   16-bit param_t its master is kept here (the fp32
//                                          master weight policy) or released to the optimizer
//                                          (split master: the optimizer owns the low halves;
//                                          stochastic rounding: the compute copy is the master)
//
// Offsets are assigned at allocate(): the full-precision parameters first, then
// the matmul ones, each in declaration order and 16-element aligned, the same
// offset in the gradient buffer and in whichever master or compute buffer holds
// the parameter. From then on the buffers never move, so an optimizer step and a
// gradient all-reduce are single passes over contiguous memory.

#include <mpt/core/bf16_convert.hpp>
#include <mpt/core/error.hpp>
#include <mpt/core/profile.hpp>
#include <mpt/core/system_memory.hpp>
#include <mpt/core/tensor.hpp>
#include <mpt/core/threads.hpp>
#include <mpt/policy/precision.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <vector>

namespace mpt::nn {

// What a parameter is for: decides its initialization, whether weight decay
// applies (transformers exempts biases and LayerNorm weights) and which copy
// the model reads.
enum class ParamRole { linear_weight, linear_bias, embedding, norm_weight, norm_bias };

inline bool weight_decay_applies(ParamRole role) noexcept { return role == ParamRole::linear_weight || role == ParamRole::embedding; }

// Matmul operands are read from the compute copy (bf16 under bf16_mixed);
// embeddings and LayerNorm are read in full precision from the master.
inline bool reads_compute_copy(ParamRole role) noexcept { return role == ParamRole::linear_weight || role == ParamRole::linear_bias; }

struct ParamEntry {
  std::string name;  // e.g. bert.encoder.layer.3.attention.self.query.weight
  Shape shape;
  std::size_t offset = 0;  // in elements, in the gradient buffer and the buffer holding its weights
  ParamRole role = ParamRole::linear_weight;
  std::size_t size() const noexcept { return shape.numel(); }
};

// Index of a parameter in its Parameters (returned by declare), in declaration order.
using ParamId = std::size_t;

template <PrecisionPolicy P>
class Parameters {
 public:
  using master_t = typename P::master_t;
  using param_t = typename P::param_t;
  using grad_t = typename P::grad_t;
  // A 16-bit (or otherwise narrower) compute copy exists beside the master.
  static constexpr bool separate_compute = !std::is_same_v<master_t, param_t>;

  // Reads or writes master values [offset, offset + out.size()) of released matmul
  // masters; installed by whoever took them over (train::ModelOptimizer).
  struct MasterAccess {
    std::function<void(std::size_t offset, std::span<master_t> out)> read;
    std::function<void(std::size_t offset, std::span<const master_t> in)> write;
  };

  Parameters() = default;
  // Views into the buffers and the installed MasterAccess point at this object.
  Parameters(const Parameters&) = delete;
  Parameters& operator=(const Parameters&) = delete;
  Parameters(Parameters&&) noexcept = default;
  Parameters& operator=(Parameters&&) noexcept = default;

  // Registers a parameter; only before allocate(). Names are unique.
  ParamId declare(std::string name, Shape shape, ParamRole role) {
    if (allocated_) throw_error("Parameters::declare(", name, "): declare every parameter before allocate()");
    if (index_.count(name)) throw_error("Parameters::declare: '", name, "' is declared twice");
    const ParamId id = entries_.size();
    index_.emplace(name, id);
    entries_.push_back({std::move(name), shape, 0, role});
    return id;
  }

  // Assigns offsets and allocates the buffers (zeroed), masters for every parameter.
  void allocate() {
    if (allocated_) return;
    std::size_t at = 0;
    for (const bool matmul : {false, true}) {
      if (matmul) full_count_ = at;
      for (ParamEntry& e : entries_) {
        if (reads_compute_copy(e.role) != matmul) continue;
        e.offset = at;
        at += round_up(e.size());
      }
    }
    total_ = at;
    // Refused before allocating when it cannot fit (a vocab_size of 10^9 would otherwise be
    // an OOM kill once the initialization touches the pages). Saturating: a hostile shape
    // must not wrap around to a small figure.
    const std::size_t compute_count = separate_compute ? total_ - full_count_ : 0;
    std::size_t bytes = 0;
    if (__builtin_mul_overflow(total_, sizeof(master_t) + sizeof(grad_t), &bytes) ||
        __builtin_add_overflow(bytes, compute_count * sizeof(param_t), &bytes)) {
      bytes = std::numeric_limits<std::size_t>::max();
    }
    check_memory_fits(
        bytes, "the model's " + std::to_string(total_) + " parameters (weights, gradients" + (separate_compute ? ", compute copies" : "") + ")",
        "choose a smaller configuration (vocab_size, hidden_size, num_hidden_layers, intermediate_size in config.json)");
    full_master_ = AlignedBuffer<master_t>(full_count_);
    matmul_master_ = AlignedBuffer<master_t>(total_ - full_count_);
    if constexpr (separate_compute) compute_ = AlignedBuffer<param_t>(total_ - full_count_);
    grad_ = AlignedBuffer<grad_t>(total_);
    allocated_ = true;
  }

  // ---- the table -----------------------------------------------------------

  std::span<const ParamEntry> entries() const noexcept { return entries_; }
  const ParamEntry& entry(ParamId id) const { return entries_.at(id); }
  // The parameter with this name, or nullptr.
  const ParamEntry* find(std::string_view name) const {
    auto it = index_.find(std::string(name));
    return it == index_.end() ? nullptr : &entries_[it->second];
  }
  // The id of the parameter with this name; an error naming it when there is none.
  ParamId id_of(std::string_view name) const {
    auto it = index_.find(std::string(name));
    if (it == index_.end()) {
      throw_error("Parameters: no parameter named '", name, "' (", entries_.size(), " parameters; names are Hugging Face's, e.g. '",
                  entries_.empty() ? "" : entries_.front().name, "')");
    }
    return it->second;
  }
  std::size_t count() const noexcept { return entries_.size(); }
  // Number of scalar parameters (without alignment padding).
  std::size_t numel() const noexcept {
    std::size_t n = 0;
    for (const auto& e : entries_) n += e.size();
    return n;
  }
  // Elements of every flat buffer's layout: [0, full_count()) full-precision,
  // [full_count(), size()) matmul parameters, padding included.
  std::size_t size() const noexcept { return total_; }
  std::size_t full_count() const noexcept { return full_count_; }
  bool is_matmul(ParamId id) const { return reads_compute_copy(entry(id).role); }

  // ---- weights and gradients -------------------------------------------------

  // The master weights of a parameter (a full-precision one, or a matmul one while
  // its master is kept here).
  TensorView<master_t> master(ParamId id) {
    return is_matmul(id) ? view(matmul_master_.data(), full_count_, id, master_available(id), "master")
                         : view(full_master_.data(), 0, id, true, "master");
  }
  TensorView<const master_t> master(ParamId id) const {
    return is_matmul(id) ? view(matmul_master_.data(), full_count_, id, master_available(id), "master")
                         : view(full_master_.data(), 0, id, true, "master");
  }
  TensorView<master_t> master(std::string_view name) { return master(id_of(name)); }
  TensorView<const master_t> master(std::string_view name) const { return master(id_of(name)); }

  // The compute copy matmuls read (matmul parameters; every parameter when the types agree).
  TensorView<const param_t> compute(ParamId id) const {
    if constexpr (separate_compute) {
      if (!is_matmul(id)) {
        throw_error("Parameters: '", entry(id).name, "' is read in full precision and has no ", "compute copy; read master()");
      }
      return view(compute_.data(), full_count_, id, true, "compute");
    } else {
      return is_matmul(id) ? view(matmul_master_.data(), full_count_, id, true, "compute") : view(full_master_.data(), 0, id, true, "compute");
    }
  }
  TensorView<const param_t> compute(std::string_view name) const { return compute(id_of(name)); }

  TensorView<grad_t> grad(ParamId id) { return view(grad_.data(), 0, id, true, "gradient"); }
  TensorView<const grad_t> grad(ParamId id) const { return view(grad_.data(), 0, id, true, "gradient"); }
  TensorView<grad_t> grad(std::string_view name) { return grad(id_of(name)); }
  TensorView<const grad_t> grad(std::string_view name) const { return grad(id_of(name)); }

  // Whole buffers, padding included (padding stays zero).
  std::span<grad_t> grad_flat() noexcept { return {grad_.data(), grad_.size()}; }
  std::span<const grad_t> grad_flat() const noexcept { return {grad_.data(), grad_.size()}; }
  // [0, full_count()) of the layout: the masters of embeddings and LayerNorm.
  std::span<master_t> full_precision_master() noexcept { return {full_master_.data(), full_master_.size()}; }
  std::span<const master_t> full_precision_master() const noexcept { return {full_master_.data(), full_master_.size()}; }
  // [full_count(), size()) of the layout: the matmul parameters' masters; empty once released.
  std::span<master_t> matmul_master() noexcept { return {matmul_master_.data(), matmul_master_.size()}; }
  std::span<const master_t> matmul_master() const noexcept { return {matmul_master_.data(), matmul_master_.size()}; }
  // [full_count(), size()) of the layout: the compute copy matmuls read.
  std::span<param_t> matmul_compute() noexcept {
    if constexpr (separate_compute) {
      return {compute_.data(), compute_.size()};
    } else {
      return matmul_master();
    }
  }

  // Master values of a parameter, wherever they live (kept here, or held by the
  // optimizer after release_matmul_master).
  void read_master(ParamId id, std::size_t first, std::span<master_t> out) const {
    const ParamEntry& e = entry(id);
    check_range("read_master", e, first, out.size());
    if (master_available(id)) {
      std::copy_n(master(id).data() + first, out.size(), out.data());
    } else if (access_.read) {
      access_.read(e.offset - full_count_ + first, out);
    } else {
      // Nobody holds more bits than the compute copy (stochastic rounding): it is the master.
      const param_t* c = compute_.data() + (e.offset - full_count_) + first;
      for (std::size_t i = 0; i < out.size(); ++i) out[i] = static_cast<master_t>(c[i]);
    }
  }
  // Sets master values of a parameter (and its compute copy), wherever they live.
  void write_master(ParamId id, std::size_t first, std::span<const master_t> in) {
    const ParamEntry& e = entry(id);
    mark_updated();
    check_range("write_master", e, first, in.size());
    if (master_available(id)) {
      std::copy_n(in.data(), in.size(), master(id).data() + first);
      if constexpr (separate_compute) {
        if (is_matmul(id)) {
          round_into(in, std::span<param_t>(compute_.data() + (e.offset - full_count_) + first, in.size()));
        }
      }
    } else if (access_.write) {
      access_.write(e.offset - full_count_ + first, in);
    } else {
      round_into(in, std::span<param_t>(compute_.data() + (e.offset - full_count_) + first, in.size()));
    }
  }

  // Counts changes of the weights: whoever writes them (the optimizer after its update,
  // write_master, sync_compute_copy) calls mark_updated(), so caches of derived data
  // (packed weights for inference) know when they are stale.
  std::uint64_t version() const noexcept { return version_; }
  void mark_updated() noexcept { ++version_; }

  // Rewrites the compute copy from the master weights (after loading or
  // initializing; the optimizer does this itself in its update pass).
  void sync_compute_copy() {
    mark_updated();
    if constexpr (separate_compute) {
      if (matmul_master_released()) return;  // the compute copy is the optimizer's to write
      round_into(std::span<const master_t>(matmul_master_.data(), matmul_master_.size()), std::span<param_t>(compute_.data(), compute_.size()));
    }
  }

  // Frees the matmul parameters' masters: from now on the optimizer holds what the
  // compute copy lacks (the split master's low halves) and answers read_master /
  // write_master through `access` (empty: the compute copy is the whole master).
  void release_matmul_master(MasterAccess access) {
    static_assert(separate_compute,
                  "release_matmul_master: without a separate compute copy the master is the "
                  "weights the model reads; there is nothing to release");
    if (!allocated_) throw_error("Parameters::release_matmul_master: allocate() first");
    matmul_master_ = AlignedBuffer<master_t>();
    released_ = true;
    access_ = std::move(access);
  }
  // Replaces (or removes, with {}) the access to released masters.
  void set_master_access(MasterAccess access) { access_ = std::move(access); }
  bool matmul_master_released() const noexcept { return released_; }

  void zero_grad() {
    MPT_PROFILE("zero grad");
    parallel_chunks(grad_.size(), std::size_t(1) << 18,
                    [&](std::size_t b, std::size_t e) { std::fill(grad_.begin() + b, grad_.begin() + e, grad_t(0)); });
  }

  // Bytes held, for the memory report.
  std::size_t master_bytes() const noexcept { return (full_master_.size() + matmul_master_.size()) * sizeof(master_t); }
  std::size_t compute_bytes() const noexcept { return separate_compute ? compute_.size() * sizeof(param_t) : 0; }
  std::size_t grad_bytes() const noexcept { return grad_.size() * sizeof(grad_t); }

 private:
  static constexpr std::size_t round_up(std::size_t n) noexcept { return (n + 15) / 16 * 16; }

  bool master_available(ParamId id) const { return !is_matmul(id) || !matmul_master_released(); }

  static void round_into(std::span<const master_t> from, std::span<param_t> to) {
    if constexpr (std::is_same_v<master_t, float> && std::is_same_v<param_t, bf16>) {
      convert(from, to);
    } else {
      for (std::size_t i = 0; i < from.size(); ++i) to[i] = static_cast<param_t>(from[i]);
    }
  }

  void check_range(const char* op, const ParamEntry& e, std::size_t first, std::size_t count) const {
    if (!allocated_) throw_error("Parameters::", op, "('", e.name, "'): allocate() first");
    if (first > e.size() || count > e.size() - first) {
      throw_error("Parameters::", op, "('", e.name, "'): elements [", first, ", ", first + count, ") are outside its ", e.size());
    }
  }

  // base holds elements [origin, ...) of the layout.
  template <class T>
  TensorView<T> view(T* base, std::size_t origin, ParamId id, bool available, const char* what) const {
    const ParamEntry& e = entries_.at(id);
    if (!allocated_) throw_error("Parameters: '", e.name, "' is read before allocate()");
    if (!available) {
      throw_error("Parameters: the ", what, " of '", e.name, "' was handed to the optimizer (its weight policy keeps ",
                  "no fp32 copy here); use read_master() / write_master()");
    }
    return TensorView<T>(base + (e.offset - origin), e.shape);
  }

  std::vector<ParamEntry> entries_;
  std::unordered_map<std::string, ParamId> index_;
  std::size_t total_ = 0;
  std::size_t full_count_ = 0;
  bool allocated_ = false;
  bool released_ = false;
  AlignedBuffer<master_t> full_master_;    // [0, full_count)
  AlignedBuffer<master_t> matmul_master_;  // [full_count, total), empty once released
  AlignedBuffer<param_t> compute_;         // [full_count, total), when separate_compute
  AlignedBuffer<grad_t> grad_;             // [0, total)
  MasterAccess access_;
  std::uint64_t version_ = 0;
};

}  // namespace mpt::nn
