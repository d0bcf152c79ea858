// Host-side declarations of the CUDA MCTS launchers (no device code here). One thread per
// tree, or a warp per tree for select and the tabular search at small B (mcts_lanes.hpp);
// the per-tree math is pygenmod/mcts.hpp's.
#pragma once
#include <cuda_runtime.h>

#include "pygenmod/mcts.hpp"

namespace pygenmod::cuda {
// The mapping of select / search_tabular (mcts::Mapping: auto, thread, warp) for the whole
// process; returns the previous one. A switch for tests and benchmarks.
int mcts_set_mapping(int mapping);
// Whether a call over B trees on the current device runs a warp per tree now.
bool mcts_warp_per_tree(index_t B);
template <class T>
void mcts_select(const mcts::Batch<T>& t, index_t B, const mcts::Params& p, mcts::i32* node, mcts::i32* action,
                 cudaStream_t stream);
template <class T>
void mcts_expand(const mcts::Batch<T>& t, index_t B, const mcts::i32* node, const mcts::i32* action, const T* reward,
                 const T* discount, const T* logits, const T* value, const mcts::u8* invalid, const std::int64_t* state,
                 mcts::i32* out, cudaStream_t stream);
template <class T>
void mcts_backup(const mcts::Batch<T>& t, index_t B, const mcts::i32* node, cudaStream_t stream);
template <class T>
void mcts_search_tabular(const mcts::Batch<T>& t, index_t B, const mcts::Params& p, index_t num_simulations,
                         const std::int64_t* next_state, const T* reward, const T* discount, const T* logits,
                         const T* prior, const T* value, const mcts::u8* invalid, const mcts::Transitions& tr,
                         cudaStream_t stream);
template <class T>
void mcts_advance(const mcts::Batch<T>& t, index_t B, const mcts::i32* action, mcts::i32* new_index,
                  mcts::i32* old_index, mcts::i32* status, cudaStream_t stream);
template <class T>
void mcts_dirichlet(std::uint64_t seed, std::uint64_t stream0, double alpha, index_t B, index_t A, T* out,
                    cudaStream_t stream);
template <class T>
void mcts_gumbel(std::uint64_t seed, std::uint64_t stream0, index_t B, index_t A, T* out, cudaStream_t stream);
template <class T>
void mcts_sample(const T* w, index_t B, index_t A, const T* temperature, std::uint64_t seed, std::uint64_t stream0,
                 std::int64_t* out, cudaStream_t stream);
}  // namespace pygenmod::cuda
