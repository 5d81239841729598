// Checkpoint I/O throughput at BERT-base size (110M parameters, 438 MB in F32):
// save_pretrained (F32 and BF16, fsync included) and load_parameters into float
// and bf16 parameters from a file already in the page cache.
//   bench_io [dir]   (default: a folder under the system temp dir, removed at the end)
#include <mpt/mpt.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <unistd.h>
#include <vector>

namespace fs = std::filesystem;
using mpt::Shape;
using mpt::Tensor;

namespace {

struct Spec {
  std::string name;
  Shape shape;
};

std::vector<Spec> bert_qa_specs(const mpt::nn::BertConfig& c) {
  const std::int64_t h = c.hidden_size, i = c.intermediate_size;
  std::vector<Spec> p = {{"bert.embeddings.word_embeddings.weight", Shape{c.vocab_size, h}},
                         {"bert.embeddings.position_embeddings.weight", Shape{c.max_position_embeddings, h}},
                         {"bert.embeddings.token_type_embeddings.weight", Shape{c.type_vocab_size, h}},
                         {"bert.embeddings.LayerNorm.weight", Shape{h}},
                         {"bert.embeddings.LayerNorm.bias", Shape{h}}};
  for (std::int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string at = "bert.encoder.layer." + std::to_string(l) + ".";
    for (const char* n : {"attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"}) {
      p.push_back({at + n + ".weight", Shape{h, h}});
      p.push_back({at + n + ".bias", Shape{h}});
    }
    p.push_back({at + "attention.output.LayerNorm.weight", Shape{h}});
    p.push_back({at + "attention.output.LayerNorm.bias", Shape{h}});
    p.push_back({at + "intermediate.dense.weight", Shape{i, h}});
    p.push_back({at + "intermediate.dense.bias", Shape{i}});
    p.push_back({at + "output.dense.weight", Shape{h, i}});
    p.push_back({at + "output.dense.bias", Shape{h}});
    p.push_back({at + "output.LayerNorm.weight", Shape{h}});
    p.push_back({at + "output.LayerNorm.bias", Shape{h}});
  }
  p.push_back({"qa_outputs.weight", Shape{2, h}});
  p.push_back({"qa_outputs.bias", Shape{2}});
  return p;
}

template <class T>
struct Params {
  std::vector<std::unique_ptr<Tensor<T>>> storage;
  std::vector<mpt::io::ParameterSlot> slots;
  explicit Params(const std::vector<Spec>& specs) {
    for (const Spec& s : specs) {
      storage.push_back(std::make_unique<Tensor<T>>(s.shape));
      slots.push_back({s.name, storage.back()->view(), mpt::nn::initializer(mpt::nn::Init::normal, 0.02, 42)});
    }
  }
};

template <class F>
double seconds_best_of(int reps, F&& f) {
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  const fs::path dir = argc > 1 ? fs::path(argv[1]) : fs::temp_directory_path() / ("mpt_bench_io_" + std::to_string(::getpid()));
  const mpt::nn::BertConfig config;  // bert-base-uncased
  const auto specs = bert_qa_specs(config);
  Params<float> source(specs);
  mpt::io::LoadOptions options;
  options.warn = nullptr;
  {
    // Random values via the loader's own initializer (an empty checkpoint initializes every slot).
    mpt::io::save_safetensors(dir.string() + "_empty.safetensors", std::span<const mpt::io::NamedTensor>(), mpt::io::Dtype::f32);
    mpt::io::load_parameters(fs::path(dir.string() + "_empty.safetensors"), source.slots, options);
    fs::remove(dir.string() + "_empty.safetensors");
  }
  std::size_t numel = 0;
  for (const auto& t : source.storage) numel += t->size();
  std::printf("BERT-base QA: %zu tensors, %.1f M parameters, threads %d\n", specs.size(), numel / 1e6, mpt::num_threads());
  const auto named = mpt::io::named_tensors(source.slots);

  const auto report = [&](const char* what, double s, double bytes) {
    std::printf("%-44s %8.1f ms  %6.2f GB/s (of %.0f MB)\n", what, s * 1e3, bytes / s / 1e9, bytes / 1e6);
  };
  const double f32_bytes = 4.0 * static_cast<double>(numel), bf16_bytes = 2.0 * static_cast<double>(numel);
  const fs::path f32_dir = dir / "f32", bf16_dir = dir / "bf16";
  report("save_pretrained F32 (incl. fsync)",
         seconds_best_of(2, [&] { mpt::io::save_pretrained(f32_dir, config.to_json(), named, mpt::io::Dtype::f32); }), f32_bytes);
  report("save_pretrained BF16 (float -> bf16, fsync)",
         seconds_best_of(2, [&] { mpt::io::save_pretrained(bf16_dir, config.to_json(), named, mpt::io::Dtype::bf16); }), bf16_bytes);

  Params<float> as_float(specs);
  Params<mpt::bf16> as_bf16(specs);
  std::printf("%-44s %8.2f ms\n", "SafetensorsFile::open (mmap + validate)",
              1e3 * seconds_best_of(5, [&] { (void)mpt::io::SafetensorsFile::open(f32_dir / "model.safetensors"); }));
  {
    // The same file object twice: the second pass finds its pages mapped (copy cost alone).
    const auto file = mpt::io::SafetensorsFile::open(f32_dir / "model.safetensors");
    report("load F32 -> float, first pass over the map", seconds_best_of(1, [&] { mpt::io::load_parameters(file, as_float.slots, options); }),
           f32_bytes);
    report("load F32 -> float, pages already mapped", seconds_best_of(3, [&] { mpt::io::load_parameters(file, as_float.slots, options); }),
           f32_bytes);
  }
  report("load F32 file -> float params", seconds_best_of(3, [&] { mpt::io::load_parameters(f32_dir, as_float.slots, options); }), f32_bytes);
  report("load F32 file -> bf16 params", seconds_best_of(3, [&] { mpt::io::load_parameters(f32_dir, as_bf16.slots, options); }), f32_bytes);
  report("load BF16 file -> float params", seconds_best_of(3, [&] { mpt::io::load_parameters(bf16_dir, as_float.slots, options); }), bf16_bytes);
  report("load BF16 file -> bf16 params", seconds_best_of(3, [&] { mpt::io::load_parameters(bf16_dir, as_bf16.slots, options); }), bf16_bytes);
  if (argc <= 1) fs::remove_all(dir);
  return 0;
}
