// CUDA launchers for the counter-based RNG and the samplers; the math (Philox, Box-Muller,
// scales, KL and log-density rows, triangular solves) is pygenmod/random.hpp's and
// pygenmod/sampling.hpp's, so a draw is the same function of (seed, stream, element) as on
// the CPU. Threads own a chunk of 4 elements of a row, or a whole row for the reductions.
#include <stdexcept>

#include "cuda_check.cuh"
#include "pygenmod/sampling.hpp"
#include "sampling.cuh"

namespace pygenmod::cuda {
using namespace pygenmod::sampling;
constexpr unsigned THREADS = 256;
constexpr int CH = 4;  // elements per thread chunk

__device__ __forceinline__ index_t tid() { return blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; }

template <class T>
__global__ void fill_kernel(int dist, u64 seed, u64 stream, u64 offset, index_t R, index_t N, T* out) {
  const index_t nch = (N + CH - 1) / CH, t = tid();
  if (t >= R * nch) return;
  const index_t r = t / nch, c = t % nch, n = N - c * CH < CH ? N - c * CH : CH;
  fill_range_scalar<T>(dist, seed, stream + r, offset + c * CH, n, out + r * N + c * CH);
}

__global__ void bits_kernel(u64 seed, u64 stream, u64 offset, index_t R, index_t N, std::uint32_t* out) {
  const index_t t = tid();
  if (t >= R * N) return;
  const index_t r = t / N, i = t % N;
  const u64 e = offset + i;
  out[t] = rng::block(seed, stream + r, e / 4).v[e % 4];
}

__global__ void philox_kernel(const std::uint32_t* ctr, const std::uint32_t* key, index_t n, std::uint32_t* out) {
  const index_t i = tid();
  if (i >= n) return;
  const rng::u32x4 r = rng::philox4x32_10(rng::u32x4{{ctr[4 * i], ctr[4 * i + 1], ctr[4 * i + 2], ctr[4 * i + 3]}},
                                          key[2 * i], key[2 * i + 1]);
  for (int k = 0; k < 4; ++k) out[4 * i + k] = r.v[k];
}

void sampling_philox(const std::uint32_t* ctr, const std::uint32_t* key, index_t n, std::uint32_t* out,
                     cudaStream_t st) {
  if (n == 0) return;
  philox_kernel<<<blocks_for(n, THREADS), THREADS, 0, st>>>(ctr, key, n, out);
  check_launch("philox");
}

template <class T>
void sampling_fill(int dist, u64 seed, u64 stream, u64 offset, index_t R, index_t N, T* out, cudaStream_t st) {
  const index_t n = R * ((N + CH - 1) / CH);
  if (n == 0) return;
  fill_kernel<T><<<blocks_for(n, THREADS), THREADS, 0, st>>>(dist, seed, stream, offset, R, N, out);
  check_launch("sampling_fill");
}

void sampling_bits(u64 seed, u64 stream, u64 offset, index_t R, index_t N, std::uint32_t* out, cudaStream_t st) {
  if (R * N == 0) return;
  bits_kernel<<<blocks_for(R * N, THREADS), THREADS, 0, st>>>(seed, stream, offset, R, N, out);
  check_launch("sampling_bits");
}

// Noise of elements [d0, d0 + n) of sample s, row b (n <= CH).
template <class T>
__device__ void noise(const T* eps_in, u64 seed, u64 stream, u64 offset, index_t s, index_t b, index_t B, index_t D,
                      index_t d0, index_t n, T* e) {
  if (eps_in) {
    for (index_t k = 0; k < n; ++k) e[k] = eps_in[(s * B + b) * D + d0 + k];
  } else {
    fill_range_scalar<T>(rng::NORMAL, seed, stream + b, offset + s * D + d0, n, e);
  }
}

template <class T>
__global__ void normal_z_kernel(const T* mu, const T* p, const T* eps_in, int kind, T lo, T hi, u64 seed, u64 stream,
                                u64 offset, index_t S, index_t B, index_t D, T* z, T* eps_out) {
  const index_t nch = (D + CH - 1) / CH, t = tid();
  if (t >= S * B * nch) return;
  const index_t row = t / nch, c = t % nch, s = row / B, b = row % B, d0 = c * CH;
  const index_t n = D - d0 < CH ? D - d0 : CH;
  T e[CH];
  noise<T>(eps_in, seed, stream, offset, s, b, B, D, d0, n, e);
  for (index_t k = 0; k < n; ++k) {
    const Scale<T> sc = scale_of<T>(kind, p[b * D + d0 + k], lo, hi);
    z[row * D + d0 + k] = mu[b * D + d0 + k] + sc.sigma * e[k];
    if (eps_out) eps_out[row * D + d0 + k] = e[k];
  }
}

template <class T>
__global__ void normal_rows_kernel(const T* mu, const T* p, const T* eps_in, int kind, T lo, T hi, u64 seed, u64 stream,
                                   u64 offset, index_t S, index_t B, index_t D, T* kl, T* logq, std::int32_t* status) {
  const index_t b = tid();
  if (b >= B) return;
  T chk = 0, klsum = 0, logsig = 0;
  for (index_t d = 0; d < D; ++d) {
    const T pd = p[b * D + d], md = mu[b * D + d];
    const Scale<T> sc = scale_of<T>(kind, pd, lo, hi);
    logsig += sc.log_sigma;
    klsum += T(0.5) * (sc.sigma * sc.sigma + md * md - T(1)) - sc.log_sigma;
    chk += nan_if_bad(md) + nan_if_bad(pd) + nan_if_bad(sc.log_sigma);
  }
  if (kl) kl[b] = klsum;
  if (logq || eps_in) {
    for (index_t s = 0; s < S; ++s) {
      T sq = 0, e[CH];
      for (index_t d0 = 0; d0 < D; d0 += CH) {
        const index_t n = D - d0 < CH ? D - d0 : CH;
        noise<T>(eps_in, seed, stream, offset, s, b, B, D, d0, n, e);
        for (index_t k = 0; k < n; ++k) sq += e[k] * e[k];
      }
      chk += nan_if_bad(sq);
      if (logq) logq[s * B + b] = T(-0.5) * sq - logsig - T(D * HALF_LOG_2PI);
    }
  }
  status[b] = chk == T(0) ? ROW_OK : ROW_NONFINITE;
}

template <class T>
void normal_head(const T* mu, const T* p, const T* eps_in, int kind, T lo, T hi, u64 seed, u64 stream, u64 offset,
                 index_t S, index_t B, index_t D, T* z, T* eps_out, T* kl, T* logq, std::int32_t* status,
                 cudaStream_t st) {
  const index_t n = S * B * ((D + CH - 1) / CH);
  if (n > 0) {
    normal_z_kernel<T><<<blocks_for(n, THREADS), THREADS, 0, st>>>(mu, p, eps_in, kind, lo, hi, seed, stream, offset, S,
                                                                   B, D, z, eps_out);
    check_launch("normal_head (z)");
  }
  if (B > 0) {
    normal_rows_kernel<T><<<blocks_for(B, THREADS), THREADS, 0, st>>>(mu, p, eps_in, kind, lo, hi, seed, stream, offset,
                                                                      S, B, D, kl, logq, status);
    check_launch("normal_head (rows)");
  }
}

template <class T>
__global__ void normal_backward_kernel(const T* mu, const T* p, const T* eps_in, int kind, T lo, T hi, u64 seed,
                                       u64 stream, u64 offset, index_t S, index_t B, index_t D, const T* gz,
                                       const T* gkl, const T* glogq, T* dmu, T* dp) {
  const index_t nch = (D + CH - 1) / CH, t = tid();
  if (t >= B * nch) return;
  const index_t b = t / nch, d0 = (t % nch) * CH, n = D - d0 < CH ? D - d0 : CH;
  const T gk = gkl ? gkl[b] : T(0);
  T glq = 0;
  if (glogq)
    for (index_t s = 0; s < S; ++s) glq += glogq[s * B + b];
  T am[CH] = {}, ap[CH] = {}, e[CH];
  if (gz)
    for (index_t s = 0; s < S; ++s) {
      noise<T>(eps_in, seed, stream, offset, s, b, B, D, d0, n, e);
      for (index_t k = 0; k < n; ++k) {
        const T g = gz[(s * B + b) * D + d0 + k];
        am[k] += g;
        ap[k] += g * e[k];
      }
    }
  for (index_t k = 0; k < n; ++k) {
    const index_t i = b * D + d0 + k;
    const Scale<T> sc = scale_of<T>(kind, p[i], lo, hi);
    dmu[i] = am[k] + gk * mu[i];
    dp[i] = (ap[k] * sc.sigma + kl_dlog_sigma(gk, sc.sigma) - glq) * sc.dlog_dp;
  }
}

template <class T>
void normal_head_backward(const T* mu, const T* p, const T* eps_in, int kind, T lo, T hi, u64 seed, u64 stream,
                          u64 offset, index_t S, index_t B, index_t D, const T* gz, const T* gkl, const T* glogq,
                          T* dmu, T* dp, cudaStream_t st) {
  const index_t n = B * ((D + CH - 1) / CH);
  if (n == 0) return;
  normal_backward_kernel<T><<<blocks_for(n, THREADS), THREADS, 0, st>>>(mu, p, eps_in, kind, lo, hi, seed, stream,
                                                                        offset, S, B, D, gz, gkl, glogq, dmu, dp);
  check_launch("normal_head_backward");
}

template <class T>
__global__ void kl_normal_kernel(const T* mu, const T* p, const T* pm, const T* pp, int kind, T lo, T hi, index_t B,
                                 index_t D, T* kl, std::int32_t* status) {
  const index_t b = tid();
  if (b >= B) return;
  T chk;
  kl[b] = kl_normal_row<T>(mu + b * D, p + b * D, pm ? pm + b * D : nullptr, pp ? pp + b * D : nullptr, kind, lo, hi, D,
                           &chk);
  status[b] = chk == T(0) ? ROW_OK : ROW_NONFINITE;
}

template <class T>
void kl_normal(const T* mu, const T* p, const T* pm, const T* pp, int kind, T lo, T hi, index_t B, index_t D, T* kl,
               std::int32_t* status, cudaStream_t st) {
  if (B == 0) return;
  kl_normal_kernel<T><<<blocks_for(B, THREADS), THREADS, 0, st>>>(mu, p, pm, pp, kind, lo, hi, B, D, kl, status);
  check_launch("kl_normal");
}

template <class T>
__global__ void kl_normal_backward_kernel(const T* mu, const T* p, const T* pm, const T* pp, int kind, T lo, T hi,
                                          index_t B, index_t D, const T* g, T* dmu, T* dp, T* dpm, T* dpp) {
  const index_t b = tid();
  if (b >= B) return;
  kl_normal_row_backward<T>(mu + b * D, p + b * D, pm ? pm + b * D : nullptr, pp ? pp + b * D : nullptr, kind, lo, hi,
                            D, g[b], dmu + b * D, dp + b * D, dpm ? dpm + b * D : nullptr, dpp ? dpp + b * D : nullptr);
}

template <class T>
void kl_normal_backward(const T* mu, const T* p, const T* pm, const T* pp, int kind, T lo, T hi, index_t B, index_t D,
                        const T* g, T* dmu, T* dp, T* dpm, T* dpp, cudaStream_t st) {
  if (B == 0) return;
  kl_normal_backward_kernel<T>
      <<<blocks_for(B, THREADS), THREADS, 0, st>>>(mu, p, pm, pp, kind, lo, hi, B, D, g, dmu, dp, dpm, dpp);
  check_launch("kl_normal_backward");
}

template <class T>
__global__ void log_prob_kernel(const T* x, const T* mu, const T* p, int kind, T lo, T hi, index_t R, index_t B,
                                index_t D, T* out, std::int32_t* status) {
  const index_t r = tid();
  if (r >= R) return;
  T chk;
  const index_t b = r % B;
  out[r] = normal_log_prob_row<T>(x + r * D, mu + b * D, p + b * D, kind, lo, hi, D, &chk);
  status[r] = chk == T(0) ? ROW_OK : ROW_NONFINITE;
}

template <class T>
void normal_log_prob(const T* x, const T* mu, const T* p, int kind, T lo, T hi, index_t R, index_t B, index_t D, T* out,
                     std::int32_t* status, cudaStream_t st) {
  if (R == 0) return;
  log_prob_kernel<T><<<blocks_for(R, THREADS), THREADS, 0, st>>>(x, mu, p, kind, lo, hi, R, B, D, out, status);
  check_launch("normal_log_prob");
}

template <class T>
__global__ void log_prob_backward_kernel(const T* x, const T* mu, const T* p, int kind, T lo, T hi, index_t R,
                                         index_t B, index_t D, const T* g, T* dx, T* dmu, T* dp) {
  const index_t b = tid();
  if (b >= B) return;
  for (index_t d = 0; d < D; ++d) dmu[b * D + d] = dp[b * D + d] = T(0);
  for (index_t r = b; r < R; r += B)
    normal_log_prob_row_backward<T>(x + r * D, mu + b * D, p + b * D, kind, lo, hi, D, g[r], dx + r * D, dmu + b * D,
                                    dp + b * D);
}

template <class T>
void normal_log_prob_backward(const T* x, const T* mu, const T* p, int kind, T lo, T hi, index_t R, index_t B,
                              index_t D, const T* g, T* dx, T* dmu, T* dp, cudaStream_t st) {
  if (B == 0) return;
  log_prob_backward_kernel<T>
      <<<blocks_for(B, THREADS), THREADS, 0, st>>>(x, mu, p, kind, lo, hi, R, B, D, g, dx, dmu, dp);
  check_launch("normal_log_prob_backward");
}

template <class T>
__global__ void mvn_rows_kernel(const T* mu, const T* L, bool shared, bool check_upper, index_t B, index_t D, T* kl,
                                std::int32_t* status) {
  const index_t b = tid();
  if (b >= B) return;
  const T* m = mu + b * D;
  const T* Lb = L + (shared ? 0 : b * D * D);
  T logdet;
  const int bad = check_tril<T>(Lb, D, check_upper && (!shared || b == 0), &logdet);
  T chk = 0;
  for (index_t d = 0; d < D; ++d) chk += nan_if_bad(m[d]);
  if (kl) kl[b] = mvn_kl_std<T>(m, Lb, D, logdet);
  status[b] = bad ? bad : (chk == T(0) ? ROW_OK : ROW_NONFINITE);
}

template <class T>
__global__ void mvn_samples_kernel(const T* mu, const T* L, bool shared, const T* eps_in, u64 seed, u64 stream,
                                   u64 offset, index_t S, index_t B, index_t D, T* z, T* eps_out, T* logq,
                                   std::int32_t* status) {
  const index_t row = tid();
  if (row >= S * B) return;
  const index_t s = row / B, b = row % B;
  const T* Lb = L + (shared ? 0 : b * D * D);
  T* zr = z + row * D;
  for (index_t i = 0; i < D; ++i) zr[i] = mu[b * D + i];
  T sq = 0, e[CH];
  for (index_t j0 = 0; j0 < D; j0 += CH) {
    const index_t n = D - j0 < CH ? D - j0 : CH;
    noise<T>(eps_in, seed, stream, offset, s, b, B, D, j0, n, e);
    for (index_t k = 0; k < n; ++k) {
      const index_t j = j0 + k;
      sq += e[k] * e[k];
      if (eps_out) eps_out[row * D + j] = e[k];
      for (index_t i = j; i < D; ++i) zr[i] += Lb[i * D + j] * e[k];
    }
  }
  if (eps_in && sq != sq) atomicOr(reinterpret_cast<int*>(status + b), 1);
  if (logq) {
    T logdet = 0;
    for (index_t i = 0; i < D; ++i) logdet += log_t(Lb[i * D + i]);
    logq[row] = T(-0.5) * sq - logdet - T(D * HALF_LOG_2PI);
  }
}

template <class T>
void mvn_head(const T* mu, const T* L, bool shared, bool check_upper, const T* eps_in, u64 seed, u64 stream, u64 offset,
              index_t S, index_t B, index_t D, T* z, T* eps_out, T* kl, T* logq, std::int32_t* status,
              cudaStream_t st) {
  if (B == 0) return;
  mvn_rows_kernel<T><<<blocks_for(B, THREADS), THREADS, 0, st>>>(mu, L, shared, check_upper, B, D, kl, status);
  check_launch("mvn_head (rows)");
  if (S * B == 0) return;
  mvn_samples_kernel<T><<<blocks_for(S * B, THREADS), THREADS, 0, st>>>(mu, L, shared, eps_in, seed, stream, offset, S,
                                                                        B, D, z, eps_out, logq, status);
  check_launch("mvn_head (samples)");
}

// Per row b: dmu, and dL[b] when every row has its own scale_tril.
template <class T>
__global__ void mvn_backward_kernel(const T* mu, const T* L, bool shared, const T* eps_in, u64 seed, u64 stream,
                                    u64 offset, index_t S, index_t B, index_t D, const T* gz, const T* gkl,
                                    const T* glogq, T* dmu, T* dL) {
  const index_t b = tid();
  if (b >= B) return;
  const T* Lb = L + (shared ? 0 : b * D * D);
  T* dLb = shared ? nullptr : dL + b * D * D;  // shared: mvn_shared_dL_* below
  T* dm = dmu + b * D;
  const T gk = gkl ? gkl[b] : T(0);
  T glq = 0;
  if (glogq)
    for (index_t s = 0; s < S; ++s) glq += glogq[s * B + b];
  for (index_t i = 0; i < D; ++i) {
    dm[i] = gk * mu[b * D + i];
    if (!dLb) continue;
    for (index_t j = 0; j < D; ++j) dLb[i * D + j] = mvn_kl_std_dL<T>(Lb, D, i, j, gk, glq);
  }
  if (!gz) return;
  T e[CH];
  for (index_t s = 0; s < S; ++s) {
    const T* g = gz + (s * B + b) * D;
    for (index_t i = 0; i < D; ++i) dm[i] += g[i];
    if (!dLb) continue;
    for (index_t j0 = 0; j0 < D; j0 += CH) {
      const index_t n = D - j0 < CH ? D - j0 : CH;
      noise<T>(eps_in, seed, stream, offset, s, b, B, D, j0, n, e);
      for (index_t k = 0; k < n; ++k)
        for (index_t i = j0 + k; i < D; ++i) dLb[i * D + j0 + k] += g[i] * e[k];
    }
  }
}

// One scale_tril shared by all B rows: its gradient is a sum over rows, reduced in a fixed
// order (no atomics, so the result is the same on every run): G row chunks, one thread per
// (chunk, i, j) sums its rows in order into part[g], then one thread per (i, j) adds the G
// partials in order. G depends only on (B, D).
inline index_t mvn_shared_chunks(index_t B, index_t D) {
  const index_t want = (65536 + D * D - 1) / (D * D > 0 ? D * D : 1);
  return want < 1 ? 1 : (want > B ? (B > 0 ? B : 1) : want);
}

template <class T>
__global__ void mvn_shared_dL_partial(const T* L, const T* eps_in, u64 seed, u64 stream, u64 offset, index_t S,
                                      index_t B, index_t D, index_t G, const T* gz, const T* gkl, const T* glogq,
                                      T* part) {
  const index_t t = tid();
  if (t >= G * D * D) return;
  const index_t g = t / (D * D), i = (t % (D * D)) / D, j = t % D;
  if (j > i) {
    part[t] = T(0);
    return;
  }
  const index_t b0 = B * g / G, b1 = B * (g + 1) / G, j0 = j - j % CH, n = D - j0 < CH ? D - j0 : CH;
  const T lij = L[i * D + j], lii = L[i * D + i];
  T acc = 0, e[CH];
  for (index_t b = b0; b < b1; ++b) {
    const T gk = gkl ? gkl[b] : T(0);
    T glq = 0;
    if (glogq)
      for (index_t s = 0; s < S; ++s) glq += glogq[s * B + b];
    acc += gk * lij - (i == j ? (gk + glq) / lii : T(0));
    if (!gz) continue;
    for (index_t s = 0; s < S; ++s) {
      noise<T>(eps_in, seed, stream, offset, s, b, B, D, j0, n, e);
      acc += gz[(s * B + b) * D + i] * e[j - j0];
    }
  }
  part[t] = acc;
}

template <class T>
__global__ void mvn_shared_dL_reduce(const T* part, index_t G, index_t DD, T* dL) {
  const index_t t = tid();
  if (t >= DD) return;
  T acc = 0;
  for (index_t g = 0; g < G; ++g) acc += part[g * DD + t];
  dL[t] = acc;
}

std::size_t mvn_head_backward_scratch_bytes(bool shared, index_t B, index_t D, std::size_t elem_size) {
  return shared ? static_cast<std::size_t>(mvn_shared_chunks(B, D) * D * D) * elem_size : 0;
}

template <class T>
void mvn_head_backward(const T* mu, const T* L, bool shared, const T* eps_in, u64 seed, u64 stream, u64 offset,
                       index_t S, index_t B, index_t D, const T* gz, const T* gkl, const T* glogq, T* dmu, T* dL,
                       void* scratch, std::size_t scratch_bytes, cudaStream_t st) {
  if (B == 0) {
    if (shared) PGM_CUDA_CHECK(cudaMemsetAsync(dL, 0, sizeof(T) * D * D, st));
    return;
  }
  mvn_backward_kernel<T><<<blocks_for(B, THREADS), THREADS, 0, st>>>(mu, L, shared, eps_in, seed, stream, offset, S, B,
                                                                     D, gz, gkl, glogq, dmu, dL);
  check_launch("mvn_head_backward");
  if (!shared || D == 0) return;
  const index_t G = mvn_shared_chunks(B, D);
  if (scratch_bytes < mvn_head_backward_scratch_bytes(true, B, D, sizeof(T)))
    throw std::logic_error("mvn_head_backward: scratch buffer too small");
  T* part = static_cast<T*>(scratch);
  mvn_shared_dL_partial<T><<<blocks_for(G * D * D, THREADS), THREADS, 0, st>>>(L, eps_in, seed, stream, offset, S, B, D,
                                                                               G, gz, gkl, glogq, part);
  check_launch("mvn_head_backward (shared partials)");
  mvn_shared_dL_reduce<T><<<blocks_for(D * D, THREADS), THREADS, 0, st>>>(part, G, D * D, dL);
  check_launch("mvn_head_backward (shared reduce)");
}

template <class T>
__global__ void tri_solve_kernel(const T* L, bool shared, const T* R, index_t B, index_t D, index_t K, bool trans,
                                 T* X) {
  const index_t t = tid();
  if (t >= B * K) return;
  const index_t b = t / K, k = t % K;
  tri_solve_one<T>(L + (shared ? 0 : b * D * D), R + b * D * K, D, K, k, trans, X + b * D * K);
}

template <class T>
void tri_solve(const T* L, bool shared, const T* R, index_t B, index_t D, index_t K, bool trans, T* X,
               cudaStream_t st) {
  if (B * K == 0) return;
  tri_solve_kernel<T><<<blocks_for(B * K, THREADS), THREADS, 0, st>>>(L, shared, R, B, D, K, trans, X);
  check_launch("tri_solve");
}

}  // namespace pygenmod::cuda

#include "sampling_mvn.cuh"  // (the full-covariance and Gumbel-softmax rows)

namespace pygenmod::cuda {

#define PGM_INSTANTIATE(T)                                                                                             \
  template void sampling_fill<T>(int, u64, u64, u64, index_t, index_t, T*, cudaStream_t);                              \
  template void normal_head<T>(const T*, const T*, const T*, int, T, T, u64, u64, u64, index_t, index_t, index_t, T*,  \
                               T*, T*, T*, std::int32_t*, cudaStream_t);                                               \
  template void normal_head_backward<T>(const T*, const T*, const T*, int, T, T, u64, u64, u64, index_t, index_t,      \
                                        index_t, const T*, const T*, const T*, T*, T*, cudaStream_t);                  \
  template void kl_normal<T>(const T*, const T*, const T*, const T*, int, T, T, index_t, index_t, T*, std::int32_t*,   \
                             cudaStream_t);                                                                            \
  template void kl_normal_backward<T>(const T*, const T*, const T*, const T*, int, T, T, index_t, index_t, const T*,   \
                                      T*, T*, T*, T*, cudaStream_t);                                                   \
  template void normal_log_prob<T>(const T*, const T*, const T*, int, T, T, index_t, index_t, index_t, T*,             \
                                   std::int32_t*, cudaStream_t);                                                       \
  template void normal_log_prob_backward<T>(const T*, const T*, const T*, int, T, T, index_t, index_t, index_t,        \
                                            const T*, T*, T*, T*, cudaStream_t);                                       \
  template void mvn_head<T>(const T*, const T*, bool, bool, const T*, u64, u64, u64, index_t, index_t, index_t, T*,    \
                            T*, T*, T*, std::int32_t*, cudaStream_t);                                                  \
  template void mvn_head_backward<T>(const T*, const T*, bool, const T*, u64, u64, u64, index_t, index_t, index_t,     \
                                     const T*, const T*, const T*, T*, T*, void*, std::size_t, cudaStream_t);          \
  template void tri_solve<T>(const T*, bool, const T*, index_t, index_t, index_t, bool, T*, cudaStream_t);             \
  template void tril_check<T>(const T*, index_t, index_t, std::int32_t*, cudaStream_t);                                \
  template void mvn_rows<T>(const T*, const T*, const T*, bool, int, bool, index_t, index_t, index_t, T*,              \
                            std::int32_t*, void*, std::size_t, cudaStream_t);                                          \
  template void mvn_rows_backward<T>(const T*, const T*, const T*, bool, int, bool, index_t, index_t, index_t,         \
                                     const T*, T*, T*, T*, std::int32_t*, void*, std::size_t, cudaStream_t);           \
  template void kl_mvn<T>(const T*, const T*, bool, const T*, const T*, bool, index_t, index_t, T*, std::int32_t*,     \
                          void*, std::size_t, cudaStream_t);                                                           \
  template void kl_mvn_backward<T>(const T*, const T*, bool, const T*, const T*, bool, index_t, index_t, const T*, T*, \
                                   T*, T*, T*, void*, std::size_t, cudaStream_t);                                      \
  template void gumbel_softmax<T>(const T*, index_t, index_t, T, u64, u64, u64, T*, T*, std::int64_t*, std::int32_t*,  \
                                  cudaStream_t);                                                                       \
  template void gumbel_softmax_backward<T>(const T*, const T*, index_t, index_t, T, u64, u64, u64, const T*, T*,       \
                                           std::int32_t*, cudaStream_t);

PGM_INSTANTIATE(float)
PGM_INSTANTIATE(double)

}  // namespace pygenmod::cuda
