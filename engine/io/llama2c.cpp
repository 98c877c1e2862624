#include "engine/io/llama2c.h"

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <string_view>

#include "engine/core/error.h"
#include "engine/core/mapped_file.h"
#include "engine/io/atomic_file.h"

namespace mcw {

// Weights are exposed as views of the file's bytes, which are little-endian f32.
static_assert(std::endian::native == std::endian::little);

namespace {

constexpr uint32_t kMagic = 0x616b3432;  // "ak42" read as a little-endian uint32
constexpr size_t kLegacyHeaderBytes = 7 * 4;
constexpr size_t kVersionedHeaderBytes = 256;
constexpr int64_t kVersionedFieldsAt = 8;   // after magic and version
constexpr int64_t kSharedFlagAt = 8 + 7 * 4;
constexpr double kRopeTheta = 10000.0;

constexpr const char* kFieldNames[7] = {"dim",        "hidden_dim", "n_layers", "n_heads",
                                        "n_kv_heads", "vocab_size", "seq_len"};

int32_t load_i32(const std::byte* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

struct Problem {
  int field;  // index into kFieldNames, where the problem is one field's value
  std::string message;
};

// The structural rules every reader of the format relies on; vocab_size is the count.
std::optional<Problem> config_problem(const Llama2cConfig& c) {
  const int values[7] = {c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads,
                         c.vocab_size, c.seq_len};
  for (int i = 0; i < 7; ++i)
    if (values[i] <= 0)
      return Problem{i, std::string(kFieldNames[i]) + " is " + std::to_string(values[i]) +
                            " (must be positive)"};
  if (c.dim % c.n_heads != 0)
    return Problem{3, "n_heads " + std::to_string(c.n_heads) + " does not divide dim " +
                          std::to_string(c.dim)};
  if (c.n_heads % c.n_kv_heads != 0)
    return Problem{4, "n_kv_heads " + std::to_string(c.n_kv_heads) +
                          " does not divide n_heads " + std::to_string(c.n_heads)};
  if ((c.dim / c.n_heads) % 2 != 0)
    return Problem{3, "head size " + std::to_string(c.dim / c.n_heads) +
                          " (dim / n_heads) is odd; rotary embeddings need it even"};
  return std::nullopt;
}

std::string describe(const Llama2cConfig& c) {
  return "dim " + std::to_string(c.dim) + ", hidden_dim " + std::to_string(c.hidden_dim) +
         ", " + std::to_string(c.n_layers) + " layers, " + std::to_string(c.n_heads) +
         " heads, " + std::to_string(c.n_kv_heads) + " kv heads, vocab " +
         std::to_string(c.vocab_size) + ", seq_len " + std::to_string(c.seq_len) +
         (c.shared_classifier ? ", shared classifier" : ", separate classifier");
}

int64_t kv_dim(const Llama2cConfig& c) { return int64_t(c.dim) / c.n_heads * c.n_kv_heads; }
int64_t head_size(const Llama2cConfig& c) { return int64_t(c.dim) / c.n_heads; }

// Whole-file size in closed form, so that no count from the header is trusted before the
// file is known to hold that many bytes. nullopt when the arithmetic overflows.
std::optional<uint64_t> expected_bytes(const Llama2cConfig& c, int version) {
  bool overflow = false;
  auto mul = [&](uint64_t a, uint64_t b) {
    uint64_t r;
    overflow |= __builtin_mul_overflow(a, b, &r);
    return r;
  };
  auto add = [&](uint64_t a, uint64_t b) {
    uint64_t r;
    overflow |= __builtin_add_overflow(a, b, &r);
    return r;
  };
  const uint64_t d = uint64_t(c.dim), h = uint64_t(c.hidden_dim), kv = uint64_t(kv_dim(c));
  const uint64_t per_layer =
      add(add(mul(2, d), mul(2, mul(d, d))), add(mul(2, mul(kv, d)), mul(3, mul(h, d))));
  uint64_t floats = add(mul(uint64_t(c.n_layers), per_layer), d);
  floats = add(floats, mul(c.shared_classifier ? 1 : 2, mul(uint64_t(c.vocab_size), d)));
  if (version == 0) floats = add(floats, mul(uint64_t(c.seq_len), uint64_t(head_size(c))));
  const uint64_t header = version == 0 ? kLegacyHeaderBytes : kVersionedHeaderBytes;
  const uint64_t total = add(header, mul(floats, 4));
  if (overflow) return std::nullopt;
  return total;
}

// Calls fn(name, shape, is_weight) for each array in file order. The two RoPE tables of
// the legacy layout are not weights; they are reported under their llama2.c names.
template <class Fn>
void for_each_array(const Llama2cConfig& c, int version, Fn&& fn) {
  const int64_t d = c.dim, h = c.hidden_dim, kv = kv_dim(c), v = c.vocab_size;
  auto per_layer = [&](const char* suffix, const Shape& shape) {
    for (int l = 0; l < c.n_layers; ++l)
      fn("blk." + std::to_string(l) + "." + suffix, shape, true);
  };
  auto matrices = [&] {
    per_layer("attn_q.weight", {d, d});
    per_layer("attn_k.weight", {kv, d});
    per_layer("attn_v.weight", {kv, d});
    per_layer("attn_output.weight", {d, d});
  };
  auto ffn = [&] {
    per_layer("ffn_gate.weight", {h, d});
    per_layer("ffn_down.weight", {d, h});
    per_layer("ffn_up.weight", {h, d});
  };
  if (version == 0) {
    fn("token_embd.weight", Shape{v, d}, true);
    per_layer("attn_norm.weight", {d});
    matrices();
    per_layer("ffn_norm.weight", {d});
    ffn();
    fn("output_norm.weight", Shape{d}, true);
    fn("freq_cis_real", Shape{c.seq_len, head_size(c) / 2}, false);
    fn("freq_cis_imag", Shape{c.seq_len, head_size(c) / 2}, false);
  } else {
    per_layer("attn_norm.weight", {d});
    per_layer("ffn_norm.weight", {d});
    fn("output_norm.weight", Shape{d}, true);
    fn("token_embd.weight", Shape{v, d}, true);
    matrices();
    ffn();
  }
  if (!c.shared_classifier) fn("output.weight", Shape{v, d}, true);
}

[[noreturn]] void too_short(const std::string& path, size_t size, size_t need,
                            const char* what) {
  throw Error(path, std::string("not a llama2.c checkpoint: the file has ") +
                        std::to_string(size) + " bytes, too short for " + what + " (" +
                        std::to_string(need) + " bytes)");
}

}  // namespace

ModelFile read_llama2c(const std::string& path) {
  const auto file = MappedFile::open(path);
  const size_t size = file->size();
  const std::byte* p = file->data();

  // Legacy files have no magic: a first word equal to "ak42" marks the versioned layout.
  if (size < 4) too_short(path, size, kLegacyHeaderBytes, "a llama2.c header");
  uint32_t first;
  std::memcpy(&first, p, 4);
  int version = 0;
  int64_t fields_at = 0;
  Llama2cConfig c;
  if (first == kMagic) {
    if (size < 8) too_short(path, size, kVersionedHeaderBytes, "a llama2.c version header");
    const int32_t v = load_i32(p + 4);
    if (v == 2) throw Error(path, "llama2.c version 2 (Q8_0) checkpoints are not supported", 4);
    if (v != 1)
      throw Error(path, "unsupported llama2.c checkpoint version " + std::to_string(v) +
                            " (versions 0, 1 are read)", 4);
    if (size < kVersionedHeaderBytes)
      too_short(path, size, kVersionedHeaderBytes, "a llama2.c version 1 header");
    version = 1;
    fields_at = kVersionedFieldsAt;
  } else if (size < kLegacyHeaderBytes) {
    too_short(path, size, kLegacyHeaderBytes, "a llama2.c header");
  }
  int32_t f[7];
  for (int i = 0; i < 7; ++i) f[i] = load_i32(p + fields_at + 4 * i);
  c.dim = f[0], c.hidden_dim = f[1], c.n_layers = f[2], c.n_heads = f[3], c.n_kv_heads = f[4];
  c.vocab_size = f[5], c.seq_len = f[6];
  const std::string prefix = version == 0 ? "not a llama2.c checkpoint: "
                                          : "invalid llama2.c version 1 header: ";
  if (version == 0) {
    // The legacy format signs vocab_size to say whether a separate classifier follows.
    c.shared_classifier = f[5] > 0;
    if (f[5] < 0 && f[5] != INT32_MIN) c.vocab_size = -f[5];
  } else {
    const uint8_t flag = uint8_t(p[kSharedFlagAt]);
    if (flag > 1)
      throw Error(path, prefix + "shared_classifier flag is " + std::to_string(flag) +
                            " (must be 0 or 1)", kSharedFlagAt);
    c.shared_classifier = flag == 1;
  }
  if (const auto problem = config_problem(c))
    throw Error(path, prefix + problem->message, fields_at + 4 * problem->field);

  const auto expected = expected_bytes(c, version);
  if (!expected)
    throw Error(path, prefix + "header (" + describe(c) + ") implies a size beyond 2^64 bytes");
  if (*expected != size)
    throw Error(path, prefix + "header (" + describe(c) + ") implies " +
                          std::to_string(*expected) + " bytes but the file has " +
                          std::to_string(size));

  ModelFile m;
  m.format = ModelFormat::Llama2c;
  m.path = path;
  m.architecture = "llama";
  m.hparams = {{"dim", c.dim},
               {"hidden_dim", c.hidden_dim},
               {"n_layers", c.n_layers},
               {"n_heads", c.n_heads},
               {"n_kv_heads", c.n_kv_heads},
               {"vocab_size", c.vocab_size},
               {"seq_len", c.seq_len},
               {"shared_classifier", c.shared_classifier},
               {"version", version}};
  // The size check above bounds every count here by the file's length.
  size_t offset = version == 0 ? kLegacyHeaderBytes : kVersionedHeaderBytes;
  for_each_array(c, version, [&](std::string name, const Shape& shape, bool is_weight) {
    const size_t nbytes = size_t(*checked_numel(shape)) * 4;
    if (is_weight)
      m.tensors.push_back(Tensor::view(DType::F32, shape, p + offset, nbytes, file,
                                       std::move(name)));
    offset += nbytes;
  });
  return m;
}

Llama2cConfig llama2c_config(const ModelFile& model) {
  Llama2cConfig c;
  const auto& h = model.hparams;
  auto get = [&](const char* key) -> const nlohmann::ordered_json& {
    const auto it = h.find(key);
    if (it == h.end())
      throw Error(model.path, std::string("not a llama2.c model: hyper-parameter '") + key +
                                  "' is missing");
    return *it;
  };
  try {
    c.dim = get("dim").get<int>();
    c.hidden_dim = get("hidden_dim").get<int>();
    c.n_layers = get("n_layers").get<int>();
    c.n_heads = get("n_heads").get<int>();
    c.n_kv_heads = get("n_kv_heads").get<int>();
    c.vocab_size = get("vocab_size").get<int>();
    c.seq_len = get("seq_len").get<int>();
    c.shared_classifier = get("shared_classifier").get<bool>();
  } catch (const nlohmann::json::exception& e) {
    throw Error(model.path, std::string("not a llama2.c model: ") + e.what());
  }
  return c;
}

void write_llama2c(const std::string& path, const Llama2cConfig& c,
                   const std::vector<Tensor>& tensors) {
  const std::string prefix = "cannot write a llama2.c checkpoint: ";
  if (const auto problem = config_problem(c)) throw Error(path, prefix + problem->message);
  const auto expected = expected_bytes(c, 0);
  if (!expected) throw Error(path, prefix + "(" + describe(c) + ") overflows 64-bit sizes");

  std::map<std::string_view, const Tensor*> by_name;
  for (const Tensor& t : tensors) by_name.emplace(t.name(), &t);
  auto find = [&](const std::string& name) -> const Tensor* {
    const auto it = by_name.find(name);
    return it == by_name.end() ? nullptr : it->second;
  };
  // Everything is checked before the file is created.
  for_each_array(c, 0, [&](const std::string& name, const Shape& shape, bool is_weight) {
    if (!is_weight) return;
    const Tensor* t = find(name);
    if (!t) throw Error(path, prefix + "tensor " + name + " is missing");
    if (t->dtype() != DType::F32)
      throw Error(path, prefix + "tensor " + name + " is " + std::string(dtype_name(t->dtype())) +
                            "; llama2.c stores only F32");
    if (t->shape() != shape)
      throw Error(path, prefix + "tensor " + name + " has shape " + shape_string(t->shape()) +
                            ", expected " + shape_string(shape));
  });
  if (c.shared_classifier) {
    const Tensor* out = find("output.weight");
    const Tensor* embd = find("token_embd.weight");
    if (out && (out->dtype() != DType::F32 || out->shape() != embd->shape() ||
                std::memcmp(out->data(), embd->data(), embd->nbytes()) != 0))
      throw Error(path, prefix + "output.weight differs from token_embd.weight but the "
                                 "config says the classifier is shared");
  }

  AtomicFile out(path);
  const int32_t header[7] = {c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads,
                             c.shared_classifier ? c.vocab_size : -c.vocab_size, c.seq_len};
  out.write(header, sizeof header);
  // RoPE tables as llama2.c's exporter computes them (in f32): row t, column j holds
  // cos/sin of t * theta^(-2j / head_size).
  const int64_t half = head_size(c) / 2;
  const size_t n_freqs = size_t(half);
  std::vector<float> freqs(n_freqs), row(n_freqs);
  for (int64_t j = 0; j < half; ++j)
    freqs[size_t(j)] = float(1.0 / std::pow(kRopeTheta, double(2 * j) / double(2 * half)));
  for_each_array(c, 0, [&](const std::string& name, const Shape&, bool is_weight) {
    if (is_weight) {
      const Tensor* t = find(name);
      out.write(t->data(), t->nbytes());
      return;
    }
    const bool real = name == "freq_cis_real";
    for (int t = 0; t < c.seq_len; ++t) {
      for (int64_t j = 0; j < half; ++j) {
        const float angle = float(t) * freqs[size_t(j)];
        row[size_t(j)] = real ? std::cos(angle) : std::sin(angle);
      }
      out.write(row.data(), row.size() * sizeof(float));
    }
  });
  if (out.position() != *expected)
    throw Error(path, prefix + "internal error: wrote " + std::to_string(out.position()) +
                          " bytes, expected " + std::to_string(*expected));
  out.commit();
}

}  // namespace mcw
