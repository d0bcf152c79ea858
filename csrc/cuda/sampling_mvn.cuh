// CUDA launchers of the full-covariance rows (Mahalanobis, log-density, KL) and the Gumbel-softmax
// rows: the math is pygenmod/mvn.hpp's (one thread per row); included once, by sampling.cu.
// A factor shared by all rows gets its gradient summed in a fixed order, without atomics: the
// rows store their rank-1 terms (or, for the KL, per-chunk sums over shared_chunks(B, D) chunks),
// then one thread per entry adds them up in order.
#pragma once

#include "pygenmod/mvn.hpp"
#include "scratch.cuh"

namespace pygenmod::cuda {

template <class T>
__global__ void tril_check_kernel(const T* L, index_t N, index_t D, std::int32_t* flags) {
  const index_t n = tid();
  if (n < N) flags[n] = tril_flags<T>(L + n * D * D, D);
}

template <class T>
void tril_check(const T* L, index_t N, index_t D, std::int32_t* flags, cudaStream_t st) {
  if (N == 0) return;
  tril_check_kernel<T><<<blocks_for(N, THREADS), THREADS, 0, st>>>(L, N, D, flags);
  check_launch("tril_check");
}

std::size_t mvn_rows_scratch_bytes(index_t R, index_t D, std::size_t elem_size) {
  return static_cast<std::size_t>(R * D) * elem_size;
}

template <class T>
__global__ void mvn_rows_kernel(const T* x, const T* mu, const T* L, bool shared, int mode, bool squared, index_t R,
                                index_t B, index_t D, T* work, T* out, std::int32_t* status) {
  const index_t r = tid();
  if (r >= R) return;
  const index_t b = r % B;
  int s = 0;
  out[r] = mvn_row<T>(x + r * D, mu + b * D, L + (shared ? 0 : b * D * D), mode, squared, D, work + r * D, &s);
  status[r] = s;
}

template <class T>
void mvn_rows(const T* x, const T* mu, const T* L, bool shared, int mode, bool squared, index_t R, index_t B, index_t D,
              T* out, std::int32_t* status, void* scratch, std::size_t scratch_bytes, cudaStream_t st) {
  if (R == 0) return;
  if (scratch_bytes < mvn_rows_scratch_bytes(R, D, sizeof(T))) throw std::logic_error("mvn_rows: scratch too small");
  mvn_rows_kernel<T><<<blocks_for(R, THREADS), THREADS, 0, st>>>(x, mu, L, shared, mode, squared, R, B, D,
                                                                 static_cast<T*>(scratch), out, status);
  check_launch("mvn_rows");
}

// The backward's scratch: u, v (R, D) and c (R) of every row, and the chunk sums of a shared factor.
template <class T>
static void mvn_backward_layout(Carve& c, bool shared, index_t R, index_t B, index_t D, T** u, T** v, T** cs,
                                T** part) {
  *u = c.take<T>(R * D);
  *v = c.take<T>(R * D);
  *cs = c.take<T>(R);
  *part = c.take<T>(shared ? shared_chunks(B, D) * D * D : 0);
}

std::size_t mvn_rows_backward_scratch_bytes(bool shared, index_t R, index_t B, index_t D, std::size_t elem_size) {
  Carve c;
  // (the layout in units of the element size: take<char> with the byte counts)
  c.take<char>(R * D * elem_size);
  c.take<char>(R * D * elem_size);
  c.take<char>(R * elem_size);
  c.take<char>((shared ? shared_chunks(B, D) * D * D : 0) * elem_size);
  return c.used;
}

template <class T>
__global__ void mvn_grad_rows_kernel(const T* x, const T* mu, const T* L, bool shared, int mode, bool squared,
                                     index_t R, index_t B, index_t D, const T* g, T* dx, T* u, T* v, T* cs,
                                     std::int32_t* status) {
  const index_t r = tid();
  if (r >= R) return;
  const index_t b = r % B;
  int s = 0;
  cs[r] = mvn_row_grad<T>(x + r * D, mu + b * D, L + (shared ? 0 : b * D * D), mode, squared, D, g[r], dx + r * D,
                          u + r * D, v + r * D, &s);
  status[r] = s;
}

// dmu[b, i] = -sum_s dx[s, b, i], samples in order.
template <class T>
__global__ void mvn_dmu_kernel(const T* dx, index_t S, index_t B, index_t D, T* dmu) {
  const index_t t = tid();
  if (t >= B * D) return;
  const index_t b = t / D, i = t % D;
  T acc = 0;
  for (index_t s = 0; s < S; ++s) acc -= dx[(s * B + b) * D + i];
  dmu[t] = acc;
}

// Entry (i, j) of group grp's factor gradient: rows b in [b0, b1), samples in order (the CPU's
// add_factor_grad order). Per-row factors: G = B groups of one row, written to dL; shared: chunks.
template <class T>
__global__ void mvn_factor_grad_kernel(const T* L, bool shared, index_t S, index_t B, index_t D, index_t G, const T* u,
                                       const T* v, const T* cs, T* dst) {
  const index_t t = tid(), DD = D * D;
  if (t >= G * DD) return;
  const index_t grp = t / DD, i = (t % DD) / D, j = t % D;
  T acc = 0;
  if (j <= i) {
    const index_t b0 = shared ? B * grp / G : grp, b1 = shared ? B * (grp + 1) / G : grp + 1;
    for (index_t b = b0; b < b1; ++b) {
      const T lii = L[(shared ? 0 : b * DD) + i * D + i];
      for (index_t s = 0; s < S; ++s) {
        const index_t r = s * B + b;
        acc += u[r * D + i] * v[r * D + j];
        if (i == j) acc += cs[r] / lii;
      }
    }
  }
  dst[t] = acc;
}

// dL[k] = sum of the G chunk sums part[g, k], in order.
template <class T>
__global__ void sum_parts_kernel(const T* part, index_t G, index_t DD, T* dL) {
  const index_t t = tid();
  if (t >= DD) return;
  T acc = 0;
  for (index_t g = 0; g < G; ++g) acc += part[g * DD + t];
  dL[t] = acc;
}

template <class T>
static void sum_parts(const T* part, index_t G, index_t DD, T* dL, cudaStream_t st) {
  if (DD == 0) return;
  sum_parts_kernel<T><<<blocks_for(DD, THREADS), THREADS, 0, st>>>(part, G, DD, dL);
  check_launch("sum_parts");
}

template <class T>
void mvn_rows_backward(const T* x, const T* mu, const T* L, bool shared, int mode, bool squared, index_t R, index_t B,
                       index_t D, const T* g, T* dx, T* dmu, T* dL, std::int32_t* status, void* scratch,
                       std::size_t scratch_bytes, cudaStream_t st) {
  Carve c(scratch);
  T *u, *v, *cs, *part;
  mvn_backward_layout<T>(c, shared, R, B, D, &u, &v, &cs, &part);
  check_scratch(c, scratch_bytes, "mvn_rows_backward");
  const index_t S = B > 0 ? R / B : 0, DD = D * D, G = shared ? shared_chunks(B, D) : B;
  if (R > 0) {
    mvn_grad_rows_kernel<T>
        <<<blocks_for(R, THREADS), THREADS, 0, st>>>(x, mu, L, shared, mode, squared, R, B, D, g, dx, u, v, cs, status);
    check_launch("mvn_rows_backward (rows)");
  }
  if (B * D > 0) {
    mvn_dmu_kernel<T><<<blocks_for(B * D, THREADS), THREADS, 0, st>>>(dx, S, B, D, dmu);
    check_launch("mvn_rows_backward (dmu)");
  }
  if (G * DD > 0) {
    mvn_factor_grad_kernel<T>
        <<<blocks_for(G * DD, THREADS), THREADS, 0, st>>>(L, shared, S, B, D, G, u, v, cs, shared ? part : dL);
    check_launch("mvn_rows_backward (factor)");
  }
  if (shared) sum_parts<T>(part, G, DD, dL, st);
}

std::size_t kl_mvn_scratch_bytes(index_t B, index_t D, std::size_t elem_size) {
  return static_cast<std::size_t>(B * D) * elem_size;
}

template <class T>
__global__ void kl_mvn_kernel(const T* m1, const T* L1, bool shared1, const T* m2, const T* L2, bool shared2, index_t B,
                              index_t D, T* work, T* kl, std::int32_t* status) {
  const index_t b = tid();
  if (b >= B) return;
  int s = 0;
  kl[b] = kl_mvn_row<T>(m1 + b * D, L1 + (shared1 ? 0 : b * D * D), m2 ? m2 + b * D : nullptr,
                        L2 ? L2 + (shared2 ? 0 : b * D * D) : nullptr, D, work + b * D, &s);
  status[b] = s;
}

template <class T>
void kl_mvn(const T* m1, const T* L1, bool shared1, const T* m2, const T* L2, bool shared2, index_t B, index_t D, T* kl,
            std::int32_t* status, void* scratch, std::size_t scratch_bytes, cudaStream_t st) {
  if (B == 0) return;
  if (scratch_bytes < kl_mvn_scratch_bytes(B, D, sizeof(T))) throw std::logic_error("kl_mvn: scratch too small");
  kl_mvn_kernel<T><<<blocks_for(B, THREADS), THREADS, 0, st>>>(m1, L1, shared1, m2, L2, shared2, B, D,
                                                               static_cast<T*>(scratch), kl, status);
  check_launch("kl_mvn");
}

// Groups of rows of the KL backward: one per row, or shared_chunks when a factor is shared.
inline index_t kl_groups(bool chunked, index_t B, index_t D) { return chunked ? shared_chunks(B, D) : B; }

std::size_t kl_mvn_backward_scratch_bytes(bool shared1, bool shared2, index_t B, index_t D, std::size_t elem_size) {
  const index_t G = kl_groups(shared1 || shared2, B, D);
  Carve c;
  c.take<char>(G * 2 * D * elem_size);
  c.take<char>((shared1 ? G * D * D : 0) * elem_size);
  c.take<char>((shared2 ? G * D * D : 0) * elem_size);
  return c.used;
}

template <class T>
__global__ void kl_mvn_backward_kernel(const T* m1, const T* L1, bool shared1, const T* m2, const T* L2, bool shared2,
                                       index_t B, index_t D, index_t G, bool chunked, const T* g, T* dm1, T* dL1,
                                       T* dm2, T* dL2, T* work, T* part1, T* part2) {
  const index_t grp = tid(), DD = D * D;
  if (grp >= G) return;
  const index_t b0 = chunked ? B * grp / G : grp, b1 = chunked ? B * (grp + 1) / G : grp + 1;
  if (shared1)
    for (index_t k = 0; k < DD; ++k) part1[grp * DD + k] = T(0);
  if (dL2 && shared2)
    for (index_t k = 0; k < DD; ++k) part2[grp * DD + k] = T(0);
  for (index_t b = b0; b < b1; ++b) {
    T* d1 = shared1 ? part1 + grp * DD : dL1 + b * DD;
    T* d2 = !dL2 ? nullptr : (shared2 ? part2 + grp * DD : dL2 + b * DD);
    if (!shared1)
      for (index_t k = 0; k < DD; ++k) d1[k] = T(0);
    if (d2 && !shared2)
      for (index_t k = 0; k < DD; ++k) d2[k] = T(0);
    kl_mvn_row_backward<T>(m1 + b * D, L1 + (shared1 ? 0 : b * DD), m2 ? m2 + b * D : nullptr,
                           L2 ? L2 + (shared2 ? 0 : b * DD) : nullptr, D, g[b], dm1 + b * D,
                           dm2 ? dm2 + b * D : nullptr, d1, d2, work + grp * 2 * D);
  }
}

template <class T>
void kl_mvn_backward(const T* m1, const T* L1, bool shared1, const T* m2, const T* L2, bool shared2, index_t B,
                     index_t D, const T* g, T* dm1, T* dL1, T* dm2, T* dL2, void* scratch, std::size_t scratch_bytes,
                     cudaStream_t st) {
  shared2 = shared2 && dL2;
  const bool chunked = shared1 || shared2;
  const index_t G = kl_groups(chunked, B, D), DD = D * D;
  Carve c(scratch);
  T* work = c.take<T>(G * 2 * D);
  T* part1 = c.take<T>(shared1 ? G * DD : 0);
  T* part2 = c.take<T>(shared2 ? G * DD : 0);
  check_scratch(c, scratch_bytes, "kl_mvn_backward");
  if (G > 0) {
    kl_mvn_backward_kernel<T><<<blocks_for(G, THREADS), THREADS, 0, st>>>(
        m1, L1, shared1, m2, L2, shared2, B, D, G, chunked, g, dm1, dL1, dm2, dL2, work, part1, part2);
    check_launch("kl_mvn_backward");
  }
  if (shared1) sum_parts<T>(part1, G, DD, dL1, st);
  if (shared2) sum_parts<T>(part2, G, DD, dL2, st);
}

template <class T>
__global__ void gumbel_softmax_kernel(const T* logits, index_t R, index_t K, T tau, u64 seed, u64 stream, u64 offset,
                                      T* y_soft, T* y_hard, std::int64_t* index, std::int32_t* status) {
  const index_t r = tid();
  if (r >= R) return;
  gumbel_softmax_one<T>(
      logits + r * K, K, tau, [&](T* y) { fill_range_scalar<T>(rng::GUMBEL, seed, stream + r, offset, K, y); },
      y_soft + r * K, y_hard ? y_hard + r * K : nullptr, index + r, status + r);
}

template <class T>
void gumbel_softmax(const T* logits, index_t R, index_t K, T tau, u64 seed, u64 stream, u64 offset, T* y_soft,
                    T* y_hard, std::int64_t* index, std::int32_t* status, cudaStream_t st) {
  if (R == 0) return;
  gumbel_softmax_kernel<T><<<blocks_for(R, THREADS), THREADS, 0, st>>>(logits, R, K, tau, seed, stream, offset, y_soft,
                                                                       y_hard, index, status);
  check_launch("gumbel_softmax");
}

template <class T>
__global__ void gumbel_softmax_backward_kernel(const T* logits, const T* y_soft, index_t R, index_t K, T tau, u64 seed,
                                               u64 stream, u64 offset, const T* g, T* out, std::int32_t* status) {
  const index_t r = tid();
  if (r >= R) return;
  gumbel_softmax_backward_one<T>(
      logits ? logits + r * K : nullptr, y_soft ? y_soft + r * K : nullptr, K, tau,
      [&](T* y) { fill_range_scalar<T>(rng::GUMBEL, seed, stream + r, offset, K, y); }, g + r * K, out + r * K,
      status + r);
}

template <class T>
void gumbel_softmax_backward(const T* logits, const T* y_soft, index_t R, index_t K, T tau, u64 seed, u64 stream,
                             u64 offset, const T* g, T* out, std::int32_t* status, cudaStream_t st) {
  if (R == 0) return;
  gumbel_softmax_backward_kernel<T>
      <<<blocks_for(R, THREADS), THREADS, 0, st>>>(logits, y_soft, R, K, tau, seed, stream, offset, g, out, status);
  check_launch("gumbel_softmax_backward");
}

}  // namespace pygenmod::cuda
