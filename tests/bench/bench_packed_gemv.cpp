// Decode-time products on packed compressed weights, next to the ceiling they are judged
// against, measured in the same executable:
//   - BM_StreamRead: a streaming read of a 1 GiB buffer on 1 and 2 threads (GB/s);
//   - BM_Gemv: y = W·x for 4096×4096 and 4096×11008 (out × in) at f32, f16, q8, q4 g128,
//     q3 g128, q2 g128 and 2:4 (f16 values), GB/s of weight bytes streamed and the share of
//     the 2-thread read bandwidth ("of_bw");
//   - BM_GemvOneThreadCached: the kernels alone (1 thread, cache-resident, CPU time);
//   - BM_DecodeStack: one decode token through 4 layers of q/k/v/o (4096×4096) and
//     gate/up (11008×4096) / down (4096×11008), every matrix distinct (≫ LLC), in ms per
//     token against the roofline ms = bytes / read bandwidth.
// Weights are random (codes are random bytes): the kernels' speed does not depend on them.
#include <benchmark/benchmark.h>
#include <tbb/global_control.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "engine/compress/compressed_tensor.h"
#include "engine/kernels/cpu_features.h"
#include "engine/kernels/packed_weight.h"
#include "engine/kernels/stored_matmul.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace {

using mcw::CompressedTensor;
using mcw::PackedWeight;

struct Rng {  // xorshift64*: fast enough to fill gigabytes
  uint64_t s;
  uint64_t next() {
    s ^= s >> 12, s ^= s << 25, s ^= s >> 27;
    return s * 0x2545F4914F6CDD1DULL;
  }
  float uniform() { return float(next() >> 40) / float(1 << 24) * 2.0f - 1.0f; }
};

// ---- memory bandwidth ------------------------------------------------------------------

#if defined(__x86_64__)
// 512-bit loads where the CPU has them, as the products' own kernels read: with 256-bit
// loads this read measured 22.8 GB/s on 2 threads on the Xeon of the twenty-second session,
// below the 25–31 GB/s the products streamed from gigabyte matrices in the same run.
__attribute__((target("avx512f"))) uint64_t read_sum_avx512(const uint64_t* p, size_t n) {
  __m512i a = _mm512_setzero_si512(), b = a, c = a, d = a;
  for (size_t i = 0; i + 32 <= n; i += 32) {
    a = _mm512_add_epi64(a, _mm512_load_si512(p + i));
    b = _mm512_add_epi64(b, _mm512_load_si512(p + i + 8));
    c = _mm512_add_epi64(c, _mm512_load_si512(p + i + 16));
    d = _mm512_add_epi64(d, _mm512_load_si512(p + i + 24));
  }
  return uint64_t(
      _mm512_reduce_add_epi64(_mm512_add_epi64(_mm512_add_epi64(a, b), _mm512_add_epi64(c, d))));
}

__attribute__((target("avx2"))) uint64_t read_sum_avx2(const uint64_t* p, size_t n) {
  __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
  for (size_t i = 0; i + 16 <= n; i += 16) {
    a = _mm256_add_epi64(a, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i)));
    b = _mm256_add_epi64(b, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 4)));
    c = _mm256_add_epi64(c, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 8)));
    d = _mm256_add_epi64(d, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 12)));
  }
  const __m256i s = _mm256_add_epi64(_mm256_add_epi64(a, b), _mm256_add_epi64(c, d));
  uint64_t out[4];
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), s);
  return out[0] + out[1] + out[2] + out[3];
}

uint64_t read_sum(const uint64_t* p, size_t n) {
  return mcw::cpu_features().avx512f ? read_sum_avx512(p, n) : read_sum_avx2(p, n);
}
#else
uint64_t read_sum(const uint64_t* p, size_t n) {
  uint64_t s = 0;
  for (size_t i = 0; i < n; ++i) s += p[i];
  return s;
}
#endif

constexpr size_t kStreamBytes = size_t(1) << 30;

struct StreamBuffer {
  uint64_t* p;
  size_t n;
  StreamBuffer() : n(kStreamBytes / 8) {
    p = static_cast<uint64_t*>(std::aligned_alloc(64, kStreamBytes));
    for (size_t i = 0; i < n; ++i) p[i] = i;  // touch every page
  }
  ~StreamBuffer() { std::free(p); }
};

StreamBuffer& stream_buffer() {
  static StreamBuffer b;
  return b;
}

// Seconds for `threads` threads to read the buffer's first `bytes` (all of it: 0) once,
// each its own slice.
double stream_once(int threads, size_t bytes = 0) {
  StreamBuffer& b = stream_buffer();
  std::vector<std::thread> pool;
  std::vector<uint64_t> sums(static_cast<size_t>(threads));
  const size_t n = bytes ? std::min(b.n, bytes / 8) : b.n;
  const size_t per = n / size_t(threads) / 32 * 32;  // whole 256-byte steps of either reader
  const auto t0 = std::chrono::steady_clock::now();
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] { sums[size_t(t)] = read_sum(b.p + size_t(t) * per, per); });
  for (auto& th : pool) th.join();
  benchmark::DoNotOptimize(sums.data());
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The best of 3 two-thread reads, in bytes per second: the roofline for every product.
double read_bandwidth() {
  static const double bw = [] {
    double best = 1e30;
    for (int k = 0; k < 3; ++k) best = std::min(best, stream_once(2));
    return double(kStreamBytes) / best;
  }();
  return bw;
}

// Args: threads, MB read again and again (1 GiB: past any cache; 33 and 117: the q4 and
// f16 matrices of the target shapes, which a large L3 may hold between products).
void BM_StreamRead(benchmark::State& state) {
  const int threads = int(state.range(0));
  const size_t bytes = size_t(state.range(1)) << 20;
  double seconds = 0;
  for (auto _ : state) {
    const double s = stream_once(threads, bytes);
    seconds += s;
    state.SetIterationTime(s);
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(bytes));
  state.counters["GB/s"] = double(bytes) * double(state.iterations()) / seconds / 1e9;
}
BENCHMARK(BM_StreamRead)
    ->Args({1, 1024})
    ->Args({2, 1024})
    ->Args({2, 33})
    ->Args({2, 117})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

// ---- packed weights -------------------------------------------------------------------

enum Kind { kF32, kF16, kQ8, kQ4, kQ3, kQ2, kSparse24 };
const char* kind_name(int k) {
  static const char* names[] = {"f32",     "f16",     "q8 g128", "q4 g128",
                                "q3 g128", "q2 g128", "2:4 f16"};
  return names[k];
}

PackedWeight make_weight(int kind, int64_t rows, int64_t cols, uint64_t seed) {
  Rng rng{seed * 0x9E3779B97F4A7C15ULL + 1};
  const size_t n = size_t(rows * cols);
  if (kind == kF32 || kind == kF16) {
    std::vector<float> w(n);
    for (float& v : w) v = rng.uniform() * 0.05f;
    return PackedWeight::from_f32(w.data(), rows, cols, kind == kF16);
  }
  CompressedTensor t;
  t.rows = rows, t.cols = cols;
  if (kind == kSparse24) {
    t.coding = mcw::WeightCoding::Dense;
    t.dense = mcw::Tensor::zeros(mcw::DType::F32, {rows, cols});
    float* w = t.dense.mutable_as<float>();
    t.mask.assign((n + 7) / 8, 0);
    t.nm_n = 2, t.nm_m = 4;
    for (size_t g = 0; g < n; g += 4) {
      const int a = int(rng.next() % 4), b = (a + 1 + int(rng.next() % 3)) % 4;
      for (int j : {a, b}) {
        w[g + size_t(j)] = rng.uniform() * 0.05f;
        t.mask[(g + size_t(j)) >> 3] |= uint8_t(1u << ((g + size_t(j)) & 7));
      }
    }
    return PackedWeight::from_compressed(t);
  }
  t.coding = mcw::WeightCoding::Affine;
  t.bits = kind == kQ8 ? 8 : kind == kQ4 ? 4 : kind == kQ3 ? 3 : 2;
  t.group_size = 128;
  t.codes.resize((n * size_t(t.bits) + 7) / 8);
  for (size_t i = 0; i < t.codes.size(); i += 8) {
    const uint64_t v = rng.next();
    std::memcpy(t.codes.data() + i, &v, std::min<size_t>(8, t.codes.size() - i));
  }
  const size_t groups = size_t(rows * ((cols + 127) / 128));
  t.scales.resize(groups);
  t.zeros.resize(groups);
  for (size_t g = 0; g < groups; ++g)
    t.scales[g] = 0.01f + 0.001f * float(g % 7), t.zeros[g] = float(g % (1u << t.bits));
  return PackedWeight::from_compressed(t);
}

void BM_Gemv(benchmark::State& state) {
  const int kind = int(state.range(0));
  const int64_t rows = state.range(1), cols = state.range(2);
  mcw::set_simd_level(mcw::SimdLevel(state.range(3)));
  const bool int8 = state.range(4) != 0;
  mcw::set_int8_activations(int8);
  const double bw = read_bandwidth();
  const PackedWeight w = make_weight(kind, rows, cols, 1);
  std::vector<float> x(static_cast<size_t>(cols)), y(static_cast<size_t>(rows));
  Rng rng{7};
  for (float& v : x) v = rng.uniform();
  for (auto _ : state) {
    w.matmul(x.data(), y.data(), 1);
    benchmark::DoNotOptimize(y.data());
  }
  const double bytes = double(w.weight_bytes());
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(bytes));
  const bool affine = kind >= kQ8 && kind <= kQ2;
  state.SetLabel(std::string(kind_name(kind)) + " " + mcw::packed_gemv_path() +
                 (affine ? int8 ? " int8 x " : " f32 x " : " ") + std::to_string(rows) + "x" +
                 std::to_string(cols));
  state.counters["MB"] = bytes / 1e6;
  state.counters["GB/s"] = benchmark::Counter(bytes, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["of_bw"] =
      benchmark::Counter(bytes / bw, benchmark::Counter::kIsIterationInvariantRate);
  mcw::set_simd_level(mcw::SimdLevel::Avx512);
  mcw::set_int8_activations(true);
}

// Args: kind, rows (out), cols (in), SIMD level, int8 activations. The group-wise kinds run
// on int8 activations (the default) and on f32 ones (the exact path); 4096×14336 and
// 14336×4096 are the shapes ggml's test-backend-ops and the speed issue's targets use.
void gemv_args(benchmark::internal::Benchmark* b) {
  const int64_t top = int64_t(mcw::SimdLevel::Avx512);
  for (auto [r, c] : {std::pair<int64_t, int64_t>{4096, 4096}, {4096, 11008}, {4096, 14336},
                      {14336, 4096}})
    for (int k = kF32; k <= kSparse24; ++k) {
      b->Args({k, r, c, top, 1});
      if (k >= kQ8 && k <= kQ2) b->Args({k, r, c, top, 0});
    }
  // q4 and q8 on the narrower paths, for comparison (MCW_CPU=avx2-novnni takes the AVX2
  // path's vpdpbusd away).
  for (int64_t int8 : {1, 0})
    for (int k : {kQ8, kQ4}) {
      b->Args({k, 4096, 4096, int64_t(mcw::SimdLevel::Avx2), int8});
      b->Args({k, 4096, 4096, int64_t(mcw::SimdLevel::Generic), int8});
    }
}
BENCHMARK(BM_Gemv)->Apply(gemv_args)->Unit(benchmark::kMicrosecond)->UseRealTime();
// The same on weights of about 0.6–1.1 GB, past any cache (a VM may report an L3 of hundreds
// of MB): the decode-bandwidth target, ≥ 85 % of BM_StreamRead's 1 GiB read ("of_bw").
BENCHMARK(BM_Gemv)
    ->Name("BM_GemvDram")
    ->Args({kF16, 32768, 16384, int64_t(mcw::SimdLevel::Avx512), 1})
    ->Args({kQ8, 32768, 32768, int64_t(mcw::SimdLevel::Avx512), 1})
    ->Args({kQ4, 65536, 16384, int64_t(mcw::SimdLevel::Avx512), 1})
    ->Args({kQ2, 65536, 32768, int64_t(mcw::SimdLevel::Avx512), 1})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Prefill (m = 64) at 4096×14336. Args: kind, int8 activations (on: chunks of 8 rows on
// the small-m kernels; off: f32 tiles).
void BM_Prefill(benchmark::State& state) {
  const int kind = int(state.range(0));
  mcw::set_int8_activations(state.range(1) != 0);
  const int64_t rows = 4096, cols = 14336, m = 64;
  const PackedWeight w = make_weight(kind, rows, cols, 1);
  std::vector<float> x(static_cast<size_t>(m * cols)), y(static_cast<size_t>(m * rows));
  Rng rng{7};
  for (float& v : x) v = rng.uniform();
  for (auto _ : state) {
    w.matmul(x.data(), y.data(), m);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetLabel(std::string(kind_name(kind)) + (state.range(1) ? " int8 x" : " f32 x"));
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * double(m * rows * cols) * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
  mcw::set_int8_activations(true);
}
BENCHMARK(BM_Prefill)
    ->ArgsProduct({{kQ8, kQ4, kQ2}, {1, 0}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// The kernels' own speed, free of memory and of other processes: one TBB thread, a
// 512×4096 matrix that stays in L2/L3, rates per second of this thread's CPU time.
void BM_GemvOneThreadCached(benchmark::State& state) {
  const int kind = int(state.range(0));
  tbb::global_control one(tbb::global_control::max_allowed_parallelism, 1);
  const PackedWeight w = make_weight(kind, 512, 4096, 2);
  std::vector<float> x(4096, 0.5f), y(512);
  for (auto _ : state) {
    w.matmul(x.data(), y.data(), 1);
    benchmark::DoNotOptimize(y.data());
  }
  const double bytes = double(w.weight_bytes());
  state.SetLabel(std::string(kind_name(kind)) + " " + mcw::packed_gemv_path());
  state.counters["GB/s"] = benchmark::Counter(bytes, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["Gweights/s"] =
      benchmark::Counter(512.0 * 4096 / 1e9, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_GemvOneThreadCached)->DenseRange(kF32, kSparse24)->Unit(benchmark::kMicrosecond);

// One decode token through a 4-layer stack of distinct 4096-wide layers.
void BM_DecodeStack(benchmark::State& state) {
  const int kind = int(state.range(0));
  constexpr int kLayers = 4;
  const int64_t D = 4096, H = 11008;
  const double bw = read_bandwidth();
  std::vector<PackedWeight> stack;
  uint64_t seed = 100, bytes = 0;
  for (int l = 0; l < kLayers; ++l) {
    for (int k = 0; k < 4; ++k) stack.push_back(make_weight(kind, D, D, ++seed));  // q k v o
    stack.push_back(make_weight(kind, H, D, ++seed));                              // gate
    stack.push_back(make_weight(kind, H, D, ++seed));                              // up
    stack.push_back(make_weight(kind, D, H, ++seed));                              // down
  }
  for (const PackedWeight& w : stack) bytes += w.weight_bytes();
  std::vector<float> x(static_cast<size_t>(H), 0.01f), y(static_cast<size_t>(H));
  for (auto _ : state) {
    for (const PackedWeight& w : stack) {
      w.matmul(x.data(), y.data(), 1);
      benchmark::DoNotOptimize(y.data());
    }
  }
  state.SetLabel(std::string(kind_name(kind)) + " " + mcw::packed_gemv_path());
  state.counters["GB"] = double(bytes) / 1e9;
  state.counters["roofline_ms"] = double(bytes) / bw * 1e3;
  state.counters["GB/s"] =
      benchmark::Counter(double(bytes), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["of_roofline"] =
      benchmark::Counter(double(bytes) / bw, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_DecodeStack)
    ->DenseRange(kF32, kSparse24)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
