// Must NOT compile: BERT under fp16_mixed (no fp16 GEMM) says so in one sentence.
#include <mpt/mpt.hpp>
int main() {
  mpt::nn::BertForQuestionAnswering<mpt::precision::fp16_mixed> model(mpt::nn::BertConfig{});
  return model.config().hidden_size == 0;
}
