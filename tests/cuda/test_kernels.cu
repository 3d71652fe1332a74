// Kernel test driver, built by nvcc for a GPU or by a host compiler on the SIMT emulator.
//   test_kernels [self]        self-tests of every intrinsic and the example kernels
//   test_kernels kernels [F]   the library kernels (cuda/kernels/) against scalar models; F
//                              picks one family: attention, recurrent or conv
//   test_kernels catch         broken kernels the emulator must catch (emulator build only)
//   test_kernels bug NAME      run one broken kernel for a sanitizer or the watchdog to report
// Prints one line per check and ends with "N passed, M failed"; exits 1 on any failure.
#include <cstdio>
#include <string>

#include "attention_tests.cuh"
#include "broken_kernels.cuh"
#include "conv_tests.cuh"
#include "example_tests.cuh"
#include "memory_tests.cuh"
#include "recurrent_tests.cuh"
#include "tensor_tests.cuh"
#include "test_util.h"
#include "warp_tests.cuh"

namespace test = lamina::cuda::test;

static int usage() {
  fprintf(stderr, "usage: test_kernels [self | kernels [FAMILY] | catch | bug NAME]\n");
  return 2;
}

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "self";
  if (mode == "self") {
    test::run_warp_tests();
    test::run_memory_tests();
    test::run_tensor_tests();
    test::run_example_tests();
  } else if (mode == "kernels") {
    const std::string family = argc > 2 ? argv[2] : "";
    if (family.empty() || family == "attention") test::run_attention_tests();
    if (family.empty() || family == "recurrent") test::run_recurrent_tests();
    if (family.empty() || family == "conv") test::run_conv_tests();
  } else if (mode == "catch" || mode == "bug") {
#if defined(__CUDACC__)
    fprintf(stderr, "%s: the broken kernels run on the emulator only\n", mode.c_str());
    return 2;
#else
    if (mode == "catch") test::run_catch_tests();
    else return argc == 3 && test::run_bug(argv[2]) ? 0 : usage();
#endif
  } else {
    return usage();
  }
  printf("%d passed, %d failed\n", test::tally().passed, test::tally().failed);
  return test::tally().failed ? 1 : 0;
}
