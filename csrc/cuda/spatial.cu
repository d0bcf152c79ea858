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
// Split mapping (few maps for the GPU, pygenmod/launch_grid.hpp pixel_splits): each map's
// pixels form `splits` contiguous slices, one block each (the same block code over a slice);
// the blocks write their slice's merged moments (forward) or sums (backward) to scratch, and
// one thread per map merges / adds them in slice order (fixed: deterministic), then finalizes;
// the maps (forward) and the gradients (backward, which need the whole map's sum first) are
// written by a second pass of the slice blocks.
#include "cuda_check.cuh"
#include "pygenmod/launch_grid.hpp"
#include "scratch.cuh"
#include "sm_count.cuh"
#include "spatial.cuh"

namespace pygenmod::cuda {
using namespace pygenmod::spatial;
using spatial::detail::BwdArgs;
using spatial::detail::FwdArgs;

namespace {

constexpr int TX = 32, TY = 8, NT = TX * TY;
static_assert(TX == kGroupChannels && TY == kLanesNHWC && NT == kLanesNCHW, "launch_grid.hpp's spatial mapping");

struct MapRef {
  index_t b, c, base, ps;  // element p of the map is x[base + p * ps]
  index_t p0, p1, k;       // this block's pixels [p0, p1): slice k of the map
  int lane, nlanes;        // this thread's pixel lane within the map's group
  bool active;
};

// Blocks [m * splits, (m + 1) * splits) cover map group m (a map, or an NHWC channel tile).
template <bool CL>
__device__ MapRef map_ref(index_t C, index_t HW, index_t splits) {
  MapRef r;
  const SliceBlock sb = slice_block(blockIdx.x, splits, C, CL);
  r.b = sb.b;
  r.k = sb.k;
  r.p0 = slice_begin(HW, splits, r.k);
  r.p1 = slice_begin(HW, splits, r.k + 1);
  if constexpr (!CL) {
    r.c = sb.c0;
    r.base = (r.b * C + r.c) * HW;
    r.ps = 1;
    r.lane = threadIdx.y * TX + threadIdx.x;
    r.nlanes = NT;
    r.active = true;
  } else {
    r.c = sb.c0 + threadIdx.x;
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

// Online moments of this thread's pixels of its slice, merged over the block's lanes of the map.
template <class S, bool CL>
__device__ Moments<double> slice_moments(const FwdArgs<S>& a, const MapRef& r, const std::uint8_t* mk, compute_t<S> inv,
                                         Moments<double>* sh) {
  using T = compute_t<S>;
  const int t = threadIdx.y * TX + threadIdx.x;
  const bool cov = a.cov != nullptr;
  // per-thread online moments in T, relative to the running max m
  T m = neg_inf<T>(), s0 = 0, sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
  if (r.active) {
    for (index_t p = r.p0 + r.lane; p < r.p1; p += r.nlanes) {
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
  return sh[reduce_moments<CL>(sh)];
}

// The softmax maps of this thread's pixels, given the map's max mm and 1 / sum il.
template <class S>
__device__ void write_maps(const FwdArgs<S>& a, const MapRef& r, const std::uint8_t* mk, compute_t<S> inv,
                           compute_t<S> mm, compute_t<S> il) {
  using T = compute_t<S>;
  for (index_t p = r.p0 + r.lane; p < r.p1; p += r.nlanes) {
    const index_t k = r.base + p * r.ps;
    a.maps[k] = (mk && !mk[p]) ? T(0) : exp_neg(load(a.x, k) * inv - mm) * il;
  }
}

// Whole maps (splits == 1): keypoints, covariances, stats and maps. Split: the slice's moments
// go to part[bc * splits + k] (merge_kernel and maps_kernel finish).
template <class S, bool CL>
__global__ void __launch_bounds__(NT) forward_kernel(FwdArgs<S> a, index_t splits, Moments<double>* part) {
  using T = compute_t<S>;
  __shared__ Moments<double> sh[NT];
  const index_t HW = a.H * a.W;
  const MapRef r = map_ref<CL>(a.C, HW, splits);
  const std::uint8_t* mk = (a.mask.p && r.active) ? a.mask.map(r.b, r.c, HW) : nullptr;
  const T inv = r.active ? a.inv[r.c] : T(1);
  const Moments<double> fin = slice_moments<S, CL>(a, r, mk, inv, sh);
  const index_t bc = r.b * a.C + r.c;
  if (splits > 1) {
    if (r.active && r.lane == 0) part[bc * splits + r.k] = fin;
    return;
  }
  if (r.active && r.lane == 0)
    finalize(fin, a.kp + bc * 2, a.cov ? a.cov + bc * 4 : static_cast<T*>(nullptr), a.stats + bc * 2);
  if (a.maps && r.active) write_maps(a, r, mk, inv, static_cast<T>(fin.m), static_cast<T>(1.0 / fin.s0));
}

// Split mapping, one thread per (b, c) map: the slices' moments merged in slice order, then
// the keypoint, covariance and stats; norm (when the maps are wanted) gets (max, 1 / sum).
template <class S>
__global__ void merge_kernel(FwdArgs<S> a, index_t splits, const Moments<double>* part, compute_t<S>* norm) {
  using T = compute_t<S>;
  const index_t bc = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x;
  if (bc >= a.B * a.C) return;
  Moments<double> fin = empty_moments<double>();
  for (index_t k = 0; k < splits; ++k) merge(fin, part[bc * splits + k]);
  finalize(fin, a.kp + bc * 2, a.cov ? a.cov + bc * 4 : static_cast<T*>(nullptr), a.stats + bc * 2);
  if (norm) {
    norm[bc * 2] = static_cast<T>(fin.m);
    norm[bc * 2 + 1] = static_cast<T>(1.0 / fin.s0);
  }
}

// Split mapping: the maps of each slice.
template <class S, bool CL>
__global__ void __launch_bounds__(NT) maps_kernel(FwdArgs<S> a, index_t splits, const compute_t<S>* norm) {
  const index_t HW = a.H * a.W;
  const MapRef r = map_ref<CL>(a.C, HW, splits);
  if (!r.active) return;
  const index_t bc = r.b * a.C + r.c;
  const std::uint8_t* mk = a.mask.p ? a.mask.map(r.b, r.c, HW) : nullptr;
  write_maps(a, r, mk, a.inv[r.c], norm[bc * 2], norm[bc * 2 + 1]);
}

// What the backward of one map needs: coefficients, 1 / alpha, max and 1 / sum (saved stats).
template <class T>
struct BackMap {
  BackCoef<double> k{};
  T inv = 1, m = 0, il = 0;
  const std::uint8_t* mk = nullptr;
};

template <class S>
__device__ BackMap<compute_t<S>> back_map(const BwdArgs<S>& a, const MapRef& r, index_t bc) {
  using T = compute_t<S>;
  BackMap<T> bm;
  if (!r.active) return bm;
  const index_t HW = a.H * a.W;
  bm.mk = a.mask.p ? a.mask.map(r.b, r.c, HW) : nullptr;
  bm.k = back_coef<double>(a.kp + bc * 2, a.cov ? a.cov + bc * 4 : nullptr, a.g_kp + bc * 2,
                           a.g_cov ? a.g_cov + bc * 4 : nullptr);
  bm.inv = a.inv[r.c];
  bm.m = a.stats[bc * 2];
  bm.il = static_cast<T>(1.0 / static_cast<double>(a.stats[bc * 2 + 1]));
  return bm;
}

// sum_p s_p gS_p over the slice (phibar's part from the maps' gradient), summed over the block.
template <class S, bool CL>
__device__ double slice_dot(const BwdArgs<S>& a, const MapRef& r, const BackMap<compute_t<S>>& bm, double* sh) {
  const int t = threadIdx.y * TX + threadIdx.x;
  double dot = 0;
  if (r.active)
    for (index_t p = r.p0 + r.lane; p < r.p1; p += r.nlanes) {
      if (bm.mk && !bm.mk[p]) continue;
      const index_t q = r.base + p * r.ps;
      dot += static_cast<double>(exp_neg(load(a.x, q) * bm.inv - bm.m) * bm.il * a.g_maps[q]);
    }
  sh[t] = dot;
  __syncthreads();
  const double total = sh[reduce_sum<CL>(sh)];
  __syncthreads();  // sh is reused
  return total;
}

// Split mapping with a maps gradient: the slice's dot -> part[bc * splits + k].
template <class S, bool CL>
__global__ void __launch_bounds__(NT) dots_kernel(BwdArgs<S> a, index_t splits, double* part) {
  __shared__ double sh[NT];
  const MapRef r = map_ref<CL>(a.C, a.H * a.W, splits);
  const index_t bc = r.b * a.C + (r.active ? r.c : 0);
  const double total = slice_dot<S, CL>(a, r, back_map(a, r, bc), sh);
  if (r.active && r.lane == 0) part[bc * splits + r.k] = total;
}

// Split mapping, one thread per map: sum of its slices' parts in slice order.
__device__ double fold_slices(const double* part, index_t splits) {
  double acc = 0;
  for (index_t k = 0; k < splits; ++k) acc += part[k];
  return acc;
}

__global__ void fold_dots_kernel(index_t n, index_t splits, const double* part, double* dsum) {
  const index_t bc = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x;
  if (bc < n) dsum[bc] = fold_slices(part + bc * splits, splits);
}

// grad_x of the slice and sum_p gz_p (z_p - m) over it. Whole maps (splits == 1): the dot over
// the map first, and g_temp. Split: the dot is dsum[bc] (dots_kernel, fold_dots_kernel) and the
// slice's sum goes to part[bc * splits + k] (temp_kernel adds them).
template <class S, bool CL>
__global__ void __launch_bounds__(NT) backward_kernel(BwdArgs<S> a, index_t splits, const double* dsum, double* part) {
  using T = compute_t<S>;
  __shared__ double sh[NT];
  const index_t HW = a.H * a.W;
  const MapRef r = map_ref<CL>(a.C, HW, splits);
  const int t = threadIdx.y * TX + threadIdx.x;
  const index_t bc = r.b * a.C + (r.active ? r.c : 0);
  BackMap<T> bm = back_map(a, r, bc);
  if (a.g_maps)  // phibar gets sum_q s_q gS_q
    bm.k.c0 -= splits > 1 ? (r.active ? dsum[bc] : 0.0) : slice_dot<S, CL>(a, r, bm, sh);
  const BackCoef<double>& k = bm.k;
  double ga = 0;
  if (r.active) {
    const T gxx = static_cast<T>(k.gxx);
    for (index_t p = r.p0 + r.lane; p < r.p1; p += r.nlanes) {
      const index_t q = r.base + p * r.ps;
      if (bm.mk && !bm.mk[p]) {
        a.gx[q] = T(0);
        continue;
      }
      index_t i, j;
      row_col(p, a.W, i, j);
      const double py = a.g.y0 + static_cast<double>(i) * a.g.dy;
      const T px = static_cast<T>(a.g.x0 + static_cast<double>(j) * a.g.dx);
      const T cr = static_cast<T>(k.c0 + k.ay * py + k.gyy * py * py);
      const T bx = static_cast<T>(k.ax + k.gxy2 * py);
      const T tt = load(a.x, q) * bm.inv - bm.m;
      const T s = exp_neg(tt) * bm.il;
      T d = cr + px * (bx + gxx * px);
      if (a.g_maps) d += a.g_maps[q];
      const T gz = s * d;
      a.gx[q] = gz * bm.inv;
      ga += static_cast<double>(gz * tt);
    }
  }
  sh[t] = ga;
  __syncthreads();
  const double total = sh[reduce_sum<CL>(sh)];
  if (!r.active || r.lane != 0) return;
  if (splits > 1)
    part[bc * splits + r.k] = total;
  else
    a.g_temp[bc] = static_cast<T>(-static_cast<double>(bm.inv) * total);
}

// Split mapping, one thread per map: g_temp from the slices' sums in slice order.
template <class S>
__global__ void temp_kernel(BwdArgs<S> a, index_t splits, const double* part) {
  using T = compute_t<S>;
  const index_t bc = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x;
  if (bc >= a.B * a.C) return;
  const double total = fold_slices(part + bc * splits, splits);
  a.g_temp[bc] = static_cast<T>(-static_cast<double>(a.inv[bc % a.C]) * total);
}

// Scratch of the split mapping (none for whole maps).
template <class S>
struct FwdScratch {
  Moments<double>* part = nullptr;
  compute_t<S>* norm = nullptr;
  FwdScratch(Carve& cv, const FwdArgs<S>& a, index_t splits) {
    if (splits < 2) return;
    const auto maps = static_cast<std::size_t>(a.B * a.C);
    part = cv.take<Moments<double>>(maps * static_cast<std::size_t>(splits));
    if (a.maps) norm = cv.take<compute_t<S>>(2 * maps);
  }
};

template <class S>
struct BwdScratch {
  double *ga = nullptr, *dots = nullptr, *dsum = nullptr;
  BwdScratch(Carve& cv, const BwdArgs<S>& a, index_t splits) {
    if (splits < 2) return;
    const auto maps = static_cast<std::size_t>(a.B * a.C);
    ga = cv.take<double>(maps * static_cast<std::size_t>(splits));
    if (a.g_maps) {
      dots = cv.take<double>(maps * static_cast<std::size_t>(splits));
      dsum = cv.take<double>(maps);
    }
  }
};

constexpr unsigned kMapThreads = 128;  // one thread per map: merge / fold kernels

template <class S, bool CL>
void forward_launch(const FwdArgs<S>& a, index_t splits, const FwdScratch<S>& buf, cudaStream_t stream) {
  const auto grid = static_cast<unsigned>(map_blocks(a.B, a.C, CL) * splits);
  const dim3 threads(TX, TY);
  forward_kernel<S, CL><<<grid, threads, 0, stream>>>(a, splits, buf.part);
  check_launch("spatial_forward");
  if (splits < 2) return;
  merge_kernel<S><<<blocks_for(a.B * a.C, kMapThreads), kMapThreads, 0, stream>>>(a, splits, buf.part, buf.norm);
  check_launch("spatial_forward (merge)");
  if (!a.maps) return;
  maps_kernel<S, CL><<<grid, threads, 0, stream>>>(a, splits, buf.norm);
  check_launch("spatial_forward (maps)");
}

template <class S, bool CL>
void backward_launch(const BwdArgs<S>& a, index_t splits, const BwdScratch<S>& buf, cudaStream_t stream) {
  const auto grid = static_cast<unsigned>(map_blocks(a.B, a.C, CL) * splits);
  const dim3 threads(TX, TY);
  const unsigned maps = blocks_for(a.B * a.C, kMapThreads);
  if (splits > 1 && a.g_maps) {
    dots_kernel<S, CL><<<grid, threads, 0, stream>>>(a, splits, buf.dots);
    check_launch("spatial_backward (dots)");
    fold_dots_kernel<<<maps, kMapThreads, 0, stream>>>(a.B * a.C, splits, buf.dots, buf.dsum);
    check_launch("spatial_backward (dot sums)");
  }
  backward_kernel<S, CL><<<grid, threads, 0, stream>>>(a, splits, buf.dsum, buf.ga);
  check_launch("spatial_backward");
  if (splits < 2) return;
  temp_kernel<S><<<maps, kMapThreads, 0, stream>>>(a, splits, buf.ga);
  check_launch("spatial_backward (temperature)");
}

// The slices of a call on `stream`: whole maps (no scratch to allocate) while the stream is
// being captured into a CUDA graph, where an allocation from the caller's pool may not be
// allowed; else the device's choice.
index_t splits_on(index_t B, index_t C, index_t HW, bool channels_last, cudaStream_t stream) {
  cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
  PGM_CUDA_CHECK(cudaStreamIsCapturing(stream, &st));
  return st == cudaStreamCaptureStatusNone ? pixel_splits(B, C, HW, channels_last, sm_count()) : 1;
}

}  // namespace

index_t spatial_splits(index_t B, index_t C, index_t HW, bool channels_last) {
  return pixel_splits(B, C, HW, channels_last, sm_count());
}

template <class S>
std::size_t spatial_forward_scratch_bytes(const FwdArgs<S>& a, bool channels_last, cudaStream_t stream) {
  Carve cv;
  const FwdScratch<S> buf(cv, a, splits_on(a.B, a.C, a.H * a.W, channels_last, stream));
  return cv.used;
}

template <class S>
std::size_t spatial_backward_scratch_bytes(const BwdArgs<S>& a, bool channels_last, cudaStream_t stream) {
  Carve cv;
  const BwdScratch<S> buf(cv, a, splits_on(a.B, a.C, a.H * a.W, channels_last, stream));
  return cv.used;
}

template <class S>
void spatial_forward(const FwdArgs<S>& a, bool channels_last, void* scratch, std::size_t scratch_bytes,
                     cudaStream_t stream) {
  if (map_blocks(a.B, a.C, channels_last) == 0) return;
  const index_t splits = splits_on(a.B, a.C, a.H * a.W, channels_last, stream);
  Carve cv(scratch);
  const FwdScratch<S> buf(cv, a, splits);
  check_scratch(cv, scratch_bytes, "spatial_forward");
  if (channels_last)
    forward_launch<S, true>(a, splits, buf, stream);
  else
    forward_launch<S, false>(a, splits, buf, stream);
}

template <class S>
void spatial_backward(const BwdArgs<S>& a, bool channels_last, void* scratch, std::size_t scratch_bytes,
                      cudaStream_t stream) {
  if (map_blocks(a.B, a.C, channels_last) == 0) return;
  const index_t splits = splits_on(a.B, a.C, a.H * a.W, channels_last, stream);
  Carve cv(scratch);
  const BwdScratch<S> buf(cv, a, splits);
  check_scratch(cv, scratch_bytes, "spatial_backward");
  if (channels_last)
    backward_launch<S, true>(a, splits, buf, stream);
  else
    backward_launch<S, false>(a, splits, buf, stream);
}

#define PGM_SPATIAL_INSTANTIATE(S)                                                               \
  template std::size_t spatial_forward_scratch_bytes<S>(const FwdArgs<S>&, bool, cudaStream_t);  \
  template std::size_t spatial_backward_scratch_bytes<S>(const BwdArgs<S>&, bool, cudaStream_t); \
  template void spatial_forward<S>(const FwdArgs<S>&, bool, void*, std::size_t, cudaStream_t);   \
  template void spatial_backward<S>(const BwdArgs<S>&, bool, void*, std::size_t, cudaStream_t);
PGM_SPATIAL_INSTANTIATE(float)
PGM_SPATIAL_INSTANTIATE(double)
PGM_SPATIAL_INSTANTIATE(half_t)
#undef PGM_SPATIAL_INSTANTIATE

}  // namespace pygenmod::cuda
