// The CUDA target from plain C++: one Bellman sweep over a batch of random MDPs on the GPU
// (pygenmod::cuda::backup_dense, declared in mdp.cuh), checked against the CPU kernel. Built
// where the package has pygenmod::cuda; without a usable GPU it says so and exits 0.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

#include <cuda_runtime.h>

#include "mdp.cuh"
#include "pygenmod/mdp.hpp"
#include "pygenmod/random.hpp"

namespace rng = pygenmod::rng;

template <class T>
T* to_device(const std::vector<T>& h) {
  T* d = nullptr;
  if (cudaMalloc(&d, h.size() * sizeof(T)) != cudaSuccess) return nullptr;
  cudaMemcpy(d, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice);
  return d;
}

int main() {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("cuda_bellman: no CUDA device here, nothing to run\n");
    return 0;
  }
  const int B = 64, S = 50, A = 4;
  std::vector<double> P(B * S * A * S), R(B * S * A), V(B * S), gamma(B, 0.95);
  for (std::size_t i = 0; i < P.size(); i += S) {  // rows: Philox uniforms, normalised
    double z = 0;
    for (int j = 0; j < S; ++j) z += P[i + j] = rng::uniform_f64(rng::block(1, i, j).v[0], 1);
    for (int j = 0; j < S; ++j) P[i + j] /= z;
  }
  for (std::size_t i = 0; i < R.size(); ++i) R[i] = rng::uniform_f64(rng::block(2, i, 0).v[0], 1) - 0.5;
  for (std::size_t i = 0; i < V.size(); ++i) V[i] = rng::uniform_f64(rng::block(3, i, 0).v[0], 1);

  double *dP = to_device(P), *dR = to_device(R), *dV = to_device(V), *dg = to_device(gamma);
  double *dQ = nullptr, *dVo = nullptr;
  std::int64_t* dpi = nullptr;
  cudaMalloc(&dQ, R.size() * sizeof(double));
  cudaMalloc(&dVo, V.size() * sizeof(double));
  cudaMalloc(&dpi, V.size() * sizeof(std::int64_t));
  pygenmod::cuda::backup_dense<double>(dP, dR, dV, dg, B, S, A, pygenmod::mdp::kOptimal, nullptr, nullptr, nullptr, dQ,
                                       dVo, dpi, nullptr);
  std::vector<double> Vg(V.size());
  if (cudaMemcpy(Vg.data(), dVo, Vg.size() * sizeof(double), cudaMemcpyDeviceToHost) != cudaSuccess) {
    std::printf("cuda_bellman: CUDA error: %s\n", cudaGetErrorString(cudaGetLastError()));
    return 1;
  }
  std::vector<double> Q(R.size()), Vc(V.size());
  std::vector<std::int64_t> pi(V.size());
  pygenmod::mdp::backup_sweep_cpu<double>(pygenmod::mdp::Dense<double>{P.data(), S, A}, R.data(), V.data(),
                                          gamma.data(), B, pygenmod::mdp::kOptimal, nullptr, nullptr, nullptr, Q.data(),
                                          Vc.data(), pi.data());
  double err = 0;
  for (std::size_t i = 0; i < V.size(); ++i) err = std::fmax(err, std::fabs(Vg[i] - Vc[i]));
  std::printf("cuda_bellman: %d MDPs, GPU vs CPU max |dV| = %.3g\n", B, err);
  for (void* p : {(void*)dP, (void*)dR, (void*)dV, (void*)dg, (void*)dQ, (void*)dVo, (void*)dpi}) cudaFree(p);
  return err < 1e-10 ? 0 : 1;
}
