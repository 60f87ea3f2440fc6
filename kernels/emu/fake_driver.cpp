// A stand-in libcuda.so for checks without a GPU: the driver-API calls unitfp8 (through cudarc)
// and its emulated-device tests make, with "device memory" in host memory and every kernel of
// kernels/unitfp8.cu compiled for the host and run by the SIMT emulator (simt.hpp).
//
// Build: g++ -std=c++17 -O2 -ffp-contract=off -fPIC -shared -o libcuda.so fake_driver.cpp
// (scripts/cuda-emu.sh does it); run with LD_LIBRARY_PATH pointing at it.
// Environment: UNITFP8_EMU_CC = 90 (default: an sm_90a device with 4 SMs) or 89;
// UNITFP8_EMU_SEED = seed of the thread interleaving and poison (default 1).
// Errors the real driver reports (bad launch sizes, too much shared memory, unknown kernels,
// malformed tensor maps) return its status codes; emulator faults abort with a message.
#include "simt.hpp"

#include "../unitfp8.cu"

#include <dlfcn.h>

#include <mutex>
#include <string>
#include <type_traits>

typedef int CUresult;
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;

namespace {

constexpr CUresult OK = 0, INVALID_VALUE = 1, NO_DEVICE = 100, INVALID_IMAGE = 200, INVALID_HANDLE = 400,
                   NOT_FOUND = 500;

struct Function {
    std::string name;
    void *sym;
    int max_dynamic_smem = 48 * 1024;
};

int context_token;  // the one context's handle is its address
int module_token;
thread_local void *current_ctx = nullptr;
std::mutex launch_lock;
std::map<std::string, Function *> functions;
uint64_t launches = 0;

int cc() {
    const char *e = getenv("UNITFP8_EMU_CC");
    return e && atoi(e) == 89 ? 89 : 90;
}

void *self_handle() {
    static void *h = [] {
        Dl_info info;
        if (!dladdr((void *)&self_handle, &info)) emu::fail("dladdr failed");
        return dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
    }();
    return h;
}

bool starts(const std::string &s, const char *p) { return s.rfind(p, 0) == 0; }

}  // namespace

extern "C" {

CUresult cuInit(unsigned) { return OK; }
CUresult cuDriverGetVersion(int *v) {
    *v = 13000;
    return OK;
}
CUresult cuDeviceGetCount(int *n) {
    *n = 1;
    return OK;
}
CUresult cuDeviceGet(CUdevice *d, int ordinal) {
    if (ordinal != 0) return INVALID_VALUE;
    *d = 0;
    return OK;
}
CUresult cuDeviceGetAttribute(int *v, int attr, CUdevice dev) {
    if (dev != 0) return INVALID_VALUE;
    switch (attr) {
    case 75: *v = cc() / 10; return OK;                          // compute capability major
    case 76: *v = cc() % 10; return OK;                          // minor
    case 16: *v = 4; return OK;                                  // multiprocessors
    case 97: *v = cc() == 90 ? 232448 : 101376; return OK;       // max opt-in shared memory per block
    default: return INVALID_VALUE;
    }
}
CUresult cuDeviceGetName(char *name, int len, CUdevice dev) {
    if (dev != 0 || len <= 0) return INVALID_VALUE;
    snprintf(name, (size_t)len, "unitfp8 SIMT emulator (sm_%d%s)", cc(), cc() == 90 ? "a" : "");
    return OK;
}
CUresult cuDevicePrimaryCtxRetain(void **ctx, CUdevice dev) {
    if (dev != 0) return INVALID_VALUE;
    *ctx = &context_token;
    return OK;
}
CUresult cuCtxGetCurrent(void **ctx) {
    *ctx = current_ctx;
    return OK;
}
CUresult cuCtxSetCurrent(void *ctx) {
    if (ctx && ctx != &context_token) return INVALID_VALUE;
    current_ctx = ctx;
    return OK;
}
CUresult cuCtxGetDevice(CUdevice *d) {
    *d = 0;
    return OK;
}
CUresult cuStreamGetCtx(void *, void **ctx) {
    *ctx = &context_token;
    return OK;
}
CUresult cuCtxSynchronize() { return OK; }
CUresult cuStreamSynchronize(void *) { return OK; }

CUresult cuModuleLoadData(void **module, const void *image) {
    u32 magic;
    memcpy(&magic, image, 4);
    if (magic != 0xBA55ED50u) return INVALID_IMAGE;  // a fatbin starts with this
    *module = &module_token;
    return OK;
}
CUresult cuModuleGetFunction(void **f, void *module, const char *name) {
    if (module != &module_token) return INVALID_HANDLE;
    std::lock_guard<std::mutex> g(launch_lock);
    auto it = functions.find(name);
    if (it == functions.end()) {
        void *sym = dlsym(self_handle(), name);
        if (!sym || !starts(name, "unitfp8_")) return NOT_FOUND;
        it = functions.emplace(name, new Function{name, sym}).first;
    }
    *f = it->second;
    return OK;
}
CUresult cuFuncSetAttribute(void *f, int attr, int value) {
    if (attr != 8) return INVALID_VALUE;  // only MAX_DYNAMIC_SHARED_SIZE_BYTES
    if (value < 0 || value > (cc() == 90 ? 232448 : 101376)) return INVALID_VALUE;
    static_cast<Function *>(f)->max_dynamic_smem = value;
    return OK;
}

CUresult cuLaunchKernel(void *fp, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                        unsigned smem, void *, void **params, void **extra) {
    Function *f = static_cast<Function *>(fp);
    if (extra || !params) return INVALID_VALUE;
    if (gx == 0 || gy == 0 || gz == 0 || gx > 0x7FFFFFFFu || gy > 65535 || gz > 65535) return INVALID_VALUE;
    if (bx == 0 || by == 0 || bz == 0 || (u64)bx * by * bz > 1024 || bz > 64) return INVALID_VALUE;
    if ((int)smem > f->max_dynamic_smem) return INVALID_VALUE;
    std::lock_guard<std::mutex> g(launch_lock);
    const char *seed_env = getenv("UNITFP8_EMU_SEED");
    const uint64_t seed = (seed_env ? strtoull(seed_env, nullptr, 0) : 1) * 0x9E3779B97F4A7C15ull + ++launches;
    const std::string &n = f->name;
    std::function<void()> body;
    if (starts(n, "unitfp8_cast_transpose_")) {
        auto k = (void (*)(CastTransposeArgs))f->sym;
        const CastTransposeArgs a = *(const CastTransposeArgs *)params[0];
        body = [k, a] { k(a); };
    } else if (starts(n, "unitfp8_cast_")) {
        auto k = (void (*)(CastArgs))f->sym;
        const CastArgs a = *(const CastArgs *)params[0];
        body = [k, a] { k(a); };
    } else if (starts(n, "unitfp8_mix")) {
        auto k = (void (*)(MixArgs))f->sym;
        const MixArgs a = *(const MixArgs *)params[0];
        body = [k, a] { k(a); };
    } else if (starts(n, "unitfp8_gemm_sm90_")) {
        auto k = (void (*)(TmaMap, TmaMap, GemmArgs))f->sym;
        const TmaMap ma = *(const TmaMap *)params[0], mb = *(const TmaMap *)params[1];
        const GemmArgs a = *(const GemmArgs *)params[2];
        body = [k, ma, mb, a] { k(ma, mb, a); };
    } else if (starts(n, "unitfp8_gemm_")) {
        auto k = (void (*)(GemmArgs))f->sym;
        const GemmArgs a = *(const GemmArgs *)params[0];
        body = [k, a] { k(a); };
    } else {
        return NOT_FOUND;
    }
    emu::launch(emu_dim3{gx, gy, gz}, emu_dim3{bx, by, bz}, smem, seed, std::move(body));
    return OK;
}

CUresult cuMemsetD32Async(CUdeviceptr p, unsigned v, size_t n, void *) {
    if (p % 4) return INVALID_VALUE;
    for (size_t i = 0; i < n; i++) ((u32 *)p)[i] = v;
    return OK;
}
CUresult cuMemAlloc_v2(CUdeviceptr *p, size_t bytes) {
    void *m = aligned_alloc(256, (bytes + 255) / 256 * 256 + 256);
    if (!m) return 2;  // CUDA_ERROR_OUT_OF_MEMORY
    *p = (CUdeviceptr)m;
    return OK;
}
CUresult cuMemFree_v2(CUdeviceptr p) {
    free((void *)p);
    return OK;
}
CUresult cuMemcpyHtoD_v2(CUdeviceptr d, const void *s, size_t n) {
    memcpy((void *)d, s, n);
    return OK;
}
CUresult cuMemcpyDtoH_v2(void *d, CUdeviceptr s, size_t n) {
    memcpy(d, (const void *)s, n);
    return OK;
}

// Checks the arguments as the driver documents them (the subset unitfp8 uses: 2-D UINT8 maps)
// and stores what the emulated TMA needs.
CUresult cuTensorMapEncodeTiled(void *map, int dtype, unsigned rank, void *addr, const u64 *dims, const u64 *strides,
                                const unsigned *box, const unsigned *elem_strides, int interleave, int swizzle,
                                int l2, int oob) {
    (void)l2;
    if (dtype != 0 || rank != 2 || interleave != 0 || oob != 0) return INVALID_VALUE;
    if ((uintptr_t)map % 64 || (uintptr_t)addr % 16) return INVALID_VALUE;
    if (dims[0] == 0 || dims[1] == 0 || dims[0] > (1ull << 32) || dims[1] > (1ull << 32)) return INVALID_VALUE;
    if (strides[0] % 16 || strides[0] >= (1ull << 40) || strides[0] < dims[0]) return INVALID_VALUE;
    if (box[0] == 0 || box[1] == 0 || box[0] > 256 || box[1] > 256) return INVALID_VALUE;
    if (elem_strides[0] != 1 || elem_strides[1] != 1) return INVALID_VALUE;
    if (swizzle != 3 || box[0] > 128) return INVALID_VALUE;  // 128-byte swizzle: inner box <= 128 bytes
    EmuTmaMap m{EMU_TMA_MAGIC, (u64)addr, dims[0], dims[1], strides[0], box[0], box[1], 1};
    memset(map, 0, 128);
    memcpy(map, &m, sizeof m);
    return OK;
}

// --- Test hooks (the emulator only): the kernels' element functions over a host array ---------

// dst[i] = the bits cast_body stores for src[i] (f32 bits) at element index index0 + i.
void unitfp8_emu_encode_f32(const u32 *src, void *dst, u64 n, int dst_type, int rounding, u64 seed, u32 k1,
                            u32 k2, u64 index0, float scale) {
    const SrKey key{seed, k1, k2};
    auto run = [&](auto d) {
        constexpr int D = decltype(d)::value;
        for (u64 i = 0; i < n; i++)
            store_bits<D>(dst, i, encode_bits<D>(x86_mul(__uint_as_float(src[i]), scale), rounding, key, index0 + i));
    };
    switch (dst_type) {
    case T_BF16: run(std::integral_constant<int, T_BF16>()); break;
    case T_F16: run(std::integral_constant<int, T_F16>()); break;
    case T_E4M3: run(std::integral_constant<int, T_E4M3>()); break;
    case T_E5M2: run(std::integral_constant<int, T_E5M2>()); break;
    default: emu::fail("unitfp8_emu_encode_f32: destination type");
    }
}

// The stochastic-rounding bits the kernels use for element `index` (k1, k2: the host's key).
u32 unitfp8_emu_sr_bits(u64 seed, u32 k1, u32 k2, u64 index) { return sr_bits(SrKey{seed, k1, k2}, index); }

CUresult cuGetErrorString(CUresult e, const char **s) {
    switch (e) {
    case OK: *s = "no error"; return OK;
    case INVALID_VALUE: *s = "invalid argument"; return OK;
    case NO_DEVICE: *s = "no CUDA-capable device is detected"; return OK;
    case INVALID_IMAGE: *s = "device kernel image is invalid"; return OK;
    case INVALID_HANDLE: *s = "invalid resource handle"; return OK;
    case NOT_FOUND: *s = "named symbol not found"; return OK;
    default: *s = "unknown error"; return OK;
    }
}
CUresult cuGetErrorName(CUresult e, const char **s) {
    *s = e == OK ? "CUDA_SUCCESS" : "CUDA_ERROR (emulator)";
    return OK;
}

}  // extern "C"
