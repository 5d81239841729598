// What bert_qa writes besides the model folder, as run_qa.py writes it:
//   <split>_results.json, all_results.json   trainer.save_metrics (indent 4, sorted keys)
//   the "***** <split> metrics *****" block   trainer.log_metrics
//   tokenizer_config.json, special_tokens_map.json, vocab.txt   tokenizer.save_pretrained
//   training_curves.svg                       loss, learning rate, grad norm, eval metrics by step
#pragma once

#include <mpt/mpt.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace bert_qa {

// <split>_results.json and all_results.json (merged), as Trainer.save_metrics.
inline void save_metrics(const std::filesystem::path& output_dir, const std::string& split, const nlohmann::ordered_json& metrics) {
  const nlohmann::json sorted = nlohmann::json::parse(metrics.dump());  // sort_keys=True
  mpt::io::write_file_atomic(output_dir / (split + "_results.json"), sorted.dump(4));
  nlohmann::json all = nlohmann::json::object();
  const auto all_path = output_dir / "all_results.json";
  if (std::filesystem::exists(all_path)) {
    try {
      all = nlohmann::json::parse(mpt::io::read_text_file(all_path));
    } catch (const nlohmann::json::exception&) {
      all = nlohmann::json::object();  // a damaged summary from an earlier run is rewritten
    }
  }
  for (const auto& [k, v] : sorted.items()) all[k] = v;
  mpt::io::write_file_atomic(all_path, all.dump(4));
}

// Trainer.log_metrics: sorted keys, runtimes as h:mm:ss.cc, flos in GF, floats to 4 places.
inline void log_metrics(const std::string& split, const nlohmann::ordered_json& metrics) {
  std::printf("***** %s metrics *****\n", split.c_str());
  const nlohmann::json sorted = nlohmann::json::parse(metrics.dump());
  std::size_t width = 0;
  for (const auto& [k, v] : sorted.items()) width = std::max(width, k.size());
  for (const auto& [k, v] : sorted.items()) {
    std::string text;
    if (k.ends_with("_runtime") && v.is_number()) {
      const double s = v.get<double>();
      char buf[48];
      std::snprintf(buf, sizeof buf, "%d:%02d:%05.2f", static_cast<int>(s / 3600), static_cast<int>(std::fmod(s, 3600) / 60), std::fmod(s, 60.0));
      text = buf;
    } else if (k == "total_flos" && v.is_number()) {
      text = std::to_string(static_cast<long long>(v.get<double>()) >> 30) + "GF";
    } else if (v.is_number_float()) {
      text = mpt::train::python_float(std::round(v.get<double>() * 1e4) / 1e4);
    } else {
      text = v.dump();
    }
    std::printf("  %-*s = %10s\n", static_cast<int>(width), k.c_str(), text.c_str());
  }
  std::fflush(stdout);
}

// The tokenizer files transformers' BertTokenizerFast.save_pretrained writes (tokenizer.json aside:
// transformers rebuilds the fast tokenizer from vocab.txt).
inline void save_tokenizer(const std::filesystem::path& dir, const std::filesystem::path& vocab, bool do_lower_case, std::int64_t model_max_length) {
  mpt::io::write_file_atomic(dir / "vocab.txt", mpt::io::read_file(vocab));
  nlohmann::json added = nlohmann::json::object();
  const std::vector<std::pair<std::string, std::string>> specials = {
      {"0", "[PAD]"}, {"100", "[UNK]"}, {"101", "[CLS]"}, {"102", "[SEP]"}, {"103", "[MASK]"}};
  for (const auto& [id, token] : specials) {
    added[id] = {{"content", token}, {"lstrip", false}, {"normalized", false}, {"rstrip", false}, {"single_word", false}, {"special", true}};
  }
  const nlohmann::json config = {{"added_tokens_decoder", added},
                                 {"clean_up_tokenization_spaces", true},
                                 {"cls_token", "[CLS]"},
                                 {"do_lower_case", do_lower_case},
                                 {"mask_token", "[MASK]"},
                                 {"model_max_length", model_max_length},
                                 {"pad_token", "[PAD]"},
                                 {"sep_token", "[SEP]"},
                                 {"strip_accents", nullptr},
                                 {"tokenize_chinese_chars", true},
                                 {"tokenizer_class", "BertTokenizer"},
                                 {"unk_token", "[UNK]"}};
  mpt::io::write_file_atomic(dir / "tokenizer_config.json", config.dump(2) + "\n");
  const nlohmann::json map = {
      {"cls_token", "[CLS]"}, {"mask_token", "[MASK]"}, {"pad_token", "[PAD]"}, {"sep_token", "[SEP]"}, {"unk_token", "[UNK]"}};
  mpt::io::write_file_atomic(dir / "special_tokens_map.json", map.dump(2) + "\n");
}

// training_curves.svg: one panel per series of the log history, against the step.
inline void write_training_curves(const std::filesystem::path& path, const nlohmann::ordered_json& history) {
  struct Series {
    std::string key, title, color;
    std::vector<std::pair<double, double>> points;
  };
  std::vector<Series> panels = {{"loss", "training loss", "#1f77b4", {}},
                                {"learning_rate", "learning rate", "#2ca02c", {}},
                                {"grad_norm", "gradient norm (before clipping)", "#ff7f0e", {}}};
  std::map<std::string, Series> eval;
  for (const auto& e : history) {
    if (!e.contains("step")) continue;
    const double step = e["step"].get<double>();
    for (auto& s : panels)
      if (e.contains(s.key) && e[s.key].is_number()) s.points.emplace_back(step, e[s.key].get<double>());
    for (const auto& [k, v] : e.items()) {
      if (k.rfind("eval_", 0) != 0 || !v.is_number() || k.ends_with("_runtime") || k.ends_with("_per_second") || k.ends_with("_samples") ||
          k.ends_with("_total") || k.ends_with("_thresh"))
        continue;
      auto& s = eval[k];
      s.key = k;
      s.points.emplace_back(step, v.get<double>());
    }
  }
  const char* colors[] = {"#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f"};
  std::size_t c = 0;
  for (auto& [k, s] : eval) {
    s.title = k;
    s.color = colors[c++ % 6];
    panels.push_back(s);
  }
  constexpr int width = 520, height = 260, margin = 50;
  const int columns = 2, rows = static_cast<int>((panels.size() + 1) / 2);
  std::string svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + std::to_string(columns * width) + "\" height=\"" +
                    std::to_string(rows * height) +
                    "\" font-family=\"sans-serif\" font-size=\"12\">\n"
                    "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  char buf[256];
  for (std::size_t p = 0; p < panels.size(); ++p) {
    const Series& s = panels[p];
    const int x0 = static_cast<int>(p % 2) * width + margin, y0 = static_cast<int>(p / 2) * height + 30;
    const int w = width - margin - 20, h = height - 70;
    std::snprintf(buf, sizeof buf, "<text x=\"%d\" y=\"%d\" font-weight=\"bold\">%s</text>\n", x0, y0 - 10, s.title.c_str());
    svg += buf;
    std::snprintf(buf, sizeof buf, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#999\"/>\n", x0, y0, w, h);
    svg += buf;
    if (s.points.empty()) continue;
    double xmin = s.points.front().first, xmax = xmin, ymin = s.points.front().second, ymax = ymin;
    for (const auto& [x, y] : s.points) {
      xmin = std::min(xmin, x), xmax = std::max(xmax, x);
      if (std::isfinite(y)) ymin = std::min(ymin, y), ymax = std::max(ymax, y);
    }
    if (xmax == xmin) xmax = xmin + 1;
    if (ymax == ymin) ymax = ymin + 1;
    std::string line;
    for (const auto& [x, y] : s.points) {
      if (!std::isfinite(y)) continue;
      std::snprintf(buf, sizeof buf, "%.1f,%.1f ", x0 + (x - xmin) / (xmax - xmin) * w, y0 + h - (y - ymin) / (ymax - ymin) * h);
      line += buf;
    }
    svg += "<polyline fill=\"none\" stroke=\"" + s.color + "\" stroke-width=\"1.5\" points=\"" + line + "\"/>\n";
    if (s.points.size() <= 30) {
      for (const auto& [x, y] : s.points) {
        if (!std::isfinite(y)) continue;
        std::snprintf(buf, sizeof buf, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\"/>\n", x0 + (x - xmin) / (xmax - xmin) * w,
                      y0 + h - (y - ymin) / (ymax - ymin) * h, s.color.c_str());
        svg += buf;
      }
    }
    std::snprintf(buf, sizeof buf,
                  "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%.4g</text>\n<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%.4g</text>\n"
                  "<text x=\"%d\" y=\"%d\">step %.0f</text>\n<text x=\"%d\" y=\"%d\" text-anchor=\"end\">step %.0f</text>\n",
                  x0 - 4, y0 + 10, ymax, x0 - 4, y0 + h, ymin, x0, y0 + h + 16, xmin, x0 + w, y0 + h + 16, xmax);
    svg += buf;
  }
  svg += "</svg>\n";
  mpt::io::write_file_atomic(path, svg);
}

}  // namespace bert_qa
