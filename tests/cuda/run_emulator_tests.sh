#!/usr/bin/env bash
# Builds the kernel tests with the host compiler on the SIMT emulator, four ways (plain -O2,
# ThreadSanitizer, AddressSanitizer + UBSan, and the portable ucontext fibers), then runs:
#   - the self-tests at several SIMT_SEED values (thread order shuffles),
#   - the library kernels (cuda/kernels/) against their scalar models, at several seeds and
#     once under each sanitizer,
#   - the must-catch broken kernels the emulator itself reports,
#   - the broken kernels only a sanitizer or the watchdog reports (each must be reported),
# and clean runs under both sanitizers, which must report nothing (the must-catch set runs
# under ASan too, for leaks on its error paths; under TSan its racy kernels would report).
# Every check counts; the last line is "N passed, M failed", and any failure exits 1.
#
#   CXX                   host compiler (default: g++)
#   SIMT_TEST_BUILD_DIR   build folder (default: build/cuda-tests in the repository)
set -uo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
build=${SIMT_TEST_BUILD_DIR:-$root/build/cuda-tests}
cxx=${CXX:-g++}
mkdir -p "$build/logs"
start=$SECONDS

# ---- build ------------------------------------------------------------------------------
sources=("$root"/cuda/simt/* "$root"/cuda/kernels/*.cu "$root"/tests/cuda/*.cu "$root"/tests/cuda/*.cuh "$root"/tests/cuda/*.h)
common=(-std=c++20 -g -Wall -Wextra -Werror -Wno-unknown-pragmas -pthread -I"$root/cuda"
        -x c++ "$root/tests/cuda/test_kernels.cu")
declare -A variant_flags=(
  [plain]="-O2"
  [tsan]="-O1 -fsanitize=thread"
  [asan]="-O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
  [ucontext]="-O2 -DSIMT_USE_UCONTEXT"
)

build_variant() {  # skips the build when the binary is newer than every source
  local name=$1 bin="$build/test_kernels_$1"
  if [ -x "$bin" ] && [ -z "$(find "${sources[@]}" -newer "$bin" 2>/dev/null)" ]; then return 0; fi
  # shellcheck disable=SC2086  # the flag strings are word lists
  "$cxx" ${variant_flags[$name]} "${common[@]}" -o "$bin" > "$build/logs/build-$name.log" 2>&1
}

pids=()
for name in plain tsan asan ucontext; do
  build_variant "$name" &
  pids+=($!)
done
build_failed=0
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then
    name=$(echo plain tsan asan ucontext | cut -d' ' -f$((i + 1)))
    echo "FAIL build $name:"
    cat "$build/logs/build-$name.log"
    build_failed=1
  fi
done
if [ $build_failed = 1 ]; then
  echo "0 passed, 1 failed"
  exit 1
fi
echo "built 4 variants in $((SECONDS - start)) s"

# ---- runs -------------------------------------------------------------------------------
passed=0
failed=0
sanitizer_report='WARNING: ThreadSanitizer|ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:'
export SIMT_THREADS=2                      # several workers, so that blocks race for TSan
export TSAN_OPTIONS="halt_on_error=0 exitcode=66"
export UBSAN_OPTIONS="print_stacktrace=1"

verdict() {  # verdict OK LABEL LOG
  if [ "$1" = 1 ]; then
    passed=$((passed + 1))
    echo "ok   $2"
  else
    failed=$((failed + 1))
    echo "FAIL $2 (log: $3)"
  fi
}

# run_driver LABEL VARIANT MODE [VAR=VALUE...]: adds the driver's own checks to the tally;
# a sanitizer report, a crash or a missing summary is one more failure.
run_driver() {
  local label=$1 variant=$2 mode=$3
  shift 3
  local log="$build/logs/$label.log" summary rc
  env "$@" "$build/test_kernels_$variant" "$mode" > "$log" 2>&1
  rc=$?
  summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -1)
  if [ -n "$summary" ]; then
    passed=$((passed + ${summary%% passed*}))
    failed=$((failed + $(echo "$summary" | sed -E 's/.* ([0-9]+) failed/\1/')))
  fi
  if [ -z "$summary" ] || [ $rc != 0 ] || grep -qE "$sanitizer_report" "$log"; then
    failed=$((failed + 1))
    echo "FAIL $label: ${summary:-no summary}, exit $rc (log: $log)"
    grep -E '^FAIL' "$log"
  else
    echo "ok   $label: $summary"
  fi
}

# expect_report LABEL VARIANT BUG PATTERN [VAR=VALUE...]: the run must print PATTERN and fail.
expect_report() {
  local label=$1 variant=$2 bug=$3 pattern=$4
  shift 4
  local log="$build/logs/$label.log" rc
  { env "$@" "$build/test_kernels_$variant" bug "$bug" > "$log" 2>&1; } 2> /dev/null
  rc=$?
  if [ $rc != 0 ] && grep -qE "$pattern" "$log"; then verdict 1 "$label" "$log"
  else verdict 0 "$label: no report matching '$pattern', exit $rc" "$log"; fi
}

for seed in 0 1 2 3; do
  run_driver "self-seed$seed" plain self SIMT_SEED=$seed
done
run_driver "self-one-worker" plain self SIMT_THREADS=1
for seed in 0 1 2 3; do
  run_driver "kernels-seed$seed" plain kernels SIMT_SEED=$seed
done
run_driver "kernels-one-worker" plain kernels SIMT_THREADS=1 SIMT_SEED=5
for seed in 0 1 2; do
  run_driver "catch-seed$seed" plain catch SIMT_SEED=$seed
done
for seed in 0 3; do
  run_driver "ucontext-self-seed$seed" ucontext self SIMT_SEED=$seed
done
run_driver "ucontext-catch" ucontext catch
run_driver "ucontext-kernels-seed1" ucontext kernels SIMT_SEED=1

for seed in 0 1; do
  run_driver "tsan-self-seed$seed" tsan self SIMT_SEED=$seed
done
run_driver "tsan-kernels-seed2" tsan kernels SIMT_SEED=2
race='WARNING: ThreadSanitizer: data race'
expect_report "tsan-reports-missing-barrier" tsan race-barrier "$race"
expect_report "tsan-reports-lock-step-warp" tsan race-lockstep "$race"
expect_report "tsan-reports-race-between-blocks" tsan race-blocks "$race"

run_driver "asan-self" asan self
run_driver "asan-catch" asan catch
run_driver "asan-kernels-seed3" asan kernels SIMT_SEED=3
overflow='ERROR: AddressSanitizer: heap-buffer-overflow'
expect_report "asan-reports-global-out-of-bounds" asan oob-global "$overflow"
expect_report "asan-reports-shared-out-of-bounds" asan oob-shared "$overflow"

expect_report "watchdog-reports-spin-deadlock" plain spin-deadlock 'simt: watchdog: thread \(1,0,0\)' \
  SIMT_WATCHDOG_S=1

echo "ran in $((SECONDS - start)) s"
echo "$passed passed, $failed failed"
[ $failed = 0 ]
