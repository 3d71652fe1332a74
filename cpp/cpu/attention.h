// CPU kernels of the attention family: tiled scaled-dot-product attention with an online
// softmax (forward) and a backward that recomputes score tiles from the saved row
// log-sum-exp. The (Lq, Lk) score matrix is never stored. T is float or double.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace lamina::cpu {

// Where the rows of an operand lie: row i of flattened head h starts at head[h] + i * row
// elements from its pointer, and is contiguous. So q, k, v may be views, e.g. of one
// projection split into q, k and v.
struct RowsLayout {
  std::vector<int64_t> head;
  int64_t row = 0;
  int64_t at(int64_t h, int64_t i) const { return head[std::size_t(h)] + i * row; }
};

// Heads are flattened to `heads` = prod(leading dims); q (heads, Lq, D), k (heads, Lk, D),
// v (heads, Lk, Dv) laid out as their RowsLayouts say, as is the backward's dout
// (heads, Lq, Dv); the outputs (out, lse, dq, dk, dv) are contiguous. The mask, when present,
// is read at mask + head_offset[h] + i * row_stride + j * col_stride (strides may be 0:
// broadcast). bool_mask: bytes, 0 = masked out; otherwise additive values of type T.
template <class T>
struct AttentionArgs {
  int64_t heads, lq, lk, d, dv;
  T scale;
  bool causal;  // key j is visible to query i when j <= i (top-left aligned, like PyTorch)
  RowsLayout q, k, v, dout;
  const void* mask = nullptr;
  bool bool_mask = false;
  std::vector<int64_t> head_offset;
  int64_t row_stride = 0, col_stride = 0;
};

// out (heads, Lq, Dv); lse (heads, Lq): m + log(sum exp(s - m)) per query row, +inf for a
// row with no visible key (its output is 0).
template <class T>
void attention_forward(const AttentionArgs<T>& a, const T* q, const T* k, const T* v, T* out, T* lse);

// dout (heads, Lq, Dv) -> dq, dk, dv (any may be null).
template <class T>
void attention_backward(const AttentionArgs<T>& a, const T* q, const T* k, const T* v, const T* out,
                        const T* lse, const T* dout, T* dq, T* dk, T* dv);

}  // namespace lamina::cpu
