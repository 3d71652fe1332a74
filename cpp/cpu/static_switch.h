// Turns a run-time switch into a template argument: with_flag(b, fn) calls fn with
// std::true_type or std::false_type, so each kernel loop is compiled once per setting and
// carries no per-element test (which would keep it from vectorizing).
#pragma once
#include <type_traits>

namespace lamina::cpu {

template <class F>
void with_flag(bool flag, F&& fn) {
  if (flag) fn(std::true_type{});
  else fn(std::false_type{});
}

}  // namespace lamina::cpu
