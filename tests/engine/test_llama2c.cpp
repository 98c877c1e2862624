// llama2.c checkpoints: files whose bytes the tests lay out by hand in the order of
// llama2.c's export.py / run.c (legacy and version 1) are read and checked element by
// element; writer round trips; malformed files each give one clear mcw::Error.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "engine/core/error.h"
#include "engine/io/llama2c.h"

using namespace mcw;
namespace fs = std::filesystem;

namespace {

class Llama2cTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("mcw_llama2c_" + std::to_string(getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string file(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

// Little-endian byte builder for hand-made files.
struct Bytes {
  std::vector<unsigned char> b;
  void u8(uint8_t v) { b.push_back(v); }
  void i32(int32_t v) { raw(&v, 4); }
  void u32(uint32_t v) { raw(&v, 4); }
  void f32(float v) { raw(&v, 4); }
  void raw(const void* p, size_t n) {
    const auto* c = static_cast<const unsigned char*>(p);
    b.insert(b.end(), c, c + n);
  }
  void save(const std::string& path) const {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
  }
};

// Every element of hand-laid array `id` gets a distinct value that the test can predict
// from (array id, flat index alone); all exactly representable in f32.
float marker(int id, int64_t index) { return float(id * 100000 + index); }

struct Dims {
  int dim, hidden, layers, heads, kv_heads, vocab, seq;
  int kv_dim() const { return dim / heads * kv_heads; }
  int head_size() const { return dim / heads; }
};

// Appends an array of n markers of array `id`.
void markers(Bytes& out, int id, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out.f32(marker(id, i));
}

// Element [r, c] of a 2-D tensor, read through the view's bytes.
float at(const Tensor& t, int64_t r, int64_t c) { return t.as<float>()[r * t.dim(1) + c]; }

// Checks that layer `l`'s slice of a whole-model array `id` (laid out [layers, rows, cols])
// is what `t` exposes, element by element.
void expect_layer_slice(const Tensor& t, int id, int l, int64_t rows, int64_t cols) {
  ASSERT_EQ(t.dtype(), DType::F32);
  for (int64_t i = 0; i < rows * cols; ++i)
    ASSERT_EQ(t.as<float>()[i], marker(id, l * rows * cols + i)) << t.name() << " at " << i;
}

std::vector<Tensor> random_model(const Llama2cConfig& c, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<Tensor> ts;
  auto add = [&](const std::string& name, Shape shape) {
    std::vector<float> v(size_t(shape[0] * (shape.size() > 1 ? shape[1] : 1)));
    for (float& x : v) x = normal(rng);
    ts.push_back(Tensor::from_f32(v, shape, name));
  };
  const int64_t d = c.dim, h = c.hidden_dim, kv = int64_t(c.dim) / c.n_heads * c.n_kv_heads;
  add("token_embd.weight", {c.vocab_size, d});
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    add(p + "attn_norm.weight", {d});
    add(p + "attn_q.weight", {d, d});
    add(p + "attn_k.weight", {kv, d});
    add(p + "attn_v.weight", {kv, d});
    add(p + "attn_output.weight", {d, d});
    add(p + "ffn_norm.weight", {d});
    add(p + "ffn_gate.weight", {h, d});
    add(p + "ffn_down.weight", {d, h});
    add(p + "ffn_up.weight", {h, d});
  }
  add("output_norm.weight", {d});
  if (!c.shared_classifier) add("output.weight", {c.vocab_size, d});
  return ts;
}

Llama2cConfig tiny_config(bool shared) {
  Llama2cConfig c;
  c.dim = 16, c.hidden_dim = 24, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2;
  c.vocab_size = 11, c.seq_len = 5, c.shared_classifier = shared;
  return c;
}

void expect_round_trip(const std::string& path, bool shared) {
  const Llama2cConfig c = tiny_config(shared);
  const std::vector<Tensor> written = random_model(c, shared ? 1 : 2);
  write_llama2c(path, c, written);

  // Size worked out independently: header, f32 weights, two RoPE tables [seq, head/2].
  uint64_t floats = 0;
  for (const Tensor& t : written) floats += uint64_t(t.numel());
  floats += 2 * uint64_t(c.seq_len) * (c.dim / c.n_heads / 2);
  EXPECT_EQ(fs::file_size(path), 28 + 4 * floats);

  const ModelFile m = open_model_file(path);  // .bin goes to the llama2.c reader
  EXPECT_EQ(m.format, ModelFormat::Llama2c);
  EXPECT_EQ(m.architecture, "llama");
  EXPECT_EQ(m.hparams["dim"], 16);
  EXPECT_EQ(m.hparams["n_kv_heads"], 2);
  EXPECT_EQ(m.hparams["vocab_size"], 11);
  EXPECT_EQ(m.hparams["shared_classifier"], shared);
  EXPECT_EQ(m.hparams["version"], 0);
  ASSERT_EQ(m.tensors.size(), written.size());
  for (const Tensor& w : written) {
    const Tensor* r = m.find(w.name());
    ASSERT_NE(r, nullptr) << w.name();
    EXPECT_EQ(r->dtype(), DType::F32);
    EXPECT_EQ(r->shape(), w.shape()) << w.name();
    ASSERT_EQ(r->nbytes(), w.nbytes());
    EXPECT_EQ(std::memcmp(r->data(), w.data(), w.nbytes()), 0) << w.name();
    Tensor copy = *r;
    EXPECT_ANY_THROW(copy.mutable_data()) << "expected a read-only view of the mapped file";
  }
  EXPECT_EQ(m.find("output.weight") != nullptr, !shared);

  const Llama2cConfig back = llama2c_config(m);
  EXPECT_EQ(back.hidden_dim, c.hidden_dim);
  EXPECT_EQ(back.n_heads, c.n_heads);
  EXPECT_EQ(back.seq_len, c.seq_len);
  EXPECT_EQ(back.shared_classifier, shared);

  // The RoPE tables sit right after output_norm.weight; compare with the closed form.
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), {});
  const int64_t half = c.dim / c.n_heads / 2;
  size_t off = 28;
  for (const Tensor& t : written)
    if (t.name() != "output.weight") off += t.nbytes();
  for (int table = 0; table < 2; ++table)
    for (int t = 0; t < c.seq_len; ++t)
      for (int64_t j = 0; j < half; ++j) {
        float v;
        std::memcpy(&v, bytes.data() + off, 4);
        off += 4;
        const double angle = t * std::pow(10000.0, -2.0 * double(j) / double(2 * half));
        EXPECT_NEAR(v, table == 0 ? std::cos(angle) : std::sin(angle), 1e-6)
            << table << " " << t << " " << j;
      }
}

TEST_F(Llama2cTest, RoundTripSharedClassifierGqa) { expect_round_trip(file("s.bin"), true); }
TEST_F(Llama2cTest, RoundTripSeparateClassifierGqa) { expect_round_trip(file("u.bin"), false); }

// Legacy file laid out by hand in run.c's order, separate classifier (negative vocab).
TEST_F(Llama2cTest, ReadsHandLaidLegacyFile) {
  const Dims d{8, 12, 2, 4, 2, 7, 3};
  const int64_t D = d.dim, H = d.hidden, L = d.layers, KV = d.kv_dim(), V = d.vocab;
  Bytes b;
  for (int v : {d.dim, d.hidden, d.layers, d.heads, d.kv_heads, -d.vocab, d.seq}) b.i32(v);
  markers(b, 1, V * D);           // token embedding
  markers(b, 2, L * D);           // rms_att
  markers(b, 3, L * D * D);       // wq
  markers(b, 4, L * KV * D);      // wk
  markers(b, 5, L * KV * D);      // wv
  markers(b, 6, L * D * D);       // wo
  markers(b, 7, L * D);           // rms_ffn
  markers(b, 8, L * H * D);       // w1
  markers(b, 9, L * D * H);       // w2
  markers(b, 10, L * H * D);      // w3
  markers(b, 11, D);              // rms_final
  markers(b, 12, d.seq * d.head_size() / 2);  // freq_cis_real
  markers(b, 13, d.seq * d.head_size() / 2);  // freq_cis_imag
  markers(b, 14, V * D);          // wcls
  const std::string path = file("hand.bin");
  b.save(path);

  const ModelFile m = read_llama2c(path);
  EXPECT_EQ(m.hparams["vocab_size"], 7);
  EXPECT_EQ(m.hparams["shared_classifier"], false);
  ASSERT_EQ(m.tensors.size(), size_t(1 + 9 * L + 1 + 1));
  EXPECT_EQ(m.tensors.front().name(), "token_embd.weight");  // file order

  const Tensor* k1 = m.find("blk.1.attn_k.weight");
  ASSERT_NE(k1, nullptr);
  ASSERT_EQ(k1->shape(), (Shape{KV, D}));
  EXPECT_EQ(at(*k1, 3, 5), marker(4, 1 * KV * D + 3 * D + 5));
  const Tensor* down0 = m.find("blk.0.ffn_down.weight");
  ASSERT_EQ(down0->shape(), (Shape{D, H}));
  EXPECT_EQ(at(*down0, 7, 11), marker(9, 7 * H + 11));

  const int ids[9] = {2, 3, 4, 5, 6, 7, 8, 9, 10};
  const char* names[9] = {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output",
                          "ffn_norm", "ffn_gate", "ffn_down", "ffn_up"};
  const int64_t rows[9] = {1, D, KV, KV, D, 1, H, D, H};
  const int64_t cols[9] = {D, D, D, D, D, D, D, H, D};
  for (int l = 0; l < L; ++l)
    for (int k = 0; k < 9; ++k) {
      const Tensor* t = m.find("blk." + std::to_string(l) + "." + names[k] + ".weight");
      ASSERT_NE(t, nullptr) << names[k];
      EXPECT_EQ(t->numel(), rows[k] * cols[k]);
      expect_layer_slice(*t, ids[k], l, rows[k], cols[k]);
    }
  expect_layer_slice(*m.find("token_embd.weight"), 1, 0, V, D);
  expect_layer_slice(*m.find("output_norm.weight"), 11, 0, 1, D);
  expect_layer_slice(*m.find("output.weight"), 14, 0, V, D);
  EXPECT_EQ(m.find("freq_cis_real"), nullptr);
}

// Version 1 laid out by hand in export.py's version1_export order, shared classifier.
TEST_F(Llama2cTest, ReadsHandLaidVersion1File) {
  const Dims d{8, 12, 2, 2, 1, 5, 4};
  const int64_t D = d.dim, H = d.hidden, L = d.layers, KV = d.kv_dim(), V = d.vocab;
  Bytes b;
  b.u32(0x616b3432);
  b.i32(1);
  for (int v : {d.dim, d.hidden, d.layers, d.heads, d.kv_heads, d.vocab, d.seq}) b.i32(v);
  b.u8(1);
  while (b.b.size() < 256) b.u8(0);
  markers(b, 1, L * D);      // attention norms
  markers(b, 2, L * D);      // ffn norms
  markers(b, 3, D);          // final norm
  markers(b, 4, V * D);      // token embedding
  markers(b, 5, L * D * D);  // wq
  markers(b, 6, L * KV * D); // wk
  markers(b, 7, L * KV * D); // wv
  markers(b, 8, L * D * D);  // wo
  markers(b, 9, L * H * D);  // w1
  markers(b, 10, L * D * H); // w2
  markers(b, 11, L * H * D); // w3
  const std::string path = file("v1.bin");
  b.save(path);

  const ModelFile m = read_llama2c(path);
  EXPECT_EQ(m.hparams["version"], 1);
  EXPECT_EQ(m.hparams["shared_classifier"], true);
  ASSERT_EQ(m.tensors.size(), size_t(9 * L + 2));
  EXPECT_EQ(m.find("output.weight"), nullptr);
  EXPECT_EQ(m.tensors.front().name(), "blk.0.attn_norm.weight");

  const Tensor* k1 = m.find("blk.1.attn_k.weight");
  ASSERT_EQ(k1->shape(), (Shape{KV, D}));  // MQA: one kv head of size 4
  EXPECT_EQ(at(*k1, 2, 6), marker(6, 1 * KV * D + 2 * D + 6));
  expect_layer_slice(*m.find("blk.1.ffn_norm.weight"), 2, 1, 1, D);
  expect_layer_slice(*m.find("output_norm.weight"), 3, 0, 1, D);
  expect_layer_slice(*m.find("token_embd.weight"), 4, 0, V, D);
  expect_layer_slice(*m.find("blk.0.attn_q.weight"), 5, 0, D, D);
  expect_layer_slice(*m.find("blk.1.attn_v.weight"), 7, 1, KV, D);
  expect_layer_slice(*m.find("blk.1.attn_output.weight"), 8, 1, D, D);
  expect_layer_slice(*m.find("blk.0.ffn_gate.weight"), 9, 0, H, D);
  expect_layer_slice(*m.find("blk.1.ffn_down.weight"), 10, 1, D, H);
  expect_layer_slice(*m.find("blk.1.ffn_up.weight"), 11, 1, H, D);
}

Bytes legacy_header(std::initializer_list<int32_t> fields) {
  Bytes b;
  for (int32_t v : fields) b.i32(v);
  return b;
}

struct Malformed {
  const char* name;
  Bytes bytes;
  const char* phrase;  // must appear in the message
  int64_t offset;      // expected Error::offset()
};

TEST_F(Llama2cTest, MalformedFilesGiveOneClearError) {
  // A valid tiny legacy body for the size-off-by-one cases: dim 2, 1 layer, 1 head.
  auto valid = [](int extra_bytes) {
    Bytes b = legacy_header({2, 2, 1, 1, 1, 3, 2});
    // vocab*dim + layer (2d + 2d^2 + 2kv*d + 3hd) + d + seq*head = 6 + 32 + 2 + 4 = 44
    const int floats = 6 + (4 + 8 + 8 + 12) + 2 + 4;
    for (int i = 0; i < floats; ++i) b.f32(0.5f);
    for (int i = 0; i < extra_bytes; ++i) b.u8(0);
    if (extra_bytes < 0) b.b.resize(b.b.size() - size_t(-extra_bytes));
    return b;
  };
  Bytes ten;
  for (int i = 0; i < 10; ++i) ten.u8(uint8_t(i + 1));
  Bytes v2;
  v2.u32(0x616b3432);
  v2.i32(2);
  for (int i = 0; i < 300; ++i) v2.u8(0);
  Bytes v1_short;
  v1_short.u32(0x616b3432);
  v1_short.i32(1);
  for (int v : {2, 2, 1, 1, 1, 3, 2}) v1_short.i32(v);
  Bytes v1_flag = v1_short;
  v1_flag.u8(7);
  while (v1_flag.b.size() < 256) v1_flag.u8(0);

  std::vector<Malformed> cases = {
      {"empty.bin", Bytes{}, "too short", -1},
      {"ten.bin", ten, "too short", -1},
      {"negdim.bin", legacy_header({-288, 768, 6, 6, 6, 32000, 256}), "dim is -288", 0},
      {"heads.bin", legacy_header({288, 768, 6, 7, 7, 32000, 256}),
       "n_heads 7 does not divide dim 288", 12},
      {"kvheads.bin", legacy_header({288, 768, 6, 6, 4, 32000, 256}),
       "n_kv_heads 4 does not divide n_heads 6", 16},
      {"oddhead.bin", legacy_header({18, 8, 1, 2, 2, 5, 4}), "head size 9", 12},
      {"zerolayers.bin", legacy_header({288, 768, 0, 6, 6, 32000, 256}), "n_layers is 0", 8},
      {"minvocab.bin", legacy_header({288, 768, 6, 6, 6, INT32_MIN, 256}), "vocab_size is", 20},
      {"overflow.bin", legacy_header({1 << 30, 1 << 30, INT32_MAX, 1 << 10, 1 << 10, INT32_MAX,
                                      INT32_MAX}),
       "beyond 2^64", -1},
      {"stories.bin", legacy_header({288, 768, 6, 6, 6, 32000, 256}),
       "implies 60816028 bytes but the file has 28", -1},
      {"long.bin", valid(1), "implies 204 bytes but the file has 205", -1},
      {"short.bin", valid(-1), "implies 204 bytes but the file has 203", -1},
      {"v2.bin", v2, "llama2.c version 2 (Q8_0) checkpoints are not supported", 4},
      {"v1short.bin", v1_short, "too short", -1},
      {"v1flag.bin", v1_flag, "shared_classifier flag is 7", 36},
  };
  Bytes v3 = v2;
  v3.b[4] = 3;
  cases.push_back({"v3.bin", v3, "unsupported llama2.c checkpoint version 3", 4});

  // The valid body itself reads, so the off-by-one cases fail only for their one byte.
  valid(0).save(file("valid.bin"));
  EXPECT_EQ(read_llama2c(file("valid.bin")).tensors.size(), 11u);  // embd, 9 per layer, final norm

  for (const Malformed& c : cases) {
    const std::string path = file(c.name);
    c.bytes.save(path);
    try {
      read_llama2c(path);
      ADD_FAILURE() << c.name << ": no error";
    } catch (const Error& e) {
      const std::string what = e.what();
      EXPECT_EQ(e.file(), path) << c.name;
      EXPECT_NE(what.find(path), std::string::npos) << what;
      EXPECT_NE(what.find(c.phrase), std::string::npos) << c.name << ": " << what;
      EXPECT_EQ(e.offset(), c.offset) << c.name << ": " << what;
      EXPECT_EQ(what.find('\n'), std::string::npos) << what;
    }
  }
}

TEST_F(Llama2cTest, WriterRejectsBadInputAndLeavesNoFile) {
  const Llama2cConfig c = tiny_config(false);
  const std::string path = file("out.bin");
  auto expect_error = [&](const std::vector<Tensor>& ts, const Llama2cConfig& cfg,
                          const std::string& phrase) {
    try {
      write_llama2c(path, cfg, ts);
      ADD_FAILURE() << "no error for " << phrase;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(phrase), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
    EXPECT_TRUE(fs::is_empty(dir_)) << "writer left a file behind for " << phrase;
  };

  std::vector<Tensor> ts = random_model(c, 3);
  std::erase_if(ts, [](const Tensor& t) { return t.name() == "blk.1.ffn_up.weight"; });
  expect_error(ts, c, "tensor blk.1.ffn_up.weight is missing");

  ts = random_model(c, 3);
  expect_error({ts.begin(), ts.end() - 1}, c, "tensor output.weight is missing");

  ts = random_model(c, 3);
  for (Tensor& t : ts)
    if (t.name() == "blk.0.attn_k.weight") t = Tensor::zeros(DType::F32, {16, 16}, t.name());
  expect_error(ts, c, "blk.0.attn_k.weight has shape [16, 16], expected [8, 16]");

  ts = random_model(c, 3);
  for (Tensor& t : ts)
    if (t.name() == "output_norm.weight") t = Tensor::zeros(DType::F16, {16}, t.name());
  expect_error(ts, c, "output_norm.weight is F16");

  ts = random_model(c, 3);  // has an output.weight unequal to token_embd.weight
  Llama2cConfig shared = c;
  shared.shared_classifier = true;
  expect_error(ts, shared, "output.weight differs from token_embd.weight");

  Llama2cConfig bad = c;
  bad.n_kv_heads = 3;
  expect_error(random_model(c, 3), bad, "n_kv_heads 3 does not divide n_heads 4");
}

}  // namespace
