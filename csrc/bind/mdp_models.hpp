// The host models of P that the mdp bindings build from NumPy arrays (_cpu_mdp and the host copy
// of the device loop, _cpu_mdp_batched): checked pointers and extents, no math.
#pragma once

#include <cstdint>
#include <stdexcept>

#include "array_access.hpp"
#include "pygenmod/mdp.hpp"

namespace pygenmod::bind::mdp_host {
namespace py = pybind11;
using i64 = std::int64_t;

// The dense model of P (B, S, A, S), with its extents.
template <class T>
mdp::Dense<T> dense(const py::array& P, index_t& B) {
  if (P.ndim() != 4) throw std::invalid_argument("P: expected shape (B, S, A, S)");
  B = P.shape(0);
  const index_t S = P.shape(1), A = P.shape(2);
  return mdp::Dense<T>{in<HostArrays, T>(P, "P", {B, S, A, S}), S, A};
}

// The CSR model over B MDPs (indptr has B*S*A + 1 entries).
template <class T>
mdp::Csr<T> csr(const py::array& data, const py::array& indices, const py::array& indptr, index_t S, index_t A,
                index_t& B) {
  if (S < 1 || A < 1) throw std::invalid_argument("n_states and n_actions must be >= 1");
  if (indptr.ndim() != 1 || (indptr.shape(0) - 1) % (S * A) != 0)
    throw std::invalid_argument("indptr: expected length B*S*A + 1");
  B = (indptr.shape(0) - 1) / (S * A);
  const i64* ptr = in<HostArrays, i64>(indptr, "indptr", {-1});
  const auto nnz = data.ndim() == 1 ? data.shape(0) : -2;
  if (ptr[0] != 0 || ptr[indptr.shape(0) - 1] != nnz)
    throw std::invalid_argument("indptr: must start at 0 and end at len(data)");
  return mdp::Csr<T>{in<HostArrays, T>(data, "data", {nnz}), in<HostArrays, std::int32_t>(indices, "indices", {nnz}),
                     ptr, S, A};
}

}  // namespace pygenmod::bind::mdp_host
