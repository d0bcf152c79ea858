// CUDA launchers for batched MCTS: one thread per tree runs select / expand / backup /
// advance / the whole tabular search; the math is pygenmod/mcts.hpp's. At small B (see
// mcts::use_warp_per_tree) select and the tabular search run a warp per tree instead: the 32
// lanes split each node's children (mcts_lanes.hpp, mcts_warp.cuh) and choose the same child.
#include "cuda_check.cuh"
#include "mcts.cuh"
#include "mcts_warp.cuh"

namespace pygenmod::cuda {
using mcts::i32;
using mcts::u8;

namespace {
constexpr unsigned kThreads = 64;

__device__ __forceinline__ index_t tid() { return blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; }

template <class T>
__global__ void select_kernel(mcts::Batch<T> t, index_t B, mcts::Params p, i32* node, i32* action) {
  const index_t b = tid();
  if (b < B) mcts::select_one(mcts::tree_at(t, b), p, node + b, action + b);
}

// A warp per tree: warp w of the grid (blocks of kWarpThreads) runs tree w.
constexpr unsigned kWarpThreads = 128;

template <class T>
__global__ void select_warp_kernel(mcts::Batch<T> t, index_t B, mcts::Params p, i32* node, i32* action) {
  const index_t g = tid(), b = g / 32;
  if (b >= B) return;  // the whole warp
  const WarpLanes ln{static_cast<unsigned>(g % 32)};
  i32 n, a;
  mcts::select_one_lanes(ln, mcts::tree_at(t, b), p, &n, &a);
  if (ln.leader()) node[b] = n, action[b] = a;
}

template <class T>
__global__ void search_tabular_warp_kernel(mcts::Batch<T> t, index_t B, mcts::Params p, index_t sims,
                                           const std::int64_t* next_state, const T* reward, const T* discount,
                                           const T* logits, const T* prior, const T* value, const u8* invalid,
                                           mcts::Transitions tr) {
  const index_t g = tid(), b = g / 32;
  if (b >= B) return;  // the whole warp
  const mcts::LanesExec<WarpLanes> ex{WarpLanes{static_cast<unsigned>(g % 32)}};
  mcts::TreeRef<T> r = mcts::tree_at(t, b);
  mcts::search_tabular_one(r, p, sims, next_state, reward, discount, logits, prior, value, invalid, tr, b, 0, ex);
}

// Process-wide mapping switch (mcts::Mapping), set through _cuda_mcts.set_mapping.
int g_mapping = mcts::kMapAuto;

int multiprocessors() {
  int dev = 0, n = 0;
  check(cudaGetDevice(&dev), "cudaGetDevice");
  static int cached[64] = {};
  if (dev >= 0 && dev < 64 && cached[dev] > 0) return cached[dev];
  check(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev), "cudaDeviceGetAttribute");
  if (dev >= 0 && dev < 64) cached[dev] = n;
  return n;
}

bool warp_per_tree(index_t B) { return mcts::use_warp_mapping(g_mapping, B, multiprocessors()); }

index_t warp_blocks(index_t B) { return blocks_for(B * 32, kWarpThreads); }

template <class T>
__global__ void expand_kernel(mcts::Batch<T> t, index_t B, const i32* node, const i32* action, const T* reward,
                              const T* discount, const T* logits, const T* value, const u8* invalid,
                              const std::int64_t* state, i32* out) {
  const index_t b = tid();
  if (b >= B) return;
  mcts::TreeRef<T> r = mcts::tree_at(t, b);
  out[b] = mcts::expand_one(r, node[b], action[b], reward[b], discount[b], logits + b * t.A, value[b],
                            invalid ? invalid + b * t.A : nullptr, false, state[b]);
}

template <class T>
__global__ void backup_kernel(mcts::Batch<T> t, index_t B, const i32* node) {
  const index_t b = tid();
  if (b >= B) return;
  mcts::TreeRef<T> r = mcts::tree_at(t, b);
  if (node[b] >= 0 && node[b] < r.num_nodes[0]) mcts::backup_one(r, node[b]);
}

template <class T>
__global__ void search_tabular_kernel(mcts::Batch<T> t, index_t B, mcts::Params p, index_t sims,
                                      const std::int64_t* next_state, const T* reward, const T* discount,
                                      const T* logits, const T* prior, const T* value, const u8* invalid,
                                      mcts::Transitions tr) {
  const index_t b = tid();
  if (b >= B) return;
  mcts::TreeRef<T> r = mcts::tree_at(t, b);
  mcts::search_tabular_one(r, p, sims, next_state, reward, discount, logits, prior, value, invalid, tr, b);
}

template <class T>
__global__ void advance_kernel(mcts::Batch<T> t, index_t B, const i32* action, i32* new_index, i32* old_index,
                               i32* status) {
  const index_t b = tid();
  if (b >= B) return;
  mcts::TreeRef<T> r = mcts::tree_at(t, b);
  status[b] = mcts::advance_one(r, action[b], new_index + b * t.N, old_index + b * t.N);
}

// Row b of a launch draws as tree stream0 + b (its global batch index).
template <class T>
__global__ void dirichlet_kernel(std::uint64_t seed, std::uint64_t stream0, double alpha, index_t B, index_t A,
                                 T* out) {
  const index_t b = tid();
  if (b < B) mcts::dirichlet_one(seed, alpha, static_cast<index_t>(stream0) + b, A, out + b * A);
}

template <class T>
__global__ void gumbel_kernel(std::uint64_t seed, std::uint64_t stream0, index_t B, index_t A, T* out) {
  const index_t b = tid();
  if (b < B) mcts::gumbel_one(seed, static_cast<index_t>(stream0) + b, A, out + b * A);
}

template <class T>
__global__ void sample_kernel(const T* w, index_t B, index_t A, const T* temperature, std::uint64_t seed,
                              std::uint64_t stream0, std::int64_t* out) {
  const index_t b = tid();
  if (b < B)
    out[b] =
        mcts::sample_one(w + b * A, A, static_cast<double>(temperature[b]), seed, static_cast<index_t>(stream0) + b);
}
}  // namespace

template <class T>
void mcts_select(const mcts::Batch<T>& t, index_t B, const mcts::Params& p, i32* node, i32* action,
                 cudaStream_t stream) {
  if (B == 0) return;
  if (warp_per_tree(B))
    select_warp_kernel<T><<<warp_blocks(B), kWarpThreads, 0, stream>>>(t, B, p, node, action);
  else
    select_kernel<T><<<blocks_for(B, kThreads), kThreads, 0, stream>>>(t, B, p, node, action);
  check_launch("mcts select");
}

template <class T>
void mcts_expand(const mcts::Batch<T>& t, index_t B, const i32* node, const i32* action, const T* reward,
                 const T* discount, const T* logits, const T* value, const u8* invalid, const std::int64_t* state,
                 i32* out, cudaStream_t stream) {
  if (B == 0) return;
  expand_kernel<T><<<blocks_for(B, kThreads), kThreads, 0, stream>>>(t, B, node, action, reward, discount, logits,
                                                                     value, invalid, state, out);
  check_launch("mcts expand");
}

template <class T>
void mcts_backup(const mcts::Batch<T>& t, index_t B, const i32* node, cudaStream_t stream) {
  if (B == 0) return;
  backup_kernel<T><<<blocks_for(B, kThreads), kThreads, 0, stream>>>(t, B, node);
  check_launch("mcts backup");
}

template <class T>
void mcts_search_tabular(const mcts::Batch<T>& t, index_t B, const mcts::Params& p, index_t num_simulations,
                         const std::int64_t* next_state, const T* reward, const T* discount, const T* logits,
                         const T* prior, const T* value, const u8* invalid, const mcts::Transitions& tr,
                         cudaStream_t stream) {
  if (B == 0 || num_simulations == 0) return;
  // (the chance-node search runs on one thread per tree: no lane-split descent there)
  if (!(p.chance && tr.cdf) && warp_per_tree(B))
    search_tabular_warp_kernel<T><<<warp_blocks(B), kWarpThreads, 0, stream>>>(
        t, B, p, num_simulations, next_state, reward, discount, logits, prior, value, invalid, tr);
  else
    search_tabular_kernel<T><<<blocks_for(B, kThreads), kThreads, 0, stream>>>(
        t, B, p, num_simulations, next_state, reward, discount, logits, prior, value, invalid, tr);
  check_launch("mcts search_tabular");
}

template <class T>
void mcts_advance(const mcts::Batch<T>& t, index_t B, const i32* action, i32* new_index, i32* old_index, i32* status,
                  cudaStream_t stream) {
  if (B == 0) return;
  advance_kernel<T><<<blocks_for(B, kThreads), kThreads, 0, stream>>>(t, B, action, new_index, old_index, status);
  check_launch("mcts advance");
}

template <class T>
void mcts_dirichlet(std::uint64_t seed, std::uint64_t stream0, double alpha, index_t B, index_t A, T* out,
                    cudaStream_t stream) {
  if (B == 0) return;
  dirichlet_kernel<T><<<blocks_for(B, kThreads), kThreads, 0, stream>>>(seed, stream0, alpha, B, A, out);
  check_launch("mcts dirichlet_noise");
}

template <class T>
void mcts_gumbel(std::uint64_t seed, std::uint64_t stream0, index_t B, index_t A, T* out, cudaStream_t stream) {
  if (B == 0) return;
  gumbel_kernel<T><<<blocks_for(B, kThreads), kThreads, 0, stream>>>(seed, stream0, B, A, out);
  check_launch("mcts gumbel_noise");
}

template <class T>
void mcts_sample(const T* w, index_t B, index_t A, const T* temperature, std::uint64_t seed, std::uint64_t stream0,
                 std::int64_t* out, cudaStream_t stream) {
  if (B == 0) return;
  sample_kernel<T><<<blocks_for(B, kThreads), kThreads, 0, stream>>>(w, B, A, temperature, seed, stream0, out);
  check_launch("mcts sample_action");
}

int mcts_set_mapping(int mapping) {
  const int old = g_mapping;
  g_mapping = mapping;
  return old;
}

bool mcts_warp_per_tree(index_t B) { return warp_per_tree(B); }

#define PGM_MCTS_INSTANTIATE(T)                                                                                      \
  template void mcts_select<T>(const mcts::Batch<T>&, index_t, const mcts::Params&, i32*, i32*, cudaStream_t);       \
  template void mcts_expand<T>(const mcts::Batch<T>&, index_t, const i32*, const i32*, const T*, const T*, const T*, \
                               const T*, const u8*, const std::int64_t*, i32*, cudaStream_t);                        \
  template void mcts_backup<T>(const mcts::Batch<T>&, index_t, const i32*, cudaStream_t);                            \
  template void mcts_search_tabular<T>(const mcts::Batch<T>&, index_t, const mcts::Params&, index_t,                 \
                                       const std::int64_t*, const T*, const T*, const T*, const T*, const T*,        \
                                       const u8*, const mcts::Transitions&, cudaStream_t);                           \
  template void mcts_advance<T>(const mcts::Batch<T>&, index_t, const i32*, i32*, i32*, i32*, cudaStream_t);         \
  template void mcts_dirichlet<T>(std::uint64_t, std::uint64_t, double, index_t, index_t, T*, cudaStream_t);         \
  template void mcts_gumbel<T>(std::uint64_t, std::uint64_t, index_t, index_t, T*, cudaStream_t);                    \
  template void mcts_sample<T>(const T*, index_t, index_t, const T*, std::uint64_t, std::uint64_t, std::int64_t*,    \
                               cudaStream_t);
PGM_MCTS_INSTANTIATE(float)
PGM_MCTS_INSTANTIATE(double)

}  // namespace pygenmod::cuda
