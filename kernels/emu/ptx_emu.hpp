// Host emulation of the PTX wrappers in kernels/ptx.cuh (included from there when
// UNITFP8_SIMT_EMU is defined; simt.hpp comes first). Semantics follow the PTX ISA:
// cp.async (zero-fill beyond src-size), ldmatrix .x4 .b16, mma.sync m16n8k32 FP8 fragments,
// mbarrier phases and transaction counts, 2-D TMA tile loads with 128-byte swizzle and zero
// fill out of bounds, wgmma m64n128k32 FP8 with K-major 128-byte-swizzled descriptors.
//
// Tensor-core arithmetic model: every FP8 product is exact; an mma/wgmma sums its 32 products
// exactly, adds the accumulator input (wgmma with scale-d), and rounds once to f32 (nearest
// even). Real tensor cores round or truncate differently inside; the GPU checks measure that,
// the emulator checks indexing, so tests compare it bit for bit with the same model.
#pragma once

// The dynamic shared memory of the current block.
static inline u8 *emu_dynamic_smem() { return emu::st().window + emu::DYN_OFFSET; }

static inline u32 smem_u32(const void *p) {
    const u8 *b = (const u8 *)p;
    const u8 *w = emu::st().window;
    if (b < w || b >= w + emu::WINDOW_BYTES) emu::fail("smem_u32 of a pointer outside shared memory");
    return (u32)(b - w);
}

// --- cp.async ------------------------------------------------------------------------------------
static inline void cp_async16(u32 dst, const void *src, int bytes) {
    if (bytes < 0 || bytes > 16) emu::fail("cp.async: src-size outside 0..16");
    if (bytes > 0 && ((uintptr_t)src % 16) != 0) emu::fail("cp.async: global source not 16-byte aligned");
    u8 *d = emu::smem(dst, 16, 16, "cp.async");
    for (int i = 0; i < 16; i++) d[i] = (u8)emu::random64();  // in flight: unreadable
    emu::st().cur->cp_open.push_back(emu::CpAsync{dst, src, bytes});
    emu::preempt();
}
static inline void cp_async_commit() {
    emu::Fiber *f = emu::st().cur;
    f->cp_groups.push_back(std::move(f->cp_open));
    f->cp_open.clear();
}
template <int N>
static inline void cp_async_wait() {
    emu::Fiber *f = emu::st().cur;
    while (f->cp_groups.size() > (size_t)N) {
        emu::complete_cp_group(f->cp_groups.front());
        f->cp_groups.erase(f->cp_groups.begin());
    }
}

// --- ldmatrix ------------------------------------------------------------------------------------
static inline void ldmatrix_x4(u32 r[4], u32 addr) {
    emu::Group &w = emu::my_warp();
    if (w.size != 32) emu::fail("ldmatrix in a partial warp");
    const int lane = emu::my_lane();
    w.slot[lane][0] = addr;
    emu::group_sync(w);
    for (int j = 0; j < 4; j++) {
        const u32 row = (u32)w.slot[8 * j + lane / 4][0];
        const u8 *p = emu::smem(row, 16, 16, "ldmatrix row");
        memcpy(&r[j], p + 4 * (lane % 4), 4);
    }
    emu::group_sync(w);
}

// --- exact FP8 dot products ------------------------------------------------------------------------
typedef __int128 i128;

// value * 2^16 of an FP8 code (every finite E4M3/E5M2 value is a multiple of 2^-16);
// NaN and infinity are outside the model.
template <int FMT>
static inline i64 emu_fp8_fixed(u8 code) {
    const bool e4 = FMT == T_E4M3;
    const u32 mag = code & 0x7Fu;
    if (e4 ? mag == 0x7Fu : mag >= 0x7Cu) emu::fail("tensor-core emulation: NaN or infinity operand (shared memory read before it was written, or while a copy was in flight?)");
    const int mb = e4 ? 3 : 2, bias = e4 ? 7 : 15;
    const u32 exp = mag >> mb, mant = mag & ((1u << mb) - 1u);
    // value = (exp ? 2^mb + mant : mant) * 2^(max(exp,1) - bias - mb)
    const i64 sig = exp ? (i64)((1u << mb) + mant) : (i64)mant;
    const int p = (exp ? (int)exp : 1) - bias - mb + 16;
    const i64 v = p >= 0 ? sig << p : sig >> -p;  // p < 0 never drops bits (subnormals >= 2^-16)
    return (code & 0x80u) ? -v : v;
}

// x * 2^-32 rounded to the nearest f32, ties to even (|x| < 2^126).
static inline float emu_round_fixed32(i128 x) {
    if (x == 0) return 0.0f;
    const bool neg = x < 0;
    unsigned __int128 m = neg ? (unsigned __int128)(-x) : (unsigned __int128)x;
    int msb = 127;
    while (!((m >> msb) & 1)) msb--;
    int shift = msb - 23;
    if (shift > 0) {
        const unsigned __int128 rem = m & ((((unsigned __int128)1) << shift) - 1);
        const unsigned __int128 half = ((unsigned __int128)1) << (shift - 1);
        m >>= shift;
        if (rem > half || (rem == half && (m & 1))) m++;
    } else {
        shift = 0;
    }
    const float r = std::ldexp((float)(u64)m, shift - 32);
    return neg ? -r : r;
}

// f32 value * 2^32 as an integer; the accumulator of a tensor-core sum always is one.
static inline i128 emu_fixed32(float v) {
    if (!std::isfinite(v) || std::fabs(v) > 0x1p90f) emu::fail("tensor-core emulation: accumulator out of range");
    int e;
    const float f = std::frexp(v, &e);  // v = f * 2^e, |f| in [0.5, 1)
    const i64 sig = (i64)std::ldexp(std::fabs(f), 24);  // exact, >= 0
    const int p = e - 24 + 32;
    i128 mag;
    if (p < 0) {
        if (sig % ((i64)1 << -p) != 0) emu::fail("tensor-core emulation: accumulator below 2^-32 resolution");
        mag = (i128)(sig >> -p);
    } else {
        mag = (i128)sig << p;
    }
    return v < 0 ? -mag : mag;
}

// --- mma.sync m16n8k32 (FP8 in, f32 out, accumulator input 0) ------------------------------------
template <int AT, int BT>
static inline void mma_fp8(float d[4], const u32 a[4], const u32 b[2]) {
    emu::Group &w = emu::my_warp();
    if (w.size != 32) emu::fail("mma.sync in a partial warp");
    const int lane = emu::my_lane();
    for (int i = 0; i < 4; i++) w.slot[lane][i] = a[i];
    w.slot[lane][4] = b[0];
    w.slot[lane][5] = b[1];
    emu::group_sync(w);
    // A (16 x 32, row-major): element (r, k) is byte k%4 of register (r >= 8) + 2 (k >= 16) of
    // lane 4 (r % 8) + (k % 16) / 4. B (32 x 8, column): element (k, n) is byte k%4 of
    // register (k >= 16) of lane 4 n + (k % 16) / 4.
    auto a_code = [&](int r, int k) {
        const u32 reg = (u32)w.slot[4 * (r % 8) + (k % 16) / 4][(r >= 8 ? 1 : 0) + (k >= 16 ? 2 : 0)];
        return (u8)(reg >> (8 * (k % 4)));
    };
    auto b_code = [&](int k, int n) {
        const u32 reg = (u32)w.slot[4 * n + (k % 16) / 4][4 + (k >= 16 ? 1 : 0)];
        return (u8)(reg >> (8 * (k % 4)));
    };
    const int g = lane / 4, t = lane % 4;
    for (int q = 0; q < 4; q++) {
        const int row = g + 8 * (q >> 1), col = 2 * t + (q & 1);
        i128 sum = 0;
        for (int k = 0; k < 32; k++) sum += (i128)emu_fp8_fixed<AT>(a_code(row, k)) * emu_fp8_fixed<BT>(b_code(k, col));
        d[q] = emu_round_fixed32(sum);
    }
    emu::group_sync(w);
}

// --- mbarrier --------------------------------------------------------------------------------------
namespace emu {
static inline Mbar &mbar(u32 addr) {
    smem(addr, 8, 8, "mbarrier");
    Mbar &b = st().mbars[addr];
    if (!b.init) fail("mbarrier used before mbarrier.init");
    return b;
}
static inline void mbar_check(Mbar &b) {
    if (b.pending < 0) fail("mbarrier: more arrivals than its count in one phase");
    if (b.pending == 0 && b.tx == 0) {
        b.phase++;
        b.pending = b.expected;
    }
    st().progress++;
}
}  // namespace emu

static inline void mbar_init(u32 bar, u32 count) {
    emu::smem(bar, 8, 8, "mbarrier.init");
    emu::Mbar &b = emu::st().mbars[bar];
    b = emu::Mbar();
    b.init = true;
    b.expected = b.pending = (int)count;
}
static inline void mbar_init_fence() {}
static inline void mbar_expect_tx(u32 bar, u32 bytes) {
    emu::Mbar &b = emu::mbar(bar);
    b.tx += bytes;
    b.pending--;
    emu::mbar_check(b);
    emu::preempt();
}
static inline void mbar_arrive(u32 bar) {
    emu::Mbar &b = emu::mbar(bar);
    b.pending--;
    emu::mbar_check(b);
    emu::preempt();
}
static inline void mbar_wait(u32 bar, u32 parity) {
    while ((emu::mbar(bar).phase & 1u) == (parity & 1u)) emu::spin();
}

// --- TMA ---------------------------------------------------------------------------------------------
// The fake driver's CUtensorMap contents (kernels/emu/fake_driver.cpp writes them).
struct EmuTmaMap {
    u64 magic;  // EMU_TMA_MAGIC
    u64 addr, dim0, dim1, stride1, box0, box1, swizzle128;
};
#define EMU_TMA_MAGIC 0x756E69746D61ull

static inline void tma_load_2d(u32 dst, const TmaMap *map, int c0, int c1, u32 bar) {
    EmuTmaMap m;
    memcpy(&m, map, sizeof m);
    if (m.magic != EMU_TMA_MAGIC) emu::fail("TMA: the tensor map was not made by cuTensorMapEncodeTiled");
    if (!m.swizzle128) emu::fail("TMA: only 128-byte swizzle is emulated");
    const u32 bytes = (u32)(m.box0 * m.box1);
    u8 *d = emu::smem(dst, bytes, 1024, "TMA destination (128-byte swizzle needs 1024-byte alignment)");
    for (const emu::Fiber &f : emu::st().fibers)
        for (auto r : f.wgmma_reads)
            if (r.first < dst + bytes && dst < r.second)
                emu::fail("TMA overwrites shared memory that a wgmma in flight reads (stage released too early?)");
    for (u32 i = 0; i < bytes; i++) d[i] = (u8)emu::random64();
    emu::mbar(bar);  // must exist now
    emu::st().async_ops.push_back([dst, m, c0, c1, bar, bytes]() {
        u8 *w = emu::st().window;
        for (u64 r = 0; r < m.box1; r++)
            for (u64 x = 0; x < m.box0; x++) {
                const i64 gx = (i64)c0 + (i64)x, gr = (i64)c1 + (i64)r;
                u8 v = 0;
                if (gx >= 0 && gr >= 0 && (u64)gx < m.dim0 && (u64)gr < m.dim1)
                    v = ((const u8 *)m.addr)[(u64)gr * m.stride1 + (u64)gx];
                const u32 a = dst + (u32)(r * m.box0 + x);
                w[a ^ (((a >> 7) & 7u) << 4)] = v;
            }
        emu::Mbar &b = emu::mbar(bar);
        b.tx -= bytes;
        emu::mbar_check(b);
    });
    emu::preempt();
}

// --- setmaxnreg, wgmma -----------------------------------------------------------------------------
static inline void setmaxnreg_producer() {}
static inline void setmaxnreg_consumer() {}
// wgmma is asynchronous: an operation runs when its group is waited for, reading shared
// memory then; at issue its accumulator registers are poisoned (after saving them when the
// operation accumulates), so reading them before the wait, or releasing the operands' stage
// before it, gives wrong results.
static inline void wgmma_fence() { emu::st().cur->wgmma_fenced = true; }
static inline void wgmma_commit() {
    emu::Fiber *f = emu::st().cur;
    f->wgmma_groups.push_back(std::move(f->wgmma_open));
    f->wgmma_open.clear();
    emu::preempt();
}
static inline void wgmma_wait0() {
    emu::Fiber *f = emu::st().cur;
    if (!f->wgmma_open.empty()) emu::fail("wgmma.wait_group with uncommitted wgmma operations");
    for (auto &g : f->wgmma_groups)
        for (auto &op : g) op();
    f->wgmma_groups.clear();
    f->wgmma_reads.clear();
    f->wgmma_fenced = false;
    // .sync.aligned: no thread of the warp goes on before all have waited.
    emu::group_sync(emu::my_warp());
}

// Byte (row, k) of a K-major operand described by `desc` (128-byte swizzle, rows of 128 bytes,
// 8-row groups SBO apart), as the hardware addresses it: swizzle applied to address bits.
static inline u8 emu_wgmma_byte(u64 desc, int row, int k) {
    const u32 start = (u32)(desc & 0x3FFFu) << 4;
    const u32 sbo = (u32)((desc >> 32) & 0x3FFFu) << 4;
    const u32 a = start + (u32)(row / 8) * sbo + (u32)(row % 8) * 128u + (u32)k;
    return *emu::smem(a ^ (((a >> 7) & 7u) << 4), 1, 1, "wgmma operand");
}

template <int AT, int BT>
static inline void wgmma_128(float d[64], u64 da, u64 db, u32 scale_d) {
    emu::Group &g = emu::my_warpgroup();
    if (g.size != 128) emu::fail("wgmma outside a full warpgroup");
    emu::Fiber *f = emu::st().cur;
    if (!f->wgmma_fenced) emu::fail("wgmma without a wgmma.fence since the last wait");
    const int t = f->linear % 128;
    g.slot[t][0] = da;
    g.slot[t][1] = db;
    g.slot[t][2] = scale_d != 0;
    emu::group_sync(g);
    for (int i = 0; i < 128; i++)
        if (g.slot[i][0] != da || g.slot[i][1] != db || g.slot[i][2] != (scale_d != 0))
            emu::fail("wgmma: descriptors or scale-d differ across the warpgroup");
    emu::group_sync(g);
    for (u64 desc : {da, db}) {
        if ((desc >> 62) != 1) emu::fail("wgmma: only 128-byte swizzle descriptors are emulated");
        if (((desc >> 49) & 7u) != 0) emu::fail("wgmma: nonzero base offset");
    }
    // The accumulator input: the registers now, unless an operation in flight writes them
    // first (then its result, when they run in order).
    bool chained = false;
    for (auto &grp : f->wgmma_groups) chained |= !grp.empty();
    chained |= !f->wgmma_open.empty();
    std::vector<float> saved;
    if (scale_d && !chained) saved.assign(d, d + 64);
    for (int i = 0; i < 64; i++) d[i] = __uint_as_float(0x7FC0DEADu);  // in flight: unreadable
    // The 1024-byte swizzle atoms the operands span (A: 64 rows, B: 128 rows, 8 rows per atom).
    for (auto [desc, rows] : {std::pair<u64, u32>{da, 64}, std::pair<u64, u32>{db, 128}}) {
        const u32 start = ((u32)(desc & 0x3FFFu) << 4) & ~1023u;
        const u32 sbo = (u32)((desc >> 32) & 0x3FFFu) << 4;
        f->wgmma_reads.push_back({start, start + (rows / 8) * sbo});
    }
    const int warp = t / 32, lane = t % 32;
    f->wgmma_open.push_back([d, da, db, scale_d, saved, warp, lane]() {
        for (int i = 0; i < 64; i++) {
            const int row = 16 * warp + lane / 4 + 8 * ((i >> 1) & 1);
            const int col = 8 * (i >> 2) + 2 * (lane % 4) + (i & 1);
            i128 sum = 0;
            if (scale_d) sum = emu_fixed32(saved.empty() ? d[i] : saved[(size_t)i]);
            for (int k = 0; k < 32; k++)
                sum += (i128)emu_fp8_fixed<AT>(emu_wgmma_byte(da, row, k)) * emu_fp8_fixed<BT>(emu_wgmma_byte(db, col, k));
            d[i] = emu_round_fixed32(sum);
        }
    });
}
