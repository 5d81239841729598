// The Trainer: the loop, resuming bit for bit, accumulation, non-finite steps,
// transformers' files, checkpoint rotation and verification.
#include "trainer_fixtures.hpp"

#include <doctest/doctest.h>

#include <bit>
#include <csignal>
#include <fstream>
#include <set>

#include <sys/resource.h>

namespace {
using namespace fixtures;
namespace optim = mpt::optim;
using mpt::precision::bf16_mixed;
using mpt::precision::fp32;

FILE* null_stream() {
  static std::FILE* f = std::fopen("/dev/null", "w");
  return f;
}

template <class Trainer>
void quiet(Trainer& t) {
  t.set_output(null_stream());
  t.set_progress(quiet_progress());
}

// Stops training after `step` (simulates a run that died after its checkpoint at that point).
struct StopAt : train::TrainerCallback {
  std::int64_t step;
  explicit StopAt(std::int64_t s) : step(s) {}
  void on_step_end(const train::TrainingArguments&, const train::TrainerState& state, train::TrainerControl& control,
                   const train::StepInfo&) override {
    if (state.global_step == step) control.should_training_stop = true;
  }
};

// The tiny BERT's training features, collated; raises `signal` at collate call `at` (0: never).
struct SignallingSet {
  train::QaTrainSet inner;
  mutable int calls = 0;
  int at = 0;
  int signal = SIGINT;
  using batch_type = train::QaTrainSet::batch_type;
  std::size_t size() const { return inner.size(); }
  void collate(std::span<const std::size_t> indices, batch_type& b) const {
    if (++calls == at) std::raise(signal);
    inner.collate(indices, b);
  }
};

train::TrainingArguments bert_args(const std::filesystem::path& out) {
  train::TrainingArguments a;
  a.output_dir = out.string();
  a.do_train = true;
  a.learning_rate = 2e-3;
  a.weight_decay = 0.01;
  a.warmup_ratio = 0.2;
  a.per_device_train_batch_size = 4;
  a.gradient_accumulation_steps = 2;
  a.max_steps = 6;
  a.logging_steps = 1;
  a.save_steps = 2;
  a.seed = 7;
  return a;
}

struct RunResult {
  std::vector<double> losses;
  std::vector<std::uint32_t> weights;
  nlohmann::ordered_json history;
  train::TrainOutput output;
};

// Trains the tiny BERT under policy P / weights W; stop_at > 0 stops after that step;
// resume continues from a checkpoint; signal_at raises SIGINT at that collate call.
template <class P, class W>
RunResult run_bert(const std::filesystem::path& out, int stop_at, std::optional<std::filesystem::path> resume, int threads, int signal_at = 0) {
  mpt::ScopedNumThreads scoped(threads);
  const auto features = random_qa_features(40, 24, 3);
  mpt::nn::BertForQuestionAnswering<P> model(tiny_bert_config());
  model.init_weights(11);
  train::Trainer<decltype(model), optim::AdamW<P, W>> trainer(model, bert_args(out));
  quiet(trainer);
  if (stop_at > 0) trainer.add_callback(std::make_unique<StopAt>(stop_at));
  SignallingSet set{train::QaTrainSet{features}};
  set.at = signal_at;
  RunResult r;
  r.output = trainer.train(set, resume);
  r.history = trainer.state().log_history;
  r.losses = logged_losses(r.history);
  r.weights = master_bits(model.parameters());
  return r;
}

template <class P, class W>
void check_resume_bitwise(const char* name) {
  // Uninterrupted on 2 threads; interrupted after step 3 (checkpoint-2 is the last one), resumed on 1 thread.
  const auto dir_a = temp_output(std::string(name) + "_a"), dir_b = temp_output(std::string(name) + "_b");
  const RunResult full = run_bert<P, W>(dir_a, 0, std::nullopt, 2);
  REQUIRE(full.losses.size() == 6);
  const RunResult first = run_bert<P, W>(dir_b, 3, std::nullopt, 2);
  CHECK(first.losses.size() == 3);
  REQUIRE(std::filesystem::exists(dir_b / "checkpoint-2"));
  const RunResult resumed = run_bert<P, W>(dir_b, 0, dir_b / "checkpoint-2", 1);
  CHECK(resumed.losses == full.losses);  // the history restored from the checkpoint, then the same steps
  CHECK(resumed.weights == full.weights);
  CHECK(resumed.output.training_loss == full.output.training_loss);
  // The final checkpoints hold the same files, byte for byte, apart from run-specific text.
  const auto model_a = mpt::io::read_file(dir_a / "checkpoint-6" / "model.safetensors");
  const auto model_b = mpt::io::read_file(dir_b / "checkpoint-6" / "model.safetensors");
  CHECK(model_a == model_b);
  const auto opt_a = mpt::io::read_file(dir_a / "checkpoint-6" / "optimizer.safetensors");
  const auto opt_b = mpt::io::read_file(dir_b / "checkpoint-6" / "optimizer.safetensors");
  CHECK(opt_a == opt_b);
  std::filesystem::remove_all(dir_a);
  std::filesystem::remove_all(dir_b);
}
}  // namespace

TEST_CASE("a toy model (not BERT) trains through the same Trainer") {
  const auto out = temp_output("toy");
  const ToyData data = ToyData::make(64);
  ToyRegression<fp32> model(4, 3);
  train::TrainingArguments args;
  args.output_dir = out.string();
  args.learning_rate = 0.1;
  args.lr_scheduler_type = "constant";
  args.num_train_epochs = 8;
  args.per_device_train_batch_size = 8;
  args.logging_steps = 8;
  args.save_strategy = train::SaveStrategy::no;
  train::Trainer<ToyRegression<fp32>> trainer(model, args);
  quiet(trainer);
  const auto output = trainer.train(data);
  CHECK(output.global_step == 64);
  const auto losses = logged_losses(trainer.state().log_history);
  REQUIRE(losses.size() == 8);
  MESSAGE("toy regression loss " << losses.front() << " -> " << losses.back());
  CHECK(losses.back() < 0.01 * losses.front());
  CHECK_FALSE(std::filesystem::exists(out / "checkpoint-64"));  // save_strategy no
  // The summary entry, with transformers' keys.
  const auto& last = trainer.state().log_history.back();
  for (const char* key : {"train_runtime", "train_samples_per_second", "train_steps_per_second", "total_flos", "train_loss", "epoch", "step"}) {
    CHECK_MESSAGE(last.contains(key), key);
  }
  CHECK(last["epoch"].get<double>() == 8.0);
  // total_flos = 6 x tokens x non-embedding parameters (4 weights): 64 samples x 8 epochs.
  CHECK(last["total_flos"].get<double>() == 6.0 * 64 * 8 * 4);
  CHECK(output.metrics["parameters_bytes"].get<std::size_t>() > 0);
  std::filesystem::remove_all(out);
}

TEST_CASE("resume: fp32 reproduces the uninterrupted run bit for bit, across a change of thread count") {
  check_resume_bitwise<fp32, optim::weights::direct>("fp32");
}
TEST_CASE("resume: bf16_mixed with fp32 masters, bit for bit") { check_resume_bitwise<bf16_mixed, optim::weights::fp32_master>("bf16_fp32_master"); }
TEST_CASE("resume: bf16_mixed with split masters, bit for bit") { check_resume_bitwise<bf16_mixed, optim::weights::split_master>("bf16_split"); }
TEST_CASE("resume: bf16_mixed with stochastic rounding, bit for bit") {
  check_resume_bitwise<bf16_mixed, optim::weights::stochastic_rounding>("bf16_stochastic");
}

TEST_CASE("SIGINT in the middle of gradient accumulation: the step finishes, a checkpoint is written, resume is exact") {
  const auto dir_a = temp_output("signal_a"), dir_b = temp_output("signal_b");
  const RunResult full = run_bert<bf16_mixed, optim::weights::fp32_master>(dir_a, 0, std::nullopt, 2);
  // Collate call 7 is the first micro-batch of step 4 (2 per step): the signal arrives mid-accumulation.
  const RunResult stopped = run_bert<bf16_mixed, optim::weights::fp32_master>(dir_b, 0, std::nullopt, 2, 7);
  CHECK(stopped.output.stopped_by_signal == SIGINT);
  CHECK(stopped.output.global_step == 4);
  REQUIRE(stopped.output.interrupt_checkpoint);
  CHECK(stopped.output.interrupt_checkpoint->filename() == "checkpoint-4");
  const RunResult resumed = run_bert<bf16_mixed, optim::weights::fp32_master>(dir_b, 0, dir_b / "checkpoint-4", 2);
  CHECK(resumed.losses == full.losses);
  CHECK(resumed.weights == full.weights);
  std::filesystem::remove_all(dir_a);
  std::filesystem::remove_all(dir_b);
}

TEST_CASE("accumulation: 2 micro-batches of b give the update of one batch of 2b (fp32)") {
  // SGD without momentum: the update is -lr x gradient, so weights compare gradients.
  // Both sides sum the same 2b x S per-token terms into each weight gradient, in
  // another grouping (two GEMMs of b x S rows added, or one of 2b x S; the loss mean
  // 1/b halved, or 1/2b): fp32 reassociation of at most n = 2bS = 64 terms,
  // |error| <= n * 2^-24 * sum|terms| ~ 4e-6 of the gradient's scale. Bound: 1e-5 of
  // the largest |gradient| of each tensor, times lr.
  const auto features = random_qa_features(8, 8, 5);
  auto run = [&](std::int64_t batch, std::int64_t accumulation) {
    mpt::nn::BertForQuestionAnswering<fp32> model(tiny_bert_config(0.0));
    model.init_weights(4);
    auto before = master_bits(model.parameters());
    train::TrainingArguments args;
    args.output_dir = temp_output("accumulation").string();
    args.learning_rate = 1.0;
    args.lr_scheduler_type = "constant";
    args.max_grad_norm = 0;
    args.per_device_train_batch_size = batch;
    args.gradient_accumulation_steps = accumulation;
    args.max_steps = 1;
    args.save_strategy = train::SaveStrategy::no;
    args.logging_steps = 1;
    train::Trainer<decltype(model), optim::Sgd<fp32>> trainer(model, args);
    quiet(trainer);
    train::QaTrainSet set{features};
    trainer.train(set);
    std::vector<float> delta;
    const auto after = master_bits(model.parameters());
    for (std::size_t i = 0; i < after.size(); ++i) delta.push_back(std::bit_cast<float>(after[i]) - std::bit_cast<float>(before[i]));
    return delta;
  };
  // Batch order: the sampler's permutation of 8 features; batch 8 = both micro-batches of 4.
  const auto one = run(8, 1);
  const auto two = run(4, 2);
  REQUIRE(one.size() == two.size());
  double worst = 0, scale = 0;
  for (std::size_t i = 0; i < one.size(); ++i) {
    worst = std::max(worst, std::fabs(static_cast<double>(one[i]) - two[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(one[i])));
  }
  MESSAGE("largest update difference " << worst << " of updates up to " << scale);
  CHECK(scale > 0);
  CHECK(worst <= 1e-5 * scale + 1e-7);
}

TEST_CASE("a non-finite gradient: a loss scaler skips and logs the step; without one, training stops naming it") {
  ToyData data = ToyData::make(32);
  data.x[5 * data.d + 1] = std::numeric_limits<float>::infinity();  // sample 5 makes inf/NaN gradients
  train::TrainingArguments args;
  args.output_dir = temp_output("nonfinite").string();
  args.learning_rate = 0.01;
  args.max_steps = 4;
  args.per_device_train_batch_size = 8;
  args.save_strategy = train::SaveStrategy::no;
  args.logging_steps = 1;
  {
    ToyRegression<fp32> model(4, 3);
    train::Trainer<ToyRegression<fp32>, optim::AdamW<fp32>, optim::DynamicLossScaler> trainer(model, args,
                                                                                              optim::DynamicLossScaler({.init_scale = 1024.0f}));
    quiet(trainer);
    const auto out = trainer.train(data);
    CHECK(out.global_step == 4);
    CHECK(trainer.scaler().skipped_steps() == 1);  // the batch holding sample 5, once
    CHECK(trainer.optimizer().steps() == 3);       // not counted as an optimizer step
    CHECK(trainer.scaler().scale() == 512.0f);
  }
  {
    ToyRegression<fp32> model(4, 3);
    train::Trainer<ToyRegression<fp32>> trainer(model, args);
    quiet(trainer);
    CHECK_THROWS_WITH_AS(trainer.train(data), doctest::Contains("'toy.linear.weight'"), mpt::Error);
  }
}

TEST_CASE("checkpoints: transformers' trainer_state.json keys, files, rotation that keeps the best, verification") {
  const auto out = temp_output("files");
  const ToyData data = ToyData::make(64);
  ToyRegression<fp32> model(4, 3);
  train::TrainingArguments args;
  args.output_dir = out.string();
  args.learning_rate = 0.05;
  args.max_steps = 12;
  args.per_device_train_batch_size = 8;
  args.logging_steps = 2;
  args.eval_strategy = train::IntervalStrategy::steps;
  args.eval_steps = 3;
  args.save_steps = 3;
  args.save_total_limit = 2;
  args.metric_for_best_model = "score";
  args.greater_is_better = true;
  train::Trainer<ToyRegression<fp32>> trainer(model, args);
  quiet(trainer);
  // The score peaks at the first evaluation (step 3): that checkpoint must survive rotation.
  int evaluations = 0;
  trainer.set_evaluate([&](ToyRegression<fp32>&, const std::function<void(std::size_t, std::size_t)>& progress) {
    progress(1, 1);
    train::EvalResult r;
    r.metrics["score"] = 10.0 - evaluations++;
    r.samples = 8;
    r.batches = 1;
    return r;
  });
  trainer.train(data);
  std::set<std::string> kept;
  for (const auto& c : train::list_checkpoints(out)) kept.insert(c.folder.filename().string());
  CHECK(kept == std::set<std::string>{"checkpoint-3", "checkpoint-12"});
  CHECK(trainer.state().best_model_checkpoint == (out / "checkpoint-3").string());
  CHECK(trainer.state().best_metric == 10.0);

  const auto dir = out / "checkpoint-12";
  for (const char* file : {"model.safetensors", "optimizer.safetensors", "optimizer_state.json", "trainer_state.json", "training_args.json",
                           "rng_state.json", "mpt_checkpoint.json"}) {
    CHECK_MESSAGE(std::filesystem::exists(dir / file), file);
  }
  const auto state = nlohmann::json::parse(std::ifstream(dir / "trainer_state.json"));
  std::set<std::string> keys;
  for (const auto& [k, v] : state.items()) keys.insert(k);
  const std::set<std::string> transformers_keys = {"best_global_step",
                                                   "best_metric",
                                                   "best_model_checkpoint",
                                                   "epoch",
                                                   "eval_steps",
                                                   "global_step",
                                                   "is_hyper_param_search",
                                                   "is_local_process_zero",
                                                   "is_world_process_zero",
                                                   "log_history",
                                                   "logging_steps",
                                                   "max_steps",
                                                   "num_input_tokens_seen",
                                                   "num_train_epochs",
                                                   "save_steps",
                                                   "stateful_callbacks",
                                                   "total_flos",
                                                   "train_batch_size",
                                                   "trial_name",
                                                   "trial_params"};
  CHECK(keys == transformers_keys);
  CHECK(state["global_step"] == 12);
  CHECK(state["eval_steps"] == 3);
  const auto& history = state["log_history"];
  bool saw_train = false, saw_eval = false;
  for (const auto& e : history) {
    if (e.contains("loss")) {
      saw_train = true;
      for (const char* k : {"epoch", "grad_norm", "learning_rate", "loss", "step"}) CHECK_MESSAGE(e.contains(k), k);
    }
    if (e.contains("eval_score")) {
      saw_eval = true;
      for (const char* k : {"epoch", "eval_runtime", "eval_samples_per_second", "eval_steps_per_second", "step"}) CHECK_MESSAGE(e.contains(k), k);
    }
  }
  CHECK(saw_train);
  CHECK(saw_eval);

  // A damaged file is refused on resume, naming it.
  {
    std::fstream f(dir / "model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-3, std::ios::end);
    f.put('\x7f');
  }
  ToyRegression<fp32> again(4, 3);
  train::Trainer<ToyRegression<fp32>> resumed(again, args);
  quiet(resumed);
  resumed.set_evaluate([](ToyRegression<fp32>&, const std::function<void(std::size_t, std::size_t)>&) { return train::EvalResult{}; });
  CHECK_THROWS_WITH_AS(resumed.train(data, dir), doctest::Contains("model.safetensors"), mpt::Error);
  std::filesystem::remove_all(out);
}

TEST_CASE("trainer_state.json written by transformers parses") {
  // Written by hand from transformers' TrainerState (trainer_callback.py): json.dumps(asdict(state), indent=2, sort_keys=True).
  const auto state = train::TrainerState::load(std::filesystem::path(MPT_TEST_DATA) / "trainer_state_transformers.json");
  CHECK(state.global_step == 14754);
  CHECK(state.max_steps == 14754);
  CHECK(state.log_history.size() == 3);
  CHECK(state.log_history[0]["loss"] == 1.2563);
  CHECK(state.best_metric == std::nullopt);
  CHECK(state.train_batch_size == 12);
}

TEST_CASE("run_qa's resume rules: the last checkpoint, or an error for a non-empty output_dir") {
  const auto out = temp_output("detect");
  train::TrainingArguments args;
  args.output_dir = out.string();
  args.do_train = true;
  CHECK_FALSE(train::detect_checkpoint(args));  // no folder yet
  std::filesystem::create_directories(out / "checkpoint-5");
  std::filesystem::create_directories(out / "checkpoint-40");
  std::filesystem::create_directories(out / ".tmp-checkpoint-45.123");  // a killed run's half-written folder
  CHECK(train::detect_checkpoint(args) == out / "checkpoint-40");
  CHECK_FALSE(std::filesystem::exists(out / ".tmp-checkpoint-45.123"));
  args.overwrite_output_dir = true;
  CHECK_FALSE(train::detect_checkpoint(args));
  args.overwrite_output_dir = false;
  std::filesystem::remove_all(out / "checkpoint-5");
  std::filesystem::remove_all(out / "checkpoint-40");
  std::ofstream(out / "notes.txt") << "x";
  CHECK_THROWS_WITH_AS(train::detect_checkpoint(args), doctest::Contains("Use --overwrite_output_dir to overcome"), mpt::Error);
  args.resume_from_checkpoint = "true";
  CHECK_THROWS_WITH_AS(train::detect_checkpoint(args), doctest::Contains("No valid checkpoint found"), mpt::Error);
  std::filesystem::remove_all(out);
}

TEST_CASE("TrainingArguments: bad values and combinations are errors naming the flag") {
  train::TrainingArguments a;
  a.per_device_train_batch_size = 0;
  CHECK_THROWS_WITH_AS(a.validate(), doctest::Contains("--per_device_train_batch_size"), mpt::Error);
  a = {};
  a.load_best_model_at_end = true;
  a.eval_strategy = train::IntervalStrategy::steps;
  a.eval_steps = 300;
  CHECK_THROWS_WITH_AS(a.validate(), doctest::Contains("round multiple"), mpt::Error);
  a.eval_strategy = train::IntervalStrategy::epoch;
  CHECK_THROWS_WITH_AS(a.validate(), doctest::Contains("save and eval strategy to match"), mpt::Error);
  a = {};
  a.bf16 = a.fp16 = true;
  CHECK_THROWS_AS(a.validate(), mpt::Error);
  a = {};
  a.logging_steps = 2.5;
  CHECK_THROWS_WITH_AS(a.validate(), doctest::Contains("--logging_steps"), mpt::Error);
  CHECK(train::python_float(4.5e-05) == "4.5e-05");
  CHECK(train::python_float(0.0001) == "0.0001");
  CHECK(train::python_float(2.0) == "2.0");
  CHECK(train::python_float(1.2e16) == "1.2e+16");
  CHECK(train::python_float(0.45454545454545453) == "0.45454545454545453");
}

TEST_CASE("the sampler: one permutation per epoch from (seed, epoch), every sample once") {
  train::EpochSampler s(10, 4, false, 42);
  CHECK(s.batches_per_epoch() == 3);
  s.start_epoch(0);
  std::vector<std::size_t> e0;
  for (std::size_t b = 0; b < 3; ++b)
    for (auto i : s.batch(b)) e0.push_back(i);
  CHECK(s.batch(2).size() == 2);
  std::vector<std::size_t> sorted = e0;
  std::sort(sorted.begin(), sorted.end());
  CHECK(sorted == std::vector<std::size_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  s.start_epoch(1);
  std::vector<std::size_t> e1;
  for (std::size_t b = 0; b < 3; ++b)
    for (auto i : s.batch(b)) e1.push_back(i);
  CHECK(e1 != e0);
  s.start_epoch(0);
  CHECK(std::vector<std::size_t>(s.batch(0).begin(), s.batch(0).end()) == std::vector<std::size_t>(e0.begin(), e0.begin() + 4));
  train::EpochSampler dropping(10, 4, true, 42);
  CHECK(dropping.batches_per_epoch() == 2);
}

TEST_CASE("early stopping: patience evaluations without improvement stop training; report_to writes every log entry") {
  const auto out = temp_output("early");
  const ToyData data = ToyData::make(64);
  ToyRegression<fp32> model(4, 3);
  train::TrainingArguments args;
  args.output_dir = out.string();
  args.max_steps = 40;
  args.per_device_train_batch_size = 8;
  args.logging_steps = 2;
  args.eval_strategy = train::IntervalStrategy::steps;
  args.eval_steps = 2;
  args.save_steps = 2;
  args.metric_for_best_model = "score";
  args.load_best_model_at_end = true;
  args.report_to = (out / "log.jsonl").string();
  train::Trainer<ToyRegression<fp32>> trainer(model, args);
  quiet(trainer);
  trainer.add_callback(std::make_unique<train::EarlyStoppingCallback>(2));
  double score = 1.0;  // improves once (step 4), then never again
  trainer.set_evaluate([&](ToyRegression<fp32>&, const std::function<void(std::size_t, std::size_t)>&) {
    train::EvalResult r;
    r.metrics["score"] = score;
    score = score == 1.0 ? 2.0 : 0.5;
    return r;
  });
  const auto output = trainer.train(data);
  // Evaluations at steps 2 (best 1.0), 4 (best 2.0), 6 and 8 (no improvement: patience 2 reached).
  CHECK(output.global_step == 8);
  CHECK(trainer.state().best_metric == 2.0);
  CHECK(trainer.state().best_model_checkpoint == (out / "checkpoint-4").string());
  // load_best_model_at_end: the weights are checkpoint-4's again.
  const auto best = mpt::io::SafetensorsFile::open(out / "checkpoint-4" / "model.safetensors");
  for (mpt::nn::ParamId id = 0; id < model.parameters().count(); ++id) {
    const auto& e = model.parameters().entry(id);
    const auto file = best.read<float>(e.name);
    const auto now = model.parameters().master(id);
    CHECK(std::equal(now.data(), now.data() + now.size(), file.data()));
  }
  const auto saved = nlohmann::json::parse(std::ifstream(out / "checkpoint-8" / "trainer_state.json"));
  CHECK(saved["stateful_callbacks"]["EarlyStoppingCallback"]["attributes"]["early_stopping_patience_counter"] == 2);
  std::ifstream log(out / "log.jsonl");
  std::size_t lines = 0;
  for (std::string line; std::getline(log, line); ++lines) CHECK(nlohmann::json::accept(line));
  CHECK(lines == trainer.state().log_history.size());
  std::filesystem::remove_all(out);
}

namespace {
// Lowers this process's file size limit (as a full disk would stop a write: EFBIG instead
// of ENOSPC) from `step` on, and puts the limit and SIGXFSZ back when destroyed.
struct FileSizeLimitFrom : train::TrainerCallback {
  std::int64_t step;
  rlimit saved{};
  bool lowered = false;
  explicit FileSizeLimitFrom(std::int64_t s) : step(s) { ::getrlimit(RLIMIT_FSIZE, &saved); }
  ~FileSizeLimitFrom() override { restore(); }
  void on_step_end(const train::TrainingArguments&, const train::TrainerState& state, train::TrainerControl&, const train::StepInfo&) override {
    if (state.global_step != step) return;
    std::signal(SIGXFSZ, SIG_IGN);  // the write returns EFBIG instead of killing the process
    const rlimit tiny{64, saved.rlim_max};
    ::setrlimit(RLIMIT_FSIZE, &tiny);
    lowered = true;
  }
  void restore() {
    if (!lowered) return;
    ::setrlimit(RLIMIT_FSIZE, &saved);
    std::signal(SIGXFSZ, SIG_DFL);
    lowered = false;
  }
};

// The toy regression for 6 steps, a checkpoint at steps 3 and 6, no log lines: the
// checkpoints are the only files written.
train::TrainingArguments six_steps_saving_at_3(const std::filesystem::path& out) {
  train::TrainingArguments args;
  args.output_dir = out.string();
  args.learning_rate = 0.05;
  args.max_steps = 6;
  args.per_device_train_batch_size = 8;
  args.logging_steps = 100;
  args.save_steps = 3;
  return args;
}
}  // namespace

TEST_CASE("a checkpoint write that fails (a full disk) stops training with an error naming the file; the last checkpoint stays whole") {
  const auto out = temp_output("write_fault");
  const ToyData data = ToyData::make(64);
  const train::TrainingArguments args = six_steps_saving_at_3(out);
  {
    ToyRegression<fp32> model(4, 3);
    train::Trainer<ToyRegression<fp32>> trainer(model, args);
    quiet(trainer);
    auto limit = std::make_unique<FileSizeLimitFrom>(6);
    FileSizeLimitFrom& guard = *limit;
    trainer.add_callback(std::move(limit));
    std::string message;
    try {
      trainer.train(data);
    } catch (const mpt::Error& e) {
      message = e.what();
    }
    guard.restore();
    CAPTURE(message);
    CHECK(message.find("cannot write") != std::string::npos);
    CHECK(message.find("checkpoint-6") != std::string::npos);
    CHECK(message.find("ulimit -f") != std::string::npos);       // what to do about it
    CHECK(message.find("checkpoint-3 (") != std::string::npos);  // and where to resume from
  }
  // Nothing half-written under a final name, no temporary left behind, checkpoint-3 intact.
  std::vector<std::string> entries;
  for (const auto& e : std::filesystem::directory_iterator(out)) entries.push_back(e.path().filename().string());
  CHECK(entries == std::vector<std::string>{"checkpoint-3"});
  CHECK_NOTHROW(train::verify_checkpoint(out / "checkpoint-3"));
  // ... and the run resumes from it and finishes once the disk has room again.
  ToyRegression<fp32> model(4, 3);
  train::Trainer<ToyRegression<fp32>> trainer(model, args);
  quiet(trainer);
  const auto output = trainer.train(data, out / "checkpoint-3");
  CHECK(output.global_step == 6);
  CHECK_NOTHROW(train::verify_checkpoint(out / "checkpoint-6"));
  std::filesystem::remove_all(out);
}

TEST_CASE("an atomic write into a folder that does not exist says so, and leaves nothing behind") {
  const auto dir = temp_output("missing_parent");
  CHECK_THROWS_WITH_AS(mpt::io::write_file_atomic(dir / "no" / "such" / "config.json", std::string_view("{}")),
                       doctest::Contains("the folder does not exist"), mpt::Error);
  CHECK_FALSE(std::filesystem::exists(dir));
}

TEST_CASE("a checkpoint whose JSON lacks a field (checksums intact) is refused with the folder and the fix") {
  const auto out = temp_output("missing_field");
  const ToyData data = ToyData::make(64);
  const train::TrainingArguments args = six_steps_saving_at_3(out);
  {
    ToyRegression<fp32> model(4, 3);
    train::Trainer<ToyRegression<fp32>> trainer(model, args);
    quiet(trainer);
    trainer.add_callback(std::make_unique<StopAt>(3));
    trainer.train(data);
  }
  // checkpoint-4: checkpoint-3's files with rng_state.json missing "total_loss", and a manifest that matches them.
  {
    train::CheckpointWriter writer(out, 4);
    for (const auto& f : std::filesystem::directory_iterator(out / "checkpoint-3")) {
      if (f.path().filename() != train::checkpoint_manifest_file) std::filesystem::copy_file(f.path(), writer.folder() / f.path().filename());
    }
    auto counters = nlohmann::json::parse(std::ifstream(writer.folder() / "rng_state.json"));
    counters.erase("total_loss");
    std::ofstream(writer.folder() / "rng_state.json") << counters.dump();
    writer.commit();
  }
  ToyRegression<fp32> model(4, 3);
  train::Trainer<ToyRegression<fp32>> trainer(model, args);
  quiet(trainer);
  const std::string folder = (out / "checkpoint-4").string();
  CHECK_THROWS_WITH_AS(trainer.train(data, out / "checkpoint-4"), doctest::Contains((folder + "\" cannot be resumed").c_str()), mpt::Error);
  CHECK_THROWS_WITH_AS(trainer.train(data, out / "checkpoint-4"), doctest::Contains("--overwrite_output_dir"), mpt::Error);
  std::filesystem::remove_all(out);
}
