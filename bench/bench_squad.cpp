// bench_squad: tokenize and build run_qa features (384/128) for a SQuAD file,
// by default the full v1.1 dev set (10,570 questions).
//
//   ./build/bin/bench_squad [--data FILE.json|FILE.json.zip] [--vocab vocab.txt] [--threads N] [--repeat R]
//
// Defaults: --data data/squad-v1.1-dev.json.zip, --vocab tests/fixtures/bert-base-uncased-vocab.txt
// (run from the repository root). A .zip is read with `unzip -p`; or unpack first:
//   unzip -o /work/shared/data/squad-v1.1-dev.json.zip -d /tmp && bench_squad --data /tmp/dev-v1.1.json
#include <mpt/mpt.hpp>

#include <tbb/global_control.h>
#include <tbb/info.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

namespace {

std::string read_zip_member(const std::string& zip) {
  const std::string cmd = "unzip -p '" + zip + "'";
  FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe == nullptr) mpt::throw_error("cannot run: ", cmd);
  std::string text;
  char buf[1 << 16];
  while (const std::size_t n = std::fread(buf, 1, sizeof buf, pipe)) text.append(buf, n);
  if (pclose(pipe) != 0 || text.empty()) mpt::throw_error("'", cmd, "' failed (is unzip installed, is the path right?)");
  return text;
}

}  // namespace

int main(int argc, char** argv) {
  std::string data = "data/squad-v1.1-dev.json.zip";
  std::string vocab = "tests/fixtures/bert-base-uncased-vocab.txt";
  int threads = 0;
  int repeat = 3;
  for (int i = 1; i < argc; ++i) {
    const auto arg = [&](const char* name) { return std::strcmp(argv[i], name) == 0 && i + 1 < argc; };
    if (arg("--data")) {
      data = argv[++i];
    } else if (arg("--vocab")) {
      vocab = argv[++i];
    } else if (arg("--threads")) {
      threads = std::stoi(argv[++i]);
    } else if (arg("--repeat")) {
      repeat = std::max(1, std::stoi(argv[++i]));
    } else {
      std::cerr << "usage: bench_squad [--data FILE.json|FILE.zip] [--vocab vocab.txt] [--threads N] [--repeat R]\n";
      return 2;
    }
  }
  try {
    std::optional<tbb::global_control> limit;
    if (threads > 0) limit.emplace(tbb::global_control::max_allowed_parallelism, static_cast<std::size_t>(threads));
    const int used_threads = threads > 0 ? threads : tbb::info::default_concurrency();

    const auto tokenizer = mpt::data::WordPieceTokenizer::from_vocab_file(vocab, true);
    const auto t_read = std::chrono::steady_clock::now();
    const bool zipped = data.size() > 4 && data.compare(data.size() - 4, 4, ".zip") == 0;
    const auto dataset = zipped ? mpt::data::parse_squad(read_zip_member(data), data) : mpt::data::read_squad(data);
    const double read_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_read).count();

    mpt::data::QaFeatureOptions options;  // 384 / 128, padded, as run_qa's defaults
    double best = 1e30;
    std::size_t n_features = 0;
    for (int r = 0; r < repeat; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      const auto features = mpt::data::prepare_train_features(dataset, tokenizer, options);
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      best = std::min(best, s);
      n_features = features.size();
    }
    const double qps = static_cast<double>(dataset.size()) / best;
    std::printf(
        "squad features: %zu questions -> %zu features (384/128) in %.3f s (best of %d) = %.0f questions/s, "
        "%d threads; JSON read %.3f s\n",
        dataset.size(), n_features, best, repeat, qps, used_threads, read_seconds);
    std::printf(
        "{\"bench\":\"squad_features\", \"questions\":%zu, \"features\":%zu, \"seconds\":%.4f, "
        "\"questions_per_s\":%.1f, \"threads\":%d}\n",
        dataset.size(), n_features, best, qps, used_threads);
  } catch (const std::exception& e) {
    std::cerr << "bench_squad: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
