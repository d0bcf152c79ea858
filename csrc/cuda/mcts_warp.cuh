// The warp as the lanes of mcts_lanes.hpp: 32 threads share one tree. Every collective is
// called by all 32 lanes with the same arguments (the selection's control flow is the same on
// every lane, since every lane gets the same results) and returns the same value to all.
#pragma once
#include <cstring>

#include "pygenmod/mcts_lanes.hpp"

namespace pygenmod::cuda {

struct WarpLanes {
  static constexpr unsigned kFull = 0xffffffffu;
  unsigned lane_;  // threadIdx.x % 32

  __device__ bool leader() const { return lane_ == 0; }
  __device__ index_t lane() const { return lane_; }
  __device__ index_t width() const { return 32; }
  __device__ void sync() const { __syncwarp(); }  // also orders the lanes' memory accesses

  // v of lane src (xor: of lane lane_ ^ src), any trivially copyable value of 4-byte words.
  template <class V>
  __device__ static V shfl(const V& v, int src, bool xor_lane) {
    static_assert(sizeof(V) % 4 == 0, "shuffled values are whole 32-bit words");
    unsigned w[sizeof(V) / 4];
    memcpy(w, &v, sizeof(V));
    for (unsigned i = 0; i < sizeof(V) / 4; ++i)
      w[i] = xor_lane ? __shfl_xor_sync(kFull, w[i], src) : __shfl_sync(kFull, w[i], src);
    V out;
    memcpy(&out, w, sizeof(V));
    return out;
  }

  template <class T, class F>
  __device__ mcts::i32 argmax(index_t A, const F& f) const {
    mcts::ArgmaxAcc<T> acc;
    for (index_t a = lane_; a < A; a += 32) {
      T s;
      if (f(a, s)) acc.push(static_cast<mcts::i32>(a), s);
    }
    for (int off = 16; off >= 1; off /= 2) acc = mcts::combine(acc, shfl(acc, off, true));
    return acc.result();
  }

  template <class V, class F, class Op>
  __device__ V fold(index_t begin, index_t end, V acc, const F& f, const Op& op) const {
    for (index_t base = begin; base < end; base += 32) {
      const index_t a = base + lane_;
      V v{};
      const bool inc = a < end && f(a, v);
      const unsigned mask = __ballot_sync(kFull, inc);
      const int n = end - base < 32 ? static_cast<int>(end - base) : 32;
      for (int j = 0; j < n; ++j) {
        const V vj = shfl(v, j, false);
        if ((mask >> j) & 1u) acc = op(acc, vj);
      }
    }
    return acc;
  }

  template <class F, class Op>
  __device__ mcts::i32 reduce(index_t A, mcts::i32 identity, const F& f, const Op& op) const {
    mcts::i32 acc = identity;
    for (index_t a = lane_; a < A; a += 32) acc = op(acc, f(a));
    for (int off = 16; off >= 1; off /= 2) acc = op(acc, __shfl_xor_sync(kFull, acc, off));
    return acc;
  }
};

}  // namespace pygenmod::cuda
