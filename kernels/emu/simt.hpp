// A host SIMT emulator for the unitfp8 CUDA kernels: compiles kernels/*.cuh with g++ and runs
// every CUDA thread as a fiber (ucontext) on one OS thread, so the kernels' own source text --
// index arithmetic, shared-memory layouts, warp collectives, pipelines -- can be checked on a
// machine without a GPU. Used only by kernels/emu/fake_driver.cpp (a stand-in libcuda).
//
// Faithful where a kernel bug would hide:
// - blocks run one at a time; threads of a block interleave in a random order that lets whole
//   warps run ahead of others until a barrier (so a missing __syncthreads or mbarrier wait
//   reads poison);
// - warp collectives (shuffle, ldmatrix, mma) need all 32 lanes; warpgroup collectives (wgmma)
//   all 128 threads, with uniform operands;
// - asynchronous copies (cp.async, TMA) poison their destination when issued and land only when
//   waited for (cp.async) or at a random later point (TMA, which then completes its mbarrier);
//   wgmma runs when its group is waited for, its accumulators poisoned until then;
// - a thread may be switched out (with its warp) at every asynchronous operation or mbarrier
//   arrival; a TMA load into shared memory an in-flight wgmma reads is reported;
// - every shared-memory access of the emulated PTX is bounds- and alignment-checked;
// - a block where no thread can progress is reported as a deadlock.
// Not emulated: timing, memory-model subtleties beyond the above, GPU NaN payloads (the host
// runs x86 arithmetic), tensor-core internal rounding (see ptx_emu.hpp).
#pragma once
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

#include <cmath>
#include <functional>
#include <map>
#include <vector>

#define UNITFP8_SIMT_EMU 1

// --- CUDA C++ keywords and built-in types --------------------------------------------------------
#define __device__
#define __global__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)
#define __grid_constant__
#define __align__(n) __attribute__((aligned(n)))

struct __attribute__((aligned(16))) uint4 {
    unsigned x, y, z, w;
};
struct __attribute__((aligned(8))) uint2 {
    unsigned x, y;
};
static inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return uint4{x, y, z, w}; }
static inline uint2 make_uint2(unsigned x, unsigned y) { return uint2{x, y}; }
struct emu_dim3 {
    unsigned x, y, z;
};

namespace emu {

[[noreturn]] static inline void fail(const char *what) {
    fprintf(stderr, "unitfp8 SIMT emulator: %s\n", what);
    fflush(stderr);
    abort();
}

// A barrier among `size` threads with room for each member to publish 8 words.
struct Group {
    int size = 0;
    int arrived = 0;
    unsigned gen = 0;
    bool switched_out = false;  // warps: a lane was switched out; the rest waits for the next pass
    uint64_t slot[128][8];
};

enum Wait { RUNNING, AT_GROUP, SPINNING, DONE };

// An mbarrier's state (kept beside shared memory, keyed by its address).
struct Mbar {
    int expected = 0, pending = 0;
    int64_t tx = 0;
    uint32_t phase = 0;
    bool init = false;
};

struct CpAsync {
    uint32_t dst;
    const void *src;
    int bytes;
};

struct Fiber {
    ucontext_t ctx;
    emu_dim3 tid;
    int linear = 0;
    Wait wait = RUNNING;
    Group *group = nullptr;
    unsigned gen = 0;
    std::vector<CpAsync> cp_open;                 // issued, not yet committed
    std::vector<std::vector<CpAsync>> cp_groups;  // committed, oldest first
    // wgmma operations in flight: issued (open), committed groups (oldest first); they run
    // when waited for. `wgmma_fenced`: a wgmma.fence since the last wait.
    std::vector<std::function<void()>> wgmma_open;
    std::vector<std::vector<std::function<void()>>> wgmma_groups;
    bool wgmma_fenced = false;
    // Shared-memory byte ranges [lo, hi) the wgmma operations in flight read.
    std::vector<std::pair<uint32_t, uint32_t>> wgmma_reads;
};

// Shared memory window: address 0 is window[0]; dynamic shared memory starts at DYN_OFFSET.
constexpr uint32_t WINDOW_BYTES = 256 * 1024;
constexpr uint32_t DYN_OFFSET = 128;
constexpr size_t STACK_BYTES = 128 * 1024;

struct State {
    ucontext_t scheduler;
    std::vector<Fiber> fibers;
    std::vector<char> stacks;
    std::vector<Group> warps, warpgroups;
    Group block;
    Fiber *cur = nullptr;
    emu_dim3 block_idx{}, block_dim{}, grid_dim{};
    alignas(4096) uint8_t window[WINDOW_BYTES];
    uint32_t dyn_bytes = 0;
    uint64_t progress = 0;
    uint64_t rng = 1;
    std::function<void()> entry;
    std::vector<std::function<void()>> async_ops;  // pending TMA copies
    std::map<uint32_t, Mbar> mbars;
};

static inline State &st() {
    static State *s = new State();
    return *s;
}

static inline uint64_t random64() {
    uint64_t &x = st().rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
}

// Back to the scheduler; resumes when the scheduler picks this fiber again.
static inline void yield() {
    Fiber *f = st().cur;
    swapcontext(&f->ctx, &st().scheduler);
}

// Arrive at `g` and wait until all its members have arrived.
static inline void group_sync(Group &g) {
    State &s = st();
    s.progress++;
    if (++g.arrived == g.size) {
        g.arrived = 0;
        g.gen++;
        return;
    }
    s.cur->wait = AT_GROUP;
    s.cur->group = &g;
    s.cur->gen = g.gen;
    yield();
}

// Spin-wait step: lets the others run; counts as no progress.
static inline void spin() {
    st().cur->wait = SPINNING;
    yield();
}

// A point where the hardware could switch to other warps: at random, lets the others run
// (asynchronous operations and barrier arrivals are where ordering bugs hide).
// The whole warp is switched out: its other lanes wait for the next pass too, so other warps
// (a producer, say) can run between this lane's operation and its warp's next instruction.
static inline void preempt() {
    if (random64() % 2 == 0) return;
    st().progress++;
    st().cur->wait = RUNNING;
    st().warps[st().cur->linear / 32].switched_out = true;
    yield();
}

static inline Group &my_warp() { return st().warps[st().cur->linear / 32]; }
static inline int my_lane() { return st().cur->linear % 32; }
static inline Group &my_warpgroup() { return st().warpgroups[st().cur->linear / 128]; }

static inline uint8_t *smem(uint32_t addr, uint32_t bytes, uint32_t align, const char *what) {
    State &s = st();
    if (addr % align != 0 || addr < DYN_OFFSET || (uint64_t)addr + bytes > (uint64_t)DYN_OFFSET + s.dyn_bytes) {
        char msg[200];
        snprintf(msg, sizeof msg, "%s: shared address 0x%x (+%u bytes, align %u) outside the %u bytes of dynamic shared memory at 0x%x",
                 what, addr, bytes, align, s.dyn_bytes, DYN_OFFSET);
        fail(msg);
    }
    return s.window + addr;
}

static inline void complete_cp_group(std::vector<CpAsync> &g) {
    for (const CpAsync &c : g) {
        uint8_t *d = smem(c.dst, 16, 16, "cp.async");
        memset(d, 0, 16);
        if (c.bytes) memcpy(d, c.src, (size_t)c.bytes);
    }
    st().progress++;
}

static void fiber_main() {
    State &s = st();
    s.entry();
    Fiber *f = s.cur;
    for (auto &g : f->cp_groups) complete_cp_group(g);
    complete_cp_group(f->cp_open);
    if (!f->wgmma_open.empty() || !f->wgmma_groups.empty()) fail("a thread exited with wgmma operations in flight");
    f->wait = DONE;
    s.progress++;
    // Exited threads no longer take part in __syncthreads.
    if (--s.block.size > 0 && s.block.arrived == s.block.size) {
        s.block.arrived = 0;
        s.block.gen++;
    }
    // Returning resumes uc_link (the scheduler).
}

static inline bool runnable(const Fiber &f) {
    if (f.wait == DONE) return false;
    if (f.wait == AT_GROUP) return f.group->gen != f.gen;
    return true;
}

// Runs one block of `threads` threads to completion.
static void run_block(unsigned threads) {
    State &s = st();
    const unsigned nwarps = (threads + 31) / 32;
    s.fibers.assign(threads, Fiber());
    if (s.stacks.size() < threads * STACK_BYTES) s.stacks.resize(threads * STACK_BYTES);
    s.warps.assign(nwarps, Group());
    for (unsigned w = 0; w < nwarps; w++) s.warps[w].size = (int)(threads - 32 * w < 32 ? threads - 32 * w : 32);
    s.warpgroups.assign((threads + 127) / 128, Group());
    for (unsigned w = 0; w < s.warpgroups.size(); w++)
        s.warpgroups[w].size = (int)(threads - 128 * w < 128 ? threads - 128 * w : 128);
    s.block = Group();
    s.block.size = (int)threads;
    s.async_ops.clear();
    s.mbars.clear();
    // Poison all of shared memory.
    for (uint32_t i = 0; i < WINDOW_BYTES; i += 8) {
        uint64_t r = random64();
        memcpy(s.window + i, &r, 8);
    }
    for (unsigned t = 0; t < threads; t++) {
        Fiber &f = s.fibers[t];
        f.linear = (int)t;
        f.tid = emu_dim3{t % s.block_dim.x, (t / s.block_dim.x) % s.block_dim.y, t / (s.block_dim.x * s.block_dim.y)};
        getcontext(&f.ctx);
        f.ctx.uc_stack.ss_sp = s.stacks.data() + (size_t)t * STACK_BYTES;
        f.ctx.uc_stack.ss_size = STACK_BYTES;
        f.ctx.uc_link = &s.scheduler;
        makecontext(&f.ctx, fiber_main, 0);
    }
    unsigned live = threads;
    bool force_all = true;
    std::vector<unsigned> order(nwarps);
    while (live > 0) {
        const uint64_t before = s.progress;
        for (unsigned w = 0; w < nwarps; w++) order[w] = w;
        for (unsigned w = nwarps; w > 1; w--) {
            unsigned j = (unsigned)(random64() % w);
            unsigned tmp = order[w - 1];
            order[w - 1] = order[j];
            order[j] = tmp;
        }
        for (unsigned oi = 0; oi < nwarps; oi++) {
            const unsigned w = order[oi];
            // Each pass skips some warps at random, so others run ahead of them.
            if (!force_all && random64() % 4 == 0) continue;
            const unsigned hi = 32 * w + 32 < threads ? 32 * w + 32 : threads;
            s.warps[w].switched_out = false;
            for (unsigned t = 32 * w; t < hi && !s.warps[w].switched_out; t++) {
                Fiber &f = s.fibers[t];
                if (!runnable(f)) continue;
                f.wait = RUNNING;
                s.cur = &f;
                swapcontext(&s.scheduler, &f.ctx);
                s.cur = nullptr;
                if (f.wait == DONE) live--;
            }
        }
        // Land some of the TMA copies in flight.
        for (size_t i = 0; i < s.async_ops.size();) {
            if (random64() % 2 == 0) {
                auto op = std::move(s.async_ops[i]);
                s.async_ops.erase(s.async_ops.begin() + (long)i);
                op();
                s.progress++;
            } else {
                i++;
            }
        }
        if (s.progress == before) {
            if (!force_all) {
                force_all = true;  // maybe only skipped warps could move
                continue;
            }
            if (!s.async_ops.empty()) continue;
            char msg[160];
            snprintf(msg, sizeof msg, "deadlock in block (%u, %u, %u): %u of %u threads cannot progress",
                     s.block_idx.x, s.block_idx.y, s.block_idx.z, live, threads);
            fail(msg);
        }
        force_all = false;
    }
}

// Runs `kernel` over the grid (blocks in order).
static inline void launch(emu_dim3 grid, emu_dim3 block, uint32_t dyn_smem, uint64_t seed, std::function<void()> kernel) {
    State &s = st();
    if (dyn_smem + DYN_OFFSET > WINDOW_BYTES) fail("dynamic shared memory larger than the emulated window");
    s.entry = std::move(kernel);
    s.grid_dim = grid;
    s.block_dim = block;
    s.dyn_bytes = dyn_smem;
    s.rng = seed | 1;
    const unsigned threads = block.x * block.y * block.z;
    for (unsigned z = 0; z < grid.z; z++)
        for (unsigned y = 0; y < grid.y; y++)
            for (unsigned x = 0; x < grid.x; x++) {
                s.block_idx = emu_dim3{x, y, z};
                run_block(threads);
            }
}

}  // namespace emu

// --- CUDA built-in variables and functions --------------------------------------------------------
#define threadIdx (emu::st().cur->tid)
#define blockIdx (emu::st().block_idx)
#define blockDim (emu::st().block_dim)
#define gridDim (emu::st().grid_dim)

static inline void __syncthreads() { emu::group_sync(emu::st().block); }

static inline unsigned __float_as_uint(float x) {
    unsigned u;
    memcpy(&u, &x, 4);
    return u;
}
static inline float __uint_as_float(unsigned u) {
    float x;
    memcpy(&x, &u, 4);
    return x;
}
// Built with -ffp-contract=off: no fused multiply-adds beyond __fmaf_rn.
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }

static inline unsigned __shfl_xor_sync(unsigned mask, unsigned v, int lane_mask) {
    if (mask != 0xFFFFFFFFu) emu::fail("__shfl_xor_sync with a partial mask");
    emu::Group &w = emu::my_warp();
    if (w.size != 32) emu::fail("__shfl_xor_sync in a partial warp");
    const int lane = emu::my_lane();
    w.slot[lane][0] = v;
    emu::group_sync(w);
    unsigned r = (unsigned)w.slot[(lane ^ lane_mask) & 31][0];
    emu::group_sync(w);
    return r;
}

static inline unsigned atomicMax(unsigned *p, unsigned v) {
    unsigned old = *p;
    if (v > old) *p = v;
    return old;
}
