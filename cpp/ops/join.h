// Joining and splitting along an axis, and padding: concatenate/stack build a new
// tensor from pieces, split/chunk return views, pad surrounds a tensor with a border.
// All are differentiable; their gradients are slices (for joins and pads) and
// slice-embeddings (for splits, through the views they return).
#pragma once
#include <string>
#include <vector>

#include "core/tensor.h"

namespace lamina {

// numpy.concatenate: every input has the same rank and the same sizes except along
// `axis`; dtypes promote like numpy's.
Tensor concatenate(const std::vector<Tensor>& tensors, int64_t axis = 0);
// numpy.stack: inputs of one shape joined along a new axis.
Tensor stack(const std::vector<Tensor>& tensors, int64_t axis = 0);
// numpy.split with an int: `sections` equal pieces (ValueError if not divisible).
std::vector<Tensor> split(const Tensor& x, int64_t sections, int64_t axis = 0);
// numpy.split with split points: x[:i0], x[i0:i1], ..., x[ik:] (Python slice rules).
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& indices, int64_t axis = 0);
// torch.chunk: pieces of ceil(n / chunks) along axis, the last one smaller (possibly
// fewer than `chunks` pieces).
std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t axis = 0);
// numpy.pad. pad_width is a list of (before, after) or (both,) entries: one entry
// applies to every axis, otherwise one entry per axis. Modes: "constant" (with
// `value`), "edge", "reflect", "wrap".
Tensor pad(const Tensor& x, const std::vector<std::vector<int64_t>>& pad_width, const std::string& mode = "constant",
           double value = 0.0);

}  // namespace lamina
