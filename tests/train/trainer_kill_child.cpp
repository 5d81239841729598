// The child of the kill test: trains the tiny BERT (bf16, split masters) for 24
// steps with a checkpoint every 2, resuming from output_dir's last checkpoint as
// run_qa does, and saves the final model to OUTPUT_DIR/final.
//
//   trainer_kill_child OUTPUT_DIR
//   MPT_KILL_AT=<fault point>:<n>   SIGKILL itself at the n-th time that point is reached
//                                   ("model written", "optimizer written", "files written",
//                                   "before rename", "renamed")
#include "trainer_fixtures.hpp"

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUTPUT_DIR\n", argv[0]);
    return 2;
  }
  using P = mpt::precision::bf16_mixed;
  if (const char* at = std::getenv("MPT_KILL_AT")) {
    const std::string spec = at;
    const auto colon = spec.rfind(':');
    const std::string point = spec.substr(0, colon);
    const int n = std::stoi(spec.substr(colon + 1));
    mpt::train::checkpoint_fault_hook() = [point, n, seen = 0](std::string_view where) mutable {
      if (where == point && ++seen == n) std::raise(SIGKILL);
    };
  }
  try {
    mpt::train::TrainingArguments args;
    args.output_dir = argv[1];
    args.do_train = true;
    args.learning_rate = 2e-3;
    args.warmup_ratio = 0.1;
    args.per_device_train_batch_size = 4;
    args.gradient_accumulation_steps = 2;
    args.max_steps = 24;
    args.logging_steps = 1;
    args.save_steps = 2;
    args.save_total_limit = 3;
    args.seed = 5;
    const auto features = fixtures::random_qa_features(48, 24, 9);
    mpt::nn::BertForQuestionAnswering<P> model(fixtures::tiny_bert_config());
    model.init_weights(13);
    mpt::train::Trainer<decltype(model), mpt::optim::AdamW<P, mpt::optim::weights::split_master>> trainer(model, args);
    std::FILE* null = std::fopen("/dev/null", "w");
    trainer.set_output(null);
    trainer.set_progress(std::make_unique<mpt::train::ProgressCallback>(null, false));
    const auto checkpoint = mpt::train::detect_checkpoint(args);
    trainer.train(mpt::train::QaTrainSet{features}, checkpoint);
    trainer.save_model(std::filesystem::path(args.output_dir) / "final");
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "trainer_kill_child: %s\n", e.what());
    return 1;
  }
}
