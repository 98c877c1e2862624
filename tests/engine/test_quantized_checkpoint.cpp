// GPTQ and AWQ checkpoints from quantized_checkpoint_writer.h, opened through MCW: every decoded
// weight equals scale · (q − z) of the codes written, the model runs on them, and broken parts are
// refused with the file and tensor named.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>

#include "compressed_tensors_writer.h"
#include "engine/core/error.h"
#include "engine/core/half.h"
#include "engine/io/model_file.h"
#include "engine/io/safetensors.h"
#include "engine/kernels/block_gemv.h"
#include "engine/kernels/column_packed_gemv.h"
#include "engine/kernels/row_packed_gemv.h"
#include "engine/kernels/cpu_features.h"
#include "engine/kernels/stored_matmul.h"
#include "engine/model/llama_model.h"
#include "engine/model/llama_save.h"
#include "llama_test_util.h"
#include "exact_activations.h"
#include "quantized_checkpoint_writer.h"
#include "temp_files.h"

using namespace mcw;
namespace fs = std::filesystem;

namespace {

using namespace mcw::test;

void expect_decoded_and_runs(const Written& w) {
  const ExactActivations exact;  // int8 activations: GptqInt8ActivationsWithinTheirBound
  const ModelFile mf = open_model_file(w.dir.string());
  for (const auto& [name, want] : w.expected) {
    const Tensor* t = mf.find(name);
    ASSERT_NE(t, nullptr) << name;
    ASSERT_EQ(t->dtype(), DType::Packed) << name;
    EXPECT_EQ(t->to_f32(), want) << name;
    std::vector<float> part(37);  // a range that starts and ends inside rows
    t->to_f32(part.data(), 45, part.size());
    EXPECT_TRUE(std::equal(part.begin(), part.end(), want.begin() + 45)) << name;
  }
  for (const Tensor& t : mf.tensors) {
    EXPECT_EQ(t.name().find("qweight"), std::string::npos) << "parts are not listed: " << t.name();
    EXPECT_EQ(t.name().find("scales"), std::string::npos) << t.name();
  }
  const LlamaModel model = load_llama(mf);
  const std::vector<int32_t> tokens = {1, 5, 9, 2, 30, 7, 7, 3};
  std::vector<float> got(tokens.size() * 37), want(got.size());
  KVCache c1(model.cfg, 16), c2(w.dense.cfg, 16);
  llama_forward(model, tokens, c1, got.data());
  llama_forward(w.dense, tokens, c2, want.data());
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], 1e-4f * (1 + std::fabs(want[i]))) << i;
}

}  // namespace

TEST(QuantizedCheckpoint, GptqEveryWidthDecodesToTheCodesWritten) {
  for (int bits : {2, 3, 4, 8}) {
    SCOPED_TRACE(bits);
    expect_decoded_and_runs(
        write_checkpoint(test::fresh_temp_dir(), Layout::GptqV1, bits, 32, false));
  }
}

TEST(QuantizedCheckpoint, GptqActOrderV2AndNoGroupIndex) {
  expect_decoded_and_runs(write_checkpoint(test::fresh_temp_dir(), Layout::GptqV1, 4, 16, true));
  expect_decoded_and_runs(write_checkpoint(test::fresh_temp_dir(), Layout::GptqV2, 3, 32, true));
  // Without g_idx, column i is in group i / group_size; group_size −1 is one group per row.
  expect_decoded_and_runs(
      write_checkpoint(test::fresh_temp_dir(), Layout::GptqV1, 4, 32, false, false));
  expect_decoded_and_runs(
      write_checkpoint(test::fresh_temp_dir(), Layout::GptqV1, 4, -1, false, false));
}

TEST(QuantizedCheckpoint, AwqGemmLayout) {
  expect_decoded_and_runs(write_checkpoint(test::fresh_temp_dir(), Layout::Awq, 4, 32, false));
}

TEST(QuantizedCheckpoint, DescribesItsScheme) {
  const Written w = write_checkpoint(test::fresh_temp_dir(), Layout::GptqV1, 4, 16, true);
  const ModelFile mf = open_model_file(w.dir.string());
  const Tensor* t = mf.find("model.layers.0.mlp.down_proj.weight");
  ASSERT_TRUE(t && t->decoder());
  EXPECT_EQ(t->decoder()->describe(), "GPTQ int4 g16 asym, act-order");
}

namespace {

using Edit = std::function<void(std::vector<Tensor>&, nlohmann::ordered_json&)>;

// Rewrites the tensors and config of a written checkpoint through `edit` and expects
// opening it to fail with a message that names the directory and `needle`.
void expect_refused(const Written& w, const std::string& needle, const Edit& edit) {
  const auto st = read_safetensors((w.dir / "model.safetensors").string());
  std::vector<Tensor> tensors;
  for (const Tensor& t : st.tensors) {
    Tensor copy = Tensor::zeros(t.dtype(), t.shape(), t.name());
    std::memcpy(copy.mutable_data(), t.data(), t.nbytes());
    tensors.push_back(copy);
  }
  nlohmann::ordered_json config;
  std::ifstream(w.dir / "config.json") >> config;
  edit(tensors, config);
  write_safetensors((w.dir / "model.safetensors").string(), tensors);
  std::ofstream(w.dir / "config.json") << config.dump(2);
  try {
    open_model_file(w.dir.string());
    ADD_FAILURE() << "opened a broken checkpoint (" << needle << ")";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(w.dir.string()), std::string::npos) << e.what();
  }
}

void expect_refused(Layout layout, const std::string& needle, const Edit& edit) {
  expect_refused(write_checkpoint(test::fresh_temp_dir(), layout, 4, 32, true), needle, edit);
}

Tensor* named(std::vector<Tensor>& ts, const std::string& name) {
  for (Tensor& t : ts)
    if (t.name() == name) return &t;
  return nullptr;
}

}  // namespace

TEST(QuantizedCheckpoint, BrokenPartsAreRefusedByName) {
  const std::string p = "model.layers.1.mlp.up_proj";
  expect_refused(Layout::GptqV1, p + ".g_idx' gives column", [&](auto& ts, auto&) {
    static_cast<int32_t*>(named(ts, p + ".g_idx")->mutable_data())[3] = 1 << 20;
  });
  expect_refused(Layout::GptqV1, p + ".qzeros' has shape", [&](auto& ts, auto&) {
    *named(ts, p + ".qzeros") = Tensor::zeros(DType::I32, {1, 4}, p + ".qzeros");
  });
  expect_refused(Layout::GptqV1, p + ".scales' is missing", [&](auto& ts, auto&) {
    ts.erase(std::remove_if(ts.begin(), ts.end(),
                            [&](const Tensor& t) { return t.name() == p + ".scales"; }),
             ts.end());
  });
  expect_refused(Layout::GptqV1, p + ".qweight' has dtype F32", [&](auto& ts, auto&) {
    const Tensor* q = named(ts, p + ".qweight");
    *named(ts, p + ".qweight") = Tensor::zeros(DType::F32, q->shape(), p + ".qweight");
  });
  expect_refused(Layout::Awq, "scales' has shape", [&](auto& ts, auto&) {
    *named(ts, p + ".scales") = Tensor::zeros(DType::F16, {3, 128}, p + ".scales");
  });
  expect_refused(Layout::GptqV1, "quant_method 'bitsandbytes' is not read", [&](auto&, auto& c) {
    c["quantization_config"]["quant_method"] = "bitsandbytes";
  });
  expect_refused(Layout::GptqV1, "5-bit",
                 [&](auto&, auto& c) { c["quantization_config"]["bits"] = 5; });
  expect_refused(Layout::Awq, "version 'gemv'",
                 [&](auto&, auto& c) { c["quantization_config"]["version"] = "gemv"; });
}

// compressed-tensors: pack-quantized at every width in both packings (they differ at 3, 5,
// 6 and 7 bits), symmetric and with packed zero points, groups with and without act-order,
// per channel; int-quantized I8; float-quantized F8_E4M3 with block scales.
TEST(CompressedTensorsCheckpoint, PackQuantizedDecodesToTheCodesWritten) {
  for (int bits : {2, 3, 4, 5, 8})
    for (bool stream : {false, true}) {
      SCOPED_TRACE(std::to_string(bits) + (stream ? " stream" : " words"));
      CtOptions o;
      o.bits = bits, o.stream = stream;
      expect_decoded_and_runs(write_ct_checkpoint(test::fresh_temp_dir(), o));
    }
  CtOptions asym;
  asym.symmetric = false, asym.act_order = true, asym.bits = 4;
  expect_decoded_and_runs(write_ct_checkpoint(test::fresh_temp_dir(), asym));
  asym.bits = 3, asym.stream = true;
  expect_decoded_and_runs(write_ct_checkpoint(test::fresh_temp_dir(), asym));
  CtOptions channel;
  channel.group_size = 0, channel.symmetric = false;
  expect_decoded_and_runs(write_ct_checkpoint(test::fresh_temp_dir(), channel));
}

TEST(CompressedTensorsCheckpoint, IntAndFloatQuantized) {
  CtOptions i8;
  i8.format = CtFormat::IntQuantized, i8.group_size = 0, i8.symmetric = false;
  expect_decoded_and_runs(write_ct_checkpoint(test::fresh_temp_dir(), i8));
  CtOptions f8;
  f8.format = CtFormat::FloatQuantized;
  const Written w = write_ct_checkpoint(test::fresh_temp_dir(), f8);
  expect_decoded_and_runs(w);
  const ModelFile mf = open_model_file(w.dir.string());
  EXPECT_EQ(mf.find("model.layers.0.mlp.up_proj.weight")->decoder()->describe(),
            "compressed-tensors fp8 block 16x16");
}

TEST(CompressedTensorsCheckpoint, BrokenPartsAreRefusedByName) {
  const auto refused = [](const CtOptions& o, const std::string& needle,
                          const std::function<void(std::vector<Tensor>&)>& edit) {
    expect_refused(write_ct_checkpoint(test::fresh_temp_dir(), o), needle,
                   [&](std::vector<Tensor>& ts, nlohmann::ordered_json&) { edit(ts); });
  };
  const std::string p = "model.layers.0.self_attn.o_proj";
  CtOptions o;
  o.act_order = true;
  refused(o, "weight_g_idx gives column", [&](auto& ts) {
    static_cast<int32_t*>(named(ts, p + ".weight_g_idx")->mutable_data())[0] = 99;
  });
  refused(o, "words per row", [&](auto& ts) {
    *named(ts, p + ".weight_packed") = Tensor::zeros(DType::I32, {64, 3}, p + ".weight_packed");
  });
  refused(o, "weight_shape [", [&](auto& ts) {
    static_cast<int64_t*>(named(ts, p + ".weight_shape")->mutable_data())[1] = -4;
  });
  refused(o, "without weight_scale", [&](auto& ts) {
    ts.erase(std::remove_if(ts.begin(), ts.end(),
                            [&](const Tensor& t) { return t.name() == p + ".weight_scale"; }),
             ts.end());
  });
  refused(o, "sparse formats", [&](auto& ts) {
    ts.push_back(Tensor::zeros(DType::U8, {4}, "model.layers.0.mlp.up_proj.bitmask"));
  });
}

// Small-m products of every Packed layer of `w` (matmul_wt_stored) against the f64 sum over
// its decoded weights, with bias and accumulation, at every SIMD level this CPU has; returns
// how many layers the in-place kernels (column_packed_gemv.h, row_packed_gemv.h) took at
// the best level.
int expect_small_m_products(const Written& w) {
  const ExactActivations exact;
  const ModelFile mf = open_model_file(w.dir.string());
  int in_place = 0;
  struct Restore {
    ~Restore() { set_simd_level(SimdLevel::Avx512); }
  } restore;
  for (const Tensor& t : mf.tensors)
    for (SimdLevel level : {SimdLevel::Generic, SimdLevel::Avx2, SimdLevel::Avx512}) {
      set_simd_level(level);
      SCOPED_TRACE(simd_level_name(cpu_features().level));
      const TensorDecoder* d = t.decoder();
      if (!d) continue;
      const int64_t n = t.dim(0), k = t.dim(1);
      const std::vector<float> wf = t.to_f32();
      std::mt19937 rng(7);
      std::normal_distribution<float> nd;
      bool took = false;
      for (int64_t m : {1, 3, 8}) {
        std::vector<float> x(static_cast<size_t>(m * k)), bias(static_cast<size_t>(n));
        std::vector<float> y(static_cast<size_t>(m * n), 0.5f), y2 = y;
        for (float& v : x) v = nd(rng);
        for (float& v : bias) v = nd(rng);
        matmul_wt_stored(x.data(), t, y.data(), m, bias.data(), true);
        if (const ColumnPackedCodes* c = d->column_packed())
          took = gemv_column_packed(*c, x.data(), k, y2.data(), n, m, bias.data(), true);
        if (const RowPackedCodes* c = d->row_packed())
          took = gemv_row_packed(*c, *d, x.data(), k, y2.data(), n, m, bias.data(), true);
        for (int64_t i = 0; i < m; ++i)
          for (int64_t r = 0; r < n; ++r) {
            double ref = 0.5 + bias[size_t(r)], mag = 1;
            for (int64_t j = 0; j < k; ++j) {
              ref += double(wf[size_t(r * k + j)]) * x[size_t(i * k + j)];
              mag += std::fabs(double(wf[size_t(r * k + j)]) * x[size_t(i * k + j)]);
            }
            EXPECT_NEAR(y[size_t(i * n + r)], ref, 2e-6 * mag) << t.name() << " m=" << m;
            if (took) {
              EXPECT_EQ(y2[size_t(i * n + r)], y[size_t(i * n + r)]) << t.name();
            }
          }
      }
      if (level == SimdLevel::Avx512) in_place += took;
    }
  return in_place;
}

// GPTQ and AWQ layers read the codes in place at small m: every width the kernel reads,
// act-order, one group per row, the f16 rounding of each weight as the decoder does it.
TEST(QuantizedCheckpoint, GptqProductsReadTheCodesInPlace) {
  struct Case { Layout layout; int bits; int64_t gs; bool act_order; };
  for (const Case& c : {Case{Layout::GptqV1, 2, 32, false}, Case{Layout::GptqV1, 4, 32, false},
                        Case{Layout::GptqV2, 8, 16, true}, Case{Layout::GptqV1, 4, -1, false},
                        Case{Layout::GptqV2, 4, 16, true}, Case{Layout::Awq, 4, 32, false}}) {
    SCOPED_TRACE(std::to_string(c.bits) + " bits, group " + std::to_string(c.gs));
    const int n = expect_small_m_products(
        write_checkpoint(test::fresh_temp_dir(), c.layout, c.bits, c.gs, c.act_order));
    if (cpu_features().level >= SimdLevel::Avx2) {
      EXPECT_EQ(n, 7 * int(checkpoint_config().n_layers));
    }
  }
}

// compressed-tensors pack-quantized layers with f16 scales likewise (row_packed_gemv.h):
// groups smaller than a line of words, whole lines, one per row; packed zero points.
TEST(CompressedTensorsCheckpoint, ProductsReadTheCodesInPlace) {
  struct Case { int bits; int64_t gs; bool symmetric; };
  for (const Case& c : {Case{4, 16, false}, Case{4, 128, false}, Case{8, 0, false}, Case{8, 32, true},
                        Case{2, 64, false}}) {
    SCOPED_TRACE(std::to_string(c.bits) + " bits, group " + std::to_string(c.gs));
    CtOptions o;
    o.bits = c.bits, o.group_size = c.gs, o.symmetric = c.symmetric, o.f16_scales = true;
    const int n = expect_small_m_products(write_ct_checkpoint(test::fresh_temp_dir(), o));
    if (cpu_features().level >= SimdLevel::Avx2 && c.bits != 2) {
      EXPECT_GT(n, 0);
    }
  }
}

namespace {

// A product of `t` on int8 activations (`product` runs it, false when no int8 path took it)
// against the f64 product of `wv` (its unrounded weights s·(q − z)) with x rounded per
// activation block: equal up to f32 rounding, and within Σ|w|·(dx/2 + |x|·2^-11) of the exact
// product on the decoded (rounded) weights. Returns whether the path took it at m = 1.
template <class Product>
bool expect_int8_product(const Tensor& t, const std::vector<double>& wv, int64_t block,
                         Product product) {
  const int64_t n = t.dim(0), k = t.dim(1);
  const std::vector<float> decoded = t.to_f32();
  std::mt19937 rng(3);
  std::normal_distribution<float> nd;
  bool took = false;
  for (int64_t m : {1, 3, 8, 19}) {  // 19: chunks of 8 rows (prefill)
    std::vector<float> x(size_t(m * k)), y(size_t(m * n), 0.25f);
    for (float& v : x) v = nd(rng);
    x[0] = 6.0f;  // an outlier in the first block
    // The integer-dot paths are AVX2 code (run at the AVX-512 level too).
    if (cpu_features().level < SimdLevel::Avx2 || !product(x.data(), y.data(), m)) continue;
    took = took || m == 1;
    for (int64_t i = 0; i < m; ++i) {
      Int8Activations q;
      quantize_activations(x.data() + i * k, k, block, q);
      for (int64_t r = 0; r < n; ++r) {
        double rounded = 0.25, exact = 0.25, mag = 1, bound = 0;
        for (int64_t j = 0; j < k; ++j) {
          const double wj = wv[size_t(r * k + j)], xj = x[size_t(i * k + j)];
          const double dx = q.d[size_t(j / block)];
          rounded += wj * dx * q.q[size_t(j)];
          exact += double(decoded[size_t(r * k + j)]) * xj;
          mag += std::fabs(wj) * (std::fabs(xj) + 128 * dx);
          bound += std::fabs(wj) * (dx / 2 + std::fabs(xj) * std::ldexp(1.0, -11));
        }
        const double got = y[size_t(i * n + r)];
        EXPECT_NEAR(got, rounded, 2e-6 * mag) << t.name() << " m=" << m << " row " << r;
        EXPECT_LE(std::fabs(got - exact), bound + 2e-6 * mag) << t.name() << " row " << r;
        if (::testing::Test::HasFailure()) return took;
      }
    }
  }
  return took;
}

}  // namespace

// GPTQ layers without act-order and AWQ layers on int8 activations (the default on AVX2 and
// AVX-512 CPUs: both run the AVX2 int8 kernels),
// activation blocks the largest multiple of 32 up to 256 dividing the group.
TEST(QuantizedCheckpoint, GptqInt8ActivationsWithinTheirBound) {
  struct Case { Layout layout; int bits; int64_t gs; };
  for (const Case& c : {Case{Layout::GptqV1, 4, 32}, Case{Layout::GptqV1, 2, 32},
                        Case{Layout::GptqV2, 8, 64}, Case{Layout::GptqV1, 4, -1},
                        Case{Layout::Awq, 4, 32}, Case{Layout::Awq, 4, 64}}) {
    SCOPED_TRACE(std::string(c.layout == Layout::Awq ? "AWQ " : "GPTQ ") + std::to_string(c.bits) +
                 " bits, group " + std::to_string(c.gs));
    const ModelFile mf =
        open_model_file(write_checkpoint(test::fresh_temp_dir(), c.layout, c.bits, c.gs, false).dir.string());
    int took = 0;
    for (const Tensor& t : mf.tensors) {
      const ColumnPackedCodes* w = t.decoder() ? t.decoder()->column_packed() : nullptr;
      if (!w) continue;
      const int64_t n = w->out, k = w->in, per = 32 / w->bits;
      int64_t block = 256;
      while (w->group_size % block) block -= 32;
      // The unrounded weights from the parts, written from the layouts' definitions: GPTQ's
      // codes down the inputs, AWQ's along the outputs at nibble (0, 4, 1, 5, 2, 6, 3, 7)[r % 8].
      static constexpr int kAwqNibble[8] = {0, 4, 1, 5, 2, 6, 3, 7};
      const uint32_t mask = (1u << w->bits) - 1;
      std::vector<double> wv(size_t(n * k));
      for (int64_t r = 0; r < n; ++r)
        for (int64_t j = 0; j < k; ++j) {
          const int64_t g = j / w->group_size, zb = w->awq ? 4 * kAwqNibble[r % 8] : r * w->bits;
          const uint32_t q = w->awq ? (w->qweight[j * (n / 8) + r / 8] >> zb) & mask
                                    : (w->qweight[(j / per) * n + r] >> ((j % per) * w->bits)) & mask;
          const uint32_t z = w->awq ? (w->qzeros[g * w->zero_words + r / 8] >> zb) & mask
                                    : (w->qzeros[g * w->zero_words + (zb >> 5)] >> (zb & 31)) & mask;
          const double s = f16_to_f32(static_cast<const uint16_t*>(w->scales)[g * n + r]);
          wv[size_t(r * k + j)] = s * (double(q) - (double(z) + w->zero_offset));
        }
      took += expect_int8_product(t, wv, block, [&](const float* x, float* y, int64_t m) {
        return gemv_column_packed(*w, x, k, y, n, m, nullptr, true);
      });
    }
    if (cpu_features().level >= SimdLevel::Avx2) EXPECT_GT(took, 0);
  }
}

// compressed-tensors pack-quantized layers on int8 activations likewise (row_packed_gemv.h),
// activation blocks the largest multiple of a load's span (8 words, 16 with AVX-512 VNNI) up
// to 256 dividing the group.
TEST(CompressedTensorsCheckpoint, Int8ActivationsWithinTheirBound) {
  struct Case { int bits; int64_t gs; bool symmetric; };
  for (const Case& c : {Case{4, 64, false}, Case{4, 128, false}, Case{4, 0, true}, Case{8, 32, false},
                        Case{8, 64, false}, Case{8, 0, true},
                        Case{2, 128, false}}) {
    SCOPED_TRACE(std::to_string(c.bits) + " bits, group " + std::to_string(c.gs));
    CtOptions o;
    o.bits = c.bits, o.group_size = c.gs, o.symmetric = c.symmetric, o.f16_scales = true;
    const ModelFile mf = open_model_file(write_ct_checkpoint(test::fresh_temp_dir(), o).dir.string());
    int took = 0;
    for (const Tensor& t : mf.tensors) {
      const TensorDecoder* d = t.decoder();
      const RowPackedCodes* w = d ? d->row_packed() : nullptr;
      if (!w) continue;
      const int64_t n = w->out, k = w->in, per = 32 / w->bits;
      // Spans of 16 words with AVX-512 VNNI where the group holds whole ones, else 8.
      const bool vnni = cpu_features().level == SimdLevel::Avx512 && cpu_features().avx512vnni &&
                        activation_block_in(w->group_size, 16 * per);
      const int64_t span = (vnni ? 16 : 8) * per;
      int64_t block = 256 / span * span;
      while (block >= span && w->group_size % block) block -= span;
      if (block < span) continue;
      std::vector<double> wv(size_t(n * k));
      std::vector<float> scale(size_t(w->groups));
      std::vector<int32_t> zero(size_t(w->groups));
      for (int64_t r = 0; r < n; ++r) {
        d->row_parameters(r, scale.data(), zero.data());
        for (int64_t j = 0; j < k; ++j) {
          const uint32_t q = (w->q[r * w->words + j / per] >> ((j % per) * w->bits)) & ((1u << w->bits) - 1);
          const int64_t g = j / w->group_size;
          wv[size_t(r * k + j)] = double(scale[size_t(g)]) * (double(q) - zero[size_t(g)]);
        }
      }
      took += expect_int8_product(t, wv, block, [&](const float* x, float* y, int64_t m) {
        return gemv_row_packed(*w, *d, x, k, y, n, m, nullptr, true);
      });
    }
    if (cpu_features().level >= SimdLevel::Avx2 && c.bits != 2) EXPECT_GT(took, 0);
  }
}
