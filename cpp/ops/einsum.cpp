#include "ops/einsum.h"

#include <algorithm>
#include <map>
#include <optional>

#include "core/errors.h"
#include "ops/arith.h"
#include "ops/matmul.h"
#include "ops/reduce.h"
#include "ops/shape_ops.h"

namespace lamina {

namespace {

// Labels are ints: 'A'-'Z' -> 0-25 and 'a'-'z' -> 26-51 (so sorting them is numpy's
// order); the axes an ellipsis covers get kEllipsis + j, j counted from the innermost.
constexpr int kEllipsis = 100;
constexpr int kEllipsisMarker = -1;
using Labels = std::vector<int>;

struct Term {
  Tensor t;
  Labels labels;  // one per axis of t
};

std::string label_str(int l) {
  if (l >= kEllipsis) return "...";
  return std::string(1, char(l < 26 ? 'A' + l : 'a' + (l - 26)));
}

bool contains(const Labels& ls, int l) { return std::find(ls.begin(), ls.end(), l) != ls.end(); }

int64_t index_of(const Labels& ls, int l) { return int64_t(std::find(ls.begin(), ls.end(), l) - ls.begin()); }

Labels concat(std::initializer_list<const Labels*> parts) {
  Labels out;
  for (const Labels* p : parts) out.insert(out.end(), p->begin(), p->end());
  return out;
}

// Letters and at most one "..." (as kEllipsisMarker).
Labels parse_term(const std::string& term, const std::string& all) {
  Labels out;
  bool ellipsis = false;
  for (size_t i = 0; i < term.size();) {
    char c = term[i];
    if (c == '.') {
      check<ValueError>(term.compare(i, 3, "...") == 0 && !ellipsis, "einsum: invalid subscripts '", all,
                        "': '.' may only appear as one '...' per operand");
      ellipsis = true;
      out.push_back(kEllipsisMarker);
      i += 3;
      continue;
    }
    check<ValueError>((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'), "einsum: invalid character '", c,
                      "' in subscripts '", all, "' (labels are letters a-z, A-Z)");
    out.push_back(c <= 'Z' ? c - 'A' : 26 + (c - 'a'));
    ++i;
  }
  return out;
}

int64_t letter_count(const Labels& ls) {
  return int64_t(std::count_if(ls.begin(), ls.end(), [](int l) { return l != kEllipsisMarker; }));
}

// Replaces the ellipsis marker with `count` labels, outermost first.
Labels expand_ellipsis(const Labels& ls, int64_t count) {
  Labels out;
  for (int l : ls) {
    if (l != kEllipsisMarker) out.push_back(l);
    else
      for (int64_t j = count; j-- > 0;) out.push_back(kEllipsis + int(j));
  }
  return out;
}

// Sums away the axes whose labels are not in `needed`.
void reduce_unneeded(Term& x, const Labels& needed) {
  Axes axes;
  Labels kept;
  for (size_t i = 0; i < x.labels.size(); ++i) {
    if (contains(needed, x.labels[i])) kept.push_back(x.labels[i]);
    else axes.push_back(int64_t(i));
  }
  if (axes.empty()) return;
  x.t = sum(x.t, axes);
  x.labels = kept;
}

// A label repeated within one operand takes the diagonal: the two axes move last,
// merge into one of n*n and are sliced with step n + 1.
void take_diagonals(Term& x) {
  for (;;) {
    size_t p = 0, q = 0;
    for (size_t i = 0; i < x.labels.size() && !q; ++i)
      for (size_t j = i + 1; j < x.labels.size(); ++j)
        if (x.labels[i] == x.labels[j]) {
          p = i, q = j;
          break;
        }
    if (!q) return;
    int64_t n = x.t.shape()[p];
    std::vector<int64_t> perm;
    Labels labels;
    for (size_t i = 0; i < x.labels.size(); ++i)
      if (i != p && i != q) {
        perm.push_back(int64_t(i));
        labels.push_back(x.labels[i]);
      }
    perm.push_back(int64_t(p));
    perm.push_back(int64_t(q));
    labels.push_back(x.labels[p]);
    Tensor t = permute(x.t, perm);
    Shape s(t.shape().begin(), t.shape().end() - 2);
    s.push_back(n * n);
    x.t = slice(reshape(t, s), -1, 0, std::nullopt, n + 1);
    x.labels = labels;
  }
}

struct Contraction {
  const std::map<int, int64_t>& size;

  Shape shape_of(const Labels& ls) const {
    Shape s;
    for (int l : ls) s.push_back(size.at(l));
    return s;
  }
  int64_t prod(const Labels& ls) const {
    int64_t p = 1;
    for (int l : ls) p *= size.at(l);
    return p;
  }
  static Tensor arrange(const Term& x, const Labels& order) {
    std::vector<int64_t> perm;
    for (int l : order) perm.push_back(index_of(x.labels, l));
    return permute(x.t, perm);
  }

  // Contracts two operands whose labels are all either shared or needed later.
  Term operator()(const Term& a, const Term& b, const Labels& needed) const {
    Labels batch, contr, aonly, bonly;
    for (int l : a.labels) {
      if (!contains(b.labels, l)) aonly.push_back(l);
      else if (contains(needed, l)) batch.push_back(l);
      else contr.push_back(l);
    }
    for (int l : b.labels)
      if (!contains(a.labels, l)) bonly.push_back(l);
    Labels out_labels = concat({&batch, &aonly, &bonly});
    if (is_floating(promote_types(a.t.dtype(), b.t.dtype()))) {
      Tensor A = reshape(arrange(a, concat({&batch, &aonly, &contr})), {prod(batch), prod(aonly), prod(contr)});
      Tensor B = reshape(arrange(b, concat({&batch, &contr, &bonly})), {prod(batch), prod(contr), prod(bonly)});
      return {reshape(matmul(A, B), shape_of(out_labels)), out_labels};
    }
    // Integer and bool operands: broadcast multiply and sum (matmul is float-only).
    Shape ones_a(aonly.size(), 1), ones_b(bonly.size(), 1);
    Shape as = shape_of(batch), bs = shape_of(batch);
    for (const Shape& s : {shape_of(aonly), ones_b, shape_of(contr)}) as.insert(as.end(), s.begin(), s.end());
    for (const Shape& s : {ones_a, shape_of(bonly), shape_of(contr)}) bs.insert(bs.end(), s.begin(), s.end());
    Tensor A = reshape(arrange(a, concat({&batch, &aonly, &contr})), as);
    Tensor B = reshape(arrange(b, concat({&batch, &bonly, &contr})), bs);
    Tensor C = mul(A, B);
    if (!contr.empty()) {
      Axes axes;
      for (size_t i = 0; i < contr.size(); ++i) axes.push_back(C.ndim() - 1 - int64_t(i));
      C = sum(C, axes);
    }
    return {C, out_labels};
  }
};

}  // namespace

Tensor einsum(const std::string& subscripts, const std::vector<Tensor>& operands) {
  check<ValueError>(!operands.empty(), "einsum: needs at least one operand");
  for (size_t i = 0; i < operands.size(); ++i) check<TypeError>(operands[i].defined(), "einsum: operand ", i, " is undefined");
  std::string s;
  for (char c : subscripts)
    if (c != ' ') s += c;
  size_t arrow = s.find("->");
  bool explicit_out = arrow != std::string::npos;
  std::string lhs = explicit_out ? s.substr(0, arrow) : s, rhs = explicit_out ? s.substr(arrow + 2) : "";
  check<ValueError>(rhs.find("->") == std::string::npos, "einsum: subscripts '", subscripts, "' have more than one '->'");
  std::vector<std::string> terms_str(1);
  for (char c : lhs) {
    if (c == ',') terms_str.emplace_back();
    else terms_str.back() += c;
  }
  check<ValueError>(terms_str.size() == operands.size(), "einsum: subscripts '", subscripts, "' name ", terms_str.size(),
                    " operand", terms_str.size() == 1 ? "" : "s", " but ", operands.size(), " were given");
  check<ValueError>(rhs.find(',') == std::string::npos, "einsum: the output subscripts of '", subscripts,
                    "' cannot contain ','");

  // Labels per operand, with ellipses expanded to each operand's own broadcast rank.
  std::vector<Term> terms;
  int64_t max_e = 0;
  std::map<int, int64_t> size;
  std::map<int, size_t> size_from;
  for (size_t i = 0; i < operands.size(); ++i) {
    Labels raw = parse_term(terms_str[i], subscripts);
    const Tensor& t = operands[i];
    int64_t letters = letter_count(raw);
    bool has_e = int64_t(raw.size()) != letters;
    check<ValueError>(has_e ? letters <= t.ndim() : letters == t.ndim(), "einsum: operand ", i, " has shape ",
                      shape_str(t.shape()), " (", t.ndim(), " dimensions) but its subscripts '", terms_str[i], "' name ",
                      letters);
    int64_t e = has_e ? t.ndim() - letters : 0;
    max_e = std::max(max_e, e);
    Labels labels = expand_ellipsis(raw, e);
    for (size_t d = 0; d < labels.size(); ++d) {
      int l = labels[d];
      int64_t n = t.shape()[d];
      auto it = size.find(l);
      if (it == size.end()) {
        size[l] = n;
        size_from[l] = i;
      } else if (it->second != n) {
        bool broadcast = l >= kEllipsis && (it->second == 1 || n == 1);
        check<ValueError>(broadcast, "einsum: label '", label_str(l), "' has size ", it->second, " in operand ",
                          size_from[l], " (shape ", shape_str(operands[size_from[l]].shape()), ") but ", n,
                          " in operand ", i, " (shape ", shape_str(t.shape()), ")");
        if (n != 1) size[l] = n;
      }
    }
    terms.push_back({t, labels});
  }

  Labels output;
  Labels ellipsis_labels = expand_ellipsis({kEllipsisMarker}, max_e);
  if (explicit_out) {
    Labels raw = parse_term(rhs, subscripts);
    output = expand_ellipsis(raw, max_e);
    for (size_t i = 0; i < output.size(); ++i) {
      if (output[i] >= kEllipsis) continue;
      check<ValueError>(size.count(output[i]), "einsum: output label '", label_str(output[i]), "' in '", subscripts,
                        "' does not appear in the inputs");
      check<ValueError>(std::count(output.begin(), output.end(), output[i]) == 1, "einsum: output label '",
                        label_str(output[i]), "' in '", subscripts, "' appears more than once");
    }
  } else {
    std::map<int, int> count;
    for (const Term& t : terms)
      for (int l : t.labels) ++count[l];
    output = ellipsis_labels;
    for (auto [l, c] : count)  // std::map iterates in label order: numpy's alphabetical order
      if (l < kEllipsis && c == 1) output.push_back(l);
  }

  for (Term& t : terms) {
    take_diagonals(t);
    Shape want;
    for (int l : t.labels) want.push_back(size[l]);
    if (want != t.t.shape()) t.t = expand(t.t, want);
  }

  // Left to right; a label is summed away as soon as nothing later needs it.
  auto needed_after = [&](size_t i) {
    Labels needed = output;
    for (size_t j = i + 1; j < terms.size(); ++j) needed.insert(needed.end(), terms[j].labels.begin(), terms[j].labels.end());
    return needed;
  };
  Contraction contract{size};
  Term acc = terms[0];
  for (size_t i = 1; i < terms.size(); ++i) {
    Term b = terms[i];
    Labels needed = needed_after(i);
    reduce_unneeded(acc, concat({&needed, &b.labels}));
    reduce_unneeded(b, concat({&needed, &acc.labels}));
    acc = contract(acc, b, needed);
  }
  reduce_unneeded(acc, output);
  return Contraction::arrange(acc, output);
}

}  // namespace lamina
