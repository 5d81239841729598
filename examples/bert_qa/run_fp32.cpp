// bert_qa's fp32 run (train_and_evaluate.hpp), compiled beside main and the bf16 runs.
#include "train_and_evaluate.hpp"

namespace bert_qa {
template Run run<mpt::precision::fp32, mpt::optim::weights::direct>;
}  // namespace bert_qa
