// The VAE evidence lower bound (thesis eq. 1.1), one fused pass per row:
//
//   elbo_b = (1/S) sum_s log p(x_b | dec_{s,b}) - beta * KL(q(z | x_b) || p(z))
//
// given the encoder's outputs (mu and a diagonal scale, or a Cholesky factor), an optional
// diagonal Gaussian prior, the data x and the decoder's outputs for S samples of z (the sample
// itself is drawn by sampling.hpp's heads; the decoder runs on it in between, so z is not an
// input here). The KL and Gaussian log-density rows are sampling.hpp's; the per-row math
// below is host/device code shared by the CPU launchers (here) and csrc/cuda/elbo.cu.
//
// Decoders (likelihood `lik`), x row b (B, X) against decoder row (s, b):
//   GAUSSIAN:    dec (S, B, X) means, dp the scale of kind dkind, (S, B, X) learned or (X,)
//                fixed (dp_shared), or null for unit variance; log N(x; dec, sigma^2) summed
//                over X.
//   BERNOULLI:   dec (S, B, X) logits; x * l - softplus(l) (x in [0, 1]: the binary
//                cross-entropy, a normalised log-probability for x in {0, 1}).
//   CATEGORICAL: dec (S, B, X, K) logits, xi (B, X) int32 indices; l[x] - logsumexp(l).
// Per-row status: 0 fine, 1 a non-finite encoder/prior value or non-positive scale, 2 a
// scale_tril that is not lower triangular with a positive diagonal, 3 a non-finite decoder
// output (or decoder scale). x's values are validated by the Python layer.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "pygenmod/sampling.hpp"

namespace pygenmod::elbo {

using sampling::nan_if_bad;

enum Lik : int { GAUSSIAN = 0, BERNOULLI = 1, CATEGORICAL = 2 };

template <class T>
struct Args {
  const T* mu;  // (B, D)
  const T* p;   // (B, D) diagonal scale of kind `kind`, or null with L
  const T* L;   // (B, D, D) lower-triangular factor, or null
  const T* pm;  // (B, D) prior mean, or null (0)
  const T* pp;  // (B, D) prior scale (kind `kind`), or null (1)
  int kind;
  T lo, hi;  // clamp of the encoder / prior scale parameter
  int lik;
  const T* x;              // (B, X), GAUSSIAN / BERNOULLI
  const std::int32_t* xi;  // (B, X), CATEGORICAL
  const T* dec;            // (S, B, X) or (S, B, X, K)
  const T* dp;             // decoder scale: (S, B, X), (X,) when dp_shared; null: unit variance (or not Gaussian)
  bool dp_shared;
  int dkind;
  T beta;
  index_t S, B, D, X, K;
};

// log(1 + e^l) without overflow. log(1 + e) rather than log1p(e), e = e^-|l| in (0, 1]: the
// vectorisable log of sampling.hpp, and the absolute error (e below the rounding of 1 + e) is
// under one unit in the last place of 1.
template <class T>
PGM_HD T softplus(T l) {
  return (l > T(0) ? l : T(0)) + sampling::log_t(T(1) + sampling::exp_t(-(l < T(0) ? -l : l)));
}

// `omp simd` with the two sums of a likelihood row (host only).
#if !defined(__CUDACC__)
#define PGM_ELBO_SIMD _Pragma("omp simd reduction(+ : lp, chk)")
#else
#define PGM_ELBO_SIMD
#endif

// The diagonal-Gaussian rows: on the CPU sampling.hpp's *_cpu rows (vector passes, the same
// values within rounding; the backward ones the same bits), the serial rows on the device.
#if !defined(__CUDACC__)
#define PGM_ELBO_ROW(name) sampling::name##_cpu
#else
#define PGM_ELBO_ROW(name) sampling::name
#endif

template <class T>
PGM_HD T sigmoid(T l) {
  const T e = sampling::exp_t(-(l < T(0) ? -l : l));
  return l >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
}

// log N(x; d, I) summed over a row of X features: a difference and a square per feature (the
// general Gaussian row takes an exp and a division for the same thing). *chk_out is NaN iff a
// difference x_j - d_j is not finite.
template <class T>
PGM_HD T unit_normal_log_prob_row(const T* x, const T* d, index_t X, T* chk_out) {
  T lp = 0, chk = 0;
  PGM_ELBO_SIMD
  for (index_t j = 0; j < X; ++j) {
    const T u = x[j] - d[j];
    lp += u * u;
    chk += nan_if_bad(u);  // (x is finite: a non-finite dec, or a difference that overflows)
  }
  *chk_out = chk;
  return T(-0.5) * lp - static_cast<T>(static_cast<double>(X) * sampling::HALF_LOG_2PI);
}

#if !defined(__CUDACC__)
// The same row compiled for each ISA (the width of its sums is the ISA's).
template <class T>
PGM_CLONES T unit_normal_log_prob_row_cpu(const T* x, const T* d, index_t X, T* chk_out) {
  return unit_normal_log_prob_row<T>(x, d, X, chk_out);
}
#define PGM_ELBO_UNIT_ROW unit_normal_log_prob_row_cpu
#else
#define PGM_ELBO_UNIT_ROW unit_normal_log_prob_row
#endif

// log p(x_b | dec_{s,b}) and its check sum (NaN iff a non-finite decoder value).
template <class T>
PGM_HD T log_lik_row(const Args<T>& a, index_t s, index_t b, T* chk_out) {
  const index_t X = a.X, row = s * a.B + b;
  T lp = 0, chk = 0;
  if (a.lik == GAUSSIAN && !a.dp) {
    lp = PGM_ELBO_UNIT_ROW<T>(a.x + b * X, a.dec + row * X, X, &chk);
  } else if (a.lik == GAUSSIAN) {
    const T* dp = a.dp_shared ? a.dp : a.dp + row * X;
    lp = PGM_ELBO_ROW(normal_log_prob_row)<T>(a.x + b * X, a.dec + row * X, dp, a.dkind, neg_inf<T>(), -neg_inf<T>(), X,
                                              &chk);
  } else if (a.lik == BERNOULLI) {
    const T* l = a.dec + row * X;
    const T* x = a.x + b * X;
    PGM_ELBO_SIMD
    for (index_t j = 0; j < X; ++j) {
      lp += x[j] * l[j] - softplus<T>(l[j]);
      chk += nan_if_bad(l[j]);
    }
  } else {
    const index_t K = a.K;
    for (index_t j = 0; j < X; ++j) {
      const T* l = a.dec + (row * X + j) * K;
      T mx = l[0];
      for (index_t k = 1; k < K; ++k) mx = l[k] > mx ? l[k] : mx;
      T se = 0;
      for (index_t k = 0; k < K; ++k) {
        se += sampling::exp_t(l[k] - mx);
        chk += nan_if_bad(l[k]);
      }
      const std::int32_t c = a.xi[b * X + j];
      if (c < 0 || c >= K) {  // (the Python layer rejects it first; never read out of bounds)
        chk += std::numeric_limits<T>::quiet_NaN();
        continue;
      }
      lp += l[c] - mx - sampling::log_t(se);
    }
  }
  *chk_out = chk;
  return lp;
}

// Row b: writes the ELBO, the mean log-likelihood and the KL (each output may be null) and
// returns the status.
template <class T>
PGM_HD int elbo_row(const Args<T>& a, index_t b, T* elbo, T* log_lik, T* kl) {
  const index_t D = a.D;
  const T* m = a.mu + b * D;
  T k = 0, chk = 0;
  int bad = 0;
  if (a.L) {
    const T* L = a.L + b * D * D;
    T logdet = 0;
    bad = sampling::check_tril<T>(L, D, true, &logdet);
    for (index_t d = 0; d < D; ++d) chk += nan_if_bad(m[d]);
    if (!bad) k = sampling::mvn_kl_std<T>(m, L, D, logdet);
  } else {
    k = PGM_ELBO_ROW(kl_normal_row)<T>(m, a.p + b * D, a.pm ? a.pm + b * D : nullptr, a.pp ? a.pp + b * D : nullptr,
                                       a.kind, a.lo, a.hi, D, &chk);
  }
  if (!bad && chk != T(0)) bad = 1;
  T ll = 0, dchk = 0;
  for (index_t s = 0; s < a.S; ++s) {
    T c;
    ll += log_lik_row<T>(a, s, b, &c);
    dchk += c;
  }
  ll /= static_cast<T>(a.S);
  if (!bad && dchk != T(0)) bad = 3;
  if (elbo) elbo[b] = ll - a.beta * k;
  if (log_lik) log_lik[b] = ll;
  if (kl) kl[b] = k;
  return bad;
}

// Gradients of row b, given the upstream gradients of its outputs gelbo, gll, gkl (scalars).
// Encoder: dmu (B, D) and dp (B, D) or dL (B, D, D); prior: dpm, dpp (B, D) or null. Decoder:
// ddec like dec, ddp (S, B, X) for a learned scale (null otherwise). Every output is written
// (not accumulated).
template <class T>
PGM_HD void elbo_row_backward(const Args<T>& a, index_t b, T gelbo, T gll, T gkl, T* dmu, T* dp, T* dL, T* dpm, T* dpp,
                              T* ddec, T* ddp) {
  const index_t D = a.D, X = a.X;
  const T gk = gkl - a.beta * gelbo, gr = (gelbo + gll) / static_cast<T>(a.S);
  const T* m = a.mu + b * D;
  if (a.L) {
    const T* L = a.L + b * D * D;
    T* dLb = dL + b * D * D;
    for (index_t i = 0; i < D; ++i) {
      dmu[b * D + i] = gk * m[i];
      for (index_t j = 0; j < D; ++j) dLb[i * D + j] = sampling::mvn_kl_std_dL<T>(L, D, i, j, gk, T(0));
    }
  } else {
    PGM_ELBO_ROW(kl_normal_row_backward)<T>(m, a.p + b * D, a.pm ? a.pm + b * D : nullptr,
                                            a.pp ? a.pp + b * D : nullptr, a.kind, a.lo, a.hi, D, gk, dmu + b * D,
                                            dp + b * D, dpm ? dpm + b * D : nullptr, dpp ? dpp + b * D : nullptr);
  }
  for (index_t s = 0; s < a.S; ++s) {
    const index_t row = s * a.B + b;
    if (a.lik == GAUSSIAN && !a.dp) {  // unit variance: d/d dec of -(x - dec)^2 / 2
      const T* x = a.x + b * X;
      const T* d = a.dec + row * X;
      T* dm = ddec + row * X;
      for (index_t j = 0; j < X; ++j) dm[j] = gr * (x[j] - d[j]);
    } else if (a.lik == GAUSSIAN) {
      T* dm = ddec + row * X;
      T* dq = ddp ? ddp + row * X : nullptr;
      for (index_t j = 0; j < X; ++j) {
        dm[j] = T(0);
        if (dq) dq[j] = T(0);
      }
      const T* q = a.dp_shared ? a.dp : a.dp + row * X;
      PGM_ELBO_ROW(normal_log_prob_row_backward)<T>(a.x + b * X, a.dec + row * X, q, a.dkind, neg_inf<T>(),
                                                    -neg_inf<T>(), X, gr, nullptr, dm, dq);
    } else if (a.lik == BERNOULLI) {
      const T* l = a.dec + row * X;
      const T* x = a.x + b * X;
      for (index_t j = 0; j < X; ++j) ddec[row * X + j] = gr * (x[j] - sigmoid<T>(l[j]));
    } else {
      const index_t K = a.K;
      for (index_t j = 0; j < X; ++j) {
        const T* l = a.dec + (row * X + j) * K;
        T* dl = ddec + (row * X + j) * K;
        T mx = l[0];
        for (index_t k = 1; k < K; ++k) mx = l[k] > mx ? l[k] : mx;
        T se = 0;
        for (index_t k = 0; k < K; ++k) se += sampling::exp_t(l[k] - mx);
        const T inv = T(1) / se;
        for (index_t k = 0; k < K; ++k) dl[k] = -gr * sampling::exp_t(l[k] - mx) * inv;
        const std::int32_t c = a.xi[b * X + j];
        if (c >= 0 && c < K) dl[c] += gr;
      }
    }
  }
}

#if !defined(__CUDACC__)
template <class T>
void elbo_cpu(const Args<T>& a, T* elbo, T* log_lik, T* kl, std::int32_t* status) {
  const index_t work = a.B * (a.D * (a.L ? a.D : 1) + a.S * a.X * (a.lik == CATEGORICAL ? a.K : 1));
  parallel_for(a.B, 32, work > sampling::PAR_MIN, [&](index_t b) { status[b] = elbo_row<T>(a, b, elbo, log_lik, kl); });
}

template <class T>
void elbo_backward_cpu(const Args<T>& a, const T* gelbo, const T* gll, const T* gkl, T* dmu, T* dp, T* dL, T* dpm,
                       T* dpp, T* ddec, T* ddp) {
  const index_t work = a.B * (a.D * (a.L ? a.D : 1) + a.S * a.X * (a.lik == CATEGORICAL ? a.K : 1));
  parallel_for(a.B, 32, work > sampling::PAR_MIN, [&](index_t b) {
    elbo_row_backward<T>(a, b, gelbo ? gelbo[b] : T(0), gll ? gll[b] : T(0), gkl ? gkl[b] : T(0), dmu, dp, dL, dpm, dpp,
                         ddec, ddp);
  });
}
#endif  // !__CUDACC__

}  // namespace pygenmod::elbo
