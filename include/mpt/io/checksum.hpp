#pragma once
// CRC-32C (Castagnoli), the checksum checkpoints record for every file they
// hold: the SSE4.2 crc32 instruction where the CPU has it (8 bytes a cycle per
// stream), a table otherwise; both give the same value.
//
//   crc32c(bytes)        of a buffer ("123456789" -> 0xE3069283)
//   file_crc32c(path)    of a whole file, read through a memory map

#include <mpt/io/file.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <span>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace mpt::io {

namespace detail {
inline const std::array<std::uint32_t, 256>& crc32c_table() {
  static const std::array<std::uint32_t, 256> table = [] {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1u) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  return table;
}

inline std::uint32_t crc32c_table_update(std::uint32_t crc, const std::byte* p, std::size_t n) noexcept {
  const auto& t = crc32c_table();
  for (std::size_t i = 0; i < n; ++i) crc = t[(crc ^ static_cast<std::uint8_t>(p[i])) & 0xFFu] ^ (crc >> 8);
  return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) inline std::uint32_t crc32c_sse42_update(std::uint32_t crc, const std::byte* p, std::size_t n) noexcept {
  std::uint64_t c = crc;
  for (; n >= 8; n -= 8, p += 8) {
    std::uint64_t word;
    std::memcpy(&word, p, 8);
    c = _mm_crc32_u64(c, word);
  }
  auto c32 = static_cast<std::uint32_t>(c);
  for (; n > 0; --n, ++p) c32 = _mm_crc32_u8(c32, static_cast<std::uint8_t>(*p));
  return c32;
}
#endif
}  // namespace detail

inline std::uint32_t crc32c(std::span<const std::byte> bytes) noexcept {
  std::uint32_t crc = 0xFFFFFFFFu;
#if defined(__x86_64__)
  static const bool hardware = __builtin_cpu_supports("sse4.2");
  if (hardware) return ~detail::crc32c_sse42_update(crc, bytes.data(), bytes.size());
#endif
  return ~detail::crc32c_table_update(crc, bytes.data(), bytes.size());
}

inline std::uint32_t file_crc32c(const std::filesystem::path& path) {
  const MappedFile file = MappedFile::open(path);
  return crc32c(file.bytes());
}

}  // namespace mpt::io
