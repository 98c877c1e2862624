#include "engine/train/train_ops.h"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/kernels/gemm.h"
#include "engine/kernels/ops.h"

namespace mcw {

namespace {

constexpr int64_t kRowChunk = 64;  // rows per partial sum: fixed, so thread count never matters

// out[c] += Σ_r contribution(r)[c]: `add_row(r, acc)` adds row r into a double accumulator.
template <class AddRow>
void chunked_row_reduce(int64_t rows, int64_t cols, float* out, AddRow add_row) {
  const int64_t chunks = (rows + kRowChunk - 1) / kRowChunk;
  std::vector<double> partial(size_t(chunks * cols), 0.0);
  tbb::parallel_for(int64_t(0), chunks, [&](int64_t ch) {
    double* acc = &partial[size_t(ch * cols)];
    for (int64_t r = ch * kRowChunk; r < std::min(rows, (ch + 1) * kRowChunk); ++r) add_row(r, acc);
  });
  for (int64_t c = 0; c < cols; ++c) {
    double s = 0;
    for (int64_t ch = 0; ch < chunks; ++ch) s += partial[size_t(ch * cols + c)];
    out[c] += float(s);
  }
}

float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

}  // namespace

void column_sums(const float* m, int64_t rows, int64_t cols, float* out) {
  chunked_row_reduce(rows, cols, out, [&](int64_t r, double* acc) {
    for (int64_t c = 0; c < cols; ++c) acc[c] += m[r * cols + c];
  });
}

// rmsnorm_rows of kernels/ops itself, so training and inference agree bit for bit.
void rmsnorm_forward(const float* x, const float* w, float* y, float* inv_rms, int64_t rows,
                     int64_t dim, double eps) {
  rmsnorm_rows(x, w, y, rows, dim, eps, inv_rms);
}

// With r = inv_rms: dx_j = r·w_j·dy_j - (r³/D)·x_j·Σ_i dy_i·w_i·x_i, dw_i = Σ_rows dy_i·x_i·r.
void rmsnorm_backward(const float* x, const float* w, const float* inv_rms, const float* dy,
                      float* dx, float* dw, int64_t rows, int64_t dim) {
  tbb::parallel_for(int64_t(0), rows, [&](int64_t r) {
    const float* xr = x + r * dim;
    const float* dyr = dy + r * dim;
    double dot = 0;
    for (int64_t i = 0; i < dim; ++i) dot += double(dyr[i]) * w[i] * xr[i];
    const double rr = inv_rms[r], k = rr * rr * rr * dot / double(dim);
    float* dxr = dx + r * dim;
    for (int64_t i = 0; i < dim; ++i) dxr[i] += float(rr * w[i] * dyr[i] - k * xr[i]);
  });
  if (!dw) return;
  chunked_row_reduce(rows, dim, dw, [&](int64_t r, double* acc) {
    const double rr = inv_rms[r];
    for (int64_t i = 0; i < dim; ++i) acc[i] += double(dy[r * dim + i]) * x[r * dim + i] * rr;
  });
}

void rope_rows(float* x, int64_t B, int64_t T, int64_t n_heads, int64_t head_dim,
               const float* inv_freq, bool inverse) {
  const int64_t width = n_heads * head_dim;
  tbb::parallel_for(int64_t(0), B * T, [&](int64_t row) {
    rope_row(x + row * width, n_heads, head_dim, row % T, inv_freq, inverse);
  });
}

void attention_forward(const AttentionShape& s, const float* q, const float* k, const float* v,
                       float* probs, float* out) {
  const int64_t hd = s.head_dim, T = s.T, group = s.n_heads / s.n_kv_heads;
  const int64_t qw = s.n_heads * hd, kw = s.n_kv_heads * hd;
  const float scale = float(1.0 / std::sqrt(double(hd)));
  tbb::parallel_for(int64_t(0), s.B * s.n_heads, [&](int64_t job) {
    const int64_t b = job / s.n_heads, h = job % s.n_heads, kvh = h / group;
    const float* qb = q + b * T * qw + h * hd;
    const float* kb = k + b * T * kw + kvh * hd;
    const float* vb = v + b * T * kw + kvh * hd;
    for (int64_t t = 0; t < T; ++t) {
      float* p = probs + (job * T + t) * T;
      for (int64_t u = 0; u <= t; ++u) {
        float acc = 0;
        for (int64_t i = 0; i < hd; ++i) acc += qb[t * qw + i] * kb[u * kw + i];
        p[u] = acc * scale;
      }
      softmax_row(p, t + 1);
      std::fill(p + t + 1, p + T, 0.0f);
      float* o = out + (b * T + t) * qw + h * hd;
      std::fill(o, o + hd, 0.0f);
      for (int64_t u = 0; u <= t; ++u)
        for (int64_t i = 0; i < hd; ++i) o[i] += p[u] * vb[u * kw + i];
    }
  });
}

// Per (sequence, key/value head), so that the query heads sharing those keys and values
// add into dk/dv from one task: no races, and a fixed order.
void attention_backward(const AttentionShape& s, const float* q, const float* k, const float* v,
                        const float* probs, const float* dout, float* dq, float* dk, float* dv) {
  const int64_t hd = s.head_dim, T = s.T, group = s.n_heads / s.n_kv_heads;
  const int64_t qw = s.n_heads * hd, kw = s.n_kv_heads * hd;
  const float scale = float(1.0 / std::sqrt(double(hd)));
  tbb::parallel_for(int64_t(0), s.B * s.n_kv_heads, [&](int64_t job) {
    const int64_t b = job / s.n_kv_heads, kvh = job % s.n_kv_heads;
    const float* kb = k + b * T * kw + kvh * hd;
    const float* vb = v + b * T * kw + kvh * hd;
    float* dkb = dk + b * T * kw + kvh * hd;
    float* dvb = dv + b * T * kw + kvh * hd;
    std::vector<float> ds(static_cast<size_t>(T));
    for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h) {
      const float* qb = q + b * T * qw + h * hd;
      float* dqb = dq + b * T * qw + h * hd;
      const float* dob = dout + b * T * qw + h * hd;
      for (int64_t t = 0; t < T; ++t) {
        const float* p = probs + ((b * s.n_heads + h) * T + t) * T;
        const float* go = dob + t * qw;
        double pdp = 0;
        for (int64_t u = 0; u <= t; ++u) {
          float dp = 0;
          for (int64_t i = 0; i < hd; ++i) dp += go[i] * vb[u * kw + i];
          ds[size_t(u)] = dp;
          pdp += double(p[u]) * dp;
        }
        for (int64_t u = 0; u <= t; ++u) {
          const float d = p[u] * (ds[size_t(u)] - float(pdp)) * scale;
          for (int64_t i = 0; i < hd; ++i) {
            dqb[t * qw + i] += d * kb[u * kw + i];
            dkb[u * kw + i] += d * qb[t * qw + i];
            dvb[u * kw + i] += p[u] * go[i];
          }
        }
      }
    }
  });
}

// Same expression as silu_mul in kernels/ops.
void swiglu_forward(const float* g, const float* u, float* a, int64_t n) {
  tbb::parallel_for(int64_t(0), n, int64_t(4096), [&](int64_t i0) {
    for (int64_t i = i0; i < std::min(n, i0 + 4096); ++i)
      a[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
  });
}

// silu'(g) = σ(g)·(1 + g·(1 - σ(g))).
void swiglu_backward(const float* g, const float* u, const float* da, float* dg, float* du,
                     int64_t n) {
  tbb::parallel_for(int64_t(0), n, int64_t(4096), [&](int64_t i0) {
    for (int64_t i = i0; i < std::min(n, i0 + 4096); ++i) {
      const float sg = sigmoid(g[i]);
      dg[i] += da[i] * u[i] * sg * (1.0f + g[i] * (1.0f - sg));
      du[i] += da[i] * g[i] * sg;
    }
  });
}

void embedding_forward(const float* table, std::span<const int32_t> tokens, float* x, int64_t dim) {
  for (size_t r = 0; r < tokens.size(); ++r)
    std::copy(table + int64_t(tokens[r]) * dim, table + (int64_t(tokens[r]) + 1) * dim,
              x + int64_t(r) * dim);
}

// Parallel over column blocks: each block walks the rows in order, so repeated tokens add
// up without races and in a fixed order.
void embedding_backward(std::span<const int32_t> tokens, const float* dx, float* dtable,
                        int64_t dim) {
  constexpr int64_t kCols = 16;
  tbb::parallel_for(int64_t(0), (dim + kCols - 1) / kCols, [&](int64_t blk) {
    const int64_t c0 = blk * kCols, c1 = std::min(dim, c0 + kCols);
    for (size_t r = 0; r < tokens.size(); ++r) {
      float* dst = dtable + int64_t(tokens[r]) * dim;
      const float* src = dx + int64_t(r) * dim;
      for (int64_t c = c0; c < c1; ++c) dst[c] += src[c];
    }
  });
}

void linear_backward(const float* x, const float* w, const float* dy, float* dx, float* dw,
                     float* db, int64_t rows, int64_t out, int64_t in) {
  if (dx) matmul(dy, w, dx, rows, in, out, /*accumulate=*/true);
  if (dw) matmul_at(dy, x, dw, out, in, rows, /*accumulate=*/true);
  if (db) column_sums(dy, rows, out, db);
}

double cross_entropy_forward(float* logits, std::span<const int32_t> targets, int64_t V) {
  const int64_t rows = int64_t(targets.size());
  std::vector<double> nll(static_cast<size_t>(rows));
  tbb::parallel_for(int64_t(0), rows, [&](int64_t r) {
    float* row = logits + r * V;
    const double target_logit = row[targets[size_t(r)]];
    nll[size_t(r)] = softmax_row(row, V) - target_logit;
  });
  double sum = 0;
  for (double x : nll) sum += x;
  return sum;
}

void cross_entropy_backward(const float* probs, std::span<const int32_t> targets, int64_t V,
                            double scale, float* dlogits) {
  const float sc = float(scale);
  tbb::parallel_for(int64_t(0), int64_t(targets.size()), [&](int64_t r) {
    const float* p = probs + r * V;
    float* d = dlogits + r * V;
    for (int64_t j = 0; j < V; ++j) d[j] = sc * p[j];
    d[targets[size_t(r)]] -= sc;
  });
}

// log p_j = z_j - lse, so KL = Σ q log q - Σ q·z + lse (Σ q = 1), taken before the row is
// normalised in place.
double mean_nll(const float* probs, const int32_t* targets, int64_t rows, int64_t V) {
  double nll = 0;
  for (int64_t r = 0; r < rows; ++r)
    nll -= std::log(std::max(double(probs[r * V + targets[r]]), 1e-300));
  return nll / double(rows);
}

double kl_divergence_forward(float* logits, const float* teacher_probs, int64_t rows, int64_t V) {
  std::vector<double> kl(static_cast<size_t>(rows));
  tbb::parallel_for(int64_t(0), rows, [&](int64_t r) {
    float* row = logits + r * V;
    const float* q = teacher_probs + r * V;
    double entropy = 0, cross = 0;
    for (int64_t j = 0; j < V; ++j)
      if (q[j] > 0)
        entropy += double(q[j]) * std::log(double(q[j])), cross += double(q[j]) * row[j];
    kl[size_t(r)] = entropy - cross + softmax_row(row, V);
  });
  double sum = 0;
  for (double x : kl) sum += x;
  return sum;
}

void kl_divergence_backward(const float* probs, const float* teacher_probs, int64_t rows, int64_t V,
                            double scale, float* dlogits) {
  const float sc = float(scale);
  tbb::parallel_for(int64_t(0), rows, [&](int64_t r) {
    const float* p = probs + r * V;
    const float* q = teacher_probs + r * V;
    float* d = dlogits + r * V;
    for (int64_t j = 0; j < V; ++j) d[j] = sc * (p[j] - q[j]);
  });
}

}  // namespace mcw
