#pragma once
// CPU feature detection (cpuid + xgetbv) and the instruction-set level that
// kernels dispatch on. The level can be forced lower with the environment
// variable MPT_ISA=scalar|avx2|avx512|avx512_bf16|amx_bf16 (read once, at first use)
// or, in tests, with a ScopedIsa guard, so every kernel path runs on one machine.

#include <mpt/core/error.hpp>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define MPT_X86 1
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#else
#define MPT_X86 0
#endif

// Function attributes that compile one function for one instruction set,
// whatever -m flags the translation unit has. Every kernel that uses the
// matching intrinsics carries one of these, and runs only after dispatch
// has checked the CPU (see active_isa()).
#define MPT_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))
#define MPT_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")))
#define MPT_TARGET_AVX512_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma,f16c")))

namespace mpt {

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512_bf16 = false;
  bool amx_tile = false, amx_bf16 = false;  // and the OS lets this process use the tile registers
};

namespace detail {
#if MPT_X86
inline std::uint64_t read_xcr0() noexcept {
  std::uint32_t eax = 0, edx = 0;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<std::uint64_t>(edx) << 32) | eax;
}
#endif

// Linux hands the AMX tile data state (8 KiB per thread) only to a process that asks
// for it (arch_prctl ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA); without it, the first
// tile instruction is a SIGILL. Asked once, for the whole process and its threads.
inline bool request_amx_permission() noexcept {
#if MPT_X86 && defined(__linux__) && defined(SYS_arch_prctl)
  constexpr long arch_req_xcomp_perm = 0x1023, xfeature_xtiledata = 18;
  return syscall(SYS_arch_prctl, arch_req_xcomp_perm, xfeature_xtiledata) == 0;
#else
  return false;
#endif
}

inline CpuFeatures query_cpu_features() noexcept {
  CpuFeatures f;
#if MPT_X86
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = (c >> 27) & 1u;
  const bool avx = (c >> 28) & 1u;
  const bool fma = (c >> 12) & 1u;
  const bool f16c = (c >> 29) & 1u;
  if (!osxsave || !avx) return f;
  const std::uint64_t xcr0 = read_xcr0();
  const bool os_avx = (xcr0 & 0x6u) == 0x6u;          // XMM + YMM state
  const bool os_avx512 = (xcr0 & 0xE6u) == 0xE6u;     // + opmask, ZMM_Hi256, Hi16_ZMM
  const bool os_amx = (xcr0 & 0x60000u) == 0x60000u;  // XTILECFG + XTILEDATA
  if (!os_avx) return f;
  f.fma = fma;
  f.f16c = f16c;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return f;
  f.avx2 = (b >> 5) & 1u;
  if (os_avx512) {
    f.avx512f = (b >> 16) & 1u;
    f.avx512dq = (b >> 17) & 1u;
    f.avx512bw = (b >> 30) & 1u;
    f.avx512vl = (b >> 31) & 1u;
  }
  if (os_amx) {
    f.amx_bf16 = (d >> 22) & 1u;
    f.amx_tile = (d >> 24) & 1u;
  }
  const unsigned max_sub = a;
  if (max_sub >= 1 && os_avx512 && __get_cpuid_count(7, 1, &a, &b, &c, &d)) {
    f.avx512_bf16 = (a >> 5) & 1u;
  }
  if (f.amx_tile && f.amx_bf16 && !request_amx_permission()) f.amx_tile = f.amx_bf16 = false;
#endif
  return f;
}
}  // namespace detail

// What this CPU (and its operating system) can run. Queried once.
inline const CpuFeatures& cpu_features() noexcept {
  static const CpuFeatures features = detail::query_cpu_features();
  return features;
}

// Instruction-set levels, each a superset of the one before it.
// amx_bf16 adds the tile unit (tdpbf16ps) to avx512_bf16: only bf16 GEMMs use it.
enum class Isa : int { scalar = 0, avx2 = 1, avx512 = 2, avx512_bf16 = 3, amx_bf16 = 4 };

inline std::string_view isa_name(Isa isa) noexcept {
  switch (isa) {
    case Isa::scalar:
      return "scalar";
    case Isa::avx2:
      return "avx2";
    case Isa::avx512:
      return "avx512";
    case Isa::avx512_bf16:
      return "avx512_bf16";
    case Isa::amx_bf16:
      return "amx_bf16";
  }
  return "?";
}

inline Isa parse_isa(std::string_view name) {
  for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avx512, Isa::avx512_bf16, Isa::amx_bf16}) {
    if (name == isa_name(isa)) return isa;
  }
  throw_error("unknown instruction set '", name, "': expected one of scalar, avx2, avx512, avx512_bf16, amx_bf16");
}

// The highest level the CPU supports.
inline Isa detected_isa() noexcept {
  const CpuFeatures& f = cpu_features();
  if (!(f.avx2 && f.fma && f.f16c)) return Isa::scalar;
  if (!(f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq)) return Isa::avx2;
  if (!f.avx512_bf16) return Isa::avx512;
  return f.amx_tile && f.amx_bf16 ? Isa::amx_bf16 : Isa::avx512_bf16;
}

namespace detail {
// The level MPT_ISA asks for, checked against the CPU once.
// The level MPT_ISA=`value` selects on a CPU whose best level is `cpu` (nullptr or
// empty: `cpu`). A name it does not know, or a level above the CPU's, is an error.
inline Isa isa_from_setting(const char* value, Isa cpu) {
  if (value == nullptr || *value == '\0') return cpu;
  Isa wanted = Isa::scalar;
  try {
    wanted = parse_isa(value);
  } catch (const Error& e) {
    throw_error("MPT_ISA=", value, ": ", e.what());
  }
  if (static_cast<int>(wanted) > static_cast<int>(cpu)) {
    throw_error("MPT_ISA=", value, " asks for more than this CPU supports (", isa_name(cpu), "); MPT_ISA can only force a lower instruction set");
  }
  return wanted;
}

inline Isa environment_isa() {
  static const Isa isa = isa_from_setting(std::getenv("MPT_ISA"), detected_isa());
  return isa;
}

// ScopedIsa's rule: a level up to the CPU's, never above.
inline void check_forced_isa(Isa wanted, Isa cpu) {
  if (static_cast<int>(wanted) > static_cast<int>(cpu)) {
    throw_error("ScopedIsa(", isa_name(wanted), "): this CPU supports only up to ", isa_name(cpu));
  }
}

inline std::atomic<int>& isa_override() noexcept {
  static std::atomic<int> value{-1};
  return value;
}
}  // namespace detail

// The level kernels dispatch on: the CPU's, lowered by MPT_ISA or a ScopedIsa.
inline Isa active_isa() {
  const int forced = detail::isa_override().load(std::memory_order_relaxed);
  const Isa base = detail::environment_isa();
  if (forced >= 0 && forced < static_cast<int>(base)) return static_cast<Isa>(forced);
  return base;
}

// Forces a lower instruction set for its lifetime (for tests and benchmarks).
// Asking for more than the CPU has is an error, never a crash.
class ScopedIsa {
 public:
  explicit ScopedIsa(Isa isa) : previous_(detail::isa_override().load()) {
    detail::check_forced_isa(isa, detected_isa());
    detail::isa_override().store(static_cast<int>(isa));
  }
  ~ScopedIsa() { detail::isa_override().store(previous_); }
  ScopedIsa(const ScopedIsa&) = delete;
  ScopedIsa& operator=(const ScopedIsa&) = delete;

 private:
  int previous_;
};

// Every level kernels can run here, lowest first: what tests iterate over. Capped by
// MPT_ISA, which no ScopedIsa can raise (a test asking for AVX2 under MPT_ISA=scalar
// would run the scalar path under the AVX2 label).
inline std::vector<Isa> supported_isas() {
  std::vector<Isa> out;
  for (int i = 0; i <= static_cast<int>(detail::environment_isa()); ++i) out.push_back(static_cast<Isa>(i));
  return out;
}

}  // namespace mpt
