#pragma once
// SafetensorsFile: a safetensors file memory-mapped (or a buffer in memory) and
// validated before use (the format: io/safetensors.hpp).
#include <mpt/core/bf16.hpp>
#include <mpt/core/bf16_convert.hpp>
#include <mpt/core/error.hpp>
#include <mpt/core/tensor.hpp>
#include <mpt/io/dtype.hpp>
#include <mpt/io/file.hpp>
#include <mpt/io/json_depth.hpp>

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

// Refuse headers above this size before looking at them (as the reference implementation does).
inline constexpr std::uint64_t safetensors_max_header_bytes = 100'000'000;

// One tensor of an open file: a span into the memory map, valid while the file lives.
struct SafetensorsEntry {
  std::string name;
  Dtype dtype = Dtype::f32;
  std::vector<std::int64_t> dims;
  std::span<const std::byte> bytes;
  std::size_t data_begin = 0;  // offsets within the data buffer, as in the header
  std::size_t data_end = 0;

  std::size_t numel() const noexcept {
    std::size_t n = 1;
    for (std::int64_t d : dims) n *= static_cast<std::size_t>(d);
    return n;
  }
  std::string shape_string() const {
    std::string s = "[";
    for (std::size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
    return s + "]";
  }
  bool has_shape(const Shape& shape) const noexcept {
    if (static_cast<int>(dims.size()) != shape.rank()) return false;
    for (int a = 0; a < shape.rank(); ++a)
      if (dims[static_cast<std::size_t>(a)] != shape[a]) return false;
    return true;
  }
  // As an mpt Shape; throws for rank > 4, which mpt tensors do not have.
  Shape shape() const {
    switch (dims.size()) {
      case 0:
        return Shape{};
      case 1:
        return Shape{dims[0]};
      case 2:
        return Shape{dims[0], dims[1]};
      case 3:
        return Shape{dims[0], dims[1], dims[2]};
      case 4:
        return Shape{dims[0], dims[1], dims[2], dims[3]};
      default:
        throw_error("tensor '", name, "' has rank ", dims.size(), " (shape ", shape_string(), "); mpt tensors have rank 4 at most");
    }
  }
};

namespace detail {

inline std::uint64_t read_u64_le(const std::byte* p) noexcept {
  std::uint64_t v = 0;
  std::memcpy(&v, p, 8);
  return v;
}

// Parses the header, rejecting duplicate keys (JSON allows them; silently keeping
// the last one would load a tensor, or a dtype, nobody can see in the file).
inline nlohmann::json parse_header_json(std::string_view text, const std::filesystem::path& path) {
  // Keys of the object open at depth 1 (tensor names) and 2 (an entry's fields).
  std::array<std::vector<std::string>, 3> keys;
  std::string current_tensor;
  const auto check_keys = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using nlohmann::json;
    if (event == json::parse_event_t::object_start && depth + 1 < 3) keys[static_cast<std::size_t>(depth + 1)].clear();
    if (event == json::parse_event_t::key && depth >= 1 && depth < 3) {
      std::string key = parsed.get<std::string>();
      auto& seen = keys[static_cast<std::size_t>(depth)];
      if (std::find(seen.begin(), seen.end(), key) != seen.end()) {
        if (depth == 1) throw_error("safetensors file ", path, ": tensor '", key, "' appears twice in the header");
        throw_error("safetensors file ", path, ", tensor '", current_tensor, "': field '", key, "' appears twice");
      }
      if (depth == 1) current_tensor = key;
      seen.push_back(std::move(key));
    }
    return true;
  };
  check_json_strings(text, mpt::detail::concat("safetensors file ", path, ": the header"));
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text.begin(), text.end(), check_keys);
  } catch (const nlohmann::json::exception& e) {
    throw_error("safetensors file ", path, ": the header is not valid JSON (", e.what(), "); the file is corrupt or not safetensors");
  }
  check_json_depth(text, mpt::detail::concat("safetensors file ", path, ": the header"));
  return header;
}

inline std::uint64_t json_non_negative_integer(const nlohmann::json& v, const std::filesystem::path& path, const std::string& name,
                                               const char* field) {
  if (!v.is_number_unsigned()) {
    throw_error("safetensors file ", path, ", tensor '", name, "': ", field, " holds ", v.dump(), " where a non-negative integer is required");
  }
  return v.get<std::uint64_t>();
}

}  // namespace detail

// A memory-mapped, validated safetensors file.
class SafetensorsFile {
 public:
  static SafetensorsFile open(const std::filesystem::path& path) {
    SafetensorsFile file;
    file.map_ = MappedFile::open(path);
    file.path_ = path;
    file.bytes_ = file.map_.bytes();
    file.index_header();
    return file;
  }
  // The same from bytes already in memory (a download, a test); `name` stands for the
  // path in messages. The file owns the bytes: entries' spans point into them.
  static SafetensorsFile from_bytes(std::vector<std::byte> bytes, std::filesystem::path name = "<memory>") {
    SafetensorsFile file;
    file.owned_ = std::move(bytes);
    file.path_ = std::move(name);
    file.bytes_ = file.owned_;
    file.index_header();
    return file;
  }

  const std::filesystem::path& path() const noexcept { return path_; }
  // Tensors in the order of their data (ascending offsets).
  const std::vector<SafetensorsEntry>& tensors() const noexcept { return entries_; }
  std::size_t size() const noexcept { return entries_.size(); }
  const std::map<std::string, std::string>& metadata() const noexcept { return metadata_; }

  const SafetensorsEntry* find(std::string_view name) const {
    const auto it = index_.find(std::string(name));
    return it == index_.end() ? nullptr : &entries_[it->second];
  }
  bool contains(std::string_view name) const { return find(name) != nullptr; }
  const SafetensorsEntry& at(std::string_view name) const {
    const SafetensorsEntry* e = find(name);
    if (e == nullptr) throw_error("safetensors file ", path(), " has no tensor '", name, "' (it holds ", entries_.size(), " tensors)");
    return *e;
  }

  // Converts the tensor into `out`, whose shape must equal the tensor's: floating
  // dtypes into float, bf16 or double; integer dtypes into std::int32_t or std::int64_t.
  template <class T>
  void read(const SafetensorsEntry& entry, TensorView<T> out) const {
    static_assert(!std::is_const_v<T>, "read into a mutable view");
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, bf16> || std::is_same_v<T, double> || std::is_same_v<T, std::int32_t> ||
                      std::is_same_v<T, std::int64_t>,
                  "safetensors tensors read into float, bf16, double, std::int32_t or std::int64_t");
    constexpr bool integral = std::is_integral_v<T>;
    if (integral ? !is_integer_dtype(entry.dtype) : !is_convertible_dtype(entry.dtype)) {
      throw_error("safetensors file ", path(), ", tensor '", entry.name, "': dtype ", dtype_name(entry.dtype), " does not read into ",
                  integral ? "an integer tensor (integer dtypes do)" : "a floating tensor (F32, BF16, F16 and F64 do)");
    }
    if (!entry.has_shape(out.shape())) {
      throw_error("safetensors file ", path(), ", tensor '", entry.name, "': shape ", entry.shape_string(), " in the file but ", out.shape(),
                  " is required");
    }
    if constexpr (integral) {
      for (std::size_t i = 0; i < out.size(); ++i) {
        if (!detail::decode_integer(entry.dtype, entry.bytes.data(), i, out[i])) {
          throw_error("safetensors file ", path(), ", tensor '", entry.name, "': element ", i, " does not fit in ", sizeof(T) * 8,
                      "-bit integers; read it as std::int64_t");
        }
      }
    } else {
      detail::decode_elements(entry.dtype, entry.bytes.data(), out.data(), out.size());
    }
  }
  template <class T>
  void read(std::string_view name, TensorView<T> out) const {
    read(at(name), out);
  }

  // Elements [first, first + count) of the tensor, converted into `out` (the same
  // elements of a destination of the tensor's size): lets loaders split big tensors
  // across threads. The caller has checked dtype and shape (read() does).
  template <class T>
  void read_elements(const SafetensorsEntry& entry, std::size_t first, std::size_t count, T* out) const {
    if (first > entry.numel() || count > entry.numel() - first) {
      throw_error("safetensors file ", path(), ", tensor '", entry.name, "': elements [", first, ", ", first + count, ") are out of its ",
                  entry.numel());
    }
    detail::decode_elements(entry.dtype, entry.bytes.data() + first * dtype_size(entry.dtype), out + first, count);
  }
  template <class T>
  Tensor<T> read(std::string_view name) const {
    const SafetensorsEntry& entry = at(name);
    if (entry.dims.size() > static_cast<std::size_t>(max_tensor_rank)) {
      throw_error("safetensors file ", path(), ", tensor '", entry.name, "': shape ", entry.shape_string(), " has rank ", entry.dims.size(),
                  "; mpt tensors have rank ", max_tensor_rank, " at most");
    }
    Tensor<T> t(entry.shape());
    read(entry, t.view());
    return t;
  }

 private:
  void index_header() {
    const std::filesystem::path& file = path_;
    const std::span<const std::byte> bytes = bytes_;
    if (bytes.size() < 8) {
      throw_error("safetensors file ", file, ": ", bytes.size(), " bytes is too short to hold the 8-byte header length; the file is truncated");
    }
    const std::uint64_t header_len = detail::read_u64_le(bytes.data());
    if (header_len > safetensors_max_header_bytes) {
      throw_error("safetensors file ", file, ": header length ", header_len, " exceeds the limit of ", safetensors_max_header_bytes,
                  " bytes; the file is corrupt or not safetensors");
    }
    if (header_len > bytes.size() - 8) {
      throw_error("safetensors file ", file, ": header length ", header_len, " runs past the end of the file (", bytes.size(),
                  " bytes); the file is truncated");
    }
    const std::string_view text(reinterpret_cast<const char*>(bytes.data() + 8), header_len);
    // The format requires the JSON to open at the first byte (padding goes at the end).
    if (text.empty() || text.front() != '{') {
      throw_error("safetensors file ", file, ": the header does not begin with '{'; the file is corrupt or not safetensors");
    }
    const nlohmann::json header = detail::parse_header_json(text, file);
    if (!header.is_object()) throw_error("safetensors file ", file, ": the header is ", header.type_name(), " JSON, not an object");

    const std::span<const std::byte> data = bytes.subspan(8 + header_len);
    entries_.reserve(header.size());
    for (const auto& [name, info] : header.items()) {
      if (name == "__metadata__") {
        read_metadata(info);
        continue;
      }
      entries_.push_back(parse_entry(name, info, data));
    }
    std::sort(entries_.begin(), entries_.end(), [](const SafetensorsEntry& a, const SafetensorsEntry& b) {
      return a.data_begin != b.data_begin ? a.data_begin < b.data_begin : a.data_end < b.data_end;
    });
    // Tensors tile the buffer: no overlap (two names for one byte), no hole (room for a polyglot file).
    std::size_t expected_begin = 0;
    for (const SafetensorsEntry& e : entries_) {
      if (e.data_begin < expected_begin) {
        throw_error("safetensors file ", file, ", tensor '", e.name, "': data_offsets [", e.data_begin, ", ", e.data_end,
                    "] overlap the previous tensor, which ends at ", expected_begin);
      }
      if (e.data_begin > expected_begin) {
        throw_error("safetensors file ", file, ", tensor '", e.name, "': data_offsets [", e.data_begin, ", ", e.data_end,
                    "] leave a hole after byte ", expected_begin, " of the data buffer");
      }
      expected_begin = e.data_end;
    }
    if (expected_begin != data.size()) {
      throw_error("safetensors file ", file, ": the tensors cover ", expected_begin, " bytes but the data buffer holds ", data.size(),
                  " (the file has trailing bytes or is truncated)");
    }
    for (std::size_t i = 0; i < entries_.size(); ++i) index_.emplace(entries_[i].name, i);
  }

  void read_metadata(const nlohmann::json& info) {
    const std::filesystem::path& file = path_;
    if (!info.is_object()) throw_error("safetensors file ", file, ": __metadata__ is ", info.type_name(), ", not an object of strings");
    for (const auto& [key, value] : info.items()) {
      if (!value.is_string()) throw_error("safetensors file ", file, ": __metadata__ entry '", key, "' is ", value.dump(), ", not a string");
      metadata_.emplace(key, value.get<std::string>());
    }
  }

  SafetensorsEntry parse_entry(const std::string& name, const nlohmann::json& info, std::span<const std::byte> data) const {
    const std::filesystem::path& file = path_;
    const auto fail = [&](auto&&... what) { throw_error("safetensors file ", file, ", tensor '", name, "': ", what...); };
    if (!info.is_object()) fail("the entry is ", info.dump(), ", not an object with dtype, shape and data_offsets");
    const auto dtype_it = info.find("dtype");
    const auto shape_it = info.find("shape");
    const auto offsets_it = info.find("data_offsets");
    if (dtype_it == info.end() || shape_it == info.end() || offsets_it == info.end()) {
      fail("the entry ", info.dump(), " lacks dtype, shape or data_offsets");
    }
    if (!dtype_it->is_string()) fail("dtype ", dtype_it->dump(), " is not a string");
    const std::optional<Dtype> dtype = parse_dtype(dtype_it->get<std::string>());
    if (!dtype)
      fail("unknown dtype ", dtype_it->dump(),
           " (the format defines BOOL, U8, I8, F8_E5M2, F8_E4M3, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64)");

    SafetensorsEntry e;
    e.name = name;
    e.dtype = *dtype;
    if (!shape_it->is_array()) fail("shape ", shape_it->dump(), " is not an array");
    std::uint64_t bytes_needed = dtype_size(e.dtype);
    for (const nlohmann::json& d : *shape_it) {
      const std::uint64_t extent = detail::json_non_negative_integer(d, file, name, "shape");
      // The product is checked against the file size below; only its overflow needs care here.
      if (extent != 0 && bytes_needed > UINT64_MAX / extent) fail("shape ", shape_it->dump(), " overflows 64 bits");
      if (extent > static_cast<std::uint64_t>(INT64_MAX)) fail("shape ", shape_it->dump(), " has an extent beyond int64");
      bytes_needed *= extent;
      e.dims.push_back(static_cast<std::int64_t>(extent));
    }
    if (!offsets_it->is_array() || offsets_it->size() != 2) fail("data_offsets ", offsets_it->dump(), " is not an array [begin, end]");
    const std::uint64_t begin = detail::json_non_negative_integer((*offsets_it)[0], file, name, "data_offsets");
    const std::uint64_t end = detail::json_non_negative_integer((*offsets_it)[1], file, name, "data_offsets");
    if (begin > end) fail("data_offsets [", begin, ", ", end, "] end before they begin");
    if (end > data.size()) fail("data_offsets [", begin, ", ", end, "] run past the data buffer of ", data.size(), " bytes; the file is truncated");
    if (end - begin != bytes_needed) {
      fail("shape ", e.shape_string(), " of ", dtype_name(e.dtype), " needs ", bytes_needed, " bytes but data_offsets [", begin, ", ", end, "] hold ",
           end - begin);
    }
    e.data_begin = static_cast<std::size_t>(begin);
    e.data_end = static_cast<std::size_t>(end);
    e.bytes = data.subspan(e.data_begin, e.data_end - e.data_begin);
    return e;
  }

  // The bytes are map_'s or owned_'s; moving either keeps their address, so the
  // entries' spans survive a move of the file.
  MappedFile map_;
  std::vector<std::byte> owned_;
  std::filesystem::path path_;
  std::span<const std::byte> bytes_;
  std::vector<SafetensorsEntry> entries_;
  std::unordered_map<std::string, std::size_t> index_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace mpt::io
