#pragma once
// Other libraries' GEMMs measured in the same run as mpt's, when the benchmark was
// built with them (bench/CMakeLists.txt finds Debian's libopenblas-dev and
// libdnnl-dev; `scripts/install-deps.sh --bench-references` installs both):
//
//   OpenBLAS  cblas_sgemm (fp32; bias added by a second pass, as a BLAS user must)
//   oneDNN    matmul primitive (fp32 and bf16, bias fused, bf16 outputs as mpt's,
//             weight gradient accumulated with a sum post-op)
//
// Each reference runs the same three products of a linear layer as bench_gemm:
//   fwd    Y[M x N] = X[M x K] W^T + b        dgrad  dX[M x K] = dY[M x N] W
//   wgrad  dW[N x K] += dY^T X
// Neither is a dependency of mpt: they exist here only to be measured against.

#include <mpt/mpt.hpp>

#include <cstddef>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#if MPT_BENCH_OPENBLAS
#include <cblas.h>
#endif
#if MPT_BENCH_ONEDNN
#include <oneapi/dnnl/dnnl.hpp>
extern "C" void omp_set_num_threads(int);  // oneDNN's Debian build threads with OpenMP
#endif

namespace mpt::bench {

// Operands of one linear layer's products; the references read and write these.
struct LinearOperands {
  std::size_t m, n, k;  // tokens, out features, in features
  const float *x32, *w32, *dy32, *bias;
  const bf16 *x16, *w16, *dy16;
  float *y32, *dx32, *dw32;
  bf16 *y16, *dx16;
};

struct ReferenceGemm {
  std::string impl;
  std::function<void()> run;
};

inline std::string reference_versions() {
  std::string s;
#if MPT_BENCH_OPENBLAS
  s += std::string("openblas core ") + openblas_get_corename();
#endif
#if MPT_BENCH_ONEDNN
  const dnnl_version_t* v = dnnl_version();
  if (!s.empty()) s += ", ";
  s += "onednn " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch) + " isa 0x" + [] {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%x", static_cast<unsigned>(dnnl::get_effective_cpu_isa()));
    return std::string(buf);
  }();
#endif
  return s.empty() ? "none (build with libopenblas-dev / libdnnl-dev to compare)" : s;
}

inline void set_reference_threads([[maybe_unused]] int threads) {
#if MPT_BENCH_OPENBLAS
  openblas_set_num_threads(threads);
#endif
#if MPT_BENCH_ONEDNN
  omp_set_num_threads(threads);
#endif
}

#if MPT_BENCH_ONEDNN
// One oneDNN matmul with its memory objects, created once (outside the timing).
class OnednnMatmul {
 public:
  using md = dnnl::memory::desc;
  using dt = dnnl::memory::data_type;
  using dims = dnnl::memory::dims;

  // C[M x N] (= or +=) op(A)[M x K] op(B)[K x N] (+ bias[N]); strides give the transposes.
  // With 4-d dims {B, H, rows, cols}, a batch of B x H products (c_strides then needed).
  OnednnMatmul(dims a_dims, dims a_strides, const void* a, dims b_dims, dims b_strides, const void* b, dims c_dims, void* c, dt type_ab, dt type_c,
               const float* bias, bool accumulate, dims c_strides = {})
      : engine_(dnnl::engine::kind::cpu, 0), stream_(engine_) {
    const md a_md(a_dims, type_ab, a_strides), b_md(b_dims, type_ab, b_strides);
    const md c_md(c_dims, type_c, c_strides.empty() ? dims{c_dims[1], 1} : c_strides);
    const md bias_md = bias ? md(dims{1, c_dims[1]}, dt::f32, dims{c_dims[1], 1}) : md();
    dnnl::primitive_attr attr;
    if (accumulate) {
      dnnl::post_ops ops;
      ops.append_sum(1.0f);
      attr.set_post_ops(ops);
    }
    const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, b_md, bias_md, c_md), attr, engine_);
    prim_ = dnnl::matmul(pd);
    args_ = {{DNNL_ARG_SRC, dnnl::memory(a_md, engine_, const_cast<void*>(a))},
             {DNNL_ARG_WEIGHTS, dnnl::memory(b_md, engine_, const_cast<void*>(b))},
             {DNNL_ARG_DST, dnnl::memory(c_md, engine_, c)}};
    if (bias) args_.insert({DNNL_ARG_BIAS, dnnl::memory(bias_md, engine_, const_cast<float*>(bias))});
  }
  void operator()() {
    prim_.execute(stream_, args_);
    stream_.wait();
  }

 private:
  dnnl::engine engine_;
  dnnl::stream stream_;
  dnnl::matmul prim_;
  std::unordered_map<int, dnnl::memory> args_;
};
#endif

// The references that can run `op` ("fwd", "dgrad", "wgrad") in `dtype` ("fp32", "bf16").
inline std::vector<ReferenceGemm> reference_gemms([[maybe_unused]] const std::string& op, [[maybe_unused]] const std::string& dtype,
                                                  [[maybe_unused]] const LinearOperands& o) {
  std::vector<ReferenceGemm> refs;
  if (op != "fwd" && op != "dgrad" && op != "wgrad") return refs;
#if MPT_BENCH_OPENBLAS
  if (dtype == "fp32") {
    const int M = static_cast<int>(o.m), N = static_cast<int>(o.n), K = static_cast<int>(o.k);
    if (op == "fwd") {
      refs.push_back({"openblas", [=] {
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, o.x32, K, o.w32, K, 0.0f, o.y32, N);
                        for (int i = 0; i < M; ++i)
                          for (int j = 0; j < N; ++j) o.y32[std::size_t(i) * N + j] += o.bias[j];
                      }});
    } else if (op == "dgrad") {
      refs.push_back(
          {"openblas", [=] { cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, K, N, 1.0f, o.dy32, N, o.w32, K, 0.0f, o.dx32, K); }});
    } else {
      refs.push_back(
          {"openblas", [=] { cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, K, M, 1.0f, o.dy32, N, o.x32, K, 1.0f, o.dw32, K); }});
    }
  }
#endif
#if MPT_BENCH_ONEDNN
  {
    using dt = OnednnMatmul::dt;
    using dims = OnednnMatmul::dims;
    const bool b16 = dtype == "bf16";
    const dt ab = b16 ? dt::bf16 : dt::f32, out = b16 ? dt::bf16 : dt::f32;
    const auto M = static_cast<long>(o.m), N = static_cast<long>(o.n), K = static_cast<long>(o.k);
    std::shared_ptr<OnednnMatmul> mm;
    if (op == "fwd") {  // Y = X W^T + b: W [N x K] read as a K x N matrix with strides {1, K}
      mm = std::make_shared<OnednnMatmul>(dims{M, K}, dims{K, 1}, b16 ? (const void*)o.x16 : o.x32, dims{K, N}, dims{1, K},
                                          b16 ? (const void*)o.w16 : o.w32, dims{M, N}, b16 ? (void*)o.y16 : o.y32, ab, out, o.bias, false);
    } else if (op == "dgrad") {  // dX = dY W
      mm = std::make_shared<OnednnMatmul>(dims{M, N}, dims{N, 1}, b16 ? (const void*)o.dy16 : o.dy32, dims{N, K}, dims{K, 1},
                                          b16 ? (const void*)o.w16 : o.w32, dims{M, K}, b16 ? (void*)o.dx16 : o.dx32, ab, out, nullptr, false);
    } else {  // dW += dY^T X, fp32 gradient
      mm = std::make_shared<OnednnMatmul>(dims{N, M}, dims{1, N}, b16 ? (const void*)o.dy16 : o.dy32, dims{M, K}, dims{K, 1},
                                          b16 ? (const void*)o.x16 : o.x32, dims{N, K}, o.dw32, ab, dt::f32, nullptr, true);
    }
    refs.push_back({"onednn", [mm] { (*mm)(); }});
  }
#endif
  return refs;
}

// Attention's batched products over (batch x heads) at head size D = hidden / heads, in
// the layout nn::BertSelfAttention uses: Q, K, V, dctx [B*S x hidden] with head h in
// columns h*D..h*D+D; probabilities / score gradients [B x H x S x S].
struct AttentionOperands {
  std::size_t batch, heads, seq, head_dim;
  const bf16 *q, *k, *v, *probs, *dctx, *dscores;
  bf16 *scores, *ctx, *dv, *dq, *dkept;
};

inline std::vector<ReferenceGemm> reference_attention_gemms([[maybe_unused]] const std::string& op, [[maybe_unused]] const AttentionOperands& o) {
  std::vector<ReferenceGemm> refs;
#if MPT_BENCH_ONEDNN
  using dt = OnednnMatmul::dt;
  using dims = OnednnMatmul::dims;
  const auto B = static_cast<long>(o.batch), H = static_cast<long>(o.heads), S = static_cast<long>(o.seq), D = static_cast<long>(o.head_dim),
             hidden = H * D;
  const dims heads_rows{S * hidden, D, hidden, 1};  // [B, H, S, D] view of a [B*S x hidden] matrix
  const dims heads_cols{S * hidden, D, 1, hidden};  // the same, transposed: [B, H, D, S]
  const dims square{H * S * S, S * S, S, 1};        // [B, H, S, S]
  const dims square_t{H * S * S, S * S, 1, S};      // its transpose
  std::shared_ptr<OnednnMatmul> mm;
  if (op == "attn_qk") {  // scores = Q K^T (bf16, as autocast)
    mm = std::make_shared<OnednnMatmul>(dims{B, H, S, D}, heads_rows, o.q, dims{B, H, D, S}, heads_cols, o.k, dims{B, H, S, S}, o.scores, dt::bf16,
                                        dt::bf16, nullptr, false, square);
  } else if (op == "attn_pv") {  // ctx = P V
    mm = std::make_shared<OnednnMatmul>(dims{B, H, S, S}, square, o.probs, dims{B, H, S, D}, heads_rows, o.v, dims{B, H, S, D}, o.ctx, dt::bf16,
                                        dt::bf16, nullptr, false, heads_rows);
  } else if (op == "attn_dkept") {  // dkept = dctx V^T (bf16, as autocast)
    mm = std::make_shared<OnednnMatmul>(dims{B, H, S, D}, heads_rows, o.dctx, dims{B, H, D, S}, heads_cols, o.v, dims{B, H, S, S}, o.dkept, dt::bf16,
                                        dt::bf16, nullptr, false, square);
  } else if (op == "attn_dv") {  // dV = P^T dctx
    mm = std::make_shared<OnednnMatmul>(dims{B, H, S, S}, square_t, o.probs, dims{B, H, S, D}, heads_rows, o.dctx, dims{B, H, S, D}, o.dv, dt::bf16,
                                        dt::bf16, nullptr, false, heads_rows);
  } else if (op == "attn_dq") {  // dQ = dscores K
    mm = std::make_shared<OnednnMatmul>(dims{B, H, S, S}, square, o.dscores, dims{B, H, S, D}, heads_rows, o.k, dims{B, H, S, D}, o.dq, dt::bf16,
                                        dt::bf16, nullptr, false, heads_rows);
  }
  if (mm) refs.push_back({"onednn", [mm] { (*mm)(); }});
#endif
  return refs;
}

}  // namespace mpt::bench
