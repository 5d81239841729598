#pragma once
// save_safetensors: named tensors into a safetensors file, written atomically (the
// format: io/safetensors.hpp).
#include <mpt/core/bf16.hpp>
#include <mpt/core/bf16_convert.hpp>
#include <mpt/core/error.hpp>
#include <mpt/core/tensor.hpp>
#include <mpt/io/dtype.hpp>
#include <mpt/io/file.hpp>

#include <Eigen/Core>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <unordered_map>
#include <variant>
#include <vector>
namespace mpt::io {

// fp32 values produced a slice at a time when written: weights whose bits live in
// more than one buffer (a split master), saved without a full-size copy.
struct GeneratedTensor {
  Shape shape;
  std::function<void(std::size_t first, std::span<float> out)> fill;  // elements [first, first + out.size())
  std::size_t size() const noexcept { return shape.numel(); }
};

// A read-only tensor of any element type mpt stores, to be written under a name.
using TensorSource = std::variant<TensorView<const float>, TensorView<const bf16>, TensorView<const double>, GeneratedTensor>;

struct NamedTensor {
  std::string name;
  TensorSource data;
  std::optional<Dtype> dtype = std::nullopt;  // file dtype for this tensor; default: the one save_safetensors is given
};

inline const Shape& source_shape(const TensorSource& s) {
  return std::visit(
      [](const auto& v) -> const Shape& {
        if constexpr (std::is_same_v<std::decay_t<decltype(v)>, GeneratedTensor>) {
          return v.shape;
        } else {
          return v.shape();
        }
      },
      s);
}

namespace detail {
// One header entry: name, file dtype, extents, byte count.
struct HeaderEntry {
  std::string_view name;
  Dtype dtype;
  std::vector<std::int64_t> dims;
  std::size_t bytes;
};

// The 8-byte length and the JSON header, padded with spaces to a multiple of 8
// bytes so that the data buffer starts aligned, as the reference writer does.
inline std::string safetensors_header(const std::filesystem::path& path, std::span<const HeaderEntry> entries,
                                      const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::size_t offset = 0;
  for (const HeaderEntry& e : entries) {
    const std::string name(e.name);
    if (name.empty() || name == "__metadata__") throw_error("save_safetensors ", path, ": '", name, "' is not a valid tensor name");
    if (header.contains(name)) throw_error("save_safetensors ", path, ": tensor '", name, "' is given twice");
    header[name] = {{"dtype", dtype_name(e.dtype)}, {"shape", e.dims}, {"data_offsets", {offset, offset + e.bytes}}};
    offset += e.bytes;
  }
  std::string text = header.dump();
  text.append((8 - (8 + text.size()) % 8) % 8, ' ');
  const std::uint64_t header_len = text.size();
  std::string out(8, '\0');
  std::memcpy(out.data(), &header_len, 8);
  return out + text;
}
}  // namespace detail

// Writes the tensors in the given order with `dtype` (F32, BF16, F16 or F64) unless a
// tensor names its own.
inline void save_safetensors(const std::filesystem::path& path, std::span<const NamedTensor> tensors, Dtype dtype,
                             const std::map<std::string, std::string>& metadata = {}) {
  std::vector<detail::HeaderEntry> entries;
  for (const NamedTensor& t : tensors) {
    const Dtype d = t.dtype.value_or(dtype);
    if (!is_convertible_dtype(d))
      throw_error("save_safetensors ", path, ", tensor '", t.name, "': mpt writes F32, BF16, F16 or F64, not ", dtype_name(d));
    const Shape& shape = source_shape(t.data);
    std::vector<std::int64_t> dims;
    for (int a = 0; a < shape.rank(); ++a) dims.push_back(shape[a]);
    entries.push_back({t.name, d, std::move(dims), shape.numel() * dtype_size(d)});
  }
  AtomicFileWriter writer(path);
  writer.write(detail::safetensors_header(path, entries, metadata));
  std::vector<std::byte> stage;
  std::vector<float> generated;
  for (const NamedTensor& t : tensors) {
    const Dtype d = t.dtype.value_or(dtype);
    std::visit(
        [&](const auto& source) {
          // Encode in slices so that a large tensor needs no second full-size copy.
          constexpr std::size_t slice = std::size_t{1} << 16;
          for (std::size_t i = 0; i < source.size(); i += slice) {
            const std::size_t m = std::min(slice, source.size() - i);
            stage.resize(m * dtype_size(d));
            if constexpr (std::is_same_v<std::decay_t<decltype(source)>, GeneratedTensor>) {
              generated.resize(m);
              source.fill(i, std::span<float>(generated.data(), m));
              detail::encode_elements(generated.data(), d, stage.data(), m);
            } else {
              detail::encode_elements(source.data() + i, d, stage.data(), m);
            }
            writer.write(stage);
          }
        },
        t.data);
  }
  writer.commit();
}

// A tensor already in its file encoding (little-endian bytes of `dtype`), for
// state that is not a model weight: optimizer moments, a split master's U16 trail.
struct RawTensor {
  std::string name;
  Dtype dtype = Dtype::f32;
  std::vector<std::int64_t> dims;
  std::span<const std::byte> bytes;
};

inline void save_safetensors(const std::filesystem::path& path, std::span<const RawTensor> tensors,
                             const std::map<std::string, std::string>& metadata = {}) {
  std::vector<detail::HeaderEntry> entries;
  for (const RawTensor& t : tensors) {
    std::size_t count = 1;
    for (std::int64_t d : t.dims) count *= static_cast<std::size_t>(d);
    if (count * dtype_size(t.dtype) != t.bytes.size()) {
      throw_error("save_safetensors ", path, ", tensor '", t.name, "': ", t.bytes.size(), " bytes do not hold ", count, " elements of ",
                  dtype_name(t.dtype));
    }
    entries.push_back({t.name, t.dtype, t.dims, t.bytes.size()});
  }
  AtomicFileWriter writer(path);
  writer.write(detail::safetensors_header(path, entries, metadata));
  for (const RawTensor& t : tensors) writer.write(t.bytes);
  writer.commit();
}

}  // namespace mpt::io
