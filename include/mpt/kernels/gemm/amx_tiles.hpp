#pragma once
// AMX tile primitives: the tile configuration and the few tile instructions the
// AMX-BF16 micro-kernel uses, as inline assembly with a "memory" clobber.
//
// GCC's own _tile_loadd / _tile_stored macros give the compiler no memory operand,
// so it may move ordinary loads and stores across them (a packed panel written just
// before a tileloadd, a C tile read just after a tilestored). The clobber forbids it.
// Tile numbers are immediates, hence macros.
//
// Only run after dispatch has found Isa::amx_bf16 (the CPU has AMX-BF16 and Linux
// granted this process the tile state, see request_amx_permission in core/cpu.hpp).

#include <mpt/core/cpu.hpp>

#include <cstdint>

#if MPT_X86

#define MPT_TILE_ZERO(t) __asm__ volatile("tilezero %%tmm" #t ::: "memory")
#define MPT_TILE_LOAD(t, base, stride_bytes) \
  __asm__ volatile("tileloadd (%0,%1,1), %%tmm" #t ::"r"(static_cast<const void*>(base)), "r"(static_cast<long>(stride_bytes)) : "memory")
#define MPT_TILE_STORE(t, base, stride_bytes) \
  __asm__ volatile("tilestored %%tmm" #t ", (%0,%1,1)" ::"r"(static_cast<void*>(base)), "r"(static_cast<long>(stride_bytes)) : "memory")
// tmm(c) += tmm(a) . tmm(b): a holds 16 rows of 16 bf16 pairs, b 16 pair-rows of 16 columns.
#define MPT_TILE_DPBF16PS(c, a, b) __asm__ volatile("tdpbf16ps %%tmm" #b ", %%tmm" #a ", %%tmm" #c ::: "memory")

namespace mpt::kernels::detail {

// ldtilecfg's 64-byte operand, palette 1.
struct alignas(64) TileConfig {
  std::uint8_t palette = 1, start_row = 0;
  std::uint8_t reserved[14] = {};
  std::uint16_t bytes_per_row[16] = {};
  std::uint8_t rows[16] = {};
};
static_assert(sizeof(TileConfig) == 64);

// Every tile 16 rows x 64 bytes (16 fp32, or 16 bf16 pairs): the 8 tiles of the
// 32 x 32 micro-kernel. Loaded by each thread before its first tile instruction:
// the configuration is per thread, and someone else's library may have released it.
inline void configure_tiles_16x64() noexcept {
  TileConfig config;
  for (int t = 0; t < 8; ++t) config.bytes_per_row[t] = 64, config.rows[t] = 16;
  __asm__ volatile("ldtilecfg %0" ::"m"(config) : "memory");
}

}  // namespace mpt::kernels::detail

#endif
