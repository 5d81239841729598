// safetensors: round trips in every dtype mpt writes, and every kind of broken
// file ending in an mpt::Error that names the file (and the tensor) — never a crash.
#include <doctest/doctest.h>
#include "temp_dir.hpp"
#include <mpt/mpt.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using mpt::bf16;
using mpt::Shape;
using mpt::Tensor;
using mpt::io::Dtype;

namespace {

using mpt::test::TempDir;

// A fresh folder under the system temp dir, removed at scope exit.
std::vector<std::byte> bytes_of(const std::string& s) {
  std::vector<std::byte> b(s.size());
  std::memcpy(b.data(), s.data(), s.size());
  return b;
}

// Test files are written plainly: write_file_atomic's fsync would make the hundreds of
// broken files below take seconds. (Removed first: ext4 flushes a file truncated and
// rewritten in place.)
void write_plain(const fs::path& path, std::span<const std::byte> bytes) {
  fs::remove(path);
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

// [u64 len][header][data], written as is (no padding, so data may be unaligned).
std::vector<std::byte> raw_file(const std::string& header, std::size_t data_bytes, std::uint64_t declared_len) {
  std::vector<std::byte> out(8);
  std::memcpy(out.data(), &declared_len, 8);
  const auto h = bytes_of(header);
  out.insert(out.end(), h.begin(), h.end());
  for (std::size_t i = 0; i < data_bytes; ++i) out.push_back(static_cast<std::byte>(i * 37 + 11));
  return out;
}
std::vector<std::byte> raw_file(const std::string& header, std::size_t data_bytes) { return raw_file(header, data_bytes, header.size()); }

// Opening must throw mpt::Error whose message names the file and every string in `mentions`.
void expect_open_error(const fs::path& path, const std::vector<std::string>& mentions) {
  try {
    const auto file = mpt::io::SafetensorsFile::open(path);
    FAIL("opened a broken file without error: ", path);
  } catch (const mpt::Error& e) {
    const std::string what = e.what();
    INFO("message: ", what);
    CHECK(what.find(path.string()) != std::string::npos);
    for (const std::string& m : mentions) CHECK(what.find(m) != std::string::npos);
  }
}

void expect_raw_error(const TempDir& dir, const std::string& header, std::size_t data_bytes, const std::vector<std::string>& mentions) {
  const fs::path p = dir / "broken.safetensors";
  write_plain(p, raw_file(header, data_bytes));
  INFO("header: ", header);
  expect_open_error(p, mentions);
}

template <class T>
Tensor<T> random_tensor(Shape shape, std::mt19937& rng) {
  Tensor<T> t(shape);
  std::normal_distribution<float> dist(0.0f, 3.0f);
  for (auto& v : t.span()) v = T(dist(rng));
  return t;
}

// The value a float takes after a trip through the file dtype.
float through(Dtype d, float v) {
  switch (d) {
    case Dtype::bf16:
      return mpt::round_to_bf16(v);
    case Dtype::f16:
      return static_cast<float>(Eigen::half(v));
    default:
      return v;
  }
}

}  // namespace

TEST_CASE("safetensors round trip: F32, BF16, F16 files from float, bf16 and double tensors, all shapes") {
  const unsigned seed = 1234;
  INFO("seed ", seed);
  std::mt19937 rng(seed);
  TempDir dir("round_trip");
  const std::vector<Shape> shapes = {Shape{}, Shape{0}, Shape{0, 3}, Shape{1}, Shape{7}, Shape{3, 5}, Shape{2, 3, 4}, Shape{2, 1, 3, 2}, Shape{1031}};

  for (Dtype file_dtype : {Dtype::f32, Dtype::bf16, Dtype::f16}) {
    CAPTURE(mpt::io::dtype_name(file_dtype));
    std::vector<Tensor<float>> floats;
    std::vector<Tensor<bf16>> bf16s;
    std::vector<Tensor<double>> doubles;
    std::vector<mpt::io::NamedTensor> named;
    for (std::size_t i = 0; i < shapes.size(); ++i) {
      floats.push_back(random_tensor<float>(shapes[i], rng));
      bf16s.push_back(random_tensor<bf16>(shapes[i], rng));
      doubles.push_back(random_tensor<double>(shapes[i], rng));
    }
    for (std::size_t i = 0; i < shapes.size(); ++i) {
      named.push_back({"f." + std::to_string(i), floats[i].view()});
      named.push_back({"b." + std::to_string(i), bf16s[i].view()});
      named.push_back({"d." + std::to_string(i), doubles[i].view()});
    }
    const fs::path path = dir / "t.safetensors";
    mpt::io::save_safetensors(path, named, file_dtype, {{"format", "pt"}, {"note", "round trip"}});

    const auto file = mpt::io::SafetensorsFile::open(path);
    CHECK(file.size() == named.size());
    CHECK(file.metadata().at("format") == "pt");
    CHECK(file.metadata().at("note") == "round trip");
    // The data buffer starts 8-byte aligned, as the reference writer makes it.
    std::uint64_t header_len = 0;
    std::memcpy(&header_len, mpt::io::read_file(path).data(), 8);
    CHECK((8 + header_len) % 8 == 0);

    for (std::size_t i = 0; i < shapes.size(); ++i) {
      CAPTURE(shapes[i]);
      const auto& e = file.at("f." + std::to_string(i));
      CHECK(e.dtype == file_dtype);
      CHECK(e.shape() == shapes[i]);
      // float source -> file -> float, bf16 and double destinations
      const auto as_float = file.read<float>("f." + std::to_string(i));
      const auto as_bf16 = file.read<bf16>("f." + std::to_string(i));
      const auto as_double = file.read<double>("f." + std::to_string(i));
      const auto b_as_float = file.read<float>("b." + std::to_string(i));
      const auto d_as_double = file.read<double>("d." + std::to_string(i));
      std::size_t mismatches = 0;
      for (std::size_t k = 0; k < floats[i].size(); ++k) {
        const float expect = through(file_dtype, floats[i][k]);
        mismatches += as_float[k] != expect;
        mismatches += as_double[k] != static_cast<double>(expect);
        mismatches += mpt::bf16_bits(as_bf16[k]) != mpt::float_to_bf16_bits(expect);
        mismatches += b_as_float[k] != through(file_dtype, mpt::to_float(bf16s[i][k]));
        mismatches += d_as_double[k] != static_cast<double>(through(file_dtype, static_cast<float>(doubles[i][k])));
      }
      CHECK(mismatches == 0);
    }
  }
}

TEST_CASE("safetensors: BF16 encode and decode give the same bits on every instruction set") {
  const unsigned seed = 99;
  INFO("seed ", seed);
  std::mt19937 rng(seed);
  TempDir dir("isa");
  const Tensor<float> values = random_tensor<float>(Shape{3, 1000}, rng);  // not a multiple of any vector width
  const std::vector<mpt::io::NamedTensor> named = {{"v", values.view()}};
  for (mpt::Isa isa : mpt::supported_isas()) {
    CAPTURE(mpt::isa_name(isa));
    mpt::ScopedIsa guard(isa);
    mpt::io::save_safetensors(dir / "v.safetensors", named, Dtype::bf16);
    const auto file = mpt::io::SafetensorsFile::open(dir / "v.safetensors");
    const auto back = file.read<float>("v");
    std::size_t mismatches = 0;
    for (std::size_t k = 0; k < values.size(); ++k) mismatches += back[k] != mpt::round_to_bf16(values[k]);
    CHECK(mismatches == 0);
  }
}

TEST_CASE("safetensors: F64 files and unaligned data (odd header length) read correctly") {
  TempDir dir("unaligned");
  // BF16 [3] at data offset 0 with a 7-byte header: the data starts at byte 15.
  const std::string header = R"({"x":{"dtype":"BF16","shape":[3],"data_offsets":[0,6]},"y":{"dtype":"F64","shape":[1],"data_offsets":[6,14]}})";
  std::string padded = header;
  if ((8 + padded.size()) % 2 == 0) padded += ' ';  // JSON allows trailing whitespace
  std::vector<std::byte> file = raw_file(padded, 0);
  const std::uint16_t bits[3] = {0x3F80, 0xC040, 0x0001};  // 1, -3, the smallest subnormal
  const double y = -2.5;
  file.insert(file.end(), reinterpret_cast<const std::byte*>(bits), reinterpret_cast<const std::byte*>(bits) + 6);
  file.insert(file.end(), reinterpret_cast<const std::byte*>(&y), reinterpret_cast<const std::byte*>(&y) + 8);
  mpt::io::write_file_atomic(dir / "u.safetensors", file);
  const auto f = mpt::io::SafetensorsFile::open(dir / "u.safetensors");
  const auto x = f.read<float>("x");
  CHECK(x[0] == 1.0f);
  CHECK(x[1] == -3.0f);
  CHECK(x[2] == mpt::to_float(mpt::bf16_from_bits(1)));
  CHECK(f.read<float>("y")[0] == -2.5f);
  CHECK(mpt::to_float(f.read<bf16>("y")[0]) == -2.5f);
}

TEST_CASE("safetensors: reading checks the destination shape and the dtype, naming the tensor") {
  TempDir dir("read_checks");
  const auto batch = mpt::io::SafetensorsFile::open(fs::path(MPT_TEST_DATA) / "bert_tiny/batch.safetensors");
  CHECK(batch.at("input_ids").dtype == Dtype::i64);  // integer tensors index and validate, only conversion refuses
  CHECK_THROWS_WITH_AS(batch.read<float>("input_ids"), doctest::Contains("tensor 'input_ids': dtype I64"), mpt::Error);
  // Integer tensors read into integers: the batch the model tests feed.
  const auto ids = batch.read<std::int64_t>("input_ids");
  const auto mask = batch.read<std::int32_t>("attention_mask");
  CHECK(ids.shape() == Shape{3, 16});
  CHECK(ids(0, 0) == 2);   // [CLS]
  CHECK(ids(2, 15) == 0);  // [PAD]: row 2 holds 9 tokens
  CHECK(mask(1, 11) == 1);
  CHECK(mask(1, 12) == 0);
  const auto end_positions = batch.read<std::int64_t>("end_positions");
  CHECK(end_positions[1] == 20);
  CHECK_THROWS_WITH_AS(batch.read<std::int64_t>("nope"), doctest::Contains("nope"), mpt::Error);
  const auto model_file = mpt::io::SafetensorsFile::open(fs::path(MPT_TEST_DATA) / "bert_tiny/model.safetensors");
  CHECK_THROWS_WITH_AS(model_file.read<std::int64_t>("qa_outputs.bias"), doctest::Contains("F32 does not read into an integer tensor"), mpt::Error);
  // Narrowing is checked element by element.
  std::vector<std::byte> big = raw_file(R"({"n":{"dtype":"I64","shape":[2],"data_offsets":[0,16]}})", 0);
  const std::int64_t values[2] = {-7, std::int64_t{1} << 40};
  big.insert(big.end(), reinterpret_cast<const std::byte*>(values), reinterpret_cast<const std::byte*>(values) + 16);
  write_plain(dir / "big.safetensors", big);
  const auto big_file = mpt::io::SafetensorsFile::open(dir / "big.safetensors");
  CHECK(big_file.read<std::int64_t>("n")[1] == std::int64_t{1} << 40);
  CHECK_THROWS_WITH_AS(big_file.read<std::int32_t>("n"), doctest::Contains("tensor 'n': element 1 does not fit in 32-bit"), mpt::Error);
  CHECK_THROWS_WITH_AS(batch.at("nope"), doctest::Contains("no tensor 'nope'"), mpt::Error);
  const auto model = mpt::io::SafetensorsFile::open(fs::path(MPT_TEST_DATA) / "bert_tiny/model.safetensors");
  Tensor<float> wrong(Shape{2, 31});
  CHECK_THROWS_WITH_AS(model.read("qa_outputs.weight", wrong.view()),
                       doctest::Contains("tensor 'qa_outputs.weight': shape [2, 32] in the file but [2, 31] is required"), mpt::Error);
}

TEST_CASE("safetensors: a file truncated anywhere is an error naming the file") {
  TempDir dir("truncate");
  Tensor<float> a(Shape{2, 3});
  Tensor<bf16> b(Shape{4});
  Tensor<float> c(Shape{});
  const std::vector<mpt::io::NamedTensor> named = {{"a", a.view()}, {"b", b.view(), Dtype::bf16}, {"c", c.view(), Dtype::f16}};
  mpt::io::save_safetensors(dir / "whole.safetensors", named, Dtype::f32, {{"format", "pt"}});
  const std::vector<std::byte> whole = mpt::io::read_file(dir / "whole.safetensors");
  const fs::path cut = dir / "cut.safetensors";
  std::size_t errors = 0;
  for (std::size_t n = 0; n < whole.size(); ++n) {
    write_plain(cut, std::span<const std::byte>(whole.data(), n));
    try {
      const auto f = mpt::io::SafetensorsFile::open(cut);
    } catch (const mpt::Error& e) {
      errors += std::string(e.what()).find(cut.string()) != std::string::npos;
    }
  }
  CHECK(errors == whole.size());
  CHECK(mpt::io::SafetensorsFile::open(dir / "whole.safetensors").size() == 3);
}

TEST_CASE("safetensors: random byte corruption never crashes: it opens and reads, or throws mpt::Error") {
  const unsigned seed = 4242;
  INFO("seed ", seed);
  std::mt19937 rng(seed);
  TempDir dir("fuzz");
  Tensor<float> a(Shape{2, 3});
  Tensor<bf16> b(Shape{5});
  Tensor<double> c(Shape{});
  const std::vector<mpt::io::NamedTensor> named = {{"alpha", a.view()}, {"beta", b.view(), Dtype::bf16}, {"gamma", c.view(), Dtype::f16}};
  mpt::io::save_safetensors(dir / "whole.safetensors", named, Dtype::f32, {{"format", "pt"}});
  const std::vector<std::byte> whole = mpt::io::read_file(dir / "whole.safetensors");
  const fs::path p = dir / "mutated.safetensors";
  // Bytes a mutation writes: JSON punctuation and digits hurt most.
  const std::string alphabet = "{}[]\":,0123456789-eE. aF\x00\xff";
  int opened = 0, rejected = 0;
  for (int trial = 0; trial < 1500; ++trial) {
    std::vector<std::byte> bytes = whole;
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits; ++e) {
      const std::size_t at = rng() % bytes.size();
      bytes[at] = rng() % 2 ? static_cast<std::byte>(alphabet[rng() % alphabet.size()]) : static_cast<std::byte>(rng() & 0xFF);
    }
    if (rng() % 4 == 0) bytes.resize(rng() % bytes.size());
    write_plain(p, bytes);
    try {
      const auto file = mpt::io::SafetensorsFile::open(p);
      for (const auto& entry : file.tensors()) {
        if (!mpt::io::is_convertible_dtype(entry.dtype) || entry.dims.size() > 4) continue;
        const auto t = file.read<float>(entry.name);
        CHECK(t.size() == entry.numel());
      }
      ++opened;
    } catch (const mpt::Error& e) {
      ++rejected;
      CHECK(std::string(e.what()).find(p.string()) != std::string::npos);
    }
  }
  MESSAGE("random corruption: ", opened, " files still valid, ", rejected, " rejected with mpt::Error");
  CHECK(rejected > 0);
}

TEST_CASE("safetensors: oversized or inconsistent header lengths") {
  TempDir dir("lengths");
  const std::string header = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  const fs::path p = dir / "len.safetensors";
  for (std::uint64_t declared : {std::uint64_t{UINT64_MAX}, std::uint64_t{1} << 63, std::uint64_t{100'000'001}, std::uint64_t{header.size() + 5}}) {
    CAPTURE(declared);
    write_plain(p, raw_file(header, 4, declared));
    expect_open_error(p, {});
  }
  // Declared shorter than the JSON: the JSON is cut, and the rest counts as data.
  write_plain(p, raw_file(header, 4, header.size() - 3));
  expect_open_error(p, {"not valid JSON"});
  mpt::io::write_file_atomic(p, std::span<const std::byte>());
  expect_open_error(p, {"too short"});
}

TEST_CASE("safetensors: every malformed header is an mpt::Error naming the file and the tensor") {
  TempDir dir("malformed");
  const auto entry = [](const std::string& name, const std::string& dtype, const std::string& shape, const std::string& offsets) {
    return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":" + offsets + "}";
  };
  // Sanity: the helpers make a valid file.
  mpt::io::write_file_atomic(dir / "ok.safetensors", raw_file("{" + entry("w", "F32", "[2]", "[0,8]") + "}", 8));
  CHECK(mpt::io::SafetensorsFile::open(dir / "ok.safetensors").at("w").numel() == 2);

  expect_raw_error(dir, "{" + entry("a", "F32", "[2]", "[0,8]") + "," + entry("b", "F32", "[2]", "[4,12]") + "}", 12, {"'b'", "overlap"});
  expect_raw_error(dir, "{" + entry("a", "F32", "[2]", "[0,8]") + "," + entry("b", "F32", "[0]", "[4,4]") + "}", 8, {"'b'", "overlap"});
  expect_raw_error(dir, "{" + entry("a", "F32", "[2]", "[0,8]") + "}", 4, {"'a'", "run past"});
  expect_raw_error(dir, "{" + entry("a", "F32", "[2]", "[16,24]") + "}", 24, {"'a'", "hole"});
  expect_raw_error(dir, "{" + entry("a", "F32", "[2]", "[0,8]") + "}", 9, {"trailing"});
  expect_raw_error(dir, "{" + entry("a", "F32", "[2]", "[8,0]") + "}", 8, {"'a'", "end before"});
  expect_raw_error(dir, "{" + entry("a", "F32", "[2]", "[0]") + "}", 8, {"'a'", "data_offsets"});
  expect_raw_error(dir, "{" + entry("a", "F32", "[2]", "[0,-8]") + "}", 8, {"'a'", "non-negative"});
  expect_raw_error(dir, "{" + entry("a", "F32", "[2]", "[0,8.0]") + "}", 8, {"'a'", "non-negative"});
  expect_raw_error(dir, "{" + entry("a", "F33", "[2]", "[0,8]") + "}", 8, {"'a'", "unknown dtype \"F33\""});
  expect_raw_error(dir, "{" + entry("a", "f32", "[2]", "[0,8]") + "}", 8, {"'a'", "unknown dtype"});
  expect_raw_error(dir, "{" + entry("a", "F32", "[3]", "[0,8]") + "}", 8, {"'a'", "needs 12 bytes"});
  expect_raw_error(dir, "{" + entry("a", "BF16", "[2,2]", "[0,4]") + "}", 4, {"'a'", "needs 8 bytes"});
  expect_raw_error(dir, "{" + entry("a", "F32", "[-2]", "[0,8]") + "}", 8, {"'a'", "shape"});
  expect_raw_error(dir, "{" + entry("a", "F32", "2", "[0,8]") + "}", 8, {"'a'", "not an array"});
  expect_raw_error(dir, "{" + entry("a", "F32", "[4611686018427387904,4611686018427387904]", "[0,8]") + "}", 8, {"'a'", "overflows"});
  expect_raw_error(dir, "{" + entry("a", "F32", "[2]", "[0,8]") + "," + entry("a", "F32", "[2]", "[8,16]") + "}", 16, {"'a'", "twice"});
  expect_raw_error(dir, R"({"a":{"dtype":"F32","shape":[2]}})", 8, {"'a'", "lacks"});
  expect_raw_error(dir, R"({"a":{"dtype":"F16","shape":[2],"data_offsets":[0,8],"dtype":"F32"}})", 8, {"'a'", "field 'dtype' appears twice"});
  expect_raw_error(dir, R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"shape":[0],"shape":[0],"dtype":"F32","data_offsets":[8,8]}})",
                   8, {"'b'", "field 'shape' appears twice"});
  expect_raw_error(dir, R"({"a":[1,2]})", 8, {"'a'", "not an object"});
  expect_raw_error(dir, R"({"a":{"dtype":7,"shape":[2],"data_offsets":[0,8]}})", 8, {"'a'", "dtype"});
  expect_raw_error(dir, R"({"__metadata__":{"format":1}})", 0, {"__metadata__", "format"});
  expect_raw_error(dir, R"({"__metadata__":[]})", 0, {"__metadata__"});
  expect_raw_error(dir, "{not json", 0, {"not valid JSON"});
  expect_raw_error(dir, "[1,2,3]", 0, {"begin with '{'"});
  expect_raw_error(dir, " {}", 0, {"begin with '{'"});
  expect_raw_error(dir, "{} x", 0, {"not valid JSON"});
  expect_raw_error(dir, std::string("{\"\xff\xfe\":1}"), 0, {"not valid JSON"});
  expect_raw_error(dir, "{\"a\":" + std::string(5000, '['), 0, {"not valid JSON"});
  // Rank 5 is valid safetensors; only turning it into an mpt tensor (rank <= 4) refuses.
  mpt::io::write_file_atomic(dir / "rank5.safetensors", raw_file("{" + entry("r", "F32", "[1,1,1,1,2]", "[0,8]") + "}", 8));
  const auto rank5 = mpt::io::SafetensorsFile::open(dir / "rank5.safetensors");
  CHECK(rank5.at("r").numel() == 2);
  CHECK_THROWS_WITH_AS(rank5.read<float>("r"), doctest::Contains("tensor 'r': shape [1, 1, 1, 1, 2] has rank 5"), mpt::Error);
  // An empty header object with no data is a valid (empty) file.
  mpt::io::write_file_atomic(dir / "empty.safetensors", raw_file("{}", 0));
  CHECK(mpt::io::SafetensorsFile::open(dir / "empty.safetensors").size() == 0);
}

TEST_CASE("safetensors: saving refuses bad names and dtypes before touching the destination") {
  TempDir dir("save_checks");
  Tensor<float> a(Shape{2});
  const fs::path p = dir / "s.safetensors";
  const std::vector<mpt::io::NamedTensor> twice = {{"a", a.view()}, {"a", a.view()}};
  CHECK_THROWS_WITH_AS(mpt::io::save_safetensors(p, twice, Dtype::f32), doctest::Contains("'a' is given twice"), mpt::Error);
  const std::vector<mpt::io::NamedTensor> meta = {{"__metadata__", a.view()}};
  CHECK_THROWS_AS(mpt::io::save_safetensors(p, meta, Dtype::f32), mpt::Error);
  const std::vector<mpt::io::NamedTensor> ok = {{"a", a.view()}};
  CHECK_THROWS_WITH_AS(mpt::io::save_safetensors(p, ok, Dtype::i64), doctest::Contains("I64"), mpt::Error);
  CHECK(!fs::exists(p));
}

TEST_CASE("write_file_atomic replaces a file whole and leaves no temporary behind") {
  TempDir dir("atomic");
  const fs::path p = dir / "a.txt";
  mpt::io::write_file_atomic(p, std::string_view("first version, longer"));
  mpt::io::write_file_atomic(p, std::string_view("second"));
  CHECK(mpt::io::read_text_file(p) == "second");
  CHECK(std::distance(fs::directory_iterator(dir.path), fs::directory_iterator()) == 1);
  {
    mpt::io::AtomicFileWriter abandoned(dir / "b.txt");
    abandoned.write(std::string_view("never committed"));
  }
  CHECK(!fs::exists(dir / "b.txt"));
  CHECK(std::distance(fs::directory_iterator(dir.path), fs::directory_iterator()) == 1);
  CHECK_THROWS_WITH_AS(mpt::io::write_file_atomic(dir / "no/such/dir/c.txt", std::string_view("x")), doctest::Contains("no/such/dir/c.txt"),
                       mpt::Error);
  CHECK_THROWS_WITH_AS(mpt::io::read_file(dir / "missing.bin"), doctest::Contains("missing.bin"), mpt::Error);
  CHECK_THROWS_WITH_AS(mpt::io::MappedFile::open(dir.path), doctest::Contains("not a regular file"), mpt::Error);
}
