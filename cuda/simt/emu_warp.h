// Warp collectives of the SIMT emulator: shuffles, votes, reductions and __syncwarp. A lane
// waits until every lane named in the mask has reached a collective of the same kind, as on
// sm_70+, where lanes of a warp do not run in lock-step. A kernel that assumes lock-step
// therefore sees its lanes run one after another, and a mask naming a lane that never
// arrives is reported as a deadlock.
//
// __activemask() is deliberately absent: it reports which lanes happen to be converged,
// which the emulator does not model; derive masks with __ballot_sync instead.
#pragma once

#include "emu_math.h"
#include "emu_scheduler.h"

inline constexpr int warpSize = 32;

namespace lamina::simt::emu {

struct CollectiveCall {
  Op op;
  unsigned mask;
  int width;
  Combiner combine;
  std::source_location where;
};

// Lanes that reach collectives of the same kind and mask complete together, whatever their
// call sites (sm_70+ allows that); different kinds wait apart, and the deadlock report
// names them if they can never complete.
inline std::string join(Warp& w, const Thread& t, const CollectiveCall& call, Collective*& group) {
  const unsigned mask = call.mask & w.exist;
  if (!(call.mask >> t.lane & 1u))
    return format("%s at %s: the calling lane %u is not in its mask 0x%08x", op_name(call.op),
                  site(call.where).c_str(), t.lane, call.mask);
  if (mask & w.exited)
    return format("%s at %s: mask 0x%08x names lanes 0x%08x that have exited", op_name(call.op),
                  site(call.where).c_str(), call.mask, mask & w.exited);
  for (Collective& c : w.pending) {
    if (c.op == call.op && c.mask == mask && c.width == call.width && c.combine == call.combine) {
      group = &c;
      return {};
    }
  }
  w.pending.push_back({call.op, mask, 0, call.width, call.combine, call.where});
  group = &w.pending.back();
  return {};
}

// `in` (up to 48 bytes) is this lane's operand; the combiner writes this lane's result to
// `out` once the last lane of the mask arrives.
inline void warp_collective(const CollectiveCall& call, const void* in, size_t size, void* out,
                            int arg) {
  Thread& t = self();
  Warp* w;
  std::string error;
  bool last = false;
  hb_release(&t.hb_out);
  {
    IgnoreAccesses ignore;
    w = &block().warps[t.warp];
    Collective* group = nullptr;
    error = join(*w, t, call, group);
    if (error.empty()) {
      if (size) memcpy(t.in, in, size);
      t.out = out;
      t.arg = arg;
      group->arrived |= 1u << t.lane;
      last = group->arrived == group->mask;
      if (!last) {
        t.state = State::AtCollective;
        t.waits_at = call.where;
      }
    }
  }
  if (!error.empty()) fail(std::move(error));
  if (!last) {
    park(t);
    hb_acquire(&t.hb_in);
    return;
  }
  // The last lane gathers every lane's history, computes, and hands the result back.
  Collective c;
  Thread* lanes[32];
  unsigned n = 0;
  {
    IgnoreAccesses ignore;
    auto it = std::find_if(w->pending.begin(), w->pending.end(), [&](const Collective& p) {
      return p.arrived >> t.lane & 1u;
    });
    c = *it;
    w->pending.erase(it);
    for (unsigned l = 0; l < 32; ++l)
      if (c.mask >> l & 1u) lanes[n++] = w->lanes[l];
  }
  for (unsigned i = 0; i < n; ++i) hb_acquire(&lanes[i]->hb_out);
  {
    IgnoreAccesses ignore;
    c.combine(c, *w);
  }
  for (unsigned i = 0; i < n; ++i) {
    if (lanes[i] == &t) continue;
    hb_release(&lanes[i]->hb_in);
    IgnoreAccesses ignore;
    lanes[i]->state = State::Ready;
  }
}

template <class T>
void shuffle_combine(const Collective& c, const Warp& w) {
  for (unsigned lane = 0; lane < 32; ++lane) {
    if (!(c.mask >> lane & 1u)) continue;
    const int l = int(lane), start = l & ~(c.width - 1), end = start + c.width;
    const int arg = w.lanes[lane]->arg;
    int src;
    switch (c.op) {
      case Op::Shfl: src = start + (arg & (c.width - 1)); break;
      case Op::ShflUp: src = l - arg >= start ? l - arg : l; break;
      case Op::ShflDown: src = l + arg < end ? l + arg : l; break;
      default: src = (l ^ arg) < end ? l ^ arg : l; break;  // xor reaches back, not ahead
    }
    void* out = w.lanes[lane]->out;
    if (src >= 0 && src < 32 && (c.mask >> src & 1u)) memcpy(out, w.lanes[src]->in, sizeof(T));
    else memset(out, 0xff, sizeof(T));  // reading a lane outside the mask is undefined
  }
}

template <class T>
concept Shuffled = std::is_arithmetic_v<T> || std::is_same_v<T, __half> ||
                   std::is_same_v<T, __nv_bfloat16>;

template <Shuffled T>
T shuffle(Op op, unsigned mask, T var, int arg, int width, const std::source_location& where) {
  if (width < 1 || width > 32 || (width & (width - 1)))
    fail(format("%s at %s: width %d is not a power of two from 1 to 32", op_name(op),
                site(where).c_str(), width));
  T out;
  warp_collective({op, mask, width, &shuffle_combine<T>, where}, &var, sizeof var, &out, arg);
  return out;
}

inline void vote_combine(const Collective& c, const Warp& w) {
  unsigned ballot = 0;
  for (unsigned l = 0; l < 32; ++l)
    if ((c.mask >> l & 1u) && w.lanes[l]->arg) ballot |= 1u << l;
  for (unsigned l = 0; l < 32; ++l)
    if (c.mask >> l & 1u) memcpy(w.lanes[l]->out, &ballot, sizeof ballot);
}

inline unsigned ballot(unsigned mask, bool pred, const std::source_location& where) {
  unsigned out;
  warp_collective({Op::Vote, mask, 32, &vote_combine, where}, nullptr, 0, &out, pred);
  return out;
}

enum class Reduction { Add, Min, Max };

template <class T, Reduction R>
void reduce_combine(const Collective& c, const Warp& w) {
  T r{};
  bool first = true;
  for (unsigned l = 0; l < 32; ++l) {
    if (!(c.mask >> l & 1u)) continue;
    T v;
    memcpy(&v, w.lanes[l]->in, sizeof v);
    if (first) r = v;
    else if (R == Reduction::Add) r = T(unsigned(r) + unsigned(v));  // wraps, as on the device
    else if (R == Reduction::Min) r = v < r ? v : r;
    else r = r < v ? v : r;
    first = false;
  }
  for (unsigned l = 0; l < 32; ++l)
    if (c.mask >> l & 1u) memcpy(w.lanes[l]->out, &r, sizeof r);
}

template <Reduction R, class T>
T reduce(unsigned mask, T v, const std::source_location& where) {
  T out;
  warp_collective({Op::Reduce, mask, 32, &reduce_combine<T, R>, where}, &v, sizeof v, &out, 0);
  return out;
}

inline void no_combine(const Collective&, const Warp&) {}

}  // namespace lamina::simt::emu

template <lamina::simt::emu::Shuffled T>
T __shfl_sync(unsigned mask, T var, int src_lane, int width = warpSize,
              std::source_location where = std::source_location::current()) {
  return lamina::simt::emu::shuffle(lamina::simt::emu::Op::Shfl, mask, var, src_lane, width,
                                    where);
}
template <lamina::simt::emu::Shuffled T>
T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize,
                 std::source_location where = std::source_location::current()) {
  return lamina::simt::emu::shuffle(lamina::simt::emu::Op::ShflUp, mask, var,
                                    int(std::min(delta, 32u)), width, where);
}
template <lamina::simt::emu::Shuffled T>
T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize,
                   std::source_location where = std::source_location::current()) {
  return lamina::simt::emu::shuffle(lamina::simt::emu::Op::ShflDown, mask, var,
                                    int(std::min(delta, 32u)), width, where);
}
template <lamina::simt::emu::Shuffled T>
T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = warpSize,
                  std::source_location where = std::source_location::current()) {
  return lamina::simt::emu::shuffle(lamina::simt::emu::Op::ShflXor, mask, var, lane_mask, width,
                                    where);
}

inline unsigned __ballot_sync(unsigned mask, int pred,
                              std::source_location where = std::source_location::current()) {
  return lamina::simt::emu::ballot(mask, pred != 0, where);
}
inline int __any_sync(unsigned mask, int pred,
                      std::source_location where = std::source_location::current()) {
  return lamina::simt::emu::ballot(mask, pred != 0, where) != 0;
}
inline int __all_sync(unsigned mask, int pred,
                      std::source_location where = std::source_location::current()) {
  return lamina::simt::emu::ballot(mask, pred == 0, where) == 0;
}

// The device has these for int and unsigned only (sm_80+); so does the emulator.
#define SIMT_REDUCE_(name, R, T)                                                          \
  inline T name(unsigned mask, T value,                                                   \
                std::source_location where = std::source_location::current()) {           \
    return lamina::simt::emu::reduce<lamina::simt::emu::Reduction::R>(mask, value, where); \
  }
SIMT_REDUCE_(__reduce_add_sync, Add, int)
SIMT_REDUCE_(__reduce_add_sync, Add, unsigned)
SIMT_REDUCE_(__reduce_min_sync, Min, int)
SIMT_REDUCE_(__reduce_min_sync, Min, unsigned)
SIMT_REDUCE_(__reduce_max_sync, Max, int)
SIMT_REDUCE_(__reduce_max_sync, Max, unsigned)
#undef SIMT_REDUCE_

inline void __syncwarp(unsigned mask = 0xffffffffu,
                       std::source_location where = std::source_location::current()) {
  lamina::simt::emu::warp_collective(
      {lamina::simt::emu::Op::SyncWarp, mask, 32, &lamina::simt::emu::no_combine, where},
      nullptr, 0, nullptr, 0);
}
