// A training step allocates nothing: after the first step has sized the
// arenas and the kernels' scratch, forward + backward make no call to
// operator new. This binary replaces the global operator new to count calls
// (its own executable, so the replacement touches no other test).
//
// Measured on 1 and on 2 threads: kernel scratch belongs to arena slots, and at
// the end of the first forward and backward every slot is grown to the largest
// block of each kind (core/scratch.hpp), so a worker that runs some kernel for
// the first time in a later step finds its scratch already there.
#include <doctest/doctest.h>
#include <mpt/mpt.hpp>

#include <atomic>
#include <cstdlib>
#include <new>

namespace {
std::atomic<long> allocations{0};
}

// The replacements pair malloc with free by design; GCC cannot see that.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(std::size_t bytes) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(bytes == 0 ? 1 : bytes)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t bytes, std::align_val_t align) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  const std::size_t a = static_cast<std::size_t>(align);
  if (void* p = std::aligned_alloc(a, (bytes + a - 1) / a * a)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

TEST_CASE_TEMPLATE("forward + backward of BERT-QA allocate nothing after the first step, on 1 and 2 threads", P, mpt::precision::fp32,
                   mpt::precision::bf16_mixed) {
  for (const int threads : {1, 2}) {
    CAPTURE(threads);
    mpt::ScopedNumThreads scoped(threads);
    mpt::nn::BertConfig config;
    config.vocab_size = 50;
    config.hidden_size = 32;
    config.num_hidden_layers = 2;
    config.num_attention_heads = 4;
    config.intermediate_size = 64;
    config.max_position_embeddings = 32;
    mpt::nn::BertForQuestionAnswering<P> model(config);
    model.init_weights(1);
    mpt::Tensor<std::int32_t> ids(mpt::Shape{2, 16}), types(mpt::Shape{2, 16}), mask(mpt::Shape{2, 16}), start(mpt::Shape{2}), end(mpt::Shape{2});
    for (std::size_t i = 0; i < ids.size(); ++i) {
      ids[i] = static_cast<std::int32_t>(i % 50);
      mask[i] = 1;
    }
    start[0] = 3, end[0] = 5, start[1] = 0, end[1] = 0;
    const mpt::nn::QaBatch batch{ids.view(), types.view(), mask.view(), start.view(), end.view()};
    model.reserve(2, 16, true);
    model.forward(batch, {.training = true, .seed = 1, .forward_index = 0});  // warm-up: thread pools, scratch buffers
    model.backward();
    const long before = allocations.load();
    for (std::uint32_t step = 1; step <= 6; ++step) {
      model.forward(batch, {.training = true, .seed = 1, .forward_index = step});
      model.backward();
    }
    CHECK(allocations.load() - before == 0);
  }
}
