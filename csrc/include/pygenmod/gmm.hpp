// Gaussian mixtures: batched EM. The per-point math (PGM_HD) is shared by the CPU and CUDA
// launchers; the CPU launchers below run blocked loops over chunks of points.
//
// Layout (per set b of a batch): X[b, n, d], point weights W[b, n] (0 = padding),
// mixture weights[b, k], means[b, k, d], and covariances / precision Cholesky factors
//   full:      [b, k, d, d]     tied: [b, d, d]     diag: [b, k, d]     spherical: [b, k]
// following scikit-learn: precision = P P^T with P upper triangular (P = L^{-T}, cov = L L^T);
// for diag/spherical P holds 1/sqrt(variance).
//
// Statistics are accumulated in float64 (acc_t) in a FIXED order: points are split into a
// number of groups that depends only on N, each group is summed serially, and the group
// partials are added in group order. Results therefore do not depend on the thread count or
// on whether a set is processed alone (parallel over groups) or in a batch (parallel over sets).
// (The groups: pygenmod/launch_grid.hpp; the CUDA kernels also cut each group into tiles added
// in tile order, whatever their grid.)
//
// The family is split by layer under pygenmod/gmm/: math.hpp (host/device math, codes),
// simd.hpp (CPU micro-kernels), cpu.hpp (CPU launchers), init.hpp (initialisation), gmr.hpp
// (GMR: the conditioning and the per-query part). Device code includes only the math; this
// header includes every layer the compiler can build.
#pragma once

#include "pygenmod/gmm/math.hpp"

#if !defined(__CUDACC__)
#include "pygenmod/gmm/cpu.hpp"
#include "pygenmod/gmm/gmr.hpp"
#include "pygenmod/gmm/init.hpp"
#endif
