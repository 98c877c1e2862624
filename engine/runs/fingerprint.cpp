#include "engine/runs/fingerprint.h"

#include <algorithm>

#include "engine/core/sha256.h"

namespace mcw {

namespace {

constexpr size_t kSample = 4096;

// Lengths go in before every variable-length field, so ("ab","c") and ("a","bc") differ.
void put_field(Sha256& h, std::string_view s) {
  const uint64_t n = s.size();
  h.update(&n, sizeof n);
  h.update(s);
}

void put_bytes(Sha256& h, const Tensor& t, bool whole) {
  const auto* p = static_cast<const uint8_t*>(t.data());
  const size_t n = t.nbytes();
  if (!p || n == 0) return;
  if (whole || n <= 3 * kSample) {
    h.update(p, n);
    return;
  }
  h.update(p, kSample);
  h.update(p + (n / 2 - kSample / 2), kSample);
  h.update(p + (n - kSample), kSample);
}

}  // namespace

std::string model_fingerprint(const ModelFile& m) {
  uint64_t total = 0;
  for (const Tensor& t : m.tensors) total += t.nbytes();
  const bool whole = total <= kFingerprintFullBytes;
  Sha256 h;
  put_field(h, whole ? "mcw-fingerprint-v1 whole" : "mcw-fingerprint-v1 sampled");
  put_field(h, model_format_name(m.format));
  put_field(h, m.architecture);
  put_field(h, m.hparams.dump());
  const uint64_t count = m.tensors.size();
  h.update(&count, sizeof count);
  for (const Tensor& t : m.tensors) {
    put_field(h, t.name());
    put_field(h, dtype_name(t.dtype()));
    put_field(h, shape_string(t.shape()));
    const uint64_t nbytes = t.nbytes();
    h.update(&nbytes, sizeof nbytes);
    put_bytes(h, t, whole);
  }
  return to_hex(h.finish());
}

}  // namespace mcw
