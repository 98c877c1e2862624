// A tiny text recogniser written byte by byte, for the tests of ONNX projects (engine and
// studio): x [1, 3, 48, W] -> Conv W [7, 3, 48, 8] (stride 48 x 8) -> ReduceMean over the
// height -> Transpose -> MatMul Wm [7, 7] -> Softmax = [1, W / 8, 7] probabilities over
// blank, a..e and space; ppocr_keys_v1.txt (a..e) beside it.
#pragma once
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "onnx_test_writer.h"

namespace mcw::test {

constexpr int64_t kClasses = 7;        // blank, a..e, space
constexpr int64_t kCols = 3 * 48 * 8;  // the conv's im2col patch

inline Pb int_attr(const std::string& name, int64_t v) {
  return Pb().bytes(1, name).i(3, v).i(20, 2);
}

inline std::filesystem::path write_recogniser(const std::filesystem::path& dir) {
  Pb g;
  g.bytes(2, "rec");
  auto node = [&](const std::string& op, const std::vector<std::string>& in, const std::string& out,
                  const std::vector<Pb>& attrs) {
    Pb n;
    for (const std::string& s : in) n.bytes(1, s);
    n.bytes(2, out).bytes(3, out + "_node").bytes(4, op);
    for (const Pb& a : attrs) n.msg(5, a);
    g.msg(1, n);
  };
  node("Conv", {"x", "W"}, "c", {ints_attr("strides", {48, 8})});
  node("ReduceMean", {"c"}, "r", {ints_attr("axes", {2}), int_attr("keepdims", 0)});
  node("Transpose", {"r"}, "t", {ints_attr("perm", {0, 2, 1})});
  node("MatMul", {"t", "Wm"}, "m", {});
  node("Softmax", {"m"}, "y", {int_attr("axis", -1)});
  std::mt19937 rng(11);
  auto randn = [&](int64_t n, float stddev) {
    std::normal_distribution<float> d(0, stddev);
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = d(rng);
    return v;
  };
  const std::vector<float> w = randn(kClasses * kCols, 0.05f);
  std::vector<float> wm = randn(kClasses * kClasses, 0.4f);
  for (int64_t k = 0; k < kClasses; ++k) wm[size_t(k * kClasses + k)] += 2.0f;
  g.msg(5, onnx_tensor("W", 1, {kClasses, 3, 48, 8}).bytes(9, Pb::raw(w)));
  g.msg(5, onnx_tensor("Wm", 1, {kClasses, kClasses}).bytes(9, Pb::raw(wm)));
  g.msg(11, onnx_value("x", {"1", "3", "48", "W"}));
  g.msg(12, onnx_value("y", {"1", "T", std::to_string(kClasses)}));
  Pb id, m;
  id.bytes(1, "").i(2, 13);
  m.i(1, 8).bytes(2, "mcw-test").msg(7, g).msg(8, id);
  std::ofstream(dir / "rec.onnx", std::ios::binary) << m.b;
  std::ofstream(dir / "ppocr_keys_v1.txt") << "a\nb\nc\nd\ne\n";
  return dir / "rec.onnx";
}

}  // namespace mcw::test
