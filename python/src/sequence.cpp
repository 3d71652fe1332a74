// Fused neural-network ops: the recurrent family (lstm, gru and their cells) and
// scaled-dot-product attention.
#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/vector.h>

#include "convert.h"
#include "ops/attention.h"
#include "ops/recurrent.h"

namespace lamina::py {

namespace {

nb::tuple as_tuple(const std::vector<Tensor>& ts) {
  nb::list out;
  for (const Tensor& t : ts) out.append(nb::cast(t));
  return nb::tuple(out);
}

}  // namespace

void init_sequence(nb::module_& m) {
  m.def("lstm", [](nb::handle x, nb::handle h0, nb::handle c0, nb::handle w_ih, nb::handle w_hh, nb::handle b,
                   nb::handle mask) {
    Tensor args[7] = {as_tensor(x), optional_tensor(h0), optional_tensor(c0), as_tensor(w_ih), as_tensor(w_hh),
                      as_tensor(b), optional_tensor(mask)};
    std::vector<Tensor> out;
    {
      nb::gil_scoped_release release;
      out = lstm(args[0], args[1], args[2], args[3], args[4], args[5], args[6]);
    }
    return as_tuple(out);
  }, nb::arg("x"), nb::arg("h0").none(), nb::arg("c0").none(), nb::arg("w_ih"), nb::arg("w_hh"), nb::arg("b"),
        nb::arg("mask").none() = nb::none(),
        nb::sig("def lstm(x: Tensor, h0: Tensor | None, c0: Tensor | None, w_ih: Tensor, w_hh: Tensor, b: Tensor, "
                "mask: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]"),
        "LSTM over a whole sequence, one fused op. x (batch, T, I); gates (i, f, g, o): w_ih (4H, I),\n"
        "w_hh (4H, H), b (4H). mask (batch, T) bool: masked steps keep the state and output zeros.\n"
        "Returns (outputs (batch, T, H), h_T, c_T). With create_graph=True its gradient\n"
        "differentiates the lstm_cell loop instead (higher-order gradients, the loop's cost).");
  m.def("gru", [](nb::handle x, nb::handle h0, nb::handle w_ih, nb::handle w_hh, nb::handle b_ih, nb::handle b_hh,
                  nb::handle mask) {
    Tensor args[7] = {as_tensor(x), optional_tensor(h0), as_tensor(w_ih), as_tensor(w_hh), as_tensor(b_ih),
                      as_tensor(b_hh), optional_tensor(mask)};
    std::vector<Tensor> out;
    {
      nb::gil_scoped_release release;
      out = gru(args[0], args[1], args[2], args[3], args[4], args[5], args[6]);
    }
    return as_tuple(out);
  }, nb::arg("x"), nb::arg("h0").none(), nb::arg("w_ih"), nb::arg("w_hh"), nb::arg("b_ih"), nb::arg("b_hh"),
        nb::arg("mask").none() = nb::none(),
        nb::sig("def gru(x: Tensor, h0: Tensor | None, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor, "
                "mask: Tensor | None = None) -> tuple[Tensor, Tensor]"),
        "GRU over a whole sequence, one fused op (PyTorch formulation, gates (r, z, n);\n"
        "n = tanh(W_in x + b_in + r * (W_hn h + b_hn))). Returns (outputs (batch, T, H), h_T).\n"
        "With create_graph=True its gradient differentiates the gru_cell loop instead.");
  m.def("lstm_cell", [](nb::handle x, nb::handle h, nb::handle c, nb::handle w_ih, nb::handle w_hh, nb::handle b) {
    return as_tuple(lstm_cell(as_tensor(x), as_tensor(h), as_tensor(c), as_tensor(w_ih), as_tensor(w_hh),
                              as_tensor(b)));
  }, nb::arg("x"), nb::arg("h"), nb::arg("c"), nb::arg("w_ih"), nb::arg("w_hh"), nb::arg("b"),
        nb::sig("def lstm_cell(x: Tensor, h: Tensor, c: Tensor, w_ih: Tensor, w_hh: Tensor, b: Tensor) "
                "-> tuple[Tensor, Tensor]"),
        "One LSTM step from plain ops. Returns (h', c').");
  m.def("gru_cell", [](nb::handle x, nb::handle h, nb::handle w_ih, nb::handle w_hh, nb::handle b_ih,
                       nb::handle b_hh) {
    return gru_cell(as_tensor(x), as_tensor(h), as_tensor(w_ih), as_tensor(w_hh), as_tensor(b_ih), as_tensor(b_hh));
  }, nb::arg("x"), nb::arg("h"), nb::arg("w_ih"), nb::arg("w_hh"), nb::arg("b_ih"), nb::arg("b_hh"),
        "One GRU step from plain ops. Returns h'.");
  auto sdpa_doc =
      "softmax(q k^T * scale + mask) v. q (..., Lq, D), k (..., Lk, D), v (..., Lk, Dv). mask: bool\n"
      "(True = attend) or additive float, broadcast to (..., Lq, Lk). causal: query i sees keys j <= i.\n"
      "scale defaults to 1/sqrt(D). Fused and tiled on the CPU; dropout > 0 uses the composite path,\n"
      "and with create_graph=True the gradient differentiates the composite.";
  m.def("scaled_dot_product_attention", [](nb::handle q, nb::handle k, nb::handle v, nb::handle mask, bool causal,
                                           double dropout, std::optional<double> scale) {
    Tensor args[4] = {as_tensor(q), as_tensor(k), as_tensor(v), optional_tensor(mask)};
    nb::gil_scoped_release release;
    return scaled_dot_product_attention(args[0], args[1], args[2], args[3], causal, dropout, scale);
  }, nb::arg("q"), nb::arg("k"), nb::arg("v"), nb::arg("mask").none() = nb::none(), nb::arg("causal") = false,
        nb::arg("dropout") = 0.0, nb::arg("scale").none() = nb::none(), sdpa_doc);
  m.def("scaled_dot_product_attention_reference", [](nb::handle q, nb::handle k, nb::handle v, nb::handle mask,
                                                     bool causal, double dropout, std::optional<double> scale) {
    return scaled_dot_product_attention_reference(as_tensor(q), as_tensor(k), as_tensor(v), optional_tensor(mask),
                                                  causal, dropout, scale);
  }, nb::arg("q"), nb::arg("k"), nb::arg("v"), nb::arg("mask").none() = nb::none(), nb::arg("causal") = false,
        nb::arg("dropout") = 0.0, nb::arg("scale").none() = nb::none(),
        "scaled_dot_product_attention from matmul / softmax / where (the reference and fallback).");
}

}  // namespace lamina::py
