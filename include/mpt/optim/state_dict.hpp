#pragma once
// Optimizer state as named tensors plus JSON scalars: what a checkpoint
// stores so that a resumed run continues bit-identically.
//
//   StateDict::tensors  views of the optimizer's own buffers, with their
//                       safetensors dtypes (F32, F64, BF16, U16)
//   StateDict::scalars  step count, hyper-parameters, seeds, scaler state
//
// state_dict() returns views (no copy); load_state_dict(saved) copies from
// any StateDict whose tensors match by name, dtype and element count.
// SavedState owns copies (what a file holds); file I/O goes through
// io/safetensors (tensors) and a JSON file (scalars).

#include <mpt/core/bf16.hpp>
#include <mpt/core/error.hpp>
#include <mpt/io/dtype.hpp>

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

namespace mpt::optim {

struct StateTensor {
  std::string name;
  io::Dtype dtype = io::Dtype::f32;
  std::size_t count = 0;
  std::byte* data = nullptr;
  std::size_t bytes() const noexcept { return count * io::dtype_size(dtype); }
};

// The file dtype of a state element type: F64, F32, BF16, or U16 (a split master's trail).
template <class T>
constexpr io::Dtype state_dtype() {
  if constexpr (std::is_same_v<T, std::uint16_t>) {
    return io::Dtype::u16;
  } else {
    static_assert(std::is_same_v<T, double> || std::is_same_v<T, float> || std::is_same_v<T, bf16>,
                  "optimizer state tensors are F64, F32, BF16 or U16");
    return io::dtype_of<T>();
  }
}

struct StateDict {
  std::vector<StateTensor> tensors;
  nlohmann::json scalars = nlohmann::json::object();

  template <class T>
  void add(std::string name, T* data, std::size_t count) {
    tensors.push_back({std::move(name), state_dtype<T>(), count, reinterpret_cast<std::byte*>(data)});
  }
  const StateTensor& find(const std::string& name) const {
    for (const auto& t : tensors)
      if (t.name == name) return t;
    throw_error("optimizer state: the saved state has no tensor '", name, "' (it was saved by a different optimizer or weight policy)");
  }
  // Copies every tensor of `this` from the same-named tensor of `saved`.
  void copy_tensors_from(const StateDict& saved) const {
    for (const auto& t : tensors) {
      const StateTensor& s = saved.find(t.name);
      if (s.dtype != t.dtype || s.count != t.count) {
        throw_error("optimizer state: tensor '", t.name, "' was saved as ", io::dtype_name(s.dtype), " x ", s.count, " but this optimizer needs ",
                    io::dtype_name(t.dtype), " x ", t.count, "; resume with the same model, precision and weight policy");
      }
      std::memcpy(t.data, s.data, t.bytes());
    }
  }
};

// An owning copy of a StateDict: what a checkpoint holds on disk.
class SavedState {
 public:
  SavedState() = default;
  explicit SavedState(const StateDict& state) : scalars_(state.scalars) {
    storage_.reserve(state.tensors.size());
    for (const auto& t : state.tensors) {
      storage_.emplace_back(t.data, t.data + t.bytes());
      view_.tensors.push_back({t.name, t.dtype, t.count, storage_.back().data()});
    }
    view_.scalars = scalars_;
  }
  SavedState(const SavedState&) = delete;
  SavedState& operator=(const SavedState&) = delete;
  SavedState(SavedState&&) noexcept = default;  // the tensors' bytes do not move
  SavedState& operator=(SavedState&&) noexcept = default;
  const StateDict& view() const noexcept { return view_; }

 private:
  std::vector<std::vector<std::byte>> storage_;
  nlohmann::json scalars_;
  StateDict view_;
};

}  // namespace mpt::optim
