// numpy.einsum as a composite of views, sums and batched matmul, so its gradients come
// from those ops. Supports explicit ("ij,jk->ik") and implicit ("ij,jk") outputs,
// repeated labels within an operand (diagonals, "ii->i"), and "..." for broadcast axes.
// Operands are contracted left to right.
#pragma once
#include <string>
#include <vector>

#include "core/tensor.h"

namespace lamina {

Tensor einsum(const std::string& subscripts, const std::vector<Tensor>& operands);

}  // namespace lamina
