// Eigendecomposition of small dense symmetric matrices by cyclic Jacobi rotations (Golub & Van
// Loan, Matrix Computations, 4th ed., section 8.5). For the few-dimensional blocks of GMR's
// conditioning: no LAPACK call per block, and small eigenvalues come out to high relative
// accuracy. O(n^3) per sweep with ~6-10 sweeps: meant for n up to a few dozen.
#pragma once

#include <cfloat>
#include <cmath>

#include "pygenmod/common.hpp"

namespace pygenmod::linalg {

// a: n x n symmetric, row-major, overwritten. w: the n eigenvalues (in no particular order);
// v: n x n, row-major, eigenvector j in column j (a = v diag(w) v^T to rounding).
inline void sym_eig(index_t n, double* a, double* w, double* v) {
  for (index_t i = 0; i < n; ++i)
    for (index_t j = 0; j < n; ++j) v[i * n + j] = i == j ? 1.0 : 0.0;
  // Scaled by a power of two (exact) so that the sums of squares below neither overflow nor
  // underflow whatever the matrix's magnitude; the eigenvalues are scaled back at the end.
  double top = 0;
  for (index_t i = 0; i < n * n; ++i) top = std::fabs(a[i]) > top ? std::fabs(a[i]) : top;
  const int shift = top > 0 && std::isfinite(top) ? std::ilogb(top) : 0;
  if (shift != 0) {
    const double down = std::ldexp(1.0, -shift);
    for (index_t i = 0; i < n * n; ++i) a[i] *= down;
  }
  for (int sweep = 0; sweep < 100; ++sweep) {
    double off = 0, diag = 0;
    for (index_t p = 0; p < n; ++p) {
      diag += a[p * n + p] * a[p * n + p];
      for (index_t q = p + 1; q < n; ++q) off += a[p * n + q] * a[p * n + q];
    }
    if (!(off > DBL_EPSILON * DBL_EPSILON * 1e-4 * diag)) break;  // also stops on 0 and NaN
    for (index_t p = 0; p < n; ++p)
      for (index_t q = p + 1; q < n; ++q) {
        const double apq = a[p * n + q];
        if (apq == 0) continue;
        // the rotation that zeroes a_pq: t = tan of its angle, the smaller root (|angle| <= pi/4)
        const double theta = (a[q * n + q] - a[p * n + p]) / (2 * apq);
        const double t = std::fabs(theta) > 1e150
                             ? 0.5 / theta
                             : (theta >= 0 ? 1.0 : -1.0) / (std::fabs(theta) + std::sqrt(theta * theta + 1));
        const double c = 1 / std::sqrt(t * t + 1), s = t * c;
        for (index_t k = 0; k < n; ++k) {  // columns p, q
          const double akp = a[k * n + p], akq = a[k * n + q];
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (index_t k = 0; k < n; ++k) {  // rows p, q
          const double apk = a[p * n + k], aqk = a[q * n + k];
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
        a[p * n + q] = a[q * n + p] = 0;  // exactly, not to rounding
        for (index_t k = 0; k < n; ++k) {
          const double vkp = v[k * n + p], vkq = v[k * n + q];
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
      }
  }
  const double up = std::ldexp(1.0, shift);
  for (index_t i = 0; i < n; ++i) w[i] = a[i * n + i] * up;
}

}  // namespace pygenmod::linalg
