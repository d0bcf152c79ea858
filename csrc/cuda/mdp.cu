// CUDA launchers for the Bellman backups; the per-state math is pygenmod/mdp.hpp's
// (backup_state, policy_value_state), run by L lanes per (b, s) state:
// - dense P with S >= 32: a warp per state (L = 32). Each row is read coalesced: lane l sums
//   entries l, l+32, ... and a fixed butterfly adds the 32 partials; lane 0's sum is broadcast,
//   so all lanes run the rest of the state's math on identical values (and store identical
//   results). Deterministic run to run; the summation order differs from the CPU's (rounding).
// - CSR P whose rows hold 16 or more entries on average: a warp per state the same way (lane l
//   takes the row's entries l, l+32, ...; WarpCsr).
// - dense P with fewer than 32 states, or shorter CSR rows: one thread per state (L = 1), rows
//   read serially.
#include <climits>
#include <vector>

#include "cuda_check.cuh"
#include "mdp.cuh"
#include "pygenmod/mdp.hpp"
#include "pygenmod/mdp_batched.hpp"
#include "scratch.cuh"

namespace pygenmod::cuda {

// Dense rows, one warp per row dot product (used only from device code: L = 32 kernels).
template <class T>
struct WarpDense {
  const T* P;
  index_t S, A;
  PGM_HD acc_t<T> dot(index_t b, index_t s, index_t a, const T* v) const {
#ifdef __CUDA_ARCH__
    const T* row = P + ((b * S + s) * A + a) * S;
    acc_t<T> acc = 0;
    for (index_t t = threadIdx.x & 31; t < S; t += 32) acc += static_cast<acc_t<T>>(row[t]) * v[t];
    for (int off = 16; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
    return __shfl_sync(0xffffffffu, acc, 0);
#else
    return 0;  // never called on the host
#endif
  }
  PGM_HD void dot_rows(index_t b, const index_t* rows, index_t n, const T* v, acc_t<T>* out) const {
    for (index_t k = 0; k < n; ++k) out[k] = dot(b, rows[k] / A, rows[k] % A, v);
  }
};

// CSR rows, one warp per row dot product (device code only: L = 32 kernels), as WarpDense.
template <class T>
struct WarpCsr {
  const T* data;
  const std::int32_t* indices;
  const std::int64_t* indptr;
  index_t S, A;
  PGM_HD acc_t<T> dot_row(index_t r, const T* v) const {  // r: global row (b*S + s)*A + a
#ifdef __CUDA_ARCH__
    acc_t<T> acc = 0;
    for (std::int64_t k = indptr[r] + (threadIdx.x & 31); k < indptr[r + 1]; k += 32)
      acc += static_cast<acc_t<T>>(data[k]) * v[indices[k]];
    for (int off = 16; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
    return __shfl_sync(0xffffffffu, acc, 0);
#else
    return 0;  // never called on the host
#endif
  }
  PGM_HD acc_t<T> dot(index_t b, index_t s, index_t a, const T* v) const { return dot_row((b * S + s) * A + a, v); }
  PGM_HD void dot_rows(index_t b, const index_t* rows, index_t n, const T* v, acc_t<T>* out) const {
    for (index_t k = 0; k < n; ++k) out[k] = dot_row(b * S * A + rows[k], v);
  }
};

// L lanes per state; a whole group returns together (L = 32: warp-uniform), as the warp
// shuffles of WarpDense need every lane of the warp.
template <class T, class M, int L>
__global__ void backup_kernel(M m, const T* R, const T* V, const T* gamma, index_t B, int kind,
                              const std::int64_t* pi_det, const T* pi_stoch, const T* tau, T* Q, T* V_out,
                              std::int64_t* policy) {
  const index_t S = m.S, A = m.A;
  const index_t bs = (blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x) / L;
  if (bs >= B * S) return;
  const index_t b = bs / S, s = bs % S;
  const T v = mdp::backup_state(m, b, s, R + bs * A, V + b * S, gamma[b], kind, pi_det ? pi_det[bs] : 0,
                                pi_stoch ? pi_stoch + bs * A : nullptr, tau ? tau[b] : T(1), Q + bs * A, policy + bs);
  V_out[bs] = v;
}

constexpr unsigned kThreads = 128;

template <class T, class M, int L>
void launch(const M& m, const T* R, const T* V, const T* gamma, index_t B, int kind, const std::int64_t* pi_det,
            const T* pi_stoch, const T* tau, T* Q, T* V_out, std::int64_t* policy, cudaStream_t stream,
            const char* what) {
  if (B * m.S == 0) return;
  backup_kernel<T, M, L><<<blocks_for(B * m.S * L, kThreads), kThreads, 0, stream>>>(m, R, V, gamma, B, kind, pi_det,
                                                                                     pi_stoch, tau, Q, V_out, policy);
  check_launch(what);
}

// A warp per state pays off once a row fills the warp (dense), or half of it on average (CSR:
// nnz entries over `rows` rows; shorter rows would leave most lanes idle).
inline bool warp_per_state(index_t S) { return S >= 32; }
inline bool warp_per_csr_state(index_t rows, std::int64_t nnz) { return rows > 0 && nnz >= 16 * rows; }

template <class T>
void backup_dense(const T* P, const T* R, const T* V, const T* gamma, index_t B, index_t S, index_t A, int kind,
                  const std::int64_t* pi_det, const T* pi_stoch, const T* tau, T* Q, T* V_out, std::int64_t* policy,
                  cudaStream_t stream) {
  if (warp_per_state(S))
    launch<T, WarpDense<T>, 32>(WarpDense<T>{P, S, A}, R, V, gamma, B, kind, pi_det, pi_stoch, tau, Q, V_out, policy,
                                stream, "backup_dense");
  else
    launch<T, mdp::Dense<T>, 1>(mdp::Dense<T>{P, S, A}, R, V, gamma, B, kind, pi_det, pi_stoch, tau, Q, V_out, policy,
                                stream, "backup_dense");
}

template <class T>
void backup_csr(const T* data, const std::int32_t* indices, const std::int64_t* indptr, std::int64_t nnz, const T* R,
                const T* V, const T* gamma, index_t B, index_t S, index_t A, int kind, const std::int64_t* pi_det,
                const T* pi_stoch, const T* tau, T* Q, T* V_out, std::int64_t* policy, cudaStream_t stream) {
  if (warp_per_csr_state(B * S * A, nnz)) {
    launch<T, WarpCsr<T>, 32>(WarpCsr<T>{data, indices, indptr, S, A}, R, V, gamma, B, kind, pi_det, pi_stoch, tau, Q,
                              V_out, policy, stream, "backup_csr");
    return;
  }
  launch<T, mdp::Csr<T>, 1>(mdp::Csr<T>{data, indices, indptr, S, A}, R, V, gamma, B, kind, pi_det, pi_stoch, tau, Q,
                            V_out, policy, stream, "backup_csr");
}

// ------------------------------------------------------------------ whole solves
// The batched loop of mdp_batched.hpp: per step, a sweep kernel over every (b, s) (L lanes per
// state as above, each MDP in its own phase) and a control kernel (a block per MDP: the
// min/max of new - old over its states, one LoopControl update, then the states apply it).
// The host queues kSyncEvery steps, then reads the count of running MDPs (4 bytes) and
// synchronises; steps after an MDP stopped return at once.
constexpr int kSyncEvery = 16;
constexpr unsigned kCtlMax = 256;

template <class T>
__global__ void loop_init_kernel(mdp::BatchArgs<T> a, const double* thresh, std::int64_t max_iter, bool span,
                                 std::int64_t eval_max, double eval_rel, int* running) {
  const index_t i = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x;
  if (i < a.B) mdp::batch_init(a, i, thresh, max_iter, span, eval_max, eval_rel);
  if (a.prev && i < a.B * a.S) a.prev[i] = -1;
  if (i == 0) *running = static_cast<int>(a.B);
}

template <class T, class M, int L>
__global__ void loop_step_kernel(M m, mdp::BatchArgs<T> a) {
  const index_t bs = (blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x) / L;
  if (bs >= a.B * a.S) return;
  mdp::batch_step_state(m, a, bs / a.S, bs % a.S);  // (L = 32: one MDP per warp, uniform)
}

// blockDim.x: a power of two <= kCtlMax; grid: B blocks.
template <class T>
__global__ void loop_control_kernel(mdp::BatchArgs<T> a, int* running) {
  __shared__ double s_lo[kCtlMax], s_hi[kCtlMax];
  __shared__ int s_same[kCtlMax];
  __shared__ mdp::BatchApply s_ap;
  const index_t b = blockIdx.x;
  const unsigned t = threadIdx.x;
  const mdp::BatchMdp d = a.st[b];      // (read by all before thread 0 updates it below)
  if (d.c.phase == mdp::kDone) return;  // uniform over the block
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  bool same = true;
  for (index_t s = t; s < a.S; s += blockDim.x) mdp::batch_range_state(a, d, b, s, lo, hi, same);
  s_lo[t] = lo, s_hi[t] = hi, s_same[t] = same;
  __syncthreads();
  for (unsigned off = blockDim.x / 2; off > 0; off /= 2) {  // min/max: exact in any order
    if (t < off) {
      s_lo[t] = s_lo[t + off] < s_lo[t] ? s_lo[t + off] : s_lo[t];
      s_hi[t] = s_hi[t + off] > s_hi[t] ? s_hi[t + off] : s_hi[t];
      s_same[t] = s_same[t] && s_same[t + off];
    }
    __syncthreads();
  }
  if (t == 0) {
    s_ap = mdp::batch_decide(a, b, s_lo[0], s_hi[0], s_same[0] != 0);
    if (s_ap.final_buf >= 0) atomicSub(running, 1);
  }
  __syncthreads();
  const mdp::BatchApply ap = s_ap;
  for (index_t s = t; s < a.S; s += blockDim.x) mdp::batch_apply_state(a, ap, b, s);
}

// Scratch: the value buffers 1 and 2, prev, the per-MDP states, the running count.
template <class T>
Carve loop_layout(void* base, index_t B, index_t S, mdp::BatchArgs<T>* a, int** running) {
  Carve c(base);
  T* b1 = c.take<T>(B * S);
  T* b2 = c.take<T>(B * S);
  std::int64_t* prev = c.take<std::int64_t>(B * S);
  mdp::BatchMdp* st = c.take<mdp::BatchMdp>(B);
  int* run = c.take<int>(1);
  if (a) a->buf[1] = b1, a->buf[2] = b2, a->prev = prev, a->st = st, *running = run;
  return c;
}

template <class T>
std::size_t solve_loop_scratch_bytes(index_t B, index_t S) {
  return loop_layout<T>(nullptr, B, S, nullptr, nullptr).used;
}

// The host side: X's step/control launch the kernels, running() synchronises.
template <class T, class M, int L>
struct DeviceBatch {
  M m;
  mdp::BatchArgs<T> a;
  int* count;  // of the running MDPs, on the device
  cudaStream_t stream;
  void step() {
    if (a.B * a.S == 0) return;
    loop_step_kernel<T, M, L><<<blocks_for(a.B * a.S * L, kThreads), kThreads, 0, stream>>>(m, a);
    check_launch("mdp solve: sweep");
  }
  void control() {
    unsigned n = 32;
    while (n < kCtlMax && n < a.S) n *= 2;
    loop_control_kernel<T><<<static_cast<unsigned>(a.B), n, 0, stream>>>(a, count);
    check_launch("mdp solve: control");
  }
  int running() {  // the synchronisation
    int h = 0;
    PGM_CUDA_CHECK(cudaMemcpyAsync(&h, count, sizeof(int), cudaMemcpyDeviceToHost, stream));
    PGM_CUDA_CHECK(cudaStreamSynchronize(stream));
    return h;
  }
};

template <class T, class M, int L>
bool solve_loop(const M& m, const T* R, const T* gamma, const double* thresh, index_t B, index_t S, index_t A,
                const LoopSettings<T>& set, T* V, T* Q, std::int64_t* policy, void* scratch, std::size_t bytes,
                const LoopResults& out, Stop& stop, cudaStream_t stream) {
  if (B == 0) return true;
  if (B > INT_MAX) throw std::invalid_argument("mdp solve on CUDA: at most 2^31 - 1 MDPs");
  mdp::BatchArgs<T> a{};
  a.buf[0] = V, a.Q = Q, a.pi = policy, a.pol = set.pol, a.pol_stoch = set.pol_stoch;
  a.R = R, a.gamma = gamma, a.B = B, a.S = S, a.A = A, a.evaluate = set.evaluate;
  int* running = nullptr;
  check_scratch(loop_layout<T>(scratch, B, S, &a, &running), bytes, "mdp solve_loop");
  const std::int64_t eval_max = set.evaluate ? 0 : set.eval_max;
  if (eval_max == 0) a.prev = nullptr;  // (no policy comparisons)
  const index_t n = B * S > B ? B * S : B;
  loop_init_kernel<T><<<blocks_for(n, kThreads), kThreads, 0, stream>>>(a, thresh, set.max_iter, set.span, eval_max,
                                                                        set.eval_rel, running);
  check_launch("mdp solve: init");
  DeviceBatch<T, M, L> x{m, a, running, stream};
  if (!mdp::batch_loop(x, mdp::batch_max_steps(set.max_iter, eval_max), kSyncEvery, stop)) return false;
  std::vector<mdp::BatchMdp> h(static_cast<std::size_t>(B));
  PGM_CUDA_CHECK(cudaMemcpyAsync(h.data(), a.st, B * sizeof(mdp::BatchMdp), cudaMemcpyDeviceToHost, stream));
  PGM_CUDA_CHECK(cudaStreamSynchronize(stream));
  mdp::batch_results(h.data(), B, out.iterations, out.eval_sweeps, out.residual, out.converged);
  return true;
}

template <class T>
bool solve_loop_dense(const T* P, const T* R, const T* gamma, const double* thresh, index_t B, index_t S, index_t A,
                      const LoopSettings<T>& set, T* V, T* Q, std::int64_t* policy, void* scratch, std::size_t bytes,
                      const LoopResults& out, Stop& stop, cudaStream_t stream) {
  if (warp_per_state(S))
    return solve_loop<T, WarpDense<T>, 32>(WarpDense<T>{P, S, A}, R, gamma, thresh, B, S, A, set, V, Q, policy, scratch,
                                           bytes, out, stop, stream);
  return solve_loop<T, mdp::Dense<T>, 1>(mdp::Dense<T>{P, S, A}, R, gamma, thresh, B, S, A, set, V, Q, policy, scratch,
                                         bytes, out, stop, stream);
}

template <class T>
bool solve_loop_csr(const T* data, const std::int32_t* indices, const std::int64_t* indptr, std::int64_t nnz,
                    const T* R, const T* gamma, const double* thresh, index_t B, index_t S, index_t A,
                    const LoopSettings<T>& set, T* V, T* Q, std::int64_t* policy, void* scratch, std::size_t bytes,
                    const LoopResults& out, Stop& stop, cudaStream_t stream) {
  if (warp_per_csr_state(B * S * A, nnz))
    return solve_loop<T, WarpCsr<T>, 32>(WarpCsr<T>{data, indices, indptr, S, A}, R, gamma, thresh, B, S, A, set, V, Q,
                                         policy, scratch, bytes, out, stop, stream);
  return solve_loop<T, mdp::Csr<T>, 1>(mdp::Csr<T>{data, indices, indptr, S, A}, R, gamma, thresh, B, S, A, set, V, Q,
                                       policy, scratch, bytes, out, stop, stream);
}

#define PGM_INSTANTIATE(T)                                                                                            \
  template std::size_t solve_loop_scratch_bytes<T>(index_t, index_t);                                                 \
  template bool solve_loop_dense<T>(const T*, const T*, const T*, const double*, index_t, index_t, index_t,           \
                                    const LoopSettings<T>&, T*, T*, std::int64_t*, void*, std::size_t,                \
                                    const LoopResults&, Stop&, cudaStream_t);                                         \
  template bool solve_loop_csr<T>(const T*, const std::int32_t*, const std::int64_t*, std::int64_t, const T*,         \
                                  const T*, const double*, index_t, index_t, index_t, const LoopSettings<T>&, T*, T*, \
                                  std::int64_t*, void*, std::size_t, const LoopResults&, Stop&, cudaStream_t);        \
  template void backup_dense<T>(const T*, const T*, const T*, const T*, index_t, index_t, index_t, int,               \
                                const std::int64_t*, const T*, const T*, T*, T*, std::int64_t*, cudaStream_t);        \
  template void backup_csr<T>(const T*, const std::int32_t*, const std::int64_t*, std::int64_t, const T*, const T*,   \
                              const T*, index_t, index_t, index_t, int, const std::int64_t*, const T*, const T*, T*,  \
                              T*, std::int64_t*, cudaStream_t);
PGM_INSTANTIATE(float)
PGM_INSTANTIATE(double)
#undef PGM_INSTANTIATE

}  // namespace pygenmod::cuda
