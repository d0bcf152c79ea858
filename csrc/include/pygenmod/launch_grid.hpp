// How the batched reductions split their work: the GMM statistics' point groups and tiles
// (their summation order, shared by the CPU and CUDA launchers) and the grid choices of the
// CUDA launchers at small batch sizes. Host/device integer functions only, so the choices are
// tested on the CPU (tests/cpp/test_launch_grid.cpp); `sms` is the device's multiprocessor count.
#pragma once

#include "pygenmod/common.hpp"

namespace pygenmod {

namespace grid {

// Blocks of `threads` covering n items; never 0 (a zero-block grid is a launch error: a
// launcher with nothing to do still launches one block whose threads all return).
PGM_HD index_t blocks_for(index_t n, index_t threads) {
  const index_t b = (n + threads - 1) / threads;
  return b > 0 ? b : 1;
}

// A launch below this many blocks leaves SMs idle (4 resident blocks per SM).
constexpr index_t kBlocksPerSM = 4;
PGM_HD index_t fill_blocks(int sms) { return kBlocksPerSM * (sms > 0 ? sms : 1); }

}  // namespace grid

namespace gmm {

// ---- the order of the statistics' sums (fixed by N alone: CPU and CUDA, any batch, any device)
// A set's points form n_groups(N) groups of about 2048 points (at most 64); the CPU sums
// group partials in group order. The CUDA kernels also split each group into kTiles tiles,
// sum each tile serially in point order, then the tiles of a group in tile order, then the
// groups in order: one order, whichever kernel (or how many threads) computes which part.
constexpr index_t kGroupPoints = 2048, kMaxGroups = 64, kTiles = 64;

PGM_HD index_t n_groups(index_t N) {
  const index_t g = (N + kGroupPoints - 1) / kGroupPoints;
  return g < 1 ? 1 : (g > kMaxGroups ? kMaxGroups : g);
}
PGM_HD index_t group_begin(index_t N, index_t G, index_t g) { return (N * g) / G; }
// First point of tile j (j <= kTiles) of the group [n0, n1) (a tile may be empty).
PGM_HD index_t tile_begin(index_t n0, index_t n1, index_t j) { return n0 + ((n1 - n0) * j) / kTiles; }

// ---- the CUDA statistics grid
// One thread per (set, group, statistic) sums its group's tiles in order (split = 1) when that
// fills the GPU; with few sets (B = 1 uses G * SS threads) it is one thread per (set, group,
// tile, statistic) (split = kTiles) and a second kernel adds each group's tiles in order: the
// same additions in the same order, so the result does not depend on the choice.
// Tiles shorter than kMinTilePoints are not worth the second kernel.
constexpr index_t kMinTilePoints = 8;

struct StatsGrid {
  index_t groups;  // point groups per set: n_groups(N)
  index_t split;   // partial sums per group: 1 or kTiles
  index_t items;   // threads of the statistics kernel: sets * groups * split * ss
  index_t blocks;  // its blocks of `threads` (never 0)
};

// nb sets of N points, ss statistics per set, blocks of `threads`, on a device with `sms` SMs.
PGM_HD StatsGrid stats_grid(index_t nb, index_t N, index_t ss, index_t threads, int sms) {
  StatsGrid p;
  p.groups = n_groups(N);
  p.split = 1;
  const bool long_tiles = N >= kTiles * kMinTilePoints;
  if (long_tiles && grid::blocks_for(nb * p.groups * ss, threads) < grid::fill_blocks(sms)) p.split = kTiles;
  p.items = nb * p.groups * p.split * ss;
  p.blocks = grid::blocks_for(p.items, threads);
  return p;
}

// Thread i of the statistics kernel: statistic q, tile u (0 when split = 1), point group g,
// position li in the list of running sets; statistic q fastest, so a warp shares points.
struct StatsItem {
  index_t q, u, g, li;
};
PGM_HD StatsItem stats_item(index_t i, index_t ss, index_t split, index_t G) {
  return StatsItem{i % ss, (i / ss) % split, (i / (ss * split)) % G, i / (ss * split * G)};
}
// Where the tile sums live with split = kTiles: thread i writes slot i; the second kernel reads
// the kTiles slots of (li, g, q) in tile order.
PGM_HD index_t tile_slot(index_t li, index_t g, index_t u, index_t q, index_t G, index_t ss) {
  return ((li * G + g) * kTiles + u) * ss + q;
}

// Tile partials (doubles) the scratch needs for any launch over nb <= B sets: split = kTiles
// holds for nb up to the largest nb whose one-per-group grid is below fill_blocks.
PGM_HD index_t stats_tile_partials(index_t B, index_t N, index_t ss, index_t threads, int sms) {
  if (B < 1 || ss < 1 || N < kTiles * kMinTilePoints) return 0;
  const index_t per_set = n_groups(N) * ss;
  // blocks_for(nb * per_set) < fill  <=>  nb * per_set <= (fill - 1) * threads
  index_t nb = ((grid::fill_blocks(sms) - 1) * threads) / per_set;
  nb = nb < B ? nb : B;
  return nb * per_set * kTiles;
}

}  // namespace gmm

namespace spatial {

// ---- the CUDA spatial softmax grid
// Blocks of 256 threads. NCHW: one block per (b, c) map, 256 pixel lanes. NHWC: one block per
// (b, group of 32 channels), 8 pixel lanes per channel. When those blocks are too few to fill
// the GPU (small B * C), each map's pixels are split into `splits` contiguous slices, one block
// each; a second kernel merges the slices' partial results per map in slice order.
constexpr index_t kGroupChannels = 32;               // NHWC channels per block
constexpr index_t kLanesNCHW = 256, kLanesNHWC = 8;  // pixel lanes per map in a block
constexpr index_t kMinLanePixels = 8;                // a slice gives each lane at least this many pixels
constexpr index_t kMaxSplits = 128;                  // the merge is serial over slices

// Blocks of the whole-map mapping: maps (NCHW) or (image, channel group) pairs (NHWC).
PGM_HD index_t map_blocks(index_t B, index_t C, bool channels_last) {
  return channels_last ? B * ((C + kGroupChannels - 1) / kGroupChannels) : B * C;
}

// Slices per map (1: the whole-map mapping) for B maps-groups of HW pixels on `sms` SMs.
PGM_HD index_t pixel_splits(index_t B, index_t C, index_t HW, bool channels_last, int sms) {
  const index_t blocks = map_blocks(B, C, channels_last);
  const index_t fill = grid::fill_blocks(sms);
  if (blocks < 1 || blocks >= fill) return 1;
  index_t s = (fill + blocks - 1) / blocks;
  const index_t most = HW / ((channels_last ? kLanesNHWC : kLanesNCHW) * kMinLanePixels);
  s = s < most ? s : most;
  s = s < kMaxSplits ? s : kMaxSplits;
  return s > 1 ? s : 1;
}

// Block `block` of a launch of map_blocks * splits blocks: image b, first channel c0 (NCHW: its
// map's channel; NHWC: the first of its 32) and slice k; the blocks of one map group are
// consecutive.
struct SliceBlock {
  index_t b, c0, k;
};
PGM_HD SliceBlock slice_block(index_t block, index_t splits, index_t C, bool channels_last) {
  const index_t m = block / splits, k = block % splits;
  if (!channels_last) return SliceBlock{m / C, m % C, k};
  const index_t groups = (C + kGroupChannels - 1) / kGroupChannels;
  return SliceBlock{m / groups, (m % groups) * kGroupChannels, k};
}

// Pixels [slice_begin(k), slice_begin(k + 1)) of a map form slice k of `splits`.
PGM_HD index_t slice_begin(index_t HW, index_t splits, index_t k) { return (HW * k) / splits; }

}  // namespace spatial

}  // namespace pygenmod
