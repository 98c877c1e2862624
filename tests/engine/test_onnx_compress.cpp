// Compressing ONNX graphs (onnx_layers.h, onnx_calibrate.h, onnx_compress.h,
// onnx_write_compressed.h, onnx_packed.h) on tiny models written byte by byte, against naive
// references written here from the ONNX operator definitions and affine_quantizer.h's convention.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "engine/core/error.h"
#include "engine/core/half.h"
#include "engine/onnx/onnx_calibrate.h"
#include "engine/onnx/onnx_compress.h"
#include "engine/onnx/onnx_layers.h"
#include "engine/onnx/onnx_packed.h"
#include "engine/onnx/onnx_runner.h"
#include "engine/onnx/onnx_write_compressed.h"
#include "engine/recipe/recipe.h"
#include "onnx_test_writer.h"
#include "temp_files.h"

using namespace mcw;
namespace fs = std::filesystem;
using test::Pb;

namespace {

using Dims = std::vector<int64_t>;

// A graph written node by node, then read back as MCW reads any file.
struct GraphWriter {
  Pb g;
  void node(const std::string& op, const std::vector<std::string>& in, const std::string& out,
            const std::vector<Pb>& attrs = {}) {
    Pb n;
    for (const std::string& s : in) n.bytes(1, s);
    n.bytes(2, out).bytes(3, out + "_node").bytes(4, op);
    for (const Pb& a : attrs) n.msg(5, a);
    g.msg(1, n);
  }
  template <class T>  // float (FLOAT) or int64_t (INT64)
  void weight(const std::string& name, const Dims& dims, const std::vector<T>& v) {
    g.msg(5, test::onnx_tensor(name, sizeof(T) == 4 ? 1 : 7, dims).bytes(9, Pb::raw(v)));
  }
  void value(int field, const std::string& name, const Dims& d) {  // 11 input, 12 output
    std::vector<std::string> s;
    for (int64_t v : d) s.push_back(std::to_string(v));
    g.msg(uint32_t(field), test::onnx_value(name, s));
  }
  OnnxModel write(const fs::path& path, int64_t opset = 13) const {
    Pb id, m;
    id.bytes(1, "").i(2, opset);
    m.i(1, 8).bytes(2, "mcw-test").msg(7, g).msg(8, id);
    std::ofstream(path, std::ios::binary) << m.b;
    return read_onnx(path.string());
  }
};

std::vector<float> randn(std::mt19937& rng, size_t n, float stddev, float mean = 0) {
  std::normal_distribution<float> d(mean, stddev);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

OnnxValue weight_of(const OnnxModel& m, const std::string& name) {
  for (const Tensor& t : m.weights())
    if (t.name() == name) return OnnxValue::of(t);
  ADD_FAILURE() << "no weight " << name;
  return {};
}

OnnxInputs input_x(std::mt19937& rng, const Dims& shape, float stddev = 1, float mean = 0) {
  OnnxValue x = OnnxValue::floats(shape);
  x.f = randn(rng, size_t(x.numel()), stddev, mean);
  return {{"x", x}};
}

std::vector<float> out_y(std::map<std::string, OnnxValue> out) { return std::move(out.at("y").f); }

// Conv geometry as ONNX defines it (N = 1, 3 x 3 kernels).
struct ConvSpec {
  int64_t group = 1, sh = 1, sw = 1, dh = 1, dw = 1, pt = 1, pl = 1, pb = 1, pr = 1;
  int64_t out_h(int64_t h) const { return (h + pt + pb - 2 * dh - 1) / sh + 1; }
  int64_t out_w(int64_t w) const { return (w + pl + pr - 2 * dw - 1) / sw + 1; }
  std::vector<Pb> attrs() const {
    Pb g;
    g.bytes(1, "group").i(3, group).i(20, 2);
    return {g, test::ints_attr("strides", {sh, sw}), test::ints_attr("dilations", {dh, dw}),
            test::ints_attr("pads", {pt, pl, pb, pr})};
  }
  // Input position of output (i, j), kernel tap (a, b); false in the padding.
  bool at(int64_t i, int64_t j, int64_t a, int64_t b, int64_t H, int64_t W, int64_t* yy,
          int64_t* xx) const {
    *yy = i * sh - pt + a * dh, *xx = j * sw - pl + b * dw;
    return *yy >= 0 && *yy < H && *xx >= 0 && *xx < W;
  }
};

// y[o, i, j] = Σ_{ci, a, b} w[o, ci, a, b] · x[group(o)·cig + ci, i·sh − pt + a·dh, ...].
std::vector<double> naive_conv(const std::vector<float>& x, int64_t C, int64_t H, int64_t W,
                               const std::vector<float>& w, int64_t O, const ConvSpec& s) {
  const int64_t oh = s.out_h(H), ow = s.out_w(W), cig = C / s.group, cog = O / s.group;
  std::vector<double> y(size_t(O * oh * ow), 0.0);
  int64_t yy, xx;
  for (int64_t o = 0; o < O; ++o)
    for (int64_t p = 0; p < oh * ow; ++p)
      for (int64_t ci = 0; ci < cig; ++ci)
        for (int64_t a = 0; a < 3; ++a)
          for (int64_t b = 0; b < 3; ++b)
            if (s.at(p / ow, p % ow, a, b, H, W, &yy, &xx))
              y[size_t(o * oh * ow + p)] += double(w[size_t(((o * cig + ci) * 3 + a) * 3 + b)]) *
                                            x[size_t(((o / cog * cig + ci) * H + yy) * W + xx)];
  return y;
}

// Group g's im2col rows [pixels, cig·9], column (ci, a, b) channel-major.
std::vector<double> naive_patches(const std::vector<float>& x, int64_t C, int64_t H, int64_t W,
                                  const ConvSpec& s, int64_t g) {
  const int64_t ow = s.out_w(W), pixels = s.out_h(H) * ow, cig = C / s.group, cols = cig * 9;
  std::vector<double> rows(size_t(pixels * cols), 0.0);
  int64_t yy, xx;
  for (int64_t p = 0; p < pixels; ++p)
    for (int64_t c = 0; c < cols; ++c)
      if (s.at(p / ow, p % ow, c / 3 % 3, c % 3, H, W, &yy, &xx))
        rows[size_t(p * cols + c)] = x[size_t(((g * cig + c / 9) * H + yy) * W + xx)];
  return rows;
}

void add_gram(std::vector<double>& h, const std::vector<double>& X, int64_t c) {
  h.resize(size_t(c * c), 0.0);
  for (size_t r = 0; r < X.size() / size_t(c); ++r)
    for (int64_t i = 0; i < c; ++i)
      for (int64_t j = 0; j < c; ++j) h[size_t(i * c + j)] += X[r * c + i] * X[r * c + j];
}

std::vector<float> relu(const std::vector<double>& v) {
  std::vector<float> r(v.size());
  for (size_t i = 0; i < v.size(); ++i) r[i] = float(std::max(v[i], 0.0));
  return r;
}

// Affine rounding of w[0], w[stride], ... (n values) as affine_quantizer.h documents it: the
// range holds 0, the scale is rounded to f16, codes round half to even and are clamped.
void naive_affine(float* w, int64_t n, int64_t stride, int bits, bool symmetric) {
  float lo = 0, hi = 0;
  for (int64_t i = 0; i < n; ++i)
    lo = std::min(lo, w[i * stride]), hi = std::max(hi, w[i * stride]);
  const float maxq = float((1 << bits) - 1), half = float(1 << (bits - 1));
  const float scale =
      f16_to_f32(f32_to_f16(symmetric ? std::max(-lo, hi) / (half - 0.5f) : (hi - lo) / maxq));
  const float zero = symmetric ? half : std::clamp(std::nearbyint(-lo / scale), 0.0f, maxq);
  for (int64_t i = 0; i < n; ++i) {
    float& v = w[i * stride];
    v = scale * (std::clamp(std::nearbyint(v / scale) + zero, 0.0f, maxq) - zero);
  }
}

// Per output channel: a conv weight [O, ...] row by row, a MatMul weight [K, N] by columns.
OnnxValue naive_per_channel(OnnxValue w, bool matmul, int bits, bool symmetric) {
  const int64_t rows = matmul ? w.shape[1] : w.shape[0], cols = w.numel() / rows;
  for (int64_t r = 0; r < rows; ++r)
    naive_affine(w.f.data() + (matmul ? r : r * cols), cols, matmul ? rows : 1, bits, symmetric);
  return w;
}

// x [1, C, H, W] → Conv W1 [O, C, 3, 3] → Relu → depthwise Conv Wd [O, 1, 3, 3] → MatMul Wm
// over the last axis, [W, N] (or [H·W, N] after a Reshape to [1, O, H·W]) → y.
OnnxModel chain_model(const fs::path& path, uint32_t seed, int64_t C, int64_t O, int64_t H,
                      int64_t W, int64_t N, bool flatten, int64_t opset = 13) {
  std::mt19937 rng(seed);
  GraphWriter g;
  ConvSpec s, d;
  d.group = O;
  const int64_t K = flatten ? H * W : W;
  g.node("Conv", {"x", "W1"}, "c1", s.attrs());
  g.node("Relu", {"c1"}, "r1");
  g.node("Conv", {"r1", "Wd"}, "c2", d.attrs());
  if (flatten) g.node("Reshape", {"c2", "flat"}, "f"), g.weight("flat", {3}, Dims{1, O, K});
  g.node("MatMul", {flatten ? "f" : "c2", "Wm"}, "y");
  g.weight("W1", {O, C, 3, 3}, randn(rng, size_t(O * C * 9), 1.5f / std::sqrt(9.0f * C)));
  g.weight("Wd", {O, 1, 3, 3}, randn(rng, size_t(O * 9), 0.4f));
  g.weight("Wm", {K, N}, randn(rng, size_t(K * N), 1 / std::sqrt(float(K))));
  g.value(11, "x", {1, C, H, W});
  g.value(12, "y", flatten ? Dims{1, O, N} : Dims{1, O, H, N});
  return g.write(path, opset);
}

OnnxModel small_chain(const fs::path& dir, uint32_t seed) {
  return chain_model(dir / "chain.onnx", seed, 4, 6, 6, 7, 5, false);
}

const OnnxCompressedLayer* find_layer(const OnnxCompression& c, const std::string& name) {
  for (const OnnxCompressedLayer& l : c.layers)
    if (l.layer.name == name) return &l;
  return nullptr;
}

// x [1, 4, 6, 7] → Conv W1 [6, 2, 3, 3] (groups 2) → Relu → depthwise Wd (stride 2) → d;
// x → MatMul Wm [7, 5] → MatMul Ws → MatMul Ws → y (Ws is read by two nodes).
OnnxModel branch_model(const fs::path& path, ConvSpec* s1, ConvSpec* s2) {
  std::mt19937 rng(1);
  s1->group = 2, *s2 = *s1, s2->group = 6, s2->sh = s2->sw = 2;
  GraphWriter g;
  g.node("Conv", {"x", "W1"}, "c1", s1->attrs());
  g.node("Relu", {"c1"}, "r1");
  g.node("Conv", {"r1", "Wd"}, "d", s2->attrs());
  g.node("MatMul", {"x", "Wm"}, "m");
  g.node("MatMul", {"m", "Ws"}, "s");
  g.node("MatMul", {"s", "Ws"}, "y");
  g.weight("W1", {6, 2, 3, 3}, randn(rng, 108, 0.5f));
  g.weight("Wd", {6, 1, 3, 3}, randn(rng, 54, 0.5f));
  g.weight("Wm", {7, 5}, randn(rng, 35, 0.5f));
  g.weight("Ws", {5, 5}, randn(rng, 25, 0.5f));
  g.value(11, "x", {1, 4, 6, 7});
  g.value(12, "d", {1, 6, 3, 4});
  g.value(12, "y", {1, 4, 6, 5});
  return g.write(path);
}

}  // namespace

TEST(OnnxCompress, LayersAndTheirMatrices) {
  ConvSpec s1, s2;
  const OnnxModel m = branch_model(test::fresh_temp_dir() / "layers.onnx", &s1, &s2);
  const std::vector<OnnxLayer> layers = onnx_layers(m);
  ASSERT_EQ(layers.size(), 3u) << "W1, Wd, Wm; Ws is read by two nodes";
  const struct {
    const char* name;
    size_t node;
    const char* op;
    int64_t groups, rows, cols;
    bool transposed;
  } want[] = {{"W1", 0, "Conv", 2, 3, 18, false},
              {"Wd", 2, "Conv", 6, 1, 9, false},
              {"Wm", 3, "MatMul", 1, 5, 7, true}};
  for (size_t k = 0; k < 3; ++k) {
    const OnnxLayer& l = layers[k];
    SCOPED_TRACE(want[k].name);
    EXPECT_EQ(l.name, want[k].name);
    EXPECT_EQ(l.node, want[k].node);
    EXPECT_EQ(l.op, want[k].op);
    EXPECT_EQ(l.groups, want[k].groups);
    EXPECT_EQ(l.rows, want[k].rows);
    EXPECT_EQ(l.cols, want[k].cols);
    EXPECT_EQ(l.transposed, want[k].transposed);
    EXPECT_EQ(l.parameters(), weight_of(m, l.name).numel());
    // Conv group g's row r is output channel g·rows + r; a MatMul's row r is column r.
    const OnnxValue w = weight_of(m, l.name);
    auto index = [&](int64_t g, int64_t r, int64_t c) {
      return size_t(l.transposed ? c * l.rows + r : (g * l.rows + r) * l.cols + c);
    };
    OnnxValue set = w;
    for (int64_t g = 0; g < l.groups; ++g) {
      const std::vector<float> mat = layer_matrix(l, w, g);
      ASSERT_EQ(mat.size(), size_t(l.rows * l.cols));
      std::vector<float> fresh(mat.size());
      for (int64_t r = 0; r < l.rows; ++r)
        for (int64_t c = 0; c < l.cols; ++c) {
          EXPECT_EQ(mat[size_t(r * l.cols + c)], w.f[index(g, r, c)]) << g << " " << r << " " << c;
          fresh[size_t(r * l.cols + c)] = float(index(g, r, c)) + 0.5f;
        }
      OnnxValue same = w;
      set_layer_matrix(l, mat.data(), g, same);
      EXPECT_EQ(same.f, w.f) << "setting what was read changes nothing";
      set_layer_matrix(l, fresh.data(), g, set);
      EXPECT_EQ(layer_matrix(l, set, g), fresh);
    }
    for (size_t i = 0; i < set.f.size(); ++i)
      EXPECT_EQ(set.f[i], float(i) + 0.5f) << "each group's matrix went to its own weights";
  }
}

TEST(OnnxCompress, ConvInputRowsReproduceTheConvolution) {
  const fs::path dir = test::fresh_temp_dir();
  std::mt19937 rng(2);
  ConvSpec s;
  s.group = 2, s.sh = s.sw = 2, s.dh = s.dw = 2, s.pl = 2, s.pr = 0;
  const int64_t C = 4, H = 9, W = 10, O = 6;
  const std::vector<float> wv = randn(rng, size_t(O * 2 * 9), 1), xv = randn(rng, C * H * W, 1);
  GraphWriter g;
  g.node("Conv", {"x", "W"}, "y", s.attrs());
  g.weight("W", {O, 2, 3, 3}, wv);
  g.value(11, "x", {1, C, H, W});
  g.value(12, "y", {1, O, 4, 4});
  const OnnxModel m = g.write(dir / "conv.onnx");
  const std::vector<OnnxLayer> layers = onnx_layers(m);
  ASSERT_EQ(layers.size(), 1u);
  const OnnxValue x = OnnxValue::floats({1, C, H, W}, xv);
  const std::vector<double> want = naive_conv(xv, C, H, W, wv, O, s);
  ASSERT_EQ(want.size(), size_t(O * 16)) << "4 x 4 outputs by ONNX's formula";
  const std::vector<float> ran = out_y(OnnxRunner(m).run({{"x", x}}));
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(ran[i], want[i], 1e-4) << "runner " << i;
  for (int64_t grp = 0; grp < 2; ++grp) {
    int64_t n = 0;
    const std::vector<float> rows = layer_input_rows(m, layers[0], x, grp, &n);
    ASSERT_EQ(n, 16);
    ASSERT_EQ(rows.size(), size_t(16 * 18));
    const std::vector<float> mat = layer_matrix(layers[0], weight_of(m, "W"), grp);
    for (int64_t r = 0; r < 3; ++r)
      for (int64_t p = 0; p < 16; ++p) {
        double acc = 0;
        for (int64_t c = 0; c < 18; ++c)
          acc += double(mat[size_t(r * 18 + c)]) * rows[size_t(p * 18 + c)];
        EXPECT_NEAR(acc, want[size_t((grp * 3 + r) * 16 + p)], 1e-4)
            << "group " << grp << " row " << r << " pixel " << p;
      }
  }

  // ConvTranspose, kernel 2, stride 2: input pixel (i, j) alone makes the output block at
  // (2i, 2j): y[o, 2i + a, 2j + b] = Σ_c W[c, o, a, b]·x[c, i, j].
  const int64_t Ct = 3, Ot = 2, Ht = 4, Wt = 5;
  const std::vector<float> tw = randn(rng, size_t(Ct * Ot * 4), 1), tx = randn(rng, 60, 1);
  GraphWriter t;
  t.node("ConvTranspose", {"x", "W"}, "y", {test::ints_attr("strides", {2, 2})});
  t.weight("W", {Ct, Ot, 2, 2}, tw);
  t.value(11, "x", {1, Ct, Ht, Wt});
  t.value(12, "y", {1, Ot, 8, 10});
  const OnnxModel tm = t.write(dir / "convt.onnx");
  const std::vector<OnnxLayer> tl = onnx_layers(tm);
  ASSERT_EQ(tl.size(), 1u);
  EXPECT_EQ(tl[0].rows, Ot * 4);
  EXPECT_EQ(tl[0].cols, Ct);
  EXPECT_TRUE(tl[0].transposed);
  auto out = [&](int64_t o, int64_t i, int64_t j, int64_t a, int64_t b) {
    return size_t((o * 8 + 2 * i + a) * 10 + 2 * j + b);
  };
  std::vector<double> ty(160, 0.0);
  for (int64_t c = 0; c < Ct; ++c)
    for (int64_t o = 0; o < Ot; ++o)
      for (int64_t p = 0; p < Ht * Wt; ++p)
        for (int64_t ab = 0; ab < 4; ++ab)
          ty[out(o, p / Wt, p % Wt, ab / 2, ab % 2)] +=
              double(tw[size_t((c * Ot + o) * 4 + ab)]) * tx[size_t(c * Ht * Wt + p)];
  const OnnxValue txv = OnnxValue::floats({1, Ct, Ht, Wt}, tx);
  const std::vector<float> tran = out_y(OnnxRunner(tm).run({{"x", txv}}));
  for (size_t i = 0; i < ty.size(); ++i) EXPECT_NEAR(tran[i], ty[i], 1e-4) << "runner " << i;
  int64_t n = 0;
  const std::vector<float> rows = layer_input_rows(tm, tl[0], txv, 0, &n);
  ASSERT_EQ(n, Ht * Wt);
  const std::vector<float> mat = layer_matrix(tl[0], weight_of(tm, "W"), 0);
  for (int64_t p = 0; p < n; ++p)
    for (int64_t r = 0; r < Ot * 4; ++r) {
      double acc = 0;
      for (int64_t c = 0; c < Ct; ++c)
        acc += double(mat[size_t(r * Ct + c)]) * rows[size_t(p * Ct + c)];
      EXPECT_NEAR(acc, ty[out(r / 4, p / Wt, p % Wt, r / 2 % 2, r % 2)], 1e-4)
          << "pixel " << p << " row " << r;
    }
}

TEST(OnnxCompress, CalibrationGramIsSumOfRowOuterProducts) {
  ConvSpec s1, s2;
  const OnnxModel m = branch_model(test::fresh_temp_dir() / "calib.onnx", &s1, &s2);
  const std::vector<OnnxLayer> layers = onnx_layers(m);
  ASSERT_EQ(layers.size(), 3u);
  std::mt19937 rng(3);
  std::vector<OnnxInputs> inputs;
  for (int k = 0; k < 3; ++k) inputs.push_back(input_x(rng, {1, 4, 6, 7}, 1.0f + 0.5f * k, 0.2f));

  // Naive XᵀX of each layer's groups; the range of each layer's whole input.
  std::map<std::string, std::vector<std::vector<double>>> gram;
  std::map<std::string, std::pair<double, double>> range;
  std::map<std::string, int64_t> samples;
  auto add = [&](const std::string& l, int64_t g, const std::vector<double>& X, int64_t cols,
                 const std::vector<float>& input) {
    gram[l].resize(std::max(gram[l].size(), size_t(g) + 1));
    add_gram(gram[l][size_t(g)], X, cols);
    if (g == 0) samples[l] += int64_t(X.size()) / cols;
    auto [lo, hi] = range.try_emplace(l, INFINITY, -INFINITY).first->second;
    const auto [mn, mx] = std::minmax_element(input.begin(), input.end());
    range[l] = {std::min<double>(lo, *mn), std::max<double>(hi, *mx)};
  };
  for (const OnnxInputs& in : inputs) {
    const std::vector<float>& x = in.at("x").f;
    const std::vector<float> r1 = relu(naive_conv(x, 4, 6, 7, weight_of(m, "W1").f, 6, s1));
    for (int64_t g = 0; g < 2; ++g) add("W1", g, naive_patches(x, 4, 6, 7, s1, g), 18, x);
    for (int64_t g = 0; g < 6; ++g) add("Wd", g, naive_patches(r1, 6, 6, 7, s2, g), 9, r1);
    add("Wm", 0, std::vector<double>(x.begin(), x.end()), 7, x);
  }

  const auto stats = calibrate_onnx_layers(OnnxRunner(m), layers, inputs, CalibrationNeed::Gram);
  for (const OnnxLayer& l : layers) {
    SCOPED_TRACE(l.name);
    const OnnxLayerInputs& st = stats.at(l.name);
    ASSERT_EQ(st.groups.size(), size_t(l.groups));
    EXPECT_NEAR(st.min, range[l.name].first, 1e-5);
    EXPECT_NEAR(st.max, range[l.name].second, 1e-5);
    for (int64_t g = 0; g < l.groups; ++g) {
      const LayerStats& ls = st.groups[size_t(g)];
      const std::vector<double>& want = gram[l.name][size_t(g)];
      const int64_t c = l.cols;
      EXPECT_EQ(ls.samples, samples[l.name]) << "group " << g;
      ASSERT_EQ(ls.xtx.size(), want.size()) << "group " << g;
      for (int64_t i = 0; i < c; ++i) {
        for (int64_t j = 0; j < c; ++j) {
          const double w = want[size_t(i * c + j)];
          EXPECT_NEAR(ls.xtx[size_t(i * c + j)], w, 1e-4 * (1 + std::fabs(w)))
              << "group " << g << " xtx[" << i << "," << j << "]";
        }
        const double d = want[size_t(i * c + i)];
        EXPECT_NEAR(ls.sq_norm[size_t(i)], d, 1e-4 * (1 + d)) << "group " << g << " sq_norm " << i;
      }
    }
  }
}

TEST(OnnxCompress, RtnMatchesPerChannelClosedForm) {
  const OnnxModel m = small_chain(test::fresh_temp_dir(), 4);
  const OnnxCompression c = compress_onnx(
      m,
      parse_recipe(
          "stages:\n  - algorithm: rtn\n    bits: 8\n    group_size: 0\n    symmetric: true\n",
          "r"),
      {});
  ASSERT_EQ(c.layers.size(), 3u);
  std::map<std::string, OnnxValue> want;
  for (const std::string name : {"W1", "Wd", "Wm"}) {
    want[name] = naive_per_channel(weight_of(m, name), name == "Wm", 8, true);
    ASSERT_TRUE(c.weights.count(name)) << name;
    const OnnxValue& got = c.weights.at(name);
    EXPECT_EQ(got.shape, want[name].shape) << name;
    size_t differ = 0;
    for (size_t i = 0; i < got.f.size() && i < want[name].f.size(); ++i)
      differ += got.f[i] != want[name].f[i];
    EXPECT_EQ(differ, 0u) << name << ": decoded weights vs naive symmetric int8 rounding";
  }
  std::mt19937 rng(40);
  const OnnxInputs in = input_x(rng, {1, 4, 6, 7});
  const std::vector<float> got = out_y(compressed_runner(m, c).run(in));
  EXPECT_EQ(got, out_y(OnnxRunner(m, want).run(in))) << "the graph runs the rounded weights";
  EXPECT_NE(got, out_y(OnnxRunner(m).run(in))) << "rounding changed something";
}

TEST(OnnxCompress, GroupSizeThatDoesNotDivideFallsBackPerChannel) {
  const OnnxModel m = small_chain(test::fresh_temp_dir(), 5);
  const OnnxCompression c = compress_onnx(
      m, parse_recipe("stages:\n  - algorithm: rtn\n    bits: 4\n    group_size: 128\n", "g"), {});
  ASSERT_EQ(c.layers.size(), 3u);
  EXPECT_EQ(c.layers[0].layer.cols, 36);
  for (const OnnxCompressedLayer& l : c.layers) {
    SCOPED_TRACE(l.layer.name);
    EXPECT_NE(l.scheme.find("per channel"), std::string::npos) << l.scheme;
    ASSERT_EQ(l.parts.size(), size_t(l.layer.groups));
    for (const CompressedTensor& t : l.parts) {
      EXPECT_EQ(t.group_size, l.layer.cols);
      EXPECT_EQ(t.scales.size(), size_t(l.layer.rows));
    }
    const OnnxValue want =
        naive_per_channel(weight_of(m, l.layer.name), l.layer.op == "MatMul", 4, false);
    EXPECT_EQ(c.weights.at(l.layer.name).f, want.f) << "naive asymmetric per-channel int4";
  }
}

TEST(OnnxCompress, GptqBeatsRtnOnLayerOutputError) {
  const OnnxModel m = small_chain(test::fresh_temp_dir(), 6);
  // Smooth pictures, the four channels one picture with small noise: strongly correlated
  // columns in every conv layer's patches.
  std::mt19937 rng(60);
  auto picture = [&] {
    std::uniform_real_distribution<float> phase(0, 6.3f);
    const float a = phase(rng), b = phase(rng);
    OnnxValue x = OnnxValue::floats({1, 4, 6, 7}, randn(rng, 168, 0.05f));
    for (int64_t i = 0; i < 168; ++i)
      x.f[size_t(i)] += (1 + 0.2f * float(i / 42)) * (std::sin(0.7f * float(i % 42 / 7) + a) +
                                                      std::cos(0.6f * float(i % 7) + b));
    return OnnxInputs{{"x", x}};
  };
  std::vector<OnnxInputs> calib, held;
  for (int k = 0; k < 16; ++k) calib.push_back(picture());
  for (int k = 0; k < 4; ++k) held.push_back(picture());
  const std::string body = "    bits: 3\n    group_size: 0\n";
  const OnnxCompression rtn =
      compress_onnx(m, parse_recipe("stages:\n  - algorithm: rtn\n" + body, "r"), calib);
  const OnnxCompression gptq =
      compress_onnx(m, parse_recipe("stages:\n  - algorithm: gptq\n" + body, "g"), calib);

  // Naive H of each conv group from the original graph's activations on the calibration set.
  ConvSpec s, d;
  d.group = 6;
  std::map<std::string, std::vector<std::vector<double>>> H;
  H["W1"].resize(1), H["Wd"].resize(6);
  for (const OnnxInputs& in : calib) {
    const std::vector<float>& x = in.at("x").f;
    add_gram(H["W1"][0], naive_patches(x, 4, 6, 7, s, 0), 36);
    const std::vector<float> r1 = relu(naive_conv(x, 4, 6, 7, weight_of(m, "W1").f, 6, s));
    for (int64_t g = 0; g < 6; ++g)
      add_gram(H["Wd"][size_t(g)], naive_patches(r1, 6, 6, 7, d, g), 9);
  }
  // tr(ΔW H ΔWᵀ) / tr(W H Wᵀ) over the groups, or ‖ΔW‖²/‖W‖² without H.
  auto error = [&](const std::string& name, const OnnxValue& q, bool with_h) {
    const OnnxValue w = weight_of(m, name);
    const auto& hs = H[name];
    const int64_t groups = int64_t(hs.size()), cols = w.numel() / w.shape[0],
                  rows = w.shape[0] / groups;
    double change = 0, signal = 0;
    for (int64_t g = 0; g < groups; ++g)
      for (int64_t r = 0; r < rows; ++r) {
        const float *a = &w.f[size_t((g * rows + r) * cols)],
                    *b = &q.f[size_t((g * rows + r) * cols)];
        for (int64_t i = 0; i < cols; ++i)
          for (int64_t j = 0; j < cols; ++j) {
            const double h = with_h ? hs[size_t(g)][size_t(i * cols + j)] : i == j;
            change += (a[i] - b[i]) * h * (a[j] - b[j]), signal += a[i] * h * a[j];
          }
      }
    return change / signal;
  };
  for (const std::string name : {"W1", "Wd"}) {
    SCOPED_TRACE(name);
    const OnnxCompressedLayer *lr = find_layer(rtn, name), *lg = find_layer(gptq, name);
    ASSERT_TRUE(lr && lg);
    const double out_r = error(name, rtn.weights.at(name), true),
                 out_g = error(name, gptq.weights.at(name), true);
    EXPECT_LT(out_g, out_r) << "output error on the calibration inputs, computed here";
    EXPECT_NEAR(lg->relative_error, out_g, 1e-3 * out_g) << "GPTQ's field is its output error";
    EXPECT_NEAR(lr->relative_error, error(name, rtn.weights.at(name), false), 1e-6)
        << "RTN ran without statistics: its field is ‖ΔW‖²/‖W‖² (layer_error.h)";
    EXPECT_LT(lg->relative_error, lr->relative_error) << "rtn's output error " << out_r;
  }
  auto mse = [&](const OnnxCompression& c) {
    const OnnxRunner base(m), q = compressed_runner(m, c);
    double e = 0;
    for (const OnnxInputs& in : held) {
      const std::vector<float> a = out_y(base.run(in)), b = out_y(q.run(in));
      for (size_t i = 0; i < a.size(); ++i) e += std::pow(double(a[i]) - b[i], 2.0);
    }
    return e;
  };
  const double mse_r = mse(rtn), mse_g = mse(gptq);
  EXPECT_LT(mse_g, mse_r) << "output MSE on held-out inputs: gptq " << mse_g << ", rtn " << mse_r;
}

TEST(OnnxCompress, ActivationGridClosedForm) {
  const OnnxActivationQuant a = activation_grid(-1.5f, 3.0f, 8, false);
  EXPECT_FLOAT_EQ(a.scale, 4.5f / 255);
  EXPECT_EQ(a.zero, 85.0f) << "round(1.5 / (4.5/255))";
  EXPECT_EQ(a.qmin, 0.0f);
  EXPECT_EQ(a.qmax, 255.0f);
  const OnnxActivationQuant b = activation_grid(0.5f, 2.0f, 8, false);
  EXPECT_EQ(b.zero, 0.0f) << "the range is stretched to hold 0";
  EXPECT_FLOAT_EQ(b.scale, 2.0f / 255);
  const OnnxActivationQuant s = activation_grid(-1.5f, 3.0f, 8, true);
  EXPECT_FLOAT_EQ(s.scale, 3.0f / 127);
  EXPECT_EQ(s.zero, 0.0f);
  EXPECT_EQ(s.qmin, -128.0f);  // QuantizeLinear's int8 saturation
  EXPECT_EQ(s.qmax, 127.0f);
  const OnnxActivationQuant n = activation_grid(-4.0f, -1.0f, 8, false);
  EXPECT_EQ(n.zero, 255.0f) << "an all-negative range is stretched up to 0";
  EXPECT_FLOAT_EQ(n.scale, 4.0f / 255);

  for (const OnnxActivationQuant& q : {a, s, n}) {
    SCOPED_TRACE(q.symmetric ? "symmetric" : "asymmetric");
    const float lo = q.scale * (q.qmin - q.zero), hi = q.scale * (q.qmax - q.zero);
    std::vector<float> xs = {0.0f, -100.0f, -1.5f, -0.01f, 0.013f, 2.99f, 3.0f, 100.0f};
    for (int k = 0; k < 50; ++k) xs.push_back(-1.6f + 0.0931f * float(k));
    OnnxValue v = OnnxValue::floats({int64_t(xs.size())}, xs);
    fake_quantize(v, q);
    EXPECT_EQ(v.f[0], 0.0f) << "0 is exact";
    for (size_t i = 0; i < xs.size(); ++i) {
      const float x = xs[i], y = v.f[i];
      const double code = double(y) / q.scale + q.zero;
      EXPECT_NEAR(code, std::round(code), 1e-3) << x << " -> " << y << " is on the grid";
      EXPECT_TRUE(code >= q.qmin - 1e-3 && code <= q.qmax + 1e-3) << x << " -> code " << code;
      if (x <= lo) {
        EXPECT_FLOAT_EQ(y, lo) << x << " saturates low";
      } else if (x >= hi) {
        EXPECT_FLOAT_EQ(y, hi) << x << " saturates high";
      } else {
        EXPECT_LE(std::fabs(y - x), 0.5001f * q.scale) << x << " -> the nearest grid value";
      }
    }
  }
}

namespace {

size_t count_ops(const OnnxModel& m, const std::string& op) {
  return size_t(std::count_if(m.graph.nodes.begin(), m.graph.nodes.end(),
                              [&](const OnnxNode& n) { return n.op_type == op; }));
}

// max |a − b| against max |b|.
double relative_diff(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  double d = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i)
    d = std::max(d, std::fabs(double(a[i]) - b[i])),
    scale = std::max(scale, std::fabs(double(b[i])));
  return d / scale;
}

struct RoundTrip {
  OnnxCompression c;
  OnnxWriteReport report;
  OnnxModel back;
  std::vector<float> file_out, evaluated;  // the read-back file's and compressed_runner's
};

// Encoded layers' weights are decoder nodes' outputs and no initializers any more; decoded
// ones are f32 initializers holding what MCW evaluated.
void check_layer_weights(const RoundTrip& t, bool encoded) {
  for (const OnnxCompressedLayer& l : t.c.layers) {
    const std::string& name = l.layer.name;
    const auto& inits = t.back.graph.initializers;
    const auto init =
        std::find_if(inits.begin(), inits.end(), [&](const Tensor& w) { return w.name() == name; });
    const bool produced = std::any_of(
        t.back.graph.nodes.begin(), t.back.graph.nodes.end(),
        [&](const OnnxNode& n) { return std::count(n.outputs.begin(), n.outputs.end(), name); });
    EXPECT_EQ(produced, encoded) << name << " is a decoder node's output";
    EXPECT_EQ(init == inits.end(), encoded) << name << " is no initializer";
    if (!encoded && init != inits.end()) {
      EXPECT_EQ(init->to_f32(), t.c.weights.at(name).f) << name;
    }
  }
}

int64_t uint8_values(const OnnxModel& m) {
  int64_t n = 0;
  for (const Tensor& t : m.graph.initializers) n += t.dtype() == DType::U8 ? t.numel() : 0;
  return n;
}

}  // namespace

TEST(OnnxCompress, WrittenFileRunsAsEvaluated) {
  const fs::path dir = test::fresh_temp_dir();
  // Weights dominate: W1 [32, 16, 3, 3], Wd [32, 1, 3, 3], Wm [64, 64].
  const OnnxModel m = chain_model(dir / "big.onnx", 8, 16, 32, 8, 8, 64, true),
                  m9 = chain_model(dir / "big9.onnx", 8, 16, 32, 8, 8, 64, true, 9);
  const std::vector<OnnxLayer> layers = onnx_layers(m);
  ASSERT_EQ(layers.size(), 3u);
  std::mt19937 rng(80);
  std::vector<OnnxInputs> calib;  // mostly negative: the first layer's zero point is > 127
  for (int k = 0; k < 4; ++k) calib.push_back(input_x(rng, {1, 16, 8, 8}, 1.0f, -1.0f));
  const OnnxInputs eval = input_x(rng, {1, 16, 8, 8}, 1.0f, -1.0f);
  const double original = double(fs::file_size(dir / "big.onnx"));
  int files = 0;
  auto round_trip = [&](const OnnxModel& model, const std::string& recipe) {
    RoundTrip t;
    t.c = compress_onnx(model, parse_recipe(recipe, "w.yaml"), calib);
    const fs::path out = dir / ("out" + std::to_string(files++) + ".onnx");
    t.report = write_compressed_onnx(model, t.c, out.string());
    EXPECT_EQ(t.report.bytes, fs::file_size(out));
    t.back = read_onnx(out.string());
    t.file_out = out_y(OnnxRunner(t.back).run(eval));
    t.evaluated = out_y(compressed_runner(model, t.c).run(eval));
    return t;
  };

  const struct {
    const char* algorithm;
    int bits, group_size;
    bool symmetric;
  } affine[] = {{"rtn", 4, 0, false}, {"rtn", 4, 32, false}, {"rtn", 2, 0, false},
                {"rtn", 3, 0, false}, {"rtn", 3, 32, false}, {"gptq", 4, 0, false},
                {"rtn", 8, 0, true}};
  for (const auto& a : affine) {
    const std::string stage = "stages:\n  - algorithm: " + std::string(a.algorithm) +
                              "\n    bits: " + std::to_string(a.bits) +
                              "\n    group_size: " + std::to_string(a.group_size) +
                              "\n    symmetric: " + (a.symmetric ? "true\n" : "false\n");
    SCOPED_TRACE(stage);
    const RoundTrip t = round_trip(m, stage);
    ASSERT_EQ(t.c.layers.size(), 3u);
    EXPECT_EQ(t.file_out, t.evaluated) << "the file decodes to what MCW evaluated, bit for bit";
    EXPECT_TRUE(t.report.notes.empty()) << t.report.notes.front();
    check_layer_weights(t, true);
    // uint8 codes, 4- and 2-bit ones packed two and four to a byte where the group allows
    // (not the depthwise layer's 9 columns), and uint8 zero points per row and group.
    int64_t want = 0;
    for (const OnnxLayer& l : layers) {
      const int64_t gs = a.group_size > 0 && l.cols % a.group_size == 0 ? a.group_size : l.cols;
      // Bytes per code: 1/2, 1/4, and for 3 bits 3/8 (eight codes in a 24-bit word).
      const int64_t per = a.bits == 3 ? 8 : a.bits < 8 ? 8 / a.bits : 1;
      const int64_t word = a.bits == 3 ? 3 : 1;
      const bool packed = per > 1 && gs % per == 0;
      want += (packed ? l.parameters() / per * word : l.parameters()) +
              (a.symmetric ? 0 : l.parameters() / gs);
    }
    EXPECT_EQ(uint8_values(t.back), want) << "bytes of codes and zero points in the file";
    EXPECT_LT(double(t.report.bytes), (a.bits == 4 ? 0.3 : 0.5) * original);
  }

  // Activation grids: QuantizeLinear + DequantizeLinear in front of each layer (opset 13).
  const std::string rtn4 = "stages:\n  - algorithm: rtn\n    group_size: 0\n";
  for (const char* act :
       {"activations: {bits: 8}\n", "activations: {bits: 8, symmetric: true}\n"}) {
    SCOPED_TRACE(act);
    const RoundTrip t = round_trip(m, act + rtn4);
    ASSERT_EQ(t.c.activations.size(), 3u);
    EXPECT_EQ(count_ops(t.back, "QuantizeLinear"), 3u);
    EXPECT_EQ(count_ops(t.back, "DequantizeLinear"), 3u);
    EXPECT_LE(relative_diff(t.file_out, t.evaluated), 1e-6)
        << "first layer's zero point " << t.c.activations[0].zero;
    EXPECT_NE(t.evaluated, out_y(OnnxRunner(m, t.c.weights).run(eval))) << "inputs were quantised";
  }
  {  // Opset 9 has no QuantizeLinear: a note, and the file runs the weights alone.
    const RoundTrip t = round_trip(m9, "activations: {bits: 8}\n" + rtn4);
    ASSERT_EQ(t.report.notes.size(), 1u);
    EXPECT_NE(t.report.notes[0].find("activation"), std::string::npos) << t.report.notes[0];
    EXPECT_EQ(count_ops(t.back, "QuantizeLinear"), 0u);
    EXPECT_EQ(t.file_out, out_y(OnnxRunner(m9, t.c.weights).run(eval)));
  }
  {  // Low rank: the factors multiplied in the file.
    const RoundTrip t =
        round_trip(m, "stages:\n  - algorithm: svd\n    rank: 8\n    targets: [W1, Wm]\n");
    ASSERT_EQ(t.c.layers.size(), 2u);
    EXPECT_TRUE(t.report.notes.empty());
    check_layer_weights(t, true);
    EXPECT_LE(relative_diff(t.file_out, t.evaluated), 1e-4) << "low-rank file vs evaluated";
    for (const OnnxCompressedLayer& l : t.c.layers)
      ASSERT_EQ(l.parts.at(0).coding, WeightCoding::LowRank);
  }
  {  // Whole input channels pruned: the kept ones, read through a Gather (smaller, and the
     // same output up to the order of the sums).
    const RoundTrip t = round_trip(
        m, "stages:\n  - algorithm: channel_obs\n    sparsity: 0.25\n    targets: [W1, Wm]\n");
    ASSERT_EQ(t.c.layers.size(), 2u);
    EXPECT_LE(relative_diff(t.file_out, t.evaluated), 1e-5);
    EXPECT_EQ(count_ops(t.back, "Gather"), 2u);
    ASSERT_EQ(t.report.notes.size(), 1u);
    EXPECT_NE(t.report.notes[0].find("Gather"), std::string::npos) << t.report.notes[0];
    const Dims want[] = {{32, 12, 3, 3}, {48, 64}};  // 16 → 12 channels of W1, 64 → 48 rows of Wm
    for (size_t k = 0; k < 2; ++k) {
      const OnnxValue w = weight_of(t.back, k == 0 ? "W1" : "Wm");
      EXPECT_EQ(w.shape, want[k]);
      for (float v : w.f) ASSERT_NE(v, 0.0f) << "only kept channels are stored";
    }
    EXPECT_LT(double(t.report.bytes), 0.85 * original);
  }
  {  // Pruning: decoded f32 weights, which the notes list.
    const RoundTrip t = round_trip(m, "stages:\n  - algorithm: magnitude\n    sparsity: 0.5\n");
    EXPECT_EQ(t.file_out, t.evaluated);
    check_layer_weights(t, false);
    ASSERT_EQ(t.report.notes.size(), 1u);
    for (const char* s : {"W1", "Wd", "Wm", "f32"})
      EXPECT_NE(t.report.notes[0].find(s), std::string::npos) << t.report.notes[0];
  }
}

TEST(OnnxCompress, BadRecipesAreRefusedBeforeWork) {
  const OnnxModel m = small_chain(test::fresh_temp_dir(), 9);
  std::mt19937 rng(90);
  const std::vector<OnnxInputs> calib = {input_x(rng, {1, 4, 6, 7})};
  auto refusal = [&](const std::string& text, const std::vector<OnnxInputs>& cal) {
    int reports = 0;
    const ProgressFn progress = [&](const ProgressEvent&) { ++reports; };
    try {
      compress_onnx(m, parse_recipe(text, "bad.yaml"), cal, progress);
    } catch (const Error& e) {
      EXPECT_EQ(reports, 0) << "refused before any work: " << e.what();
      return std::string(e.what());
    }
    ADD_FAILURE() << "accepted:\n" << text;
    return std::string();
  };
  const std::string rtn = "  - algorithm: rtn\n    bits: 4\n";
  std::string e = refusal("stages:\n  - algorithm: awq\n", calib);
  EXPECT_NE(e.find("stage 1 (awq)"), std::string::npos) << e;
  EXPECT_NE(e.find("bad.yaml"), std::string::npos) << e;
  e = refusal("stages:\n" + rtn + "  - algorithm: awq\n", calib);
  EXPECT_NE(e.find("stage 2 (awq)"), std::string::npos) << e;
  e = refusal("stages:\n" + rtn + "    targets: [\"nosuch*\"]\n", calib);
  EXPECT_NE(e.find("'nosuch*'"), std::string::npos) << e;
  EXPECT_NE(e.find("stage 1 (rtn)"), std::string::npos) << e;
  e = refusal("stages:\n" + rtn + "  - algorithm: gptq\n", {});
  EXPECT_NE(e.find("calibration"), std::string::npos) << e;
  EXPECT_NE(e.find("stage 2 (gptq)"), std::string::npos) << e;
  e = refusal("activations: {bits: 8}\nstages:\n" + rtn, {});
  EXPECT_NE(e.find("activations"), std::string::npos) << e;
  EXPECT_NE(e.find("calibration"), std::string::npos) << e;
  // The same recipes run with what they lacked.
  EXPECT_NO_THROW(
      compress_onnx(m, parse_recipe("stages:\n" + rtn + "  - algorithm: gptq\n", "ok"), calib));
  EXPECT_NO_THROW(
      compress_onnx(m, parse_recipe("activations: {bits: 8}\nstages:\n" + rtn, "ok"), calib));
}

// The graph on the packed kernels (onnx_packed.h) computes what the decoded graph does, up to
// the int8 rounding of the packed layers' inputs (about 1/254 of each block's largest value)
// and the f16 of the layouts that keep values in f16: quantised codes (the integer GEMM where
// the CPU has it), 2:4 pruning, low rank, whole input channels pruned (the layer sliced to
// the kept ones); a 3 × 3 Conv, a pointwise Conv over more pixels than one tile, MatMul and
// Gemm. Depthwise filters stay decoded.
TEST(OnnxCompress, PackedGraphComputesTheDecodedOne) {
  const fs::path dir = test::fresh_temp_dir();
  std::mt19937 rng(12);
  const OnnxModel chain = chain_model(dir / "chain.onnx", 8, 16, 32, 8, 8, 64, true);
  GraphWriter g;  // x [1, 8, 20, 20] → pointwise Conv Wp [16, 8] → [16, 400] → Gemm Bᵀ [24, 400]
  g.node("Conv", {"x", "Wp", "bp"}, "c");
  g.node("Reshape", {"c", "shape"}, "r");
  Pb trans;
  trans.bytes(1, "transB").i(3, 1).i(20, 2);
  g.node("Gemm", {"r", "B", "C"}, "y", {trans});
  g.weight("Wp", {16, 8, 1, 1}, randn(rng, 128, 0.4f));
  g.weight("bp", {16}, randn(rng, 16, 0.1f));
  g.weight("shape", {2}, Dims{16, 400});
  g.weight("B", {24, 400}, randn(rng, 24 * 400, 0.05f));
  g.weight("C", {24}, randn(rng, 24, 0.1f));
  g.value(11, "x", {1, 8, 20, 20});
  g.value(12, "y", {16, 24});
  const OnnxModel pointwise = g.write(dir / "pointwise.onnx");

  std::vector<OnnxInputs> calib_chain, calib_pointwise;
  for (int k = 0; k < 2; ++k) {
    calib_chain.push_back(input_x(rng, {1, 16, 8, 8}));
    calib_pointwise.push_back(input_x(rng, {1, 8, 20, 20}));
  }
  const struct {
    const char* recipe;
    double tolerance;
  } cases[] = {
      {"stages:\n  - algorithm: rtn\n    bits: 4\n    group_size: 32\n", 3e-2},
      {"stages:\n  - algorithm: rtn\n    bits: 8\n    group_size: 0\n    symmetric: true\n", 3e-2},
      {"stages:\n  - algorithm: rtn\n    bits: 3\n    group_size: 0\n", 3e-2},
      {"stages:\n  - algorithm: magnitude\n    pattern: \"2:4\"\n    targets: [%]\n", 3e-3},
      {"stages:\n  - algorithm: svd\n    rank: 4\n    targets: [%]\n", 1e-5},
      {"stages:\n  - algorithm: channel_obs\n    sparsity: 0.5\n    targets: [%]\n", 1e-5},
  };
  for (const auto& [recipe, tolerance] : cases) {
    SCOPED_TRACE(recipe);
    for (const OnnxModel* m : {&chain, &pointwise}) {
      const bool is_chain = m == &chain;
      std::string text = recipe;  // 2:4 and rank 4 on the layers that have them (not Wd)
      if (const size_t at = text.find('%'); at != std::string::npos)
        text.replace(at, 1, is_chain ? "W1, Wm" : "Wp, B");
      const OnnxCompression c =
          compress_onnx(*m, parse_recipe(text, "p.yaml"), is_chain ? calib_chain : calib_pointwise);
      const OnnxPackedLayers packed = pack_onnx_layers(c);
      ASSERT_EQ(packed.size(), 2u) << "W1 and Wm, or Wp and B; never the depthwise Wd";
      if (text.find("2:4") != std::string::npos) {
        for (const auto& [node, layer] : packed)
          EXPECT_NE(layer->describe().find("2:4"), std::string::npos) << layer->describe();
      }
      for (const auto& [node, layer] : packed) {
        EXPECT_NE(m->graph.nodes[node].inputs[1], "Wd");
        // Half the input channels: 16 → 8 of W1's, 64 → 32 of Wm's, 8 → 4 of Wp's, 400 → 200
        // of B's; the others keep every channel.
        const bool sliced = text.find("channel_obs") != std::string::npos;
        EXPECT_EQ(layer->channels().size(),
                  sliced ? size_t(layer->cols() / layer->channel_columns() / 2) : 0u)
            << layer->describe();
        if (sliced) {
          EXPECT_EQ(layer->packed_cols(), layer->cols() / 2);
        }
        if (std::string(recipe).find("rtn") != std::string::npos && int8_gemm_fast()) {
          EXPECT_NE(layer->describe().find("int8 GEMM"), std::string::npos) << layer->describe();
        }
      }
      const OnnxInputs x = is_chain ? input_x(rng, {1, 16, 8, 8}) : input_x(rng, {1, 8, 20, 20});
      const std::vector<float> decoded = out_y(compressed_runner(*m, c).run(x));
      const std::vector<float> on_packed = out_y(compressed_runner(*m, c, true).run(x));
      EXPECT_LE(relative_diff(on_packed, decoded), tolerance) << (is_chain ? "chain" : "pointwise");
    }
  }
  OnnxRunner runner(chain);
  const OnnxCompression c = compress_onnx(
      chain, parse_recipe("stages:\n  - algorithm: rtn\n    group_size: 0\n", "p.yaml"), {});
  OnnxPackedLayers wrong = pack_onnx_layers(c);
  wrong[1] = wrong.begin()->second;  // node 1 is the Relu
  EXPECT_THROW(runner.use_packed(wrong), Error);
}

// Runners of one graph share its converted weights: a compressed runner built on the
// original reads the original's values for the weights it keeps and the compression's own
// for the rest (the same objects, no copies), and computes what a runner with its own
// copies computes. A replacement of another shape is refused either way.
TEST(OnnxCompress, RunnersShareTheGraphsWeights) {
  const fs::path dir = test::fresh_temp_dir();
  const OnnxModel m = small_chain(dir, 3);
  const OnnxCompression c = compress_onnx(
      m,
      parse_recipe("stages:\n  - algorithm: rtn\n    group_size: 0\n    targets: [W1]\n", "s.yaml"),
      {});
  const OnnxRunner original(m);
  const OnnxRunner shared = compressed_runner(original, c), own = compressed_runner(m, c);
  EXPECT_EQ(shared.weight("Wd"), original.weight("Wd"));
  EXPECT_EQ(shared.weight("Wm"), original.weight("Wm"));
  EXPECT_EQ(shared.weight("W1"), &c.weights.at("W1"));
  EXPECT_NE(own.weight("Wm"), original.weight("Wm"));
  EXPECT_EQ(shared.weight("nothing"), nullptr);
  std::mt19937 rng(4);
  const OnnxInputs x = input_x(rng, {1, 4, 6, 7});
  EXPECT_EQ(out_y(shared.run(x)), out_y(own.run(x)));
  EXPECT_NE(out_y(shared.run(x)), out_y(original.run(x)));
  auto wrong = std::make_shared<OnnxRunner::Weights>();
  (*wrong)["W1"] = OnnxValue::floats({2, 2});
  EXPECT_THROW(OnnxRunner(original, wrong), Error);
  (*wrong).clear();
  (*wrong)["x"] = OnnxValue::floats({1});
  EXPECT_THROW(OnnxRunner(original, wrong), Error);
}
