// The CUDA launchers' grid choices (pygenmod/launch_grid.hpp), checked on the CPU: the GMM
// statistics' groups and tiles partition the points, the tile split is chosen only when the
// one-thread-per-group grid leaves the GPU idle (B = 1, B large, N tiny, N = 0: never a
// zero-block grid), the scratch covers every launch; the spatial softmax slices likewise.
#include <cstdint>
#include <initializer_list>
#include <vector>

#include "check.hpp"
#include "pygenmod/launch_grid.hpp"

namespace gmm = pygenmod::gmm;
namespace grid = pygenmod::grid;
namespace sp = pygenmod::spatial;
using pygenmod::index_t;

constexpr index_t kThreads = 128;

// Every point of [0, N) lies in exactly one tile of one group, tiles in point order.
void check_partition(index_t N) {
  const index_t G = gmm::n_groups(N);
  index_t next = 0;
  for (index_t g = 0; g < G; ++g) {
    const index_t n0 = gmm::group_begin(N, G, g), n1 = gmm::group_begin(N, G, g + 1);
    CHECK(n0 == next);
    CHECK(gmm::tile_begin(n0, n1, 0) == n0);
    CHECK(gmm::tile_begin(n0, n1, gmm::kTiles) == n1);
    for (index_t j = 0; j < gmm::kTiles; ++j) CHECK(gmm::tile_begin(n0, n1, j) <= gmm::tile_begin(n0, n1, j + 1));
    next = n1;
  }
  CHECK(next == N);
}

void check_stats_grid(index_t nb, index_t N, index_t ss, int sms) {
  const gmm::StatsGrid p = gmm::stats_grid(nb, N, ss, kThreads, sms);
  CHECK(p.groups == gmm::n_groups(N));
  CHECK(p.split == 1 || p.split == gmm::kTiles);
  CHECK(p.items == nb * p.groups * p.split * ss);
  CHECK(p.blocks >= 1);  // never a zero-block grid
  CHECK(p.blocks * kThreads >= p.items);
  CHECK(p.blocks == 1 || (p.blocks - 1) * kThreads < p.items);
  const index_t one = grid::blocks_for(nb * p.groups * ss, kThreads);
  const bool idle = one < grid::fill_blocks(sms);
  CHECK((p.split > 1) == (idle && N >= gmm::kTiles * gmm::kMinTilePoints));
}

// The scratch's tile partials: the largest need of any launch over nb <= B sets.
void check_tile_partials(index_t B, index_t N, index_t ss, int sms) {
  index_t most = 0;
  for (index_t nb = 1; nb <= B; ++nb) {
    const gmm::StatsGrid p = gmm::stats_grid(nb, N, ss, kThreads, sms);
    if (p.split > 1 && p.items > most) most = p.items;
  }
  CHECK(gmm::stats_tile_partials(B, N, ss, kThreads, sms) == most);
}

// Thread i <-> (listed set, group, tile, statistic) one to one, statistic fastest; with
// split = kTiles thread i writes tile slot i.
void check_stats_items(index_t nb, index_t G, index_t ss, index_t split) {
  for (index_t i = 0; i < nb * G * split * ss; ++i) {
    const gmm::StatsItem it = gmm::stats_item(i, ss, split, G);
    CHECK(it.q >= 0 && it.q < ss && it.u >= 0 && it.u < split && it.g >= 0 && it.g < G && it.li >= 0 && it.li < nb);
    CHECK(((it.li * G + it.g) * split + it.u) * ss + it.q == i);
    if (split == gmm::kTiles) CHECK(gmm::tile_slot(it.li, it.g, it.u, it.q, G, ss) == i);
  }
}

// The blocks of a split launch cover every (image, map group, slice) exactly once.
void check_slice_blocks(index_t B, index_t C, index_t splits, bool cl) {
  const index_t step = cl ? sp::kGroupChannels : 1;
  std::vector<int> seen(static_cast<std::size_t>(B * C * splits), 0);
  for (index_t blk = 0; blk < sp::map_blocks(B, C, cl) * splits; ++blk) {
    const sp::SliceBlock sb = sp::slice_block(blk, splits, C, cl);
    CHECK(sb.b >= 0 && sb.b < B && sb.c0 >= 0 && sb.c0 < C && sb.c0 % step == 0 && sb.k >= 0 && sb.k < splits);
    CHECK(blk % splits == sb.k);  // a map group's slices are consecutive blocks
    ++seen[static_cast<std::size_t>((sb.b * C + sb.c0) * splits + sb.k)];
  }
  for (index_t b = 0; b < B; ++b)
    for (index_t c = 0; c < C; ++c)
      for (index_t k = 0; k < splits; ++k)
        CHECK(seen[static_cast<std::size_t>((b * C + c) * splits + k)] == (c % step == 0 ? 1 : 0));
}

void check_splits(index_t B, index_t C, index_t HW, bool cl, int sms) {
  const index_t s = sp::pixel_splits(B, C, HW, cl, sms);
  const index_t blocks = sp::map_blocks(B, C, cl), fill = grid::fill_blocks(sms);
  const index_t lanes = cl ? sp::kLanesNHWC : sp::kLanesNCHW;
  CHECK(s >= 1 && s <= sp::kMaxSplits);
  if (blocks >= fill || blocks == 0) CHECK(s == 1);
  if (s > 1) {
    CHECK(blocks < fill);
    for (index_t k = 0; k < s; ++k)  // every lane of every slice has kMinLanePixels pixels
      CHECK(sp::slice_begin(HW, s, k + 1) - sp::slice_begin(HW, s, k) >= lanes * sp::kMinLanePixels);
  }
  // below the caps, the split grid fills the GPU
  if (blocks > 0 && blocks < fill && s < sp::kMaxSplits && s < HW / (lanes * sp::kMinLanePixels))
    CHECK(blocks * s >= fill);
  CHECK(sp::slice_begin(HW, s, 0) == 0 && sp::slice_begin(HW, s, s) == HW);
}

int main() {
  // ---- GMM point groups and tiles
  CHECK(gmm::n_groups(0) == 1);
  CHECK(gmm::n_groups(1) == 1);
  CHECK(gmm::n_groups(2048) == 1);
  CHECK(gmm::n_groups(2049) == 2);
  CHECK(gmm::n_groups(index_t(1) << 40) == gmm::kMaxGroups);
  for (index_t N : {0, 1, 7, 63, 64, 65, 511, 512, 2047, 2048, 2049, 100000, 131073, 1000003}) check_partition(N);

  // ---- GMM statistics grid on a 132-SM device (H200) and a 1-SM one
  const int h200 = 132;
  // B = 1, large N: the tile split (the one-per-group grid would be 7 blocks)
  {
    const gmm::StatsGrid p = gmm::stats_grid(1, 100000, 16, kThreads, h200);
    CHECK(p.split == gmm::kTiles);
    CHECK(p.groups == 49);
    CHECK(p.blocks == grid::blocks_for(49 * 64 * 16, kThreads));
  }
  // B = 1, N = 1M, diag D = K = 64 (8385 statistics): one per group already fills the GPU
  CHECK(gmm::stats_grid(1, 1000000, 64 + 64 * 64 + 64 * 64 + 1, kThreads, h200).split == 1);
  // B large: one thread per (set, group, statistic)
  CHECK(gmm::stats_grid(4096, 100000, 16, kThreads, h200).split == 1);
  // N tiny: no tiles (a tile would hold under kMinTilePoints points)
  CHECK(gmm::stats_grid(1, 10, 16, kThreads, h200).split == 1);
  CHECK(gmm::stats_grid(1, 511, 16, kThreads, h200).split == 1);
  CHECK(gmm::stats_grid(1, 512, 16, kThreads, h200).split == gmm::kTiles);
  // N = 0: one group of zeros, at least one block
  {
    const gmm::StatsGrid p = gmm::stats_grid(1, 0, 16, kThreads, h200);
    CHECK(p.split == 1 && p.groups == 1 && p.items == 16 && p.blocks == 1);
  }
  for (index_t nb : {0, 1, 2, 3, 50, 700, 5000})
    for (index_t N : {0, 1, 100, 511, 512, 5000, 100000, 1000000})
      for (index_t ss : {1, 4, 16, 40, 8385})
        for (int sms : {1, 8, 132}) check_stats_grid(nb, N, ss, sms);
  for (index_t B : {1, 2, 17, 300, 3000})
    for (index_t N : {0, 100, 512, 5000, 100000})
      for (index_t ss : {4, 16, 40, 8385})
        for (int sms : {1, 132}) check_tile_partials(B, N, ss, sms);
  CHECK(gmm::stats_tile_partials(0, 5000, 16, kThreads, h200) == 0);
  for (index_t nb : {1, 3})
    for (index_t G : {1, 5})
      for (index_t ss : {1, 7, 40})
        for (index_t split : {index_t(1), gmm::kTiles}) check_stats_items(nb, G, ss, split);

  // ---- spatial softmax slices
  CHECK(sp::pixel_splits(1, 32, 64 * 64, true, h200) == 64);  // B = 1: one tile, 64 slices of 64 pixels
  CHECK(sp::pixel_splits(1, 64, 16, true, h200) == 1);        // tiny maps: whole
  CHECK(sp::pixel_splits(1000, 64, 64 * 64, true, h200) == 1);
  CHECK(sp::pixel_splits(0, 64, 64 * 64, true, h200) == 1);
  CHECK(sp::pixel_splits(1, 16, 64 * 64, false, h200) == 2);  // NCHW: 2048 pixels per block at least
  CHECK(sp::pixel_splits(1, 1, 1 << 20, false, h200) == sp::kMaxSplits);
  for (index_t B : {1, 3})
    for (index_t C : {1, 5, 32, 33, 70})
      for (index_t splits : {1, 2, 7})
        for (bool cl : {false, true}) check_slice_blocks(B, C, splits, cl);
  for (index_t B : {0, 1, 2, 5, 64, 1000})
    for (index_t C : {1, 3, 32, 33, 64, 512})
      for (index_t HW : {1, 63, 64, 65, 2048, 4096, 4097, 16384, 1 << 20})
        for (bool cl : {false, true})
          for (int sms : {1, 8, 132}) check_splits(B, C, HW, cl, sms);
  return check::finish("test_launch_grid");
}
