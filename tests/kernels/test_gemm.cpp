#include <doctest/doctest.h>
#include "test_seed.hpp"
#include <mpt/mpt.hpp>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

// Every GEMM is checked against a fp64 reference computed from the same (already
// rounded) inputs, element by element, with an error bound derived from the
// precision, never tuned:
//  * accumulation in precision u (2^-24 fp32, 2^-53 fp64) over K products, plus
//    alpha/beta scaling: |err| <= (K + 4) u (|alpha| sum_k |a_ik b_kj| + |beta c_ij|)
//    (bf16 operands are exact in fp32, and their products are exact, so the
//    vdpbf16ps path has the same bound as fp32 FMA);
//  * bias / residual add: one more rounding, u |v| each;
//  * GELU: the error of v passes through with gain <= max|gelu'| < 1.13, plus the
//    rational erf's error (a few ulp, and about 10 roundings of terms <= 1: <= 2^-20
//    absolute), scaled by |v|/2, plus 4 roundings of the result;
//  * bf16 output: one rounding to nearest even, 2^-8 relative.
// The reference applies GELU with std::erf in fp64.

namespace {

using mpt::bf16;
using mpt::kernels::Trans;

std::uint32_t test_seed() { return mpt::test::seed_or_random("test_gemm"); }

template <class T>
T from_double(double x) {
  if constexpr (std::is_same_v<T, bf16>)
    return mpt::to_bf16(static_cast<float>(x));
  else
    return static_cast<T>(x);
}
template <class T>
double as_double(T x) {
  if constexpr (std::is_same_v<T, bf16>)
    return static_cast<double>(mpt::to_float(x));
  else
    return static_cast<double>(x);
}
template <class T>
constexpr double unit_roundoff() {
  if constexpr (std::is_same_v<T, double>)
    return 0x1p-53;
  else if constexpr (std::is_same_v<T, bf16>)
    return 0x1p-8;
  else
    return 0x1p-24;
}
template <class T>
std::string type_name() {
  if constexpr (std::is_same_v<T, double>)
    return "f64";
  else if constexpr (std::is_same_v<T, bf16>)
    return "bf16";
  else
    return "f32";
}

template <class T>
std::vector<T> random_values(std::size_t count, std::mt19937& rng) {
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  std::vector<T> v(count);
  for (auto& x : v) x = from_double<T>(dist(rng));
  return v;
}

struct Case {
  Trans ta = Trans::N, tb = Trans::N;
  std::size_t m = 1, n = 1, k = 1;
  double alpha = 1, beta = 0;
  std::size_t pad = 0;  // extra elements per row of every operand
  bool bias = false, gelu = false, residual = false;

  std::string describe() const {
    char buf[200];
    std::snprintf(buf, sizeof buf, "op %c%c M %zu N %zu K %zu alpha %g beta %g pad %zu bias %d gelu %d residual %d", ta == Trans::N ? 'N' : 'T',
                  tb == Trans::N ? 'N' : 'T', m, n, k, alpha, beta, pad, bias, gelu, residual);
    return buf;
  }
};

// Runs one GEMM through mpt and compares with the fp64 reference. Returns the
// output so callers can compare paths bitwise.
template <class TA, class TB, class TC, class TE = float, class TR = float>
std::vector<TC> check_gemm(const Case& cs, std::mt19937& rng, bool verify = true) {
  using Acc = mpt::kernels::detail::gemm_scalar_t<TA, TB>;
  const double u = unit_roundoff<Acc>();
  const std::size_t a_rows = cs.ta == Trans::N ? cs.m : cs.k, a_cols = cs.ta == Trans::N ? cs.k : cs.m;
  const std::size_t b_rows = cs.tb == Trans::N ? cs.k : cs.n, b_cols = cs.tb == Trans::N ? cs.n : cs.k;
  const std::size_t lda = a_cols + cs.pad, ldb = b_cols + cs.pad, ldc = cs.n + cs.pad;
  const auto a = random_values<TA>(a_rows * lda, rng);
  const auto b = random_values<TB>(b_rows * ldb, rng);
  auto c = random_values<TC>(cs.m * ldc, rng);
  const auto c0 = c;
  const auto bias = random_values<TE>(cs.n, rng);
  const auto res = random_values<TR>(cs.m * ldc, rng);

  mpt::kernels::GemmEpilogue<TE, TR> epi;
  if (cs.bias) epi.bias = bias.data();
  epi.gelu = cs.gelu;
  if (cs.residual) epi.residual = res.data(), epi.ldr = ldc;

  mpt::kernels::gemm(cs.ta, cs.tb, cs.m, cs.n, cs.k, static_cast<Acc>(cs.alpha), a.data(), lda, b.data(), ldb, static_cast<Acc>(cs.beta), c.data(),
                     ldc, epi);
  if (!verify) return c;

  std::size_t failures = 0;
  double worst = 0;
  for (std::size_t i = 0; i < cs.m; ++i) {
    for (std::size_t j = 0; j < cs.n; ++j) {
      double dot = 0, mag = 0;
      for (std::size_t p = 0; p < cs.k; ++p) {
        const double x = as_double(cs.ta == Trans::N ? a[i * lda + p] : a[p * lda + i]);
        const double y = as_double(cs.tb == Trans::N ? b[p * ldb + j] : b[j * ldb + p]);
        dot += x * y;
        mag += std::abs(x * y);
      }
      const double beta_c = cs.beta == 0 ? 0.0 : cs.beta * as_double(c0[i * ldc + j]);
      double v = cs.alpha * dot + beta_c;
      double bound = (static_cast<double>(cs.k) + 4) * u * (std::abs(cs.alpha) * mag + std::abs(beta_c));
      if (cs.bias) v += as_double(bias[j]), bound += u * std::abs(v);
      if (cs.gelu) {
        const double g = 0.5 * v * (1 + std::erf(v / std::sqrt(2.0)));
        bound = 1.13 * bound + (std::is_same_v<Acc, float> ? 0x1p-20 : 8 * u) * 0.5 * std::abs(v) + 4 * u * std::abs(g);
        v = g;
      }
      if (cs.residual) v += as_double(res[i * ldc + j]), bound += u * std::abs(v);
      if constexpr (std::is_same_v<TC, bf16>)
        bound += 0x1p-8 * std::abs(v);
      else if constexpr (std::is_same_v<TC, float>)
        bound += 0x1p-24 * std::abs(v);
      const double got = as_double(c[i * ldc + j]);
      const double err = std::abs(got - v);
      worst = std::max(worst, bound > 0 ? err / bound : err);
      if (!(err <= bound) && failures++ < 3) {
        MESSAGE("C(" << i << ", " << j << ") = " << got << " but reference is " << v << " (error " << err << ", bound " << bound << ")");
      }
    }
  }
  // Padding between rows of C is never written.
  for (std::size_t i = 0; i < cs.m; ++i)
    for (std::size_t j = cs.n; j < ldc; ++j)
      if (std::memcmp(&c[i * ldc + j], &c0[i * ldc + j], sizeof(TC)) != 0) ++failures;
  INFO("isa " << mpt::isa_name(mpt::active_isa()) << " kernel " << mpt::kernels::gemm_kernel_name(mpt::kernels::gemm_kernel_for<TA, TB>())
              << " types " << type_name<TA>() << "*" << type_name<TB>() << "->" << type_name<TC>() << " " << cs.describe() << " worst error/bound "
              << worst);
  CHECK(failures == 0);
  return c;
}

const Trans both[] = {Trans::N, Trans::T};

template <class TA, class TB, class TC>
void check_shapes_on_every_isa() {
  std::mt19937 rng(test_seed());
  // Odd sizes, 1s, sizes just past the 12 x 32 / 6 x 16 / 4 x 16 tiles, and K
  // past one k-block (1536 fp32 AVX-512, 3072 bf16 dot, 256 AVX2 / scalar) so
  // partial sums are carried between blocks.
  const std::size_t shapes[][3] = {{1, 1, 1},    {1, 1, 9},   {1, 37, 5},    {13, 1, 7},     {5, 7, 1},    {12, 32, 16},
                                   {13, 33, 17}, {25, 70, 3}, {7, 65, 1600}, {30, 20, 1031}, {5, 40, 3100}};
  for (mpt::Isa isa : mpt::supported_isas()) {
    mpt::ScopedIsa scoped(isa);
    for (const auto& s : shapes) {
      for (Trans ta : both) {
        for (Trans tb : both) {
          for (double beta : {0.0, 1.0}) {
            if (s[2] > 1000 && beta == 0.0) continue;  // long K: one beta is enough (keeps the ASan run short)
            Case cs;
            cs.ta = ta, cs.tb = tb, cs.m = s[0], cs.n = s[1], cs.k = s[2], cs.beta = beta;
            cs.pad = (s[0] + s[2]) % 3;
            check_gemm<TA, TB, TC>(cs, rng);
          }
        }
      }
    }
  }
}

}  // namespace

TEST_CASE("gemm fp32 x fp32 -> fp32 matches the fp64 reference on every ISA") { check_shapes_on_every_isa<float, float, float>(); }
TEST_CASE("gemm bf16 x bf16 -> fp32 matches the fp64 reference on every ISA") { check_shapes_on_every_isa<bf16, bf16, float>(); }
TEST_CASE("gemm bf16 x bf16 -> bf16 matches the fp64 reference on every ISA") { check_shapes_on_every_isa<bf16, bf16, bf16>(); }
TEST_CASE("gemm with mixed fp32 / bf16 operands widens exactly") {
  std::mt19937 rng(test_seed());
  for (mpt::Isa isa : mpt::supported_isas()) {
    mpt::ScopedIsa scoped(isa);
    for (Trans ta : both) {
      for (Trans tb : both) {
        Case cs;
        cs.ta = ta, cs.tb = tb, cs.m = 14, cs.n = 35, cs.k = 300, cs.beta = 1;
        check_gemm<float, bf16, float>(cs, rng);
        check_gemm<bf16, float, bf16>(cs, rng);
      }
    }
  }
}

TEST_CASE("gemm fp64 for gradient checks") {
  std::mt19937 rng(test_seed());
  for (Trans ta : both) {
    for (Trans tb : both) {
      for (const auto& s : {std::array<std::size_t, 3>{1, 1, 1}, {9, 13, 300}, {5, 17, 2}}) {
        Case cs;
        cs.ta = ta, cs.tb = tb, cs.m = s[0], cs.n = s[1], cs.k = s[2], cs.alpha = 0.5, cs.beta = 1, cs.pad = 1;
        cs.bias = cs.gelu = cs.residual = s[0] == 9;
        check_gemm<double, double, double, double, double>(cs, rng);
      }
    }
  }
}

TEST_CASE_TEMPLATE("gemm fused epilogues: bias, GELU, residual, alpha, beta", T, float, bf16) {
  std::mt19937 rng(test_seed());
  for (mpt::Isa isa : mpt::supported_isas()) {
    mpt::ScopedIsa scoped(isa);
    for (int mask = 1; mask < 8; ++mask) {
      for (double beta : {0.0, 1.0}) {
        Case cs;
        cs.ta = Trans::N, cs.tb = Trans::T, cs.m = 19, cs.n = 45, cs.k = mask == 7 ? 3100 : 40;  // 3100: partial sums
        cs.alpha = 0.75, cs.beta = beta, cs.pad = 2;
        cs.bias = mask & 1, cs.gelu = mask & 2, cs.residual = mask & 4;
        check_gemm<T, T, float>(cs, rng);
        check_gemm<T, T, bf16>(cs, rng);
        check_gemm<T, T, bf16, bf16, bf16>(cs, rng);
        check_gemm<T, T, float, bf16, float>(cs, rng);
      }
    }
  }
}

TEST_CASE("gemm with K = 0 applies beta and the epilogue only") {
  std::mt19937 rng(test_seed());
  for (mpt::Isa isa : mpt::supported_isas()) {
    mpt::ScopedIsa scoped(isa);
    Case cs;
    cs.m = 3, cs.n = 21, cs.k = 0, cs.beta = 1, cs.bias = true, cs.gelu = true, cs.residual = true;
    check_gemm<float, float, float>(cs, rng);
    check_gemm<bf16, bf16, bf16>(cs, rng);
  }
}

TEST_CASE_TEMPLATE("gemm results are bitwise identical for 1 and 2 threads", T, float, bf16) {
  for (mpt::Isa isa : mpt::supported_isas()) {
    mpt::ScopedIsa scoped(isa);
    for (Trans ta : both) {
      Case cs;
      // Several row tasks on 2 threads, and K past one k-block on every kernel.
      cs.ta = ta, cs.tb = Trans::T, cs.m = 150, cs.n = 70, cs.k = isa >= mpt::Isa::avx512 ? 3100 : 300;
      cs.beta = 1, cs.bias = true, cs.gelu = true;
      std::vector<T> one, two;
      {
        mpt::ScopedNumThreads threads(1);
        std::mt19937 rng(test_seed());
        one = check_gemm<T, T, T>(cs, rng, false);  // values are checked elsewhere
      }
      {
        mpt::ScopedNumThreads threads(2);
        std::mt19937 rng(test_seed());
        two = check_gemm<T, T, T>(cs, rng, false);
      }
      // Unfused fp32 output, beta = 1: full tiles accumulate straight into C.
      cs.bias = cs.gelu = false;
      std::vector<float> one_f32, two_f32;
      {
        mpt::ScopedNumThreads threads(1);
        std::mt19937 rng(test_seed());
        one_f32 = check_gemm<T, T, float>(cs, rng, false);
      }
      {
        mpt::ScopedNumThreads threads(2);
        std::mt19937 rng(test_seed());
        two_f32 = check_gemm<T, T, float>(cs, rng, false);
      }
      INFO("isa " << mpt::isa_name(isa));
      CHECK(std::memcmp(one.data(), two.data(), one.size() * sizeof(T)) == 0);
      CHECK(std::memcmp(one_f32.data(), two_f32.data(), one_f32.size() * sizeof(float)) == 0);
    }
  }
}

TEST_CASE_TEMPLATE("PackedB gives the same bits as packing inside gemm and is reusable", T, float, bf16) {
  for (mpt::Isa isa : mpt::supported_isas()) {
    mpt::ScopedIsa scoped(isa);
    for (Trans tb : both) {
      const std::size_t m = 29, n = 50, k = 520;
      std::mt19937 rng(test_seed());
      const auto w = random_values<T>(n * k, rng);  // [K x N] (N) or [N x K] (T), dense
      const auto x = random_values<T>(m * k, rng);
      const std::size_t ldb = tb == Trans::N ? n : k;
      const mpt::kernels::PackedB<T> packed(tb, k, n, w.data(), ldb);
      std::vector<float> direct(m * n), reused(m * n);
      for (int call = 0; call < 2; ++call) {
        mpt::kernels::gemm(Trans::N, m, n, k, 1.0f, x.data(), k, packed, 0.0f, reused.data(), n);
        mpt::kernels::gemm(Trans::N, tb, m, n, k, 1.0f, x.data(), k, w.data(), ldb, 0.0f, direct.data(), n);
        CHECK(std::memcmp(direct.data(), reused.data(), direct.size() * sizeof(float)) == 0);
      }
      if (isa != mpt::Isa::scalar) {
        mpt::ScopedIsa lower(mpt::Isa::scalar);
        CHECK_THROWS_AS(mpt::kernels::gemm(Trans::N, m, n, k, 1.0f, x.data(), k, packed, 0.0f, reused.data(), n), mpt::Error);
      }
      CHECK_THROWS_AS(mpt::kernels::gemm(Trans::N, m, n, k + 1, 1.0f, x.data(), k + 1, packed, 0.0f, reused.data(), n), mpt::Error);
    }
  }
}

TEST_CASE_TEMPLATE("PackedLinearWeight serves the forward and input-gradient products", T, float, bf16) {
  std::mt19937 rng(test_seed());
  const std::size_t tokens = 37, in = 70, out = 45, ldw = in + 3;
  const auto w = random_values<T>(out * ldw, rng);
  const auto x = random_values<T>(tokens * in, rng);
  const auto dy = random_values<T>(tokens * out, rng);
  for (mpt::Isa isa : mpt::supported_isas()) {
    mpt::ScopedIsa scoped(isa);
    const mpt::kernels::PackedLinearWeight<T> packed(w.data(), out, in, ldw);
    std::vector<float> y(tokens * out), y_ref(tokens * out), dx(tokens * in), dx_ref(tokens * in);
    mpt::kernels::gemm(Trans::N, tokens, out, in, 1.0f, x.data(), in, packed.forward, 0.0f, y.data(), out);
    mpt::kernels::gemm(Trans::N, Trans::T, tokens, out, in, 1.0f, x.data(), in, w.data(), ldw, 0.0f, y_ref.data(), out);
    mpt::kernels::gemm(Trans::N, tokens, in, out, 1.0f, dy.data(), out, packed.input_grad, 0.0f, dx.data(), in);
    mpt::kernels::gemm(Trans::N, Trans::N, tokens, in, out, 1.0f, dy.data(), out, w.data(), ldw, 0.0f, dx_ref.data(), in);
    INFO("isa " << mpt::isa_name(isa));
    CHECK(std::memcmp(y.data(), y_ref.data(), y.size() * sizeof(float)) == 0);
    CHECK(std::memcmp(dx.data(), dx_ref.data(), dx.size() * sizeof(float)) == 0);
  }
}

TEST_CASE_TEMPLATE("gemm_strided_batched computes attention's products per item", T, float, bf16) {
  // Q, K, V, dO: [batch*heads, seq, head_dim] padded rows; P: [batch*heads, seq, seq].
  std::mt19937 rng(test_seed());
  const std::size_t seq = 19, dim = 8, ld = dim + 1, ldp = seq + 3;
  for (mpt::Isa isa : mpt::supported_isas()) {
    mpt::ScopedIsa scoped(isa);
    for (std::size_t batch : {std::size_t(1), std::size_t(5)}) {
      const std::size_t sq = seq * ld + 2, sp = seq * ldp + 1;
      const auto q = random_values<T>(batch * sq, rng);
      const auto kk = random_values<T>(batch * sq, rng);
      const auto p = random_values<T>(batch * sp, rng);
      struct Product {
        Trans ta, tb;
        std::size_t m, n, k;
        const T *a, *b;
        std::size_t lda, sa, ldb, sb, ldc, sc;
        const char* name;
      };
      const Product products[] = {
          {Trans::N, Trans::T, seq, seq, dim, q.data(), kk.data(), ld, sq, ld, sq, ldp, sp, "Q K^T / dP = dO V^T"},
          {Trans::N, Trans::N, seq, dim, seq, p.data(), kk.data(), ldp, sp, ld, sq, ld, sq, "P V / dQ = dS K"},
          {Trans::T, Trans::N, seq, dim, seq, p.data(), q.data(), ldp, sp, ld, sq, ld, sq, "dV = P^T dO / dK = dS^T Q"},
      };
      for (const Product& pr : products) {
        for (double beta : {0.0, 1.0}) {
          auto c = random_values<float>(batch * pr.sc, rng);
          auto expected = c;
          mpt::kernels::gemm_strided_batched(pr.ta, pr.tb, pr.m, pr.n, pr.k, 1.0f, pr.a, pr.lda, pr.sa, pr.b, pr.ldb, pr.sb, static_cast<float>(beta),
                                             c.data(), pr.ldc, pr.sc, batch);
          for (std::size_t i = 0; i < batch; ++i) {
            mpt::kernels::gemm(pr.ta, pr.tb, pr.m, pr.n, pr.k, 1.0f, pr.a + i * pr.sa, pr.lda, pr.b + i * pr.sb, pr.ldb, static_cast<float>(beta),
                               expected.data() + i * pr.sc, pr.ldc);
          }
          INFO(pr.name << " batch " << batch << " isa " << mpt::isa_name(isa));
          CHECK(std::memcmp(c.data(), expected.data(), c.size() * sizeof(float)) == 0);
        }
      }
    }
  }
  // The single-GEMM path is itself checked against the reference above; here one
  // batched product is also checked against fp64 directly.
  Case cs;
  cs.ta = Trans::N, cs.tb = Trans::T, cs.m = seq, cs.n = seq, cs.k = dim;
  check_gemm<T, T, float>(cs, rng);
}

TEST_CASE_TEMPLATE("bias_grad sums columns of dY into db, deterministically", T, float, bf16) {
  std::mt19937 rng(test_seed());
  const std::size_t m = 333, n = 301, ld = 305;
  const auto dy = random_values<T>(m * ld, rng);
  std::vector<float> db(n, 0.5f), db2(n, 0.5f);
  {
    mpt::ScopedNumThreads threads(2);
    mpt::kernels::bias_grad(dy.data(), m, n, ld, db.data());
  }
  {
    mpt::ScopedNumThreads threads(1);
    mpt::kernels::bias_grad(dy.data(), m, n, ld, db2.data());
  }
  CHECK(std::memcmp(db.data(), db2.data(), n * sizeof(float)) == 0);
  std::size_t failures = 0;
  for (std::size_t j = 0; j < n; ++j) {
    double sum = 0.5, mag = 0.5;
    for (std::size_t i = 0; i < m; ++i) sum += as_double(dy[i * ld + j]), mag += std::abs(as_double(dy[i * ld + j]));
    // Sequential fp32 sum of m + 1 terms: (m + 1) u sum |terms|.
    if (!(std::abs(db[j] - sum) <= (m + 1) * 0x1p-24 * mag)) ++failures;
  }
  CHECK(failures == 0);
}

// The fused weight + bias gradient must give exactly what the two separate calls give:
// the same GEMM (same packing, blocking and k order) and the same column sums of dY
// (summed from zero in token order, then added to db once, as bias_grad does).
TEST_CASE_TEMPLATE("linear_weight_grad = gemm(dY^T X) + bias_grad(dY), bit for bit, any thread count", T, float, bf16, double) {
  using G = std::conditional_t<std::is_same_v<T, double>, double, float>;
  struct Shape {
    std::size_t tokens, out, in, ldy, ldx;
  };
  // Odd sizes; partial row panels; tokens past one k-block of every kernel (fp32: 1536,
  // bf16 pairs: 3072) with an odd count (a zero-padded last pair); columns split when
  // the rows are few (out = 5).
  const Shape shapes[] = {{1, 1, 1, 1, 1}, {37, 29, 45, 31, 47}, {3101, 50, 33, 53, 33}, {200, 5, 300, 5, 301}};
  for (mpt::Isa isa : mpt::supported_isas()) {
    mpt::ScopedIsa scoped(isa);
    for (const Shape& sh : shapes) {
      std::mt19937 rng(test_seed());
      const auto dy = random_values<T>(sh.tokens * sh.ldy, rng);
      const auto x = random_values<T>(sh.tokens * sh.ldx, rng);
      std::vector<G> dw0(sh.out * sh.in), db0(sh.out);
      for (auto& v : dw0) v = G(std::uniform_real_distribution<double>(-1, 1)(rng));
      for (auto& v : db0) v = G(std::uniform_real_distribution<double>(-1, 1)(rng));
      auto dw_sep = dw0, db_sep = db0;
      mpt::kernels::gemm(Trans::T, Trans::N, sh.out, sh.in, sh.tokens, G(1), dy.data(), sh.ldy, x.data(), sh.ldx, G(1), dw_sep.data(), sh.in);
      mpt::kernels::bias_grad(dy.data(), sh.tokens, sh.out, sh.ldy, db_sep.data());
      for (int threads : {1, 2}) {
        mpt::ScopedNumThreads scoped_threads(threads);
        auto dw = dw0, db = db0;
        mpt::kernels::linear_weight_grad(sh.tokens, sh.out, sh.in, dy.data(), sh.ldy, x.data(), sh.ldx, dw.data(), sh.in, db.data());
        INFO("isa " << mpt::isa_name(isa) << ", " << type_name<T>() << ", tokens " << sh.tokens << ", out " << sh.out << ", in " << sh.in
                    << ", threads " << threads);
        CHECK(std::memcmp(dw.data(), dw_sep.data(), dw.size() * sizeof(G)) == 0);
        CHECK(std::memcmp(db.data(), db_sep.data(), db.size() * sizeof(G)) == 0);
        // Without a bias: the weight gradient alone, unchanged.
        auto dw_only = dw0;
        mpt::kernels::linear_weight_grad(sh.tokens, sh.out, sh.in, dy.data(), sh.ldy, x.data(), sh.ldx, dw_only.data(), sh.in,
                                         static_cast<G*>(nullptr));
        CHECK(std::memcmp(dw_only.data(), dw_sep.data(), dw.size() * sizeof(G)) == 0);
      }
    }
  }
}

TEST_CASE("linear_weight_grad names its operands in errors") {
  std::vector<float> dy(12), x(12), dw(12), db(4);
  try {
    mpt::kernels::linear_weight_grad(3, 4, 3, dy.data(), 2, x.data(), 3, dw.data(), 3, db.data());
    FAIL("expected an error");
  } catch (const mpt::Error& e) {
    MESSAGE(std::string(e.what()));
    CHECK(std::string(e.what()).find("leading dimension of dY is 2") != std::string::npos);
    CHECK(std::string(e.what()).find("pass ldy >= 4") != std::string::npos);
  }
  CHECK_THROWS_AS(mpt::kernels::linear_weight_grad(3, 4, 3, dy.data(), 4, x.data(), 2, dw.data(), 3, db.data()), mpt::Error);
  CHECK_THROWS_AS(mpt::kernels::linear_weight_grad(3, 4, 3, dy.data(), 4, x.data(), 3, dw.data(), 2, db.data()), mpt::Error);
  // No tokens: nothing changes (bias_grad adds zeros).
  std::vector<float> dw1(12, 1.0f), db1(4, 2.0f);
  mpt::kernels::linear_weight_grad(0, 4, 3, dy.data(), 4, x.data(), 3, dw1.data(), 3, db1.data());
  CHECK(dw1 == std::vector<float>(12, 1.0f));
  CHECK(db1 == std::vector<float>(4, 2.0f));
}

// A bf16 C with nothing fused is stored by the kernel itself where it can (vcvtne2ps2bf16
// straight from the accumulators); that must round exactly as storing fp32 and
// converting does (to nearest even), full tiles and edges alike. With k past one
// k-block the fp32 C carries the running sums between blocks (edge tiles too): the
// same single chain per element as the bf16 C's partial sums.
TEST_CASE("gemm into bf16 = gemm into fp32 rounded to bf16, bit for bit") {
  std::mt19937 rng(test_seed());
  struct Dims {
    std::size_t m, n, k;
  };
  // Attention's k = 64 (one k-block: stored by the kernel), edges in m and n, and a k past
  // one k-block (stored through the fp32 tile) for contrast.
  const Dims dims[] = {{48, 64, 64}, {37, 70, 64}, {24, 32, 2}, {30, 40, 3100}};
  for (mpt::Isa isa : mpt::supported_isas()) {
    mpt::ScopedIsa scoped(isa);
    for (const Dims& d : dims) {
      for (Trans tb : both) {
        const auto a = random_values<bf16>(d.m * d.k, rng), b = random_values<bf16>(d.k * d.n, rng);
        const std::size_t ldb = tb == Trans::N ? d.n : d.k;
        std::vector<bf16> c16(d.m * d.n);
        std::vector<float> c32(d.m * d.n);
        mpt::kernels::gemm(Trans::N, tb, d.m, d.n, d.k, 1.0f, a.data(), d.k, b.data(), ldb, 0.0f, c16.data(), d.n);
        mpt::kernels::gemm(Trans::N, tb, d.m, d.n, d.k, 1.0f, a.data(), d.k, b.data(), ldb, 0.0f, c32.data(), d.n);
        std::size_t differ = 0;
        for (std::size_t i = 0; i < c16.size(); ++i) differ += mpt::bf16_bits(c16[i]) != mpt::float_to_bf16_bits(c32[i]);
        INFO("isa " << mpt::isa_name(isa) << ", m " << d.m << ", n " << d.n << ", k " << d.k);
        CHECK(differ == 0);
      }
    }
  }
}

// The fused store adds to the exact fp32 sums: bias, then residual, then one rounding
// into C, whichever path stores the tile (kernels store full one-k-block tiles from their
// registers, edge tiles and partial sums go through an fp32 tile). alpha = 1 and
// beta in {0, 1} keep the expected value free of contraction choices: fma(1, x, y) = x + y.
// (An fp32 C with beta = 1 and nothing fused is instead where the chain starts: C += A B.)
template <class T, class TC>
void check_store_bits(const std::vector<std::size_t>& mnk, bool bias, bool residual, bool beta, std::mt19937& rng) {
  if (std::is_same_v<TC, float> && beta && !bias && !residual) return;
  const std::size_t m = mnk[0], n = mnk[1], k = mnk[2];
  const auto a = random_values<T>(m * k, rng), b = random_values<T>(k * n, rng);
  const auto bias_v = random_values<float>(n, rng), res = random_values<TC>(m * n, rng);
  const auto c0 = random_values<TC>(m * n, rng);
  std::vector<float> sums(m * n);
  mpt::kernels::gemm(Trans::N, Trans::T, m, n, k, 1.0f, a.data(), k, b.data(), k, 0.0f, sums.data(), n);
  mpt::kernels::GemmEpilogue<float, TC> epi;
  if (bias) epi.bias = bias_v.data();
  if (residual) epi.residual = res.data(), epi.ldr = n;
  std::vector<TC> c = c0;
  mpt::kernels::gemm(Trans::N, Trans::T, m, n, k, 1.0f, a.data(), k, b.data(), k, beta ? 1.0f : 0.0f, c.data(), n, epi);
  std::size_t differ = 0;
  for (std::size_t i = 0; i < m; ++i) {
    for (std::size_t j = 0; j < n; ++j) {
      float v = sums[i * n + j];
      if (beta) v = static_cast<float>(as_double(c0[i * n + j])) + v;
      if (bias) v += bias_v[j];
      if (residual) v += static_cast<float>(as_double(res[i * n + j]));
      const TC expected = from_double<TC>(v);
      if constexpr (std::is_same_v<TC, bf16>)
        differ += mpt::bf16_bits(c[i * n + j]) != mpt::bf16_bits(expected);
      else
        differ += std::memcmp(&c[i * n + j], &expected, sizeof(float)) != 0;
    }
  }
  INFO("isa " << mpt::isa_name(mpt::active_isa()) << ", " << type_name<T>() << " -> " << type_name<TC>() << ", m " << m << ", n " << n << ", k " << k
              << ", bias " << bias << ", residual " << residual << ", beta " << beta);
  CHECK(differ == 0);
}

TEST_CASE("gemm's fused bias / residual / beta add to the exact sums, bit for bit, on every path") {
  std::mt19937 rng(test_seed());
  // All full tiles, edges in m and n, a linear layer's k, and partial sums past one k-block.
  const std::vector<std::vector<std::size_t>> dims = {{48, 64, 64}, {37, 70, 64}, {24, 96, 768}, {30, 40, 3100}};
  for (mpt::Isa isa : mpt::supported_isas()) {
    mpt::ScopedIsa scoped(isa);
    for (const auto& d : dims) {
      for (int mask = 0; mask < 8; ++mask) {
        check_store_bits<float, float>(d, mask & 1, mask & 2, mask & 4, rng);
        check_store_bits<bf16, float>(d, mask & 1, mask & 2, mask & 4, rng);
        check_store_bits<bf16, bf16>(d, mask & 1, mask & 2, mask & 4, rng);
        check_store_bits<float, bf16>(d, mask & 1, mask & 2, mask & 4, rng);
      }
    }
  }
}

TEST_CASE("gemm rejects inconsistent arguments with a message") {
  std::vector<float> a(12), b(12), c(12);
  CHECK_THROWS_AS(mpt::kernels::gemm(Trans::N, Trans::N, 3, 4, 3, 1.0f, a.data(), 2, b.data(), 4, 0.0f, c.data(), 4), mpt::Error);
  CHECK_THROWS_AS(mpt::kernels::gemm(Trans::N, Trans::T, 3, 4, 3, 1.0f, a.data(), 3, b.data(), 2, 0.0f, c.data(), 4), mpt::Error);
  CHECK_THROWS_AS(mpt::kernels::gemm(Trans::N, Trans::N, 3, 4, 3, 1.0f, a.data(), 3, b.data(), 4, 0.0f, c.data(), 3), mpt::Error);
  const float* null_a = nullptr;
  CHECK_THROWS_AS(mpt::kernels::gemm(Trans::N, Trans::N, 3, 4, 3, 1.0f, null_a, 3, b.data(), 4, 0.0f, c.data(), 4), mpt::Error);
  CHECK_THROWS_WITH_AS(mpt::kernels::gemm(Trans::T, Trans::N, 3, 4, 3, 1.0f, a.data(), 2, b.data(), 4, 0.0f, c.data(), 4),
                       doctest::Contains("leading dimension of A"), mpt::Error);
}
