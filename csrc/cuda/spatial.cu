// CUDA launchers for the spatial softmax keypoints; the math (online moments, merge, finalize,
// backward coefficients, exp, half loads) is pygenmod/spatial.hpp's.
//
// Mapping: blocks of 32 x 8 threads.
// - NCHW: one block per (b, c) map; its 256 threads stride over the map's pixels (coalesced)
//   and the block merges their online moments in shared memory.
// - NHWC: one block per (b, tile of 32 channels); threadIdx.x is the channel (coalesced loads
//   along C), the 8 threadIdx.y rows stride over pixels and are merged per channel.
// Each thread keeps online max-subtracted moments (one pass over x); maps / gradients are
// written in a second pass over the map.
#include "cuda_check.cuh"
#include "spatial.cuh"

namespace pygenmod::cuda {
using namespace pygenmod::spatial;
using spatial::detail::BwdArgs;
using spatial::detail::FwdArgs;

namespace {

constexpr int TX = 32, TY = 8, NT = TX * TY;

struct MapRef {
  index_t b, c, base, ps;  // element p of the map is x[base + p * ps]
  int lane, nlanes;        // this thread's pixel lane within the map's group
  bool active;
};

template <bool CL>
__device__ MapRef map_ref(index_t C, index_t HW) {
  MapRef r;
  if constexpr (!CL) {
    const index_t bc = blockIdx.x;
    r.b = bc / C;
    r.c = bc % C;
    r.base = bc * HW;
    r.ps = 1;
    r.lane = threadIdx.y * TX + threadIdx.x;
    r.nlanes = NT;
    r.active = true;
  } else {
    const index_t tiles = (C + TX - 1) / TX;
    r.b = blockIdx.x / tiles;
    r.c = (blockIdx.x % tiles) * TX + threadIdx.x;
    r.base = r.b * HW * C + r.c;
    r.ps = C;
    r.lane = threadIdx.y;
    r.nlanes = TY;
    r.active = r.c < C;
  }
  return r;
}

// Row and column of pixel p (32-bit division when it fits: 64-bit division is slow on GPUs).
__device__ __forceinline__ void row_col(index_t p, index_t W, index_t& i, index_t& j) {
  if (p <= 0xffffffffLL && W <= 0xffffffffLL) {
    const unsigned q = static_cast<unsigned>(p) / static_cast<unsigned>(W);
    i = q;
  } else {
    i = p / W;
  }
  j = p - i * W;
}

// Tree-merge of the shared moments of one map group; the result lands in sh[root].
template <bool CL>
__device__ int reduce_moments(Moments<double>* sh) {
  const int t = threadIdx.y * TX + threadIdx.x;
  if constexpr (!CL) {
    for (int s = NT / 2; s > 0; s >>= 1) {
      if (t < s) merge(sh[t], sh[t + s]);
      __syncthreads();
    }
    return 0;
  } else {
    for (int s = TY / 2; s > 0; s >>= 1) {
      if (static_cast<int>(threadIdx.y) < s) merge(sh[t], sh[t + s * TX]);
      __syncthreads();
    }
    return threadIdx.x;
  }
}

template <bool CL>
__device__ int reduce_sum(double* sh) {
  const int t = threadIdx.y * TX + threadIdx.x;
  if constexpr (!CL) {
    for (int s = NT / 2; s > 0; s >>= 1) {
      if (t < s) sh[t] += sh[t + s];
      __syncthreads();
    }
    return 0;
  } else {
    for (int s = TY / 2; s > 0; s >>= 1) {
      if (static_cast<int>(threadIdx.y) < s) sh[t] += sh[t + s * TX];
      __syncthreads();
    }
    return threadIdx.x;
  }
}

template <class S, bool CL>
__global__ void __launch_bounds__(NT) forward_kernel(FwdArgs<S> a) {
  using T = compute_t<S>;
  __shared__ Moments<double> sh[NT];
  const index_t HW = a.H * a.W;
  const MapRef r = map_ref<CL>(a.C, HW);
  const int t = threadIdx.y * TX + threadIdx.x;
  const bool cov = a.cov != nullptr;
  const std::uint8_t* mk = (a.mask.p && r.active) ? a.mask.map(r.b, r.c, HW) : nullptr;
  const T inv = r.active ? a.inv[r.c] : T(1);
  // per-thread online moments in T, relative to the running max m
  T m = neg_inf<T>(), s0 = 0, sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
  if (r.active) {
    for (index_t p = r.lane; p < HW; p += r.nlanes) {
      if (mk && !mk[p]) continue;
      const T z = load(a.x, r.base + p * r.ps) * inv;
      if (z == neg_inf<T>()) continue;  // probability 0, as on the CPU
      if (z > m) {
        const T f = exp_neg(m - z);
        s0 *= f;
        sx *= f;
        sy *= f;
        sxx *= f;
        syy *= f;
        sxy *= f;
        m = z;
      }
      const T e = exp_neg(z - m);
      index_t i, j;
      row_col(p, a.W, i, j);
      const T px = static_cast<T>(a.g.x0 + static_cast<double>(j) * a.g.dx);
      const T py = static_cast<T>(a.g.y0 + static_cast<double>(i) * a.g.dy);
      const T ex = e * px, ey = e * py;
      s0 += e;
      sx += ex;
      sy += ey;
      if (cov) {
        sxx += ex * px;
        syy += ey * py;
        sxy += ex * py;
      }
    }
  }
  sh[t] = Moments<double>{m == neg_inf<T>() ? neg_inf<double>() : static_cast<double>(m), s0, sx, sy, sxx, syy, sxy};
  __syncthreads();
  const int root = reduce_moments<CL>(sh);
  const Moments<double> fin = sh[root];
  if (r.active && r.lane == 0) {
    const index_t bc = r.b * a.C + r.c;
    finalize(fin, a.kp + bc * 2, cov ? a.cov + bc * 4 : static_cast<T*>(nullptr), a.stats + bc * 2);
  }
  if (a.maps && r.active) {
    const T mm = static_cast<T>(fin.m), il = static_cast<T>(1.0 / fin.s0);
    for (index_t p = r.lane; p < HW; p += r.nlanes) {
      const index_t k = r.base + p * r.ps;
      a.maps[k] = (mk && !mk[p]) ? T(0) : exp_neg(load(a.x, k) * inv - mm) * il;
    }
  }
}

template <class S, bool CL>
__global__ void __launch_bounds__(NT) backward_kernel(BwdArgs<S> a) {
  using T = compute_t<S>;
  __shared__ double sh[NT];
  const index_t HW = a.H * a.W;
  const MapRef r = map_ref<CL>(a.C, HW);
  const int t = threadIdx.y * TX + threadIdx.x;
  const index_t bc = r.b * a.C + (r.active ? r.c : 0);
  const std::uint8_t* mk = (a.mask.p && r.active) ? a.mask.map(r.b, r.c, HW) : nullptr;
  BackCoef<double> k{};
  T inv = 1, m = 0, il = 0;
  if (r.active) {
    k = back_coef<double>(a.kp + bc * 2, a.cov ? a.cov + bc * 4 : nullptr, a.g_kp + bc * 2,
                          a.g_cov ? a.g_cov + bc * 4 : nullptr);
    inv = a.inv[r.c];
    m = a.stats[bc * 2];
    il = static_cast<T>(1.0 / static_cast<double>(a.stats[bc * 2 + 1]));
  }
  if (a.g_maps) {  // phibar gets sum_q s_q gS_q: one more pass and a block sum
    double dot = 0;
    if (r.active)
      for (index_t p = r.lane; p < HW; p += r.nlanes) {
        if (mk && !mk[p]) continue;
        const index_t q = r.base + p * r.ps;
        dot += static_cast<double>(exp_neg(load(a.x, q) * inv - m) * il * a.g_maps[q]);
      }
    sh[t] = dot;
    __syncthreads();
    const double total = sh[reduce_sum<CL>(sh)];
    __syncthreads();
    k.c0 -= total;
  }
  double ga = 0;
  if (r.active) {
    const T gxx = static_cast<T>(k.gxx);
    for (index_t p = r.lane; p < HW; p += r.nlanes) {
      const index_t q = r.base + p * r.ps;
      if (mk && !mk[p]) {
        a.gx[q] = T(0);
        continue;
      }
      index_t i, j;
      row_col(p, a.W, i, j);
      const double py = a.g.y0 + static_cast<double>(i) * a.g.dy;
      const T px = static_cast<T>(a.g.x0 + static_cast<double>(j) * a.g.dx);
      const T cr = static_cast<T>(k.c0 + k.ay * py + k.gyy * py * py);
      const T bx = static_cast<T>(k.ax + k.gxy2 * py);
      const T tt = load(a.x, q) * inv - m;
      const T s = exp_neg(tt) * il;
      T d = cr + px * (bx + gxx * px);
      if (a.g_maps) d += a.g_maps[q];
      const T gz = s * d;
      a.gx[q] = gz * inv;
      ga += static_cast<double>(gz * tt);
    }
  }
  sh[t] = ga;
  __syncthreads();
  const double total = sh[reduce_sum<CL>(sh)];
  if (r.active && r.lane == 0) a.g_temp[bc] = static_cast<T>(-static_cast<double>(inv) * total);
}

unsigned n_blocks(index_t B, index_t C, bool cl) { return static_cast<unsigned>(cl ? B * ((C + TX - 1) / TX) : B * C); }

}  // namespace

template <class S>
void spatial_forward(const FwdArgs<S>& a, bool channels_last, cudaStream_t stream) {
  const unsigned nb = n_blocks(a.B, a.C, channels_last);
  if (nb == 0) return;
  const dim3 threads(TX, TY);
  if (channels_last)
    forward_kernel<S, true><<<nb, threads, 0, stream>>>(a);
  else
    forward_kernel<S, false><<<nb, threads, 0, stream>>>(a);
  check_launch("spatial_forward");
}

template <class S>
void spatial_backward(const BwdArgs<S>& a, bool channels_last, cudaStream_t stream) {
  const unsigned nb = n_blocks(a.B, a.C, channels_last);
  if (nb == 0) return;
  const dim3 threads(TX, TY);
  if (channels_last)
    backward_kernel<S, true><<<nb, threads, 0, stream>>>(a);
  else
    backward_kernel<S, false><<<nb, threads, 0, stream>>>(a);
  check_launch("spatial_backward");
}

#define PGM_SPATIAL_INSTANTIATE(S)                                         \
  template void spatial_forward<S>(const FwdArgs<S>&, bool, cudaStream_t); \
  template void spatial_backward<S>(const BwdArgs<S>&, bool, cudaStream_t);
PGM_SPATIAL_INSTANTIATE(float)
PGM_SPATIAL_INSTANTIATE(double)
PGM_SPATIAL_INSTANTIATE(half_t)
#undef PGM_SPATIAL_INSTANTIATE

}  // namespace pygenmod::cuda
