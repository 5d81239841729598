// bert_qa: transformers' run_qa.py as one native program.
//
//   bert_qa --model_name_or_path bert-base-uncased/ --train_file train-v1.1.json --validation_file dev-v1.1.json
//           --do_train --do_eval --per_device_train_batch_size 12 --learning_rate 3e-5 --num_train_epochs 2
//           --max_seq_length 384 --doc_stride 128 --output_dir out/ --bf16 --use_ipex --no_cuda
//   bert_qa --demo        # a synthetic SQuAD task, a tiny BERT from scratch in bf16, EM/F1 in minutes
//
// The flow is run_qa.py's: read and check every input before any training, build
// the features, train (resuming from output_dir's last checkpoint), save the model
// folder, evaluate, predict, write the results files.
#include "run_qa_args.hpp"
#include "synthetic_squad.hpp"
#include "train_and_evaluate.hpp"

#include <mpt/mpt.hpp>
#ifdef MPT_WITH_MPI
#include <mpt/dist/mpi_communicator.hpp>
#endif

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <sstream>
#include <string>

namespace fs = std::filesystem;
using bert_qa::Arguments;
using bert_qa::Inputs;

#ifndef MPT_BERT_QA_DATA
#define MPT_BERT_QA_DATA "examples/bert_qa/data"
#endif

namespace {

// The vocabulary shipped with mpt (bert-base-uncased), for models trained from scratch.
fs::path bundled_vocab() {
  const char* env = std::getenv("MPT_BERT_QA_DATA");
  return fs::path(env != nullptr && *env != '\0' ? env : MPT_BERT_QA_DATA) / "bert-base-uncased-vocab.txt";
}

// "hidden_size=128,num_hidden_layers=2" applied to a config, as transformers' update_from_string.
void apply_config_overrides(mpt::nn::BertConfig& config, const std::string& overrides) {
  nlohmann::ordered_json j = config.to_json();
  std::stringstream list(overrides);
  std::string item;
  while (std::getline(list, item, ',')) {
    if (item.find_first_not_of(' ') == std::string::npos) continue;
    const auto eq = item.find('=');
    if (eq == std::string::npos) {
      mpt::throw_error("--config_overrides: '", item, "' is not key=value (e.g. \"hidden_size=128,num_hidden_layers=2\")");
    }
    const std::string key = item.substr(0, eq), value = item.substr(eq + 1);
    if (!j.contains(key)) mpt::throw_error("--config_overrides: key '", key, "' is not an attribute of BertConfig");
    try {
      if (j[key].is_number_integer()) {
        std::size_t used = 0;
        const long long v = std::stoll(value, &used);
        if (used != value.size()) throw std::invalid_argument(value);
        j[key] = v;
      } else if (j[key].is_number()) {
        std::size_t used = 0;
        const double v = std::stod(value, &used);
        if (used != value.size()) throw std::invalid_argument(value);
        j[key] = v;
      } else if (j[key].is_boolean()) {
        j[key] = value == "true" || value == "True";
      } else {
        j[key] = value;
      }
    } catch (const std::logic_error&) {
      mpt::throw_error("--config_overrides: ", key, "=", value, " is not a valid ", j[key].type_name());
    }
  }
  config = mpt::nn::BertConfig::from_json(j, "--config_overrides");
}

fs::path folder_file(const std::string& path, const char* file) {
  const fs::path p = path;
  return fs::is_directory(p) ? p / file : p;
}

mpt::data::SquadDataset read_examples(const std::string& flag, const std::string& path, const Arguments& a,
                                      const std::optional<std::int64_t>& max_samples) {
  if (!fs::exists(path)) mpt::throw_error(flag, " ", path, ": no such file");
  const auto ext = fs::path(path).extension();
  if (ext != ".json" && ext != ".jsonl") {
    mpt::throw_error(flag, " ", path, ": expected a .json (SQuAD or flattened) or .jsonl file (csv is not supported)");
  }
  mpt::data::SquadReadOptions options;
  options.answers_optional = flag == "--test_file";  // prediction files may come without answers
  mpt::data::SquadDataset d = mpt::data::read_squad(path, options);
  if (d.version_2 && !a.data.version_2_with_negative) {
    std::printf("note: %s is SQuAD v2.0 (questions without answers); pass --version_2_with_negative to score it as v2\n", path.c_str());
  }
  if (max_samples) d = d.first(static_cast<std::size_t>(*max_samples));
  return d;
}

void keep_first_features(mpt::data::QaFeatures& f, std::optional<std::int64_t> n) {
  if (!n || static_cast<std::size_t>(*n) >= f.size()) return;
  const std::size_t keep = static_cast<std::size_t>(*n), tokens = f.row_begin[keep];
  f.row_begin.resize(keep + 1);
  f.input_ids.resize(tokens);
  f.token_type_ids.resize(tokens);
  f.attention_mask.resize(tokens);
  if (!f.offsets.empty()) f.offsets.resize(tokens);
  f.example_index.resize(keep);
  if (!f.start_positions.empty()) f.start_positions.resize(keep), f.end_positions.resize(keep);
}

// Reads and checks everything the run needs, before any training.
Inputs prepare(const Arguments& a) {
  Inputs in;
  const auto& m = a.model;
  if (!m.config_overrides.empty() && (!m.model_name_or_path.empty() || !m.config_name.empty())) {
    mpt::throw_error("--config_overrides can't be used in combination with --config_name or --model_name_or_path");
  }
  if (!m.model_name_or_path.empty()) {
    in.model_folder = m.model_name_or_path;
    if (!fs::is_directory(in.model_folder)) {
      mpt::throw_error("--model_name_or_path ", m.model_name_or_path,
                       ": not a folder. bert_qa loads Hugging Face model "
                       "folders from disk (config.json, model.safetensors, vocab.txt); download one first, e.g. with "
                       "`huggingface-cli download bert-base-uncased --local-dir bert-base-uncased`");
    }
  }
  const std::string config_source = !m.config_name.empty() ? m.config_name : m.model_name_or_path;
  if (!config_source.empty()) {
    in.config = mpt::nn::BertConfig::from_json_file(folder_file(config_source, "config.json"));
  } else {
    apply_config_overrides(in.config, m.config_overrides);
    std::printf("Training a new model from scratch: BertConfig %s\n", in.config.to_json().dump().c_str());
  }
  const std::string tokenizer_source = !m.tokenizer_name.empty() ? m.tokenizer_name : m.model_name_or_path;
  in.vocab = tokenizer_source.empty() ? bundled_vocab() : folder_file(tokenizer_source, "vocab.txt");
  if (!fs::exists(in.vocab)) mpt::throw_error("tokenizer: ", in.vocab, " does not exist; pass --tokenizer_name (a vocab.txt or its folder)");
  in.tokenizer.emplace(mpt::data::WordPieceTokenizer::from_vocab_file(in.vocab));
  in.do_lower_case = in.tokenizer->options().do_lower_case;
  if (static_cast<std::int64_t>(in.tokenizer->vocab_size()) > in.config.vocab_size) {
    mpt::throw_error("the tokenizer ", in.vocab, " has ", in.tokenizer->vocab_size(), " tokens but the model's vocab_size is ", in.config.vocab_size,
                     "; use the model's own vocabulary");
  }

  in.max_seq_length = static_cast<std::size_t>(a.data.max_seq_length);
  const auto limit = static_cast<std::size_t>(std::min<std::int64_t>(in.config.max_position_embeddings, 512));
  if (in.max_seq_length > limit) {
    std::printf("warning: --max_seq_length %zu is longer than the model's maximum (%zu); using %zu\n", in.max_seq_length, limit, limit);
    in.max_seq_length = limit;
  }
  mpt::data::QaFeatureOptions fo;
  fo.max_seq_length = in.max_seq_length;
  fo.doc_stride = static_cast<std::size_t>(a.data.doc_stride);
  fo.pad_to_max_length = a.data.pad_to_max_length;

  const auto& t = a.training;
  if (t.do_train) {
    if (a.data.train_file.empty()) mpt::throw_error("--do_train requires a train dataset: pass --train_file");
    in.train = read_examples("--train_file", a.data.train_file, a, a.data.max_train_samples);
    in.train_features = mpt::data::prepare_train_features(*in.train, *in.tokenizer, fo);
    keep_first_features(in.train_features, a.data.max_train_samples);
  }
  if (t.do_eval) {
    if (a.data.validation_file.empty()) mpt::throw_error("--do_eval requires a validation dataset: pass --validation_file");
    in.eval = read_examples("--validation_file", a.data.validation_file, a, a.data.max_eval_samples);
    in.eval_features = mpt::data::prepare_eval_features(*in.eval, *in.tokenizer, fo);
    keep_first_features(in.eval_features, a.data.max_eval_samples);
  }
  if (t.do_predict) {
    if (a.data.test_file.empty()) mpt::throw_error("--do_predict requires a test dataset: pass --test_file");
    in.predict = read_examples("--test_file", a.data.test_file, a, a.data.max_predict_samples);
    in.predict_features = mpt::data::prepare_eval_features(*in.predict, *in.tokenizer, fo);
    keep_first_features(in.predict_features, a.data.max_predict_samples);
  }
  return in;
}

// --demo: the README's first command. Flags the user gives still win.
void apply_demo(Arguments& a) {
  auto& t = a.training;
  auto set = [&](const char* flag, auto& target, auto value) {
    if (!a.was_given(flag)) target = value;
  };
  const fs::path dir = a.mpt.demo_data_dir;
  set("--train_file", a.data.train_file, (dir / "train.json").string());
  set("--validation_file", a.data.validation_file, (dir / "dev.json").string());
  set("--config_overrides", a.model.config_overrides, std::string("hidden_size=128,num_hidden_layers=2,num_attention_heads=2,intermediate_size=512"));
  set("--do_train", t.do_train, true);
  set("--do_eval", t.do_eval, true);
  set("--bf16", t.bf16, true);
  set("--learning_rate", t.learning_rate, 1.5e-3);
  set("--warmup_ratio", t.warmup_ratio, 0.1);
  set("--weight_decay", t.weight_decay, 0.01);
  set("--per_device_train_batch_size", t.per_device_train_batch_size, std::int64_t{32});
  set("--per_device_eval_batch_size", t.per_device_eval_batch_size, std::int64_t{64});
  set("--max_steps", t.max_steps, std::int64_t{2100});
  set("--max_seq_length", a.data.max_seq_length, std::int64_t{128});
  set("--doc_stride", a.data.doc_stride, std::int64_t{32});
  set("--pad_to_max_length", a.data.pad_to_max_length, false);  // each batch padded to its longest: ~20% faster here
  set("--logging_steps", t.logging_steps, 100.0);
  set("--save_steps", t.save_steps, 700.0);
  set("--save_total_limit", t.save_total_limit, std::optional<std::int64_t>(1));
  set("--output_dir", t.output_dir, std::string("bert_qa_demo"));
  set("--overwrite_output_dir", t.overwrite_output_dir, true);
  if (!fs::exists(a.data.train_file) || !fs::exists(a.data.validation_file)) {
    bert_qa::SyntheticSquadOptions options;
    options.entities_per_paragraph = static_cast<int>(a.mpt.demo_entities_per_paragraph);
    std::printf("--demo: generating the synthetic SQuAD task in %s\n", dir.c_str());
    bert_qa::write_synthetic_squad(dir, options);
  }
}

}  // namespace

// The one-line string `text` of rank 0 on every rank.
std::string broadcast_string(mpt::dist::Communicator& comm, std::string text) {
  if (comm.size() == 1) return text;
  std::uint64_t length = text.size();
  comm.broadcast(std::as_writable_bytes(std::span(&length, 1)), 0);
  text.resize(length);
  comm.broadcast(std::as_writable_bytes(std::span(text.data(), text.size())), 0);
  return text;
}

int main(int argc, char** argv) {
  // Under mpirun (with MPI built in): one process per rank, data-parallel.
  std::unique_ptr<mpt::dist::Communicator> mpi;
#ifdef MPT_WITH_MPI
  if (mpt::dist::MpiCommunicator::launched_by_mpirun()) mpi = std::make_unique<mpt::dist::MpiCommunicator>(argc, argv);
#endif
  mpt::dist::Communicator& comm = mpi ? *mpi : mpt::dist::single_process();
  // A failure ends the whole job, from whichever rank it happens on, with its message.
  const auto fail = [&](const std::string& message, int code) {
    if (comm.size() == 1) {
      std::fprintf(stderr, "%s\n", message.c_str());
      return code;
    }
    comm.abort("bert_qa (rank " + std::to_string(comm.rank()) + " of " + std::to_string(comm.size()) + "): " + message, code);
    return code;  // not reached: abort ends every process
  };
  if (!comm.is_main()) {
    if (std::freopen("/dev/null", "w", stdout) == nullptr) return fail("error: cannot silence the output of this rank", 1);
  }

  bert_qa::ArgumentParser parser;
  bert_qa::ParseResult parsed = parser.parse(argc, argv);
  if (!parsed.args) {
    if (parsed.exit_code == 0) {
      std::printf("%s\n", parsed.message.c_str());
      return 0;
    }
    return fail(parsed.message, parsed.exit_code);
  }
  Arguments& a = *parsed.args;
  try {
    if (!a.data.dataset_name.empty()) {
      mpt::throw_error("--dataset_name ", a.data.dataset_name,
                       ": bert_qa reads local files and never downloads. Fetch the "
                       "data once and pass the files, e.g. --train_file train-v1.1.json --validation_file dev-v1.1.json "
                       "(SQuAD v1.1 from https://rajpurkar.github.io/SQuAD-explorer/)");
    }
    if (a.mpt.demo) {
      if (comm.is_main()) apply_demo(a);
      comm.barrier();  // rank 0 generated the task
      if (!comm.is_main()) apply_demo(a);
    }
    if (a.data.train_file.empty() && a.data.validation_file.empty() && a.data.test_file.empty()) {
      mpt::throw_error("Need either a dataset name or a training/validation file/test_file. (Or run bert_qa --demo.)");
    }
    if (!a.training.do_train && !a.training.do_eval && !a.training.do_predict) {
      mpt::throw_error("nothing to do: pass --do_train, --do_eval and/or --do_predict");
    }
    if (a.training.fp16) {
      mpt::throw_error(
          "--fp16: mpt's BERT runs in bf16 (--bf16, which needs no loss scaling) or fp32; the fp16 kernels "
          "are not written yet");
    }
    if (!a.training.bf16 && a.mpt.master_weights != "fp32_master" && a.was_given("--master_weights")) {
      mpt::throw_error("--master_weights ", a.mpt.master_weights, " applies to --bf16 runs; fp32 runs update fp32 weights");
    }
    if (!(a.mpt.ddp_bucket_cap_mb > 0)) mpt::throw_error("--ddp_bucket_cap_mb ", a.mpt.ddp_bucket_cap_mb, " must be positive");
    a.training.validate();
    if (a.mpt.num_threads) mpt::set_num_threads(*a.mpt.num_threads);
    for (const auto& f : a.ignored) std::printf("note: %s is accepted for compatibility and has no effect here\n", f.c_str());
    std::printf("mpt: %d process%s x %d threads, %s kernels (%s)%s\n", comm.size(), comm.size() > 1 ? "es" : "", mpt::num_threads(),
                mpt::isa_name(mpt::active_isa()).data(), a.training.bf16 ? "bf16 mixed precision" : "fp32",
                a.training.use_ipex || a.training.no_cuda || a.training.use_cpu
                    ? "; --use_ipex/--no_cuda/--use_cpu accepted: mpt's CPU kernels are always on"
                    : "");
    // run_qa's output_dir rule first: a non-empty output_dir without checkpoints stops the run here.
    // Rank 0 decides (and cleans what a killed run left); the others take its answer.
    std::optional<fs::path> checkpoint;
    std::string found = "-";
    if (comm.is_main()) {
      try {
        checkpoint = mpt::train::detect_checkpoint(a.training);
        found = checkpoint ? checkpoint->string() : "";
      } catch (const mpt::Error& e) {
        found = std::string("!") + e.what();
      }
    }
    found = broadcast_string(comm, found);
    if (!found.empty() && found[0] == '!') mpt::throw_error(found.substr(1));
    if (!found.empty()) checkpoint = fs::path(found);
    Inputs inputs = prepare(a);
    if (!a.training.bf16) return bert_qa::run<mpt::precision::fp32, mpt::optim::weights::direct>(a, inputs, checkpoint, comm);
    using P = mpt::precision::bf16_mixed;
    if (a.mpt.master_weights == "split_master") return bert_qa::run<P, mpt::optim::weights::split_master>(a, inputs, checkpoint, comm);
    if (a.mpt.master_weights == "stochastic_rounding") {
      return bert_qa::run<P, mpt::optim::weights::stochastic_rounding>(a, inputs, checkpoint, comm);
    }
    return bert_qa::run<P, mpt::optim::weights::fp32_master>(a, inputs, checkpoint, comm);
  } catch (const std::exception& e) {
    return fail(std::string("error: ") + e.what(), 1);
  }
}
