#pragma once
// The element types of safetensors files (io::Dtype: names, sizes, which convert into
// mpt tensors) and the element conversions every reader and writer of mpt uses:
//   decode_elements(dtype, bytes, out, n)  file encoding -> float / bf16 / double
//   encode_elements(dtype, in, out, n)     and back
// Checkpoints' optimizer state (optim/state_dict.hpp) names its dtypes with it too.
#include <mpt/core/bf16.hpp>
#include <mpt/core/bf16_convert.hpp>
#include <mpt/core/error.hpp>
#include <mpt/core/tensor.hpp>
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

static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian; mpt reads it in place");

// Every dtype the format defines. Only the floating ones convert into mpt tensors;
// the others are still validated (sizes, offsets) so a file holding them opens.
enum class Dtype { boolean, u8, i8, f8_e5m2, f8_e4m3, i16, u16, f16, bf16, i32, u32, f32, f64, i64, u64 };

namespace detail {
struct DtypeInfo {
  Dtype dtype;
  std::string_view name;
  std::size_t size;
};
inline constexpr std::array<DtypeInfo, 15> dtype_table{{
    {Dtype::boolean, "BOOL", 1},
    {Dtype::u8, "U8", 1},
    {Dtype::i8, "I8", 1},
    {Dtype::f8_e5m2, "F8_E5M2", 1},
    {Dtype::f8_e4m3, "F8_E4M3", 1},
    {Dtype::i16, "I16", 2},
    {Dtype::u16, "U16", 2},
    {Dtype::f16, "F16", 2},
    {Dtype::bf16, "BF16", 2},
    {Dtype::i32, "I32", 4},
    {Dtype::u32, "U32", 4},
    {Dtype::f32, "F32", 4},
    {Dtype::f64, "F64", 8},
    {Dtype::i64, "I64", 8},
    {Dtype::u64, "U64", 8},
}};
}  // namespace detail

constexpr std::string_view dtype_name(Dtype d) noexcept { return detail::dtype_table[static_cast<std::size_t>(d)].name; }
constexpr std::size_t dtype_size(Dtype d) noexcept { return detail::dtype_table[static_cast<std::size_t>(d)].size; }
constexpr bool is_convertible_dtype(Dtype d) noexcept { return d == Dtype::f32 || d == Dtype::bf16 || d == Dtype::f16 || d == Dtype::f64; }
// Integer (and BOOL) tensors read into std::int32_t / std::int64_t: token ids, masks, positions.
constexpr bool is_integer_dtype(Dtype d) noexcept {
  return d == Dtype::boolean || d == Dtype::u8 || d == Dtype::i8 || d == Dtype::i16 || d == Dtype::u16 || d == Dtype::i32 || d == Dtype::u32 ||
         d == Dtype::i64 || d == Dtype::u64;
}
inline std::optional<Dtype> parse_dtype(std::string_view name) noexcept {
  for (const auto& info : detail::dtype_table)
    if (info.name == name) return info.dtype;
  return std::nullopt;
}

// The file dtype that stores a C++ element type unchanged.
template <class T>
constexpr Dtype dtype_of() noexcept {
  if constexpr (std::is_same_v<T, float>)
    return Dtype::f32;
  else if constexpr (std::is_same_v<T, bf16>)
    return Dtype::bf16;
  else if constexpr (std::is_same_v<T, Eigen::half>)
    return Dtype::f16;
  else {
    static_assert(std::is_same_v<T, double>, "safetensors I/O converts float, bf16, Eigen::half and double");
    return Dtype::f64;
  }
}

namespace detail {

// Decodes `n` elements of a file dtype into T, through a small aligned stage so that
// unaligned data (any header length is legal) is never read through a typed pointer.
template <class T>
void decode_elements(Dtype src, const std::byte* bytes, T* out, std::size_t n) {
  constexpr std::size_t chunk = 1024;
  alignas(64) std::array<float, chunk> stage_f32;
  alignas(64) std::array<std::uint16_t, chunk> stage_u16;
  alignas(64) std::array<double, chunk> stage_f64;
  for (std::size_t i = 0; i < n; i += chunk) {
    const std::size_t m = std::min(chunk, n - i);
    switch (src) {
      case Dtype::f32: {
        if constexpr (std::is_same_v<T, float>) {
          std::memcpy(out + i, bytes + i * 4, m * 4);
        } else {
          std::memcpy(stage_f32.data(), bytes + i * 4, m * 4);
          if constexpr (std::is_same_v<T, bf16>) {
            convert(std::span<const float>(stage_f32.data(), m), std::span<bf16>(out + i, m));
          } else {
            for (std::size_t k = 0; k < m; ++k) out[i + k] = static_cast<T>(stage_f32[k]);
          }
        }
        break;
      }
      case Dtype::bf16: {
        if constexpr (std::is_same_v<T, bf16>) {
          std::memcpy(out + i, bytes + i * 2, m * 2);
        } else {
          std::memcpy(stage_u16.data(), bytes + i * 2, m * 2);
          const std::span<const bf16> in(reinterpret_cast<const bf16*>(stage_u16.data()), m);
          if constexpr (std::is_same_v<T, float>) {
            convert(in, std::span<float>(out + i, m));
          } else {
            for (std::size_t k = 0; k < m; ++k) out[i + k] = static_cast<T>(to_float(in[k]));
          }
        }
        break;
      }
      case Dtype::f16: {
        std::memcpy(stage_u16.data(), bytes + i * 2, m * 2);
        for (std::size_t k = 0; k < m; ++k) {
          const float v = static_cast<float>(Eigen::half(Eigen::half_impl::raw_uint16_to_half(stage_u16[k])));  // exact
          if constexpr (std::is_same_v<T, bf16>)
            out[i + k] = to_bf16(v);
          else
            out[i + k] = static_cast<T>(v);
        }
        break;
      }
      case Dtype::f64: {
        std::memcpy(stage_f64.data(), bytes + i * 8, m * 8);
        for (std::size_t k = 0; k < m; ++k) {
          // double -> bf16 goes through float: a double rounding, as torch's .to(bfloat16) does.
          if constexpr (std::is_same_v<T, bf16>)
            out[i + k] = to_bf16(static_cast<float>(stage_f64[k]));
          else
            out[i + k] = static_cast<T>(stage_f64[k]);
        }
        break;
      }
      default:
        throw_error("decode_elements: dtype ", dtype_name(src), " is not a floating type");
    }
  }
}

// Encodes `n` elements of T as a file dtype into `out` (n * dtype_size bytes).
template <class T>
void encode_elements(const T* in, Dtype dst, std::byte* out, std::size_t n) {
  constexpr std::size_t chunk = 1024;
  alignas(64) std::array<float, chunk> stage_f32;
  alignas(64) std::array<bf16, chunk> stage_bf16;
  for (std::size_t i = 0; i < n; i += chunk) {
    const std::size_t m = std::min(chunk, n - i);
    switch (dst) {
      case Dtype::f32: {
        if constexpr (std::is_same_v<T, float>) {
          std::memcpy(out + i * 4, in + i, m * 4);
        } else {
          for (std::size_t k = 0; k < m; ++k) stage_f32[k] = to_float(in[i + k]);
          std::memcpy(out + i * 4, stage_f32.data(), m * 4);
        }
        break;
      }
      case Dtype::bf16: {
        if constexpr (std::is_same_v<T, bf16>) {
          std::memcpy(out + i * 2, in + i, m * 2);
        } else if constexpr (std::is_same_v<T, float>) {
          convert(std::span<const float>(in + i, m), std::span<bf16>(stage_bf16.data(), m));
          std::memcpy(out + i * 2, stage_bf16.data(), m * 2);
        } else {
          for (std::size_t k = 0; k < m; ++k) stage_bf16[k] = to_bf16(static_cast<float>(in[i + k]));
          std::memcpy(out + i * 2, stage_bf16.data(), m * 2);
        }
        break;
      }
      case Dtype::f16: {
        for (std::size_t k = 0; k < m; ++k) {
          const std::uint16_t bits = Eigen::numext::bit_cast<std::uint16_t>(Eigen::half(static_cast<float>(to_float(in[i + k]))));
          std::memcpy(out + (i + k) * 2, &bits, 2);
        }
        break;
      }
      case Dtype::f64: {
        for (std::size_t k = 0; k < m; ++k) {
          const double v = static_cast<double>(to_float(in[i + k]));
          std::memcpy(out + (i + k) * 8, &v, 8);
        }
        break;
      }
      default:
        throw_error("encode_elements: mpt writes F32, BF16, F16 or F64, not ", dtype_name(dst));
    }
  }
}

// Reads integer element i of a file dtype; false when it does not fit in T.
template <class T>
bool decode_integer(Dtype src, const std::byte* bytes, std::size_t i, T& out) {
  const auto load = [&](auto zero) {
    decltype(zero) v;
    std::memcpy(&v, bytes + i * sizeof(v), sizeof(v));
    if (!std::in_range<T>(v)) return false;
    out = static_cast<T>(v);
    return true;
  };
  switch (src) {
    case Dtype::boolean:
    case Dtype::u8:
      return load(std::uint8_t{});
    case Dtype::i8:
      return load(std::int8_t{});
    case Dtype::i16:
      return load(std::int16_t{});
    case Dtype::u16:
      return load(std::uint16_t{});
    case Dtype::i32:
      return load(std::int32_t{});
    case Dtype::u32:
      return load(std::uint32_t{});
    case Dtype::i64:
      return load(std::int64_t{});
    case Dtype::u64:
      return load(std::uint64_t{});
    default:
      return false;
  }
}
}  // namespace detail

}  // namespace mpt::io
