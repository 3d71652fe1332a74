#include "cpu/fast_math.h"

namespace lamina::cpu {

bool has_avx2_fma() {
  static const bool value = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return value;
}

}  // namespace lamina::cpu
