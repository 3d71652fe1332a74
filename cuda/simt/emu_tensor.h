// Warp-level tensor-core operations of the SIMT emulator, with the fragment layouts of the
// PTX ISA: ldmatrix.sync.aligned.m8n8.x{1,2,4}[.trans].shared.b16 and
// mma.sync.aligned.m16n8k16.row.col.f32.{bf16,f16}.{bf16,f16}.f32 and
// mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 (with cvt.rna.tf32.f32). All are
// .aligned: every lane of the warp must execute them together.
#pragma once

#include <cstdint>
#include <source_location>

#include "emu_math.h"
#include "emu_warp.h"

namespace lamina::simt::emu {

inline void require_full_warp(const char* what, const std::source_location& where) {
  unsigned exist;
  {
    IgnoreAccesses ignore;
    exist = block().warps[self().warp].exist;
  }
  if (exist != 0xffffffffu)
    fail(format("%s at %s needs all 32 lanes of the warp, but the block has lanes 0x%08x of it",
                what, site(where).c_str(), exist));
}

// Lane i supplies row i of the stacked 8x8 b16 matrices (lanes 8j..8j+7: matrix j) and reads
// that row itself, so TSan and ASan see the access in the right thread. Lane l receives,
// for each matrix j, the pair in row l/4, columns 2(l%4) and 2(l%4)+1; with .trans, the
// pair in column l/4, rows 2(l%4) and 2(l%4)+1.
template <int NUM, bool TRANS>
void ldmatrix_combine(const Collective&, const Warp& w) {
  auto element = [&](unsigned row, unsigned col) {
    uint16_t e;
    memcpy(&e, w.lanes[row]->in + 2 * col, 2);
    return uint32_t(e);
  };
  for (unsigned l = 0; l < 32; ++l) {
    const unsigned group = l / 4, pair = 2 * (l % 4);
    uint32_t out[NUM];
    for (unsigned j = 0; j < NUM; ++j)
      out[j] = TRANS ? element(8 * j + pair, group) | element(8 * j + pair + 1, group) << 16
                     : element(8 * j + group, pair) | element(8 * j + group, pair + 1) << 16;
    memcpy(w.lanes[l]->out, out, sizeof out);
  }
}

struct MmaOperands {
  uint32_t a[4];
  uint32_t b[2];
  float c[4];
};

// Fragments of mma.m16n8k16 with 16-bit inputs (PTX ISA, "Matrix Fragments for
// mma.m16n8k16 with floating point type"), with g = lane / 4 and t = lane % 4:
//   A 16x16, a_i (i = 0..7, register i/2, low half first):
//       row g for i in {0,1,4,5}, g+8 otherwise; column 2t + i%2, +8 for i >= 4
//   B 16x8, b_i (i = 0..3, register i/2): row 2t + i%2, +8 for i >= 2; column g
//   C, D 16x8, c_i (i = 0..3): row g, +8 for i >= 2; column 2t + i%2
// The sum is exact (16-bit products are exact, and double holds the sum of 17 of them),
// rounded once; tensor cores truncate partial sums, so the device may differ in the last bits.
template <float (*Convert)(uint16_t)>
void mma_combine(const Collective&, const Warp& w) {
  float A[16][16], B[16][8];
  double C[16][8];
  for (unsigned l = 0; l < 32; ++l) {
    MmaOperands f;
    memcpy(&f, w.lanes[l]->in, sizeof f);
    const unsigned g = l / 4, t = l % 4;
    for (unsigned i = 0; i < 8; ++i)
      A[(i & 2) ? g + 8 : g][2 * t + i % 2 + (i >= 4 ? 8 : 0)] = Convert(f.a[i / 2] >> 16 * (i % 2));
    for (unsigned i = 0; i < 4; ++i)
      B[2 * t + i % 2 + (i >= 2 ? 8 : 0)][g] = Convert(f.b[i / 2] >> 16 * (i % 2));
    for (unsigned i = 0; i < 4; ++i) C[(i >= 2) ? g + 8 : g][2 * t + i % 2] = f.c[i];
  }
  for (unsigned l = 0; l < 32; ++l) {
    const unsigned g = l / 4, t = l % 4;
    float d[4];
    for (unsigned i = 0; i < 4; ++i) {
      const unsigned row = (i >= 2) ? g + 8 : g, col = 2 * t + i % 2;
      double sum = C[row][col];
      for (unsigned k = 0; k < 16; ++k) sum += double(A[row][k]) * B[k][col];
      d[i] = float(sum);
    }
    memcpy(w.lanes[l]->out, d, sizeof d);
  }
}

template <float (*Convert)(uint16_t)>
void mma(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2], const float (&c)[4],
         const std::source_location& where) {
  require_full_warp("mma.sync", where);
  MmaOperands in;
  memcpy(in.a, a, sizeof a);
  memcpy(in.b, b, sizeof b);
  memcpy(in.c, c, sizeof c);
  float out[4];
  warp_collective({Op::Mma, 0xffffffffu, 32, &mma_combine<Convert>, where}, &in, sizeof in, out, 0);
  memcpy(d, out, sizeof out);
}

// Fragments of mma.m16n8k8 with .tf32 inputs (PTX ISA, "Matrix Fragments for mma.m16n8k8"),
// one element per register, g = lane / 4 and t = lane % 4:
//   A 16x8, a_i (i = 0..3): row g, +8 for odd i; column t, +4 for i >= 2
//   B 8x8, b_i (i = 0..1): row t, +4 for i = 1; column g
//   C, D: as for m16n8k16
// The tensor core reads only the tf32 bits of an operand (the low 13 mantissa bits are
// ignored). Products of 11-bit significands are exact in double, and so is the sum of nine
// of them with C in all but extreme exponent spreads; the result is rounded once.
inline float tf32_operand(uint32_t bits) { return __uint_as_float(bits & 0xffffe000u); }

inline void mma_tf32_combine(const Collective&, const Warp& w) {
  float A[16][8], B[8][8];
  double C[16][8];
  for (unsigned l = 0; l < 32; ++l) {
    MmaOperands f;
    memcpy(&f, w.lanes[l]->in, sizeof f);
    const unsigned g = l / 4, t = l % 4;
    for (unsigned i = 0; i < 4; ++i) A[g + 8 * (i % 2)][t + 4 * (i / 2)] = tf32_operand(f.a[i]);
    for (unsigned i = 0; i < 2; ++i) B[t + 4 * i][g] = tf32_operand(f.b[i]);
    for (unsigned i = 0; i < 4; ++i) C[(i >= 2) ? g + 8 : g][2 * t + i % 2] = f.c[i];
  }
  for (unsigned l = 0; l < 32; ++l) {
    const unsigned g = l / 4, t = l % 4;
    float d[4];
    for (unsigned i = 0; i < 4; ++i) {
      const unsigned row = (i >= 2) ? g + 8 : g, col = 2 * t + i % 2;
      double sum = C[row][col];
      for (unsigned k = 0; k < 8; ++k) sum += double(A[row][k]) * B[k][col];
      d[i] = float(sum);
    }
    memcpy(w.lanes[l]->out, d, sizeof d);
  }
}

// cvt.rna.tf32.f32: round the mantissa to 10 bits, ties away from zero (a carry may reach
// the exponent, and infinity); NaN stays a NaN.
inline uint32_t float_to_tf32_bits(float x) {
  const uint32_t u = __float_as_uint(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fffe000u;
  if ((u & 0x7f800000u) == 0x7f800000u) return u;
  return (u + 0x1000u) & 0xffffe000u;
}

}  // namespace lamina::simt::emu

namespace lamina::simt {

template <int NUM, bool TRANS = false>
inline void ldmatrix(uint32_t (&r)[NUM], const void* smem_row,
                     std::source_location where = std::source_location::current()) {
  static_assert(NUM == 1 || NUM == 2 || NUM == 4, "ldmatrix loads 1, 2 or 4 matrices");
  emu::require_full_warp("ldmatrix", where);
  unsigned char row[16] = {};
  if (emu::self().lane < 8 * NUM) {  // the other lanes' addresses are ignored
    if (reinterpret_cast<uintptr_t>(smem_row) % 16)
      emu::fail(emu::format("ldmatrix at %s: row address %p is not 16-byte aligned",
                            emu::site(where).c_str(), smem_row));
    memcpy(row, smem_row, sizeof row);
  }
  emu::warp_collective({emu::Op::LdMatrix, 0xffffffffu, 32, &emu::ldmatrix_combine<NUM, TRANS>,
                        where},
                       row, sizeof row, r, 0);
}

inline void mma_m16n8k16_bf16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2],
                              const float (&c)[4],
                              std::source_location where = std::source_location::current()) {
  emu::mma<&emu::bf16_bits_to_float>(d, a, b, c, where);
}

inline void mma_m16n8k16_f16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2],
                             const float (&c)[4],
                             std::source_location where = std::source_location::current()) {
  emu::mma<&emu::half_bits_to_float>(d, a, b, c, where);
}

inline uint32_t float_to_tf32(float x) { return emu::float_to_tf32_bits(x); }

inline void mma_m16n8k8_tf32(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2],
                             const float (&c)[4],
                             std::source_location where = std::source_location::current()) {
  emu::require_full_warp("mma.sync", where);
  emu::MmaOperands in;
  memcpy(in.a, a, sizeof a);
  memcpy(in.b, b, sizeof b);
  memcpy(in.c, c, sizeof c);
  float out[4];
  emu::warp_collective({emu::Op::Mma, 0xffffffffu, 32, &emu::mma_tf32_combine, where}, &in, sizeof in, out, 0);
  memcpy(d, out, sizeof out);
}

}  // namespace lamina::simt
