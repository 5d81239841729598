#pragma once
// The one fused pass of every optimizer: the flat buffer is cut into runs
// (contiguous, one weight-decay decision, at most update_run_elements long)
// and each run is one parallel task. Updates are element-wise, so the bits
// do not depend on the thread count.

#include <mpt/core/threads.hpp>
#include <mpt/optim/parameter_table.hpp>

#include <immintrin.h>

#include <cstddef>
#include <vector>

namespace mpt::optim::detail {

inline constexpr std::size_t update_run_elements = 32768;

template <class Body>
void for_each_run(const std::vector<DecayRun>& runs, Body&& body) {
  parallel_for(runs.size(), [&](std::size_t r) { body(runs[r]); });
}

// Keeps a product rounded to its type: GCC contracts `a * b + c` into an fma
// (-ffp-contract=fast is its C++ default) wherever FMA is enabled, which would
// differ from PyTorch's separate mul_ and add_ in the last bit.
template <class T>
inline T keep_rounded(T x) noexcept {
#if MPT_X86
  __asm__("" : "+x"(x));
#else
  volatile T v = x;
  x = v;
#endif
  return x;
}

#if MPT_X86
// Software prefetch distance of the update kernels (elements): the hardware
// prefetcher stops at 4 KiB pages, which starves each of the 4-6 streams.
inline constexpr std::size_t prefetch_elements = 1024;

// Prefetches element i + prefetch_elements of every stream (called once per 16 elements).
template <class... Streams>
inline void prefetch_ahead(std::size_t i, const Streams*... streams) noexcept {
  (_mm_prefetch(reinterpret_cast<const char*>(streams + i + prefetch_elements), _MM_HINT_T0), ...);
}

// Lanes of a 16-wide block that hold elements when `left` remain.
inline __mmask16 tail_mask(std::size_t left) noexcept { return left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1u); }
#endif

}  // namespace mpt::optim::detail
