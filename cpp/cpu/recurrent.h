// CPU kernels of the recurrent family: whole-sequence LSTM and GRU, forward and backward
// through time. Everything is contiguous row-major; T is float or double.
#pragma once
#include <cstdint>

namespace lamina::cpu {

struct RnnDims {
  int64_t batch, steps, input, hidden;
};

// LSTM, gates ordered (i, f, g, o). x (B,T,I), h0/c0 (B,H), w_ih (4H,I), w_hh (4H,H), b (4H),
// mask (T,B) bytes or null. Saved for backward, time-major (a step's rows contiguous;
// batch-first rows of one step lie T*4H floats apart, 512 KB at T=128, H=256, all in the same
// cache sets): xh (T,B,I+H) each step's input and the state it starts from; gates (T*B*4H)
// activated and cells (T*B*H) c_t, each step's values cut into the hidden-unit slices of the
// threads that computed them (see recurrent.cpp). Returns how many slices, for backward.
// out (B,T+2,H): outputs, then h_T, c_T.
template <class T>
int lstm_forward(const RnnDims& d, const T* x, const T* h0, const T* c0, const T* w_ih, const T* w_hh,
                 const T* b, const uint8_t* mask, T* gates, T* xh, T* cells, T* out);

// dout (B,T+2,H) is the gradient of `out`; saved_slices is what lstm_forward returned; dx is
// (B,T,I). Null gradient pointers are skipped.
template <class T>
void lstm_backward(const RnnDims& d, const T* dout, const T* xh, const T* c0, const T* w_ih, const T* w_hh,
                   const uint8_t* mask, const T* gates, const T* cells, int saved_slices, T* dx, T* dh0, T* dc0,
                   T* dw_ih, T* dw_hh, T* db);

// GRU, gates ordered (r, z, n), PyTorch's formulation:
//   n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),  h' = (1 - z) * n + z * h.
// x (T,B,I), w_ih (3H,I), w_hh (3H,H), b_ih/b_hh (3H), mask (T,B). Saved, time-major: gates
// (T,B,3H) = (r, z, n), hn (T,B,H) = W_hn h + b_hn, hprev (T,B,H). out (B,T+1,H): outputs,
// then h_T. Backward: dout (B,T+1,H), dx (T,B,I).
template <class T>
void gru_forward(const RnnDims& d, const T* x, const T* h0, const T* w_ih, const T* w_hh, const T* b_ih,
                 const T* b_hh, const uint8_t* mask, T* gates, T* hn, T* hprev, T* out);

template <class T>
void gru_backward(const RnnDims& d, const T* dout, const T* x, const T* w_ih, const T* w_hh, const uint8_t* mask,
                  const T* gates, const T* hn, const T* hprev, T* dx, T* dh0, T* dw_ih, T* dw_hh, T* db_ih,
                  T* db_hh);

}  // namespace lamina::cpu
