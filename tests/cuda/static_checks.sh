#!/usr/bin/env bash
# Static checks of the real device build, no GPU needed:
#   1. ptxas gate: every test kernel compiles for sm_80 and sm_90 with
#      -warn-spills,-warn-lmem-usage,-Werror, i.e. no spills and no local memory;
#   2. the gate really fails a spilling kernel (spill_demo.cu);
#   3. SASS (cuobjdump): the mma GEMM uses tensor cores (HMMA, bf16 and f16), ldmatrix (LDSM)
#      and cp.async (LDGSTS); the SGEMM is FFMA from shared memory; no LDL/STL anywhere and
#      no kernel with a stack or local memory;
#   4. the library kernels (cuda/kernels/*.cu) pass the same ptxas gate for sm_80 and sm_90,
#      and the library's GEMM runs on tensor cores with cp.async: bf16 and f16 (HMMA.16816, fed
#      by ldmatrix) and tf32 (HMMA.1688).
#   5. the attention, recurrent and conv kernels (cuda/kernels/) pass the same gate for sm_80
#      and sm_90; flash attention and the bf16/f16 conv (forward, input and weight gradients)
#      run on tensor cores (HMMA) fed by ldmatrix (LDSM) and cp.async (LDGSTS), the FMA flash
#      attention kernels on FFMA (DFMA) fed by shared-memory loads; no LDL/STL and STACK:0 in
#      those files.
# Prints registers and shared memory per kernel, then "N passed, M failed".
#
#   NVCC        nvcc to use (default: nvcc on PATH)
#   CUOBJDUMP   cuobjdump to use (default: PATH, next to nvcc, or the pip package
#               nvidia-cuda-cuobjdump; its -sass also needs nvidia-cuda-nvdisasm)
set -uo pipefail
export LC_ALL=C  # sort and join must agree on the order

root=$(cd "$(dirname "$0")/../.." && pwd)
nvcc=${NVCC:-nvcc}
if ! command -v "$nvcc" > /dev/null; then
  echo "skipped: $nvcc not found (install the CUDA toolkit, or set NVCC)"
  exit 0
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
passed=0
failed=0
check() {  # check LABEL COMMAND...
  local label=$1
  shift
  if "$@"; then
    passed=$((passed + 1))
    echo "ok   $label"
  else
    failed=$((failed + 1))
    echo "FAIL $label"
  fi
}

# A CUDA tool from PATH, next to nvcc, or from the NVIDIA pip packages.
find_tool() {
  local name=$1 dir
  if command -v "$name" > /dev/null; then command -v "$name"; return; fi
  dir=$(dirname "$(command -v "$nvcc")")
  if [ -x "$dir/$name" ]; then echo "$dir/$name"; return; fi
  python3 - "$name" 2> /dev/null << 'PY'
import glob, os, site, sys, sysconfig
dirs = {sysconfig.get_paths()["purelib"], site.getusersitepackages(), *site.getsitepackages()}
hits = sorted(p for d in dirs for p in glob.glob(os.path.join(d, "nvidia", "cu*", "bin", sys.argv[1])))
print(hits[-1] if hits else "")
PY
}

nvcc_flags=(-std=c++20 -O3 -cubin -I"$root/cuda")
gate=(-Xptxas -v,-warn-spills,-warn-lmem-usage,-Werror)
archs=(sm_80 sm_90)

# ---- 1. the ptxas gate ---------------------------------------------------------------------
for arch in "${archs[@]}"; do
  cubin=$out/kernels.$arch.cubin
  if "$nvcc" "${nvcc_flags[@]}" -arch="$arch" "${gate[@]}" -o "$cubin" \
       "$root/tests/cuda/test_kernels.cu" > "$out/ptxas.$arch.txt" 2>&1; then
    check "$arch: no spills, no local memory (ptxas -warn-spills -warn-lmem-usage -Werror)" true
  else
    cat "$out/ptxas.$arch.txt"
    check "$arch: ptxas gate" false
  fi
done

# ---- 2. the gate rejects a spilling kernel --------------------------------------------------
if "$nvcc" "${nvcc_flags[@]}" -arch=sm_80 -maxrregcount=24 "${gate[@]}" -o "$out/spill.cubin" \
     "$root/tests/cuda/spill_demo.cu" > "$out/spill.txt" 2>&1; then
  check "the gate rejects spill_demo.cu (it was accepted)" false
else
  check "the gate rejects spill_demo.cu: $(grep -m1 -oE 'Registers are spilled[^,]*' "$out/spill.txt")" \
    grep -q 'Registers are spilled' "$out/spill.txt"
fi

# ---- resources per kernel, from ptxas -v --------------------------------------------------
resources() {  # kernel<TAB>registers<TAB>shared bytes, for one arch
  awk '/Compiling entry function/ { name = $0; sub(/.*function \047/, "", name); sub(/\047.*/, "", name) }
       /Used [0-9]+ registers/ { regs = $0; sub(/.*Used /, "", regs); sub(/ registers.*/, "", regs)
         smem = 0; if (match($0, /[0-9]+ bytes smem/)) smem = substr($0, RSTART, RLENGTH - 11)
         print name "\t" regs "\t" smem }' "$out/ptxas.$1.txt" |
    c++filt | sed -E 's/^void //; s/^lamina::cuda::test:://; s/\([^\t]*\)\t/\t/'
}
if [ -s "$out/kernels.sm_80.cubin" ] && [ -s "$out/kernels.sm_90.cubin" ]; then
  echo
  printf '%-52s %14s %14s\n' "kernel" "sm_80 reg/smem" "sm_90 reg/smem"
  join -t $'\t' <(resources sm_80 | sort) <(resources sm_90 | sort) |
    awk -F'\t' '{ printf "%-52s %6s %7s %6s %7s\n", $1, $2, $3, $4, $5 }'
  echo
fi

# ---- 3. SASS ----------------------------------------------------------------------------------
cuobjdump=${CUOBJDUMP:-$(find_tool cuobjdump)}
nvdisasm=$(find_tool nvdisasm)
if [ -z "$cuobjdump" ] || [ -z "$nvdisasm" ]; then
  echo "skipped the SASS checks: cuobjdump or nvdisasm not found (pip install nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm, or set CUOBJDUMP)"
else
  export PATH="$(dirname "$nvdisasm"):$PATH"  # cuobjdump -sass runs nvdisasm
  sass_of() {  # sass_of ARCH NAME: the SASS of kernels whose mangled name contains NAME
    awk -v k="$2" '/Function :/ { on = index($0, k) > 0; next } on' "$out/sass.$1.txt"
  }
  contains() { grep -qE "$1" <<< "$2"; }
  ffma_from_shared() { [ "$(grep -c FFMA <<< "$1")" -ge 256 ] && contains 'LDS(\.|\s)' "$1"; }
  lacks_local_memory() { ! grep -qE '\b(LDL|STL)\b' "$1"; }
  lacks_stack() { ! grep 'REG:' "$1" | grep -vqE 'STACK:0 .*LOCAL:0 '; }
  for arch in "${archs[@]}"; do
    cubin=$out/kernels.$arch.cubin
    [ -s "$cubin" ] || continue
    "$cuobjdump" -sass "$cubin" > "$out/sass.$arch.txt"
    "$cuobjdump" -res-usage "$cubin" > "$out/res.$arch.txt"
    bf16=$(sass_of "$arch" mma_gemm_kernelI13__nv_bfloat16)
    f16=$(sass_of "$arch" mma_gemm_kernelI6__half)
    sgemm=$(sass_of "$arch" sgemm_tiled_kernelILi64ELi64ELi16ELi4ELi4ELb0)
    check "$arch: bf16 mma GEMM runs on tensor cores (HMMA.16816.F32.BF16)" \
      contains 'HMMA\.16816\.F32\.BF16' "$bf16"
    check "$arch: f16 mma GEMM runs on tensor cores (HMMA.16816.F32)" \
      contains 'HMMA\.16816\.F32 ' "$f16"
    check "$arch: mma GEMM loads A with ldmatrix.x4 (LDSM.16.M88.4)" contains 'LDSM\.16\.M88\.4' "$bf16"
    check "$arch: mma GEMM loads B with ldmatrix.x2 (LDSM.16.M88.2)" contains 'LDSM\.16\.M88\.2' "$bf16"
    check "$arch: mma GEMM copies with cp.async (LDGSTS)" contains 'LDGSTS' "$bf16"
    check "$arch: sgemm_tiled is FFMA on shared-memory loads (>= 256 FFMA, LDS)" \
      ffma_from_shared "$sgemm"
    check "$arch: no local memory instructions (LDL/STL) in any kernel" \
      lacks_local_memory "$out/sass.$arch.txt"
    check "$arch: every kernel has STACK:0 and LOCAL:0" lacks_stack "$out/res.$arch.txt"
  done
fi

# ---- 4. the library kernels ------------------------------------------------------------------
lib_flags=(-std=c++20 -O3 -cubin -I"$root/cuda" -I"$root/cpp" --expt-relaxed-constexpr -DLAMINA_HAVE_CUDA=1)
lib_resources() {  # family<TAB>kernel<TAB>registers<TAB>shared bytes, from one ptxas -v log
  awk -v fam="$2" '/Compiling entry function/ { name = $0; sub(/.*function \047/, "", name); sub(/\047.*/, "", name) }
       /Used [0-9]+ registers/ { regs = $0; sub(/.*Used /, "", regs); sub(/ registers.*/, "", regs)
         smem = 0; if (match($0, /[0-9]+ bytes smem/)) smem = substr($0, RSTART, RLENGTH - 11)
         print fam "\t" name "\t" regs "\t" smem }' "$1"
}
# The exceptions (a regex of kernel names): CUDA's double sin/cos reduce huge arguments
# (Payne-Hanek) in a local array. The Box-Muller angle of philox_draw_kernel is below 2 pi,
# so its frame is never touched, but the compiler cannot know that.
lib_lmem_allowed='unary_trig_forward_kernel|philox_draw_kernel'
lib_gate=(-Xptxas -v,-warn-spills)
lib_gate_ok() {  # every function: no spill stores/loads; a stack frame only if allowed
  awk -v allowed="$lib_lmem_allowed" '
    /Function properties for/ { name = $NF }
    /bytes stack frame/ {
      stack = $1; spill_st = $5; spill_ld = $9
      if (spill_st + 0 > 0 || spill_ld + 0 > 0) { print "spills in " name; bad = 1 }
      if (stack + 0 > 0 && name !~ allowed) { print "local memory in " name; bad = 1 }
    }
    END { exit bad }' "$1"
}
lib_table=$out/lib_resources.txt
: > "$lib_table"
for src in "$root"/cuda/kernels/*.cu; do
  family=$(basename "$src" .cu)
  for arch in "${archs[@]}"; do
    cubin=$out/lib.$family.$arch.cubin
    log=$out/lib.$family.$arch.txt
    # No spills anywhere; local memory only where allowed (lib_lmem_allowed).
    if "$nvcc" "${lib_flags[@]}" -arch="$arch" "${lib_gate[@]}" -o "$cubin" "$src" > "$log" 2>&1 &&
       lib_gate_ok "$log"; then
      check "$arch: cuda/kernels/$family.cu: no spills, no local memory" true
      lib_resources "$out/lib.$family.$arch.txt" "$family $arch" >> "$lib_table"
    else
      cat "$out/lib.$family.$arch.txt"
      check "$arch: cuda/kernels/$family.cu: ptxas gate" false
    fi
  done
done
if [ -s "$lib_table" ]; then
  echo
  printf '%-16s %-60s %5s %7s\n' "family arch" "kernel" "regs" "smem"
  c++filt < "$lib_table" | sed -E 's/\tvoid lamina::cuda::device::/\t/; s/\([^\t]*\)\t/\t/' |
    awk -F'\t' '{ printf "%-16s %-60s %5s %7s\n", $1, substr($2, 1, 60), $3, $4 }'
  echo
fi
if [ -n "$cuobjdump" ] && [ -n "$nvdisasm" ]; then
  for arch in "${archs[@]}"; do
    cubin=$out/lib.matmul.$arch.cubin
    [ -s "$cubin" ] || continue
    "$cuobjdump" -sass "$cubin" > "$out/sass.$arch.txt"
    # Both tile shapes of each instantiation (mangled names: bf16, half, float).
    for element in "I13__nv_bfloat16:bf16:HMMA\.16816\.F32\.BF16" "I6__half:f16:HMMA\.16816\.F32 " \
                   "IfN:tf32:HMMA\.1688\.F32\.TF32"; do
      IFS=: read -r mangled label hmma <<< "$element"
      gemm=$(sass_of "$arch" "mma_gemm_kernel$mangled")
      check "$arch: library $label GEMM runs on tensor cores (${hmma//\\/})" contains "$hmma" "$gemm"
      check "$arch: library $label GEMM copies with cp.async (LDGSTS)" contains 'LDGSTS' "$gemm"
      if [ "$label" != tf32 ]; then
        check "$arch: library $label GEMM loads with ldmatrix x4 and x4.trans (LDSM.16.M88.4, LDSM.16.MT88.4)" \
          eval 'contains "LDSM\.16\.M88\.4" "$gemm" && contains "LDSM\.16\.MT88\.4" "$gemm"'
      fi
    done
    check "$arch: library sgemm is FFMA on shared-memory loads" \
      ffma_from_shared "$(sass_of "$arch" sgemm_forward_kernelIfE)"
    for family in "$root"/cuda/kernels/*.cu; do
      family=$(basename "$family" .cu)
      "$cuobjdump" -sass "$out/lib.$family.$arch.cubin" > "$out/lib_sass.txt" 2> /dev/null || continue
      awk -v allowed="$lib_lmem_allowed" '/Function :/ { on = $0 !~ allowed; next } on' \
        "$out/lib_sass.txt" > "$out/lib_sass_gated.txt"
      check "$arch: cuda/kernels/$family.cu has no LDL/STL (outside $lib_lmem_allowed)" \
        lacks_local_memory "$out/lib_sass_gated.txt"
    done
  done
fi

# ---- 5. attention, recurrent and conv kernels --------------------------------------------------
family_resources() {  # kernel<TAB>registers<TAB>shared bytes (static + dynamic), from one ptxas log
  awk '/Compiling entry function/ { name = $0; sub(/.*function \047/, "", name); sub(/\047.*/, "", name) }
       /Used [0-9]+ registers/ { regs = $0; sub(/.*Used /, "", regs); sub(/ registers.*/, "", regs)
         smem = 0; if (match($0, /[0-9]+ bytes smem/)) smem = substr($0, RSTART, RLENGTH - 11)
         print name "\t" regs "\t" smem }' "$1" |
    c++filt | sed -E 's/^void //; s/^lamina::cuda::device:://; s/\(.*\)\t/\t/; s/__nv_bfloat16/bf16/g; s/__half/f16/g'
}
# Dynamic shared memory per launch (not in ptxas -v): from the launchers' configurations.
dynamic_smem() {
  case "$1" in
    attention_forward_kernel*64*) echo 36864 ;;    # 4 * 64 * (64 + 8) * 2
    attention_forward_kernel*128*) echo 34816 ;;   # 4 * 32 * (128 + 8) * 2
    attention_backward_kernel*64*) echo 33024 ;;   # (2*64*72 + 2*32*72 + 64*40) * 2 + 256
    attention_backward_kernel*128*) echo 37632 ;;  # (2*32*136 + 2*32*136 + 32*40) * 2 + 256
    conv2d_*_mma_kernel*) echo 20480 ;;            # 2 stages * 2 operands * 64 * 40 * 2
    # The FMA attention kernels size shared memory by the head sizes; the largest: float at
    # d = dv = 128 (rows padded to 132), double at d = dv = 64 (rows padded to 68).
    attention_forward_fma_kernel\<float\>) echo 44288 ;;       # 4 * (16*132 + 32*132 + 32*132 + 16*32)
    attention_backward_dq_fma_kernel\<float\>) echo 35840 ;;   # 4 * (16*132 + 16*132 + 32*132 + 16*32)
    attention_backward_dkv_fma_kernel\<float\>) echo 37888 ;;  # 4 * (16*132 + 16*132 + 32*132 + 2*16*32)
    attention_forward_fma_kernel\<double\>) echo 47616 ;;      # 8 * (16*68 + 32*68 + 32*68 + 16*32)
    attention_backward_dq_fma_kernel\<double\>) echo 38912 ;;  # 8 * (16*68 + 16*68 + 32*68 + 16*32)
    attention_backward_dkv_fma_kernel\<double\>) echo 43008 ;; # 8 * (16*68 + 16*68 + 32*68 + 2*16*32)
    *) echo 0 ;;
  esac
}
cuobjdump=${CUOBJDUMP:-$(find_tool cuobjdump)}
nvdisasm=$(find_tool nvdisasm)
for family in attention recurrent conv; do
  src=$root/cuda/kernels/$family.cu
  for arch in "${archs[@]}"; do
    cubin=$out/$family.$arch.cubin
    if "$nvcc" "${nvcc_flags[@]}" -arch="$arch" "${gate[@]}" -o "$cubin" "$src" \
         > "$out/ptxas.$family.$arch.txt" 2>&1; then
      check "$arch: $family.cu: no spills, no local memory" true
    else
      cat "$out/ptxas.$family.$arch.txt"
      check "$arch: $family.cu: ptxas gate" false
    fi
  done
  if [ -s "$out/$family.sm_80.cubin" ] && [ -s "$out/$family.sm_90.cubin" ]; then
    echo
    printf '%-58s %5s %6s %6s %5s %6s %6s\n' "$family.cu kernel" "sm80" "static" "dyn" "sm90" "static" "dyn"
    printf '%-58s %5s %6s %6s %5s %6s %6s\n' "" "regs" "smem" "smem" "regs" "smem" "smem"
    join -t $'\t' <(family_resources "$out/ptxas.$family.sm_80.txt" | sort) \
                  <(family_resources "$out/ptxas.$family.sm_90.txt" | sort) |
      while IFS=$'\t' read -r name r80 s80 r90 s90; do
        dyn=$(dynamic_smem "$name")
        printf '%-58s %5s %6s %6s %5s %6s %6s\n' "${name:0:58}" "$r80" "$s80" "$dyn" "$r90" "$s90" "$dyn"
      done
    echo
  fi
done
if [ -z "$cuobjdump" ] || [ -z "$nvdisasm" ]; then
  echo "skipped the SASS checks of attention, recurrent and conv: cuobjdump or nvdisasm not found"
else
  export PATH="$(dirname "$nvdisasm"):$PATH"
  sass_in() {  # sass_in FILE NAME: the SASS of kernels whose mangled name contains NAME
    awk -v k="$2" '/Function :/ { on = index($0, k) > 0; next } on' "$1"
  }
  has() { grep -qE "$1" <<< "$2"; }
  tensor_path() {  # HMMA of the type, ldmatrix and cp.async all present
    has "$1" "$2" && has 'LDSM\.16\.M88\.4' "$2" && has 'LDGSTS' "$2"
  }
  for arch in "${archs[@]}"; do
    for family in attention recurrent conv; do
      [ -s "$out/$family.$arch.cubin" ] || continue
      "$cuobjdump" -sass "$out/$family.$arch.cubin" > "$out/sass.$family.$arch.txt"
      "$cuobjdump" -res-usage "$out/$family.$arch.cubin" > "$out/res.$family.$arch.txt"
      check "$arch: $family.cu: no LDL/STL" lacks_local_memory "$out/sass.$family.$arch.txt"
      check "$arch: $family.cu: every kernel has STACK:0 and LOCAL:0" lacks_stack "$out/res.$family.$arch.txt"
    done
    sass=$out/sass.attention.$arch.txt
    for d in 64 128; do
      fwd_bf16=$(sass_in "$sass" "attention_forward_kernelI13__nv_bfloat16Li${d}E")
      fwd_f16=$(sass_in "$sass" "attention_forward_kernelI6__halfLi${d}E")
      bwd_bf16=$(sass_in "$sass" "attention_backward_kernelI13__nv_bfloat16Li${d}E")
      bwd_f16=$(sass_in "$sass" "attention_backward_kernelI6__halfLi${d}E")
      check "$arch: attention forward bf16 D=$d: HMMA.16816.F32.BF16, LDSM.x4 (+.trans), LDGSTS" \
        eval 'tensor_path "HMMA\.16816\.F32\.BF16" "$fwd_bf16" && has "LDSM\.16\.MT88\.4" "$fwd_bf16"'
      check "$arch: attention forward f16 D=$d: HMMA.16816.F32, LDSM, LDGSTS" \
        tensor_path 'HMMA\.16816\.F32 ' "$fwd_f16"
      check "$arch: attention backward bf16 D=$d: HMMA.16816.F32.BF16, LDSM, LDGSTS, RED/ATOM for dQ" \
        eval 'tensor_path "HMMA\.16816\.F32\.BF16" "$bwd_bf16" && has "\b(RED|ATOM)[.A-Z0-9]*\.ADD" "$bwd_bf16"'
      check "$arch: attention backward f16 D=$d: HMMA.16816.F32, LDSM, LDGSTS" \
        tensor_path 'HMMA\.16816\.F32 ' "$bwd_f16"
    done
    for kernel in attention_forward_fma_kernel attention_backward_dq_fma_kernel attention_backward_dkv_fma_kernel; do
      fma=$(sass_in "$sass" "${kernel}IfE")
      check "$arch: $kernel<float>: FFMA on 16-byte shared-memory loads (LDS.128), no tensor cores" \
        eval 'has "FFMA" "$fma" && has "LDS\.128" "$fma" && ! has "HMMA" "$fma"'
      dfma=$(sass_in "$sass" "${kernel}IdE")
      check "$arch: $kernel<double>: DFMA on shared-memory loads" eval 'has "DFMA" "$dfma" && has "LDS" "$dfma"'
    done
    # Every tensor-core conv kernel (forward, dgrad, wgrad; bf16 and f16): HMMA of its type fed
    # by ldmatrix, plus LDGSTS on the cp.async path. dgrad reads w, and wgrad dy and x, with
    # ldmatrix.trans (LDSM.16.MT88.4).
    for kernel in forward backward_input backward_weight; do
      for element in "I13__nv_bfloat16:bf16:HMMA\.16816\.F32\.BF16" "I6__half:f16:HMMA\.16816\.F32 "; do
        IFS=: read -r mangled label hmma <<< "$element"
        conv_vec=$(sass_in "$out/sass.conv.$arch.txt" "conv2d_${kernel}_mma_kernel${mangled}Lb1E")
        conv_gather=$(sass_in "$out/sass.conv.$arch.txt" "conv2d_${kernel}_mma_kernel${mangled}Lb0E")
        check "$arch: conv2d $kernel $label (cp.async path): ${hmma//\\/}, LDSM.x4, LDGSTS" \
          eval 'has "$hmma" "$conv_vec" && has "LDSM\.16\.M?T?88\.4" "$conv_vec" && has LDGSTS "$conv_vec"'
        check "$arch: conv2d $kernel $label (gathered path): ${hmma//\\/}, LDSM.x4" \
          eval 'has "$hmma" "$conv_gather" && has "LDSM\.16\.M?T?88\.4" "$conv_gather"'
        if [ "$kernel" != forward ]; then
          check "$arch: conv2d $kernel $label reads [kg][mn] tiles with ldmatrix.trans (LDSM.16.MT88.4)" \
            eval 'has "LDSM\.16\.MT88\.4" "$conv_vec" && has "LDSM\.16\.MT88\.4" "$conv_gather"'
        fi
      done
    done
    check "$arch: conv2d fp32 kernels are FFMA on shared-memory loads" \
      eval 'ffma_from_shared "$(sass_in "$out/sass.conv.$arch.txt" conv2d_forward_fma_kernelIfE)"'
  done
fi

echo "$passed passed, $failed failed"
[ $failed = 0 ]
