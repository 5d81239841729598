// bert_qa's bf16 runs, one per weight policy of --master_weights (train_and_evaluate.hpp).
#include "train_and_evaluate.hpp"

namespace bert_qa {
template Run run<mpt::precision::bf16_mixed, mpt::optim::weights::fp32_master>;
template Run run<mpt::precision::bf16_mixed, mpt::optim::weights::split_master>;
template Run run<mpt::precision::bf16_mixed, mpt::optim::weights::stochastic_rounding>;
}  // namespace bert_qa
