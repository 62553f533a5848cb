// Device-side helpers shared by the CUDA kernel files: launch geometry and deterministic
// block reductions (a fixed tree, so that a reduction's bits depend only on the block size).
#pragma once

#include "launch.hpp"

#include <cstdint>

namespace ne::cuda {

constexpr int kWarpSize = 32;

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Blocks for a grid-stride loop over `count` items: enough to fill the device a few times over.
inline unsigned grid_for(const Queue& queue, int64_t count, int threads) {
    const int64_t wanted = ceil_div(count, threads);
    const int64_t cap = int64_t{queue.sm_count} * 8;
    return static_cast<unsigned>(wanted < 1 ? 1 : (wanted < cap ? wanted : cap));
}

// Blocks for a row-per-block kernel: one per row up to the grid's limit, then the kernel's
// grid-stride loop takes the rest.
inline unsigned row_blocks(int64_t rows) {
    constexpr int64_t kMaxBlocks = 0x7fffffff;
    return static_cast<unsigned>(rows < kMaxBlocks ? rows : kMaxBlocks);
}

// Entry e of keys sorted by SortedEntries: the end of its key's run of entries when e starts the
// run of a key >= 0, else -1 (the block of the run's first entry handles the whole run).
__device__ inline int64_t key_run_end(const int32_t* keys, int64_t e, int64_t count) {
    const int32_t key = keys[e];
    if (key < 0 || (e > 0 && keys[e - 1] == key)) return -1;
    int64_t end = e + 1;
    while (end < count && keys[end] == key) ++end;
    return end;
}

struct SumOp {
    template <class T>
    __device__ T operator()(T a, T b) const { return a + b; }
};

struct MaxOp {
    __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

template <class T, class Op>
__device__ T warp_reduce(T value, Op op) {
    for (int offset = kWarpSize / 2; offset > 0; offset /= 2) value = op(value, __shfl_xor_sync(0xffffffffu, value, offset));
    return value;
}

// Reduces one value per thread of the block; every thread gets the result, combined in the
// same order on every thread. `shared` holds at least blockDim.x / 32 values; blockDim.x is a
// multiple of 32.
template <class T, class Op>
__device__ T block_reduce(T value, Op op, T* shared) {
    const int lane = threadIdx.x % kWarpSize;
    const int warp = threadIdx.x / kWarpSize;
    const int warps = blockDim.x / kWarpSize;
    value = warp_reduce(value, op);
    __syncthreads();  // shared may still be read by the previous reduction
    if (lane == 0) shared[warp] = value;
    __syncthreads();
    T total = shared[0];
    for (int w = 1; w < warps; ++w) total = op(total, shared[w]);
    return total;
}

}  // namespace ne::cuda
