// CPU kernels of the recurrent family: whole-sequence LSTM and GRU, forward and backward
// through time. Everything is contiguous row-major; T is float or double.
#pragma once
#include <cstdint>

namespace lamina::cpu {

struct RnnDims {
  int64_t batch, steps, input, hidden;
};

// LSTM, gates ordered (i, f, g, o). x (B,T,I), h0/c0 (B,H), w_ih (4H,I), w_hh (4H,H), b (4H),
// mask (B,T) bytes or null. Saved for backward: gates (B,T,4H) activated, hprev (B,T,H) the
// state each step starts from, cells (B,T,H) c_t. out (B,T+2,H): outputs, then h_T, c_T.
template <class T>
void lstm_forward(const RnnDims& d, const T* x, const T* h0, const T* c0, const T* w_ih, const T* w_hh,
                  const T* b, const uint8_t* mask, T* gates, T* hprev, T* cells, T* out);

// dout (B,T+2,H) is the gradient of `out`. Null gradient pointers are skipped.
template <class T>
void lstm_backward(const RnnDims& d, const T* dout, const T* x, const T* c0, const T* w_ih, const T* w_hh,
                   const uint8_t* mask, const T* gates, const T* hprev, const T* cells, T* dx, T* dh0, T* dc0,
                   T* dw_ih, T* dw_hh, T* db);

// GRU, gates ordered (r, z, n), PyTorch's formulation:
//   n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),  h' = (1 - z) * n + z * h.
// w_ih (3H,I), w_hh (3H,H), b_ih/b_hh (3H). Saved: gates (B,T,3H) = (r, z, n), hn (B,T,H) =
// W_hn h + b_hn, hprev (B,T,H). out (B,T+1,H): outputs, then h_T.
template <class T>
void gru_forward(const RnnDims& d, const T* x, const T* h0, const T* w_ih, const T* w_hh, const T* b_ih,
                 const T* b_hh, const uint8_t* mask, T* gates, T* hn, T* hprev, T* out);

template <class T>
void gru_backward(const RnnDims& d, const T* dout, const T* x, const T* w_ih, const T* w_hh, const uint8_t* mask,
                  const T* gates, const T* hn, const T* hprev, T* dx, T* dh0, T* dw_ih, T* dw_hh, T* db_ih,
                  T* db_hh);

}  // namespace lamina::cpu
