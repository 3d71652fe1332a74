// The recurrent family: whole-sequence LSTM and GRU as single fused ops (one autograd node
// each, backward through time in C++), and single-step cells as composites of plain ops.
//
// Layouts follow PyTorch (and Keras after transposing its kernels):
//   LSTM gates (i, f, g, o): w_ih (4H, I), w_hh (4H, H), b (4H) (PyTorch's b_ih + b_hh).
//   GRU gates (r, z, n), PyTorch's formulation with the reset gate applied after the
//   recurrent product (Keras reset_after=True):
//     r = sigmoid(W_ir x + b_ir + W_hr h + b_hr),  z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
//     n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),  h' = (1 - z) * n + z * h
//   w_ih (3H, I), w_hh (3H, H), b_ih (3H), b_hh (3H).
// x is (batch, T, I), batch first. h0/c0 (batch, H) may be undefined (zeros).
// mask (batch, T), bool: a step where it is false keeps the state unchanged and outputs
// zeros (Keras semantics). mask is not differentiable.
#pragma once
#include <vector>

#include "core/tensor.h"

namespace lamina {

// Returns {outputs (batch, T, H), h_T (batch, H), c_T (batch, H)}: views of one packed
// result, all differentiable.
std::vector<Tensor> lstm(const Tensor& x, const Tensor& h0, const Tensor& c0, const Tensor& w_ih,
                         const Tensor& w_hh, const Tensor& b, const Tensor& mask = {});
// Returns {outputs (batch, T, H), h_T (batch, H)}.
std::vector<Tensor> gru(const Tensor& x, const Tensor& h0, const Tensor& w_ih, const Tensor& w_hh,
                        const Tensor& b_ih, const Tensor& b_hh, const Tensor& mask = {});

// One step, composites of matmul / sigmoid / tanh / slicing. x (batch, I), h, c (batch, H).
std::vector<Tensor> lstm_cell(const Tensor& x, const Tensor& h, const Tensor& c, const Tensor& w_ih,
                              const Tensor& w_hh, const Tensor& b);  // {h', c'}
Tensor gru_cell(const Tensor& x, const Tensor& h, const Tensor& w_ih, const Tensor& w_hh, const Tensor& b_ih,
                const Tensor& b_hh);

}  // namespace lamina
