// The factor GPTQ and SparseGPT sweep with, made from a layer's calibration statistics:
// U upper triangular with Uᵀ·U = Ĥ⁻¹, where Ĥ is XᵀX with its columns in the sweep's
// order, dead columns (diag 0) given 1 on the diagonal, and damp·I added.
//
// Precision: both methods' reference code (IST-DASLab gptq / sparsegpt) factorise in f32,
// and so does this by default, at the f32 GEMM's speed, with no f64 copy of the Hessian.
// A badly conditioned Ĥ can lose most of an f32 factor's digits, so every f32 factor is
// checked: with a fixed random ±1 vector z, r = ‖U·Ĥ·Uᵀ·z − z‖ / ‖z‖ (an estimate of
// ‖U·Ĥ·Uᵀ − I‖_F / √n, exact 0 for an exact factor) is computed in f64 against the f64
// statistics. When r exceeds the tolerance, or the f32 Cholesky finds a non-positive
// pivot, the factor is made again in f64 (MCW's choice: the reference has no such check)
// and rounded to f32 for the sweep.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/core/progress.h"

namespace mcw {

struct HessianFactorOptions {
  double damp = 0;          // absolute, added to every diagonal entry
  double tolerance = 1e-3;  // largest accepted f32 residual r; 0: always f64
};

struct HessianFactorReport {
  bool f64 = false;         // the f32 factor was refused (or tolerance 0)
  double residual = 0;      // r of the factor returned
  double f32_residual = 0;  // r of the f32 attempt (inf: its Cholesky failed; 0: none made)
};

// xtx [n,n] f64; perm: sweep position -> column (empty: identity); dead: per column, 1 when
// its diag is to be taken as 1. U receives n·n floats. False when Ĥ is not positive
// definite even in f64 (the caller raises the dampening).
bool factor_inverse_hessian(const std::vector<double>& xtx, int64_t n,
                            const std::vector<int64_t>& perm, const std::vector<uint8_t>& dead,
                            const HessianFactorOptions& opt, std::vector<float>& U,
                            HessianFactorReport* report = nullptr,
                            const CancelToken* cancel = nullptr);
// factor_inverse_hessian with damp = percdamp · mean(diag Ĥ) (dead columns counted as 1,
// summed in the sweep's order); while Ĥ is not positive definite it is tried again with
// percdamp + 0.01·2^k, k = 0, 1, 2, … while that is at most 1 (from 0.01: 0.02, 0.03, 0.05,
// 0.09, 0.17, 0.33, 0.65). Returns the percdamp that worked; throws
// mcw::Error(name, "<method>: …") when none does.
double factor_dampened(const std::vector<double>& xtx, int64_t n, const std::vector<int64_t>& perm,
                       const std::vector<uint8_t>& dead, double percdamp, double tolerance,
                       std::vector<float>& U, HessianFactorReport* report,
                       const CancelToken* cancel, const std::string& name,
                       const std::string& method);

// What a run log says about a factorisation that did not go as asked ("" when it did):
// dampening raised from `requested` to `used`, or the factor made in f64.
std::string dampening_note(double requested, double used, const HessianFactorReport& report);

}  // namespace mcw
