// The SIMT emulator's device-side half: what a kernel translation unit (native/src/cuda/*.cu,
// rewritten by translate.py) sees in place of nvcc's built-ins when it is compiled by the host
// compiler. Every CUDA thread of a block runs as a fiber (simt.cpp); a barrier, a shuffle or a
// warp-wide matrix operation suspends the calling thread until every thread that must take part
// has arrived, exactly as the hardware requires, and threads that never arrive are reported as a
// deadlock instead of hanging. Blocks run one after another, so `__shared__` variables become
// function statics and the dynamic shared memory is one buffer per launch.
//
// What it proves: indexing, bounds, barrier placement (a thread reading another's shared-memory
// write before the barrier that orders it sees the stale value under one of the two thread
// orders the scheduler alternates), warp-collective convergence, host-side launch geometry, and
// the use of the CUDA runtime, cuBLAS and CUB APIs against their documented semantics. What it
// cannot prove: timing, the memory model beyond sequential consistency, tensor-core rounding,
// and anything about performance.
#pragma once

// Kernel sources that use PTX (native/src/cuda/ptx.cuh) take the emulator's version instead.
#define NE_SIMT_EMULATOR 1

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>
#include <vector_functions.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace simt {

// The thread that is running: its index, and its lane and warp within the block.
struct ThreadState {
    uint3 thread_index;
    int linear;
    int lane;
    int warp;
};

struct BlockState {
    uint3 block_index;
    dim3 block_dim;
    dim3 grid_dim;
    unsigned char* dynamic_shared;
};

const ThreadState& current_thread();
const BlockState& current_block();

// Suspends the calling thread until every thread of its block has arrived (one that has exited
// never will: the launch fails as a deadlock, CUDA leaving such a barrier undefined).
void sync_block();
// Suspends the calling lane until every lane of `mask` has arrived at a warp barrier (a lane of
// the mask that has exited fails the launch).
void sync_warp(unsigned mask);
// The 8-byte slots through which the lanes of the calling warp exchange values.
uint64_t* warp_exchange_slots();
// Pointer slots for warp-wide matrix operations (three per lane).
const void** warp_pointer_slots();

// Reports a misuse found inside a kernel (for example a shuffle from a lane outside its mask):
// the launch fails with cudaErrorLaunchFailure and the message goes to standard error.
[[noreturn]] void kernel_fault(const char* message);

// Runs body() as every thread of every block of the grid, one block at a time. Returns the
// launch's error (an invalid configuration, a deadlock, a fault).
cudaError_t run_grid(const void* kernel, dim3 grid, dim3 block, size_t dynamic_shared_bytes, void (*body)(void*),
                     void* closure);

template <class... Parameters>
struct Launch {
    void (*kernel)(Parameters...);
    dim3 grid, block;
    size_t shared;

    template <class... Arguments>
    void operator()(Arguments&&... arguments) const {
        // Each thread gets its own copy of the parameters, as kernel parameters are per thread.
        auto call = [&] { kernel(static_cast<Parameters>(arguments)...); };
        using Call = decltype(call);
        run_grid(reinterpret_cast<const void*>(kernel), grid, block, shared,
                 [](void* closure) { (*static_cast<Call*>(closure))(); }, &call);
    }
};

template <class... Parameters>
Launch<Parameters...> launch(void (*kernel)(Parameters...), dim3 grid, dim3 block, size_t shared = 0,
                             cudaStream_t = nullptr) {
    return {kernel, grid, block, shared};
}

// A launch of a kernel template whose arguments the call deduces: `body` calls it with copies
// of the arguments (its own per thread).
struct DeducedLaunch {
    dim3 grid, block;
    size_t shared;

    template <class Body>
    auto operator()(Body body) const {
        return [body, launch = *this](auto&&... arguments) {
            auto call = [&] { body(arguments...); };
            using Call = decltype(call);
            run_grid(nullptr, launch.grid, launch.block, launch.shared,
                     [](void* closure) { (*static_cast<Call*>(closure))(); }, &call);
        };
    }
};

inline DeducedLaunch launch_deduced(dim3 grid, dim3 block, size_t shared = 0, cudaStream_t = nullptr) {
    return {grid, block, shared};
}

template <class T>
T exchange(unsigned mask, T value, int source_lane) {
    static_assert(sizeof(T) <= sizeof(uint64_t) && std::is_trivially_copyable_v<T>, "shuffles move up to 8 bytes");
    const int lane = current_thread().lane;
    if ((mask >> lane & 1u) == 0) kernel_fault("a lane shuffled with a mask that leaves it out");
    uint64_t* slots = warp_exchange_slots();
    uint64_t bits = 0;
    std::memcpy(&bits, &value, sizeof(T));
    slots[lane] = bits;
    sync_warp(mask);
    T result = value;
    if (mask >> source_lane & 1u) std::memcpy(&result, &slots[source_lane], sizeof(T));
    sync_warp(mask);  // the slots are read before any lane writes its next value
    return result;
}

// The launch's dynamic shared memory (extern __shared__ arrays, rewritten by translate.py).
unsigned char* dynamic_shared();

inline float widen(__half x) { return __half2float(x); }
inline float widen(__nv_bfloat16 x) { return __bfloat162float(x); }

// PTX mma.sync.m16n8k16 with 16-bit inputs E and f32 accumulation, c += a b, in the PTX ISA's
// fragment layouts (see native/src/cuda/ptx.cuh): the lanes' registers are gathered through
// the warp between two warp barriers; products are exact in f32 and summed in k order.
template <class E>
void mma_m16n8k16(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
    const int lane = current_thread().lane;
    const void** slots = warp_pointer_slots();
    slots[lane * 3] = a;
    slots[lane * 3 + 1] = b;
    sync_warp(0xffffffffu);
    // Element k of a packed pair: the low half for even k.
    const auto half = [](uint32_t pair, int k) {
        const auto bits = static_cast<uint16_t>(k % 2 == 0 ? pair : pair >> 16);
        E value;
        std::memcpy(static_cast<void*>(&value), &bits, sizeof bits);
        return widen(value);
    };
    const auto a_at = [&](int row, int k) {
        const auto* registers = static_cast<const uint32_t*>(slots[(4 * (row % 8) + (k % 8) / 2) * 3]);
        return half(registers[(row >= 8 ? 1 : 0) + (k >= 8 ? 2 : 0)], k);
    };
    const auto b_at = [&](int k, int column) {
        const auto* registers = static_cast<const uint32_t*>(slots[(4 * column + (k % 8) / 2) * 3 + 1]);
        return half(registers[k >= 8 ? 1 : 0], k);
    };
    const int g = lane / 4, t = lane % 4;
    float result[4];
    for (int i = 0; i < 4; ++i) {
        const int row = g + (i >= 2 ? 8 : 0), column = 2 * t + i % 2;
        float sum = c[i];
        for (int k = 0; k < 16; ++k) sum += a_at(row, k) * b_at(k, column);
        result[i] = sum;
    }
    sync_warp(0xffffffffu);  // every lane has read the operands before any lane changes them
    for (int i = 0; i < 4; ++i) c[i] = result[i];
}

// PTX ldmatrix.sync.aligned.m8n8.x4 (.trans when `transpose`), in the layout of
// native/src/cuda/ptx.cuh: each lane names one row; every lane of the warp must take part. A row
// must be 16-byte aligned and lie in the launch's dynamic shared memory.
void load_matrices(uint32_t (&r)[4], const void* row, bool transpose);

// PTX cp.async: the source is read when the copy starts and the destination (which must lie in
// the launch's dynamic shared memory) reads as NaN bytes until a wait completes the copy's commit
// group, so that a read that the wait and barrier do not order after the copy sees garbage.
void copy_async(void* shared, const void* global, size_t bytes);
void commit_async();
// Completes every commit group of the calling thread but the newest `pending` ones.
void wait_async(int pending);

cudaError_t set_max_dynamic_shared(const void* kernel, int bytes);
cudaError_t occupancy(int* blocks, const void* kernel, int threads, size_t dynamic_shared_bytes);
// The error of the last failed launch, cleared by take (cudaGetLastError) and not by peek.
cudaError_t take_launch_error();
cudaError_t peek_launch_error();

}  // namespace simt

// ---- Built-in variables and function qualifiers -------------------------------------------
#undef __global__
#undef __device__
#undef __host__
#undef __shared__
#undef __constant__
#undef __forceinline__
#undef __noinline__
#undef __launch_bounds__
#undef __align__
#define __global__
#define __device__
#define __host__
#define __shared__ static
#define __constant__ static
#define __forceinline__ inline
#define __noinline__
#define __launch_bounds__(...)
#define __align__(n) alignas(n)

#define threadIdx (::simt::current_thread().thread_index)
#define blockIdx (::simt::current_block().block_index)
#define blockDim (::simt::current_block().block_dim)
#define gridDim (::simt::current_block().grid_dim)
constexpr int warpSize = 32;

inline void __syncthreads() { ::simt::sync_block(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { ::simt::sync_warp(mask); }

template <class T>
T __shfl_sync(unsigned mask, T value, int source, int width = 32) {
    const int lane = ::simt::current_thread().lane;
    return ::simt::exchange(mask, value, (lane / width) * width + source % width);
}
template <class T>
T __shfl_xor_sync(unsigned mask, T value, int lane_mask, int width = 32) {
    const int lane = ::simt::current_thread().lane;
    const int source = lane ^ lane_mask;
    return ::simt::exchange(mask, value, source / width == lane / width ? source : lane);
}
template <class T>
T __shfl_down_sync(unsigned mask, T value, unsigned delta, int width = 32) {
    const int lane = ::simt::current_thread().lane;
    const int source = lane + static_cast<int>(delta);
    return ::simt::exchange(mask, value, source / width == lane / width ? source : lane);
}
template <class T>
T __shfl_up_sync(unsigned mask, T value, unsigned delta, int width = 32) {
    const int lane = ::simt::current_thread().lane;
    const int source = lane - static_cast<int>(delta);
    return ::simt::exchange(mask, value, source >= 0 && source / width == lane / width ? source : lane);
}

// ---- Atomics: blocks and threads never run at the same time, so plain read-modify-writes --
namespace simt {
template <class T, class Update>
T atomic_update(T* address, Update update) {
    const T old = *address;
    *address = update(old);
    return old;
}
}  // namespace simt

template <class T>
T atomicAdd(T* address, T value) {
    return ::simt::atomic_update(address, [value](T old) { return old + value; });
}
template <class T>
T atomicMin(T* address, T value) {
    return ::simt::atomic_update(address, [value](T old) { return value < old ? value : old; });
}
template <class T>
T atomicMax(T* address, T value) {
    return ::simt::atomic_update(address, [value](T old) { return value > old ? value : old; });
}
template <class T>
T atomicOr(T* address, T value) {
    return ::simt::atomic_update(address, [value](T old) { return old | value; });
}
template <class T>
T atomicAnd(T* address, T value) {
    return ::simt::atomic_update(address, [value](T old) { return old & value; });
}
template <class T>
T atomicExch(T* address, T value) {
    return ::simt::atomic_update(address, [value](T) { return value; });
}
template <class T>
T atomicCAS(T* address, T compare, T value) {
    return ::simt::atomic_update(address, [compare, value](T old) { return old == compare ? value : old; });
}

// ---- Math and bit functions that nvcc provides for device code ----------------------------
inline int min(int a, int b) { return a < b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long min(long a, long b) { return a < b ? a : b; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline unsigned long min(unsigned long a, unsigned long b) { return a < b ? a : b; }
inline float min(float a, float b) { return std::fmin(a, b); }
inline double min(double a, double b) { return std::fmin(a, b); }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline long max(long a, long b) { return a > b ? a : b; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
inline unsigned long max(unsigned long a, unsigned long b) { return a > b ? a : b; }
inline float max(float a, float b) { return std::fmax(a, b); }
inline double max(double a, double b) { return std::fmax(a, b); }

inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }

inline unsigned __float_as_uint(float x) {
    unsigned bits;
    std::memcpy(&bits, &x, sizeof bits);
    return bits;
}
inline int __float_as_int(float x) { return static_cast<int>(__float_as_uint(x)); }
inline float __uint_as_float(unsigned bits) {
    float x;
    std::memcpy(&x, &bits, sizeof x);
    return x;
}
inline float __int_as_float(int bits) { return __uint_as_float(static_cast<unsigned>(bits)); }
inline long long __double_as_longlong(double x) {
    long long bits;
    std::memcpy(&bits, &x, sizeof bits);
    return bits;
}
inline double __longlong_as_double(long long bits) {
    double x;
    std::memcpy(&x, &bits, sizeof x);
    return x;
}
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(static_cast<unsigned>(x)); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll(static_cast<unsigned long long>(x)); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
template <class T>
T __ldg(const T* address) {
    return *address;
}

using std::isfinite;
using std::isinf;
using std::isnan;

// ---- Runtime templates that nvcc's cuda_runtime.h adds over the C API ----------------------
template <class T>
cudaError_t cudaMalloc(T** pointer, size_t bytes) {
    return cudaMalloc(reinterpret_cast<void**>(pointer), bytes);
}
template <class T>
cudaError_t cudaMallocAsync(T** pointer, size_t bytes, cudaStream_t stream) {
    return cudaMallocAsync(reinterpret_cast<void**>(pointer), bytes, stream);
}
template <class T>
cudaError_t cudaMallocHost(T** pointer, size_t bytes) {
    return cudaMallocHost(reinterpret_cast<void**>(pointer), bytes);
}
template <class Kernel>
cudaError_t cudaFuncSetAttribute(Kernel* kernel, cudaFuncAttribute attribute, int value) {
    if (attribute != cudaFuncAttributeMaxDynamicSharedMemorySize) return cudaSuccess;
    return ::simt::set_max_dynamic_shared(reinterpret_cast<const void*>(kernel), value);
}
template <class Kernel>
cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int* blocks, Kernel kernel, int threads, size_t dynamic_shared) {
    return ::simt::occupancy(blocks, reinterpret_cast<const void*>(kernel), threads, dynamic_shared);
}
