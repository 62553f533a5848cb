// Element-wise ops on CUDA (add with broadcast, axpby, GELU forward/backward, dropout): one
// kernel per op over rows x cols elements, then the launcher. The arithmetic is that of the CPU
// reference kernels (cpu/elementwise.cpp): add, axpby (one fma) and dropout give the same bits
// as the CPU; GELU uses the same formula with the device's expf (within a few ulp of the CPU).
#include "common.cuh"

namespace ne::cuda {
namespace {

// Calls body(index, row, col) for every element of a rows x cols launch. Operands stored back to
// back arrive as one row (the CPU's merge of contiguous rows): those skip the 64-bit division,
// which costs more than the element's memory traffic.
template <class Body>
__device__ void for_each_element(int64_t rows, int64_t cols, Body body) {
    const int64_t count = rows * cols;
    const int64_t step = int64_t{gridDim.x} * blockDim.x;
    if (rows == 1) {
        for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += step) body(i, int64_t{0}, i);
        return;
    }
    for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += step) body(i, i / cols, i % cols);
}

__global__ void add_kernel(ElementwiseLaunch l) {
    for_each_element(l.rows, l.cols, [&](int64_t, int64_t r, int64_t c) {
        l.out.data[r * l.out.row_stride + c] = l.a.data[r * l.a.row_stride + c] + l.b.data[(r % l.b_rows) * l.b.row_stride + c];
    });
}

__global__ void axpby_kernel(ElementwiseLaunch l) {
    for_each_element(l.rows, l.cols, [&](int64_t, int64_t r, int64_t c) {
        float* y = l.out.data + r * l.out.row_stride + c;
        const float x = l.a.data[r * l.a.row_stride + c];
        *y = l.beta == 0.0f ? l.alpha * x : fmaf(l.alpha, x, l.beta * *y);
    });
}

// GELU through sigmoid(2u) with t = exp(-2|u|), as the CPU reference (no overflow, no cancellation).
struct GeluTerms {
    float x2;
    float s;
    float ds;
};

__device__ GeluTerms gelu_terms(float x) {
    const float x2 = x * x;
    const float u = cpu::kGeluScale * x * (1.0f + cpu::kGeluCubic * x2);
    const float t = expf(-2.0f * fabsf(u));
    const float q = 1.0f / (1.0f + t);
    return {x2, x >= 0.0f ? q : t * q, t * q * q};
}

__global__ void gelu_forward_kernel(ElementwiseLaunch l) {
    for_each_element(l.rows, l.cols, [&](int64_t, int64_t r, int64_t c) {
        const float x = l.a.data[r * l.a.row_stride + c];
        l.out.data[r * l.out.row_stride + c] = x * gelu_terms(x).s;
    });
}

__global__ void gelu_backward_kernel(ElementwiseLaunch l) {
    for_each_element(l.rows, l.cols, [&](int64_t, int64_t r, int64_t c) {
        const float x = l.a.data[r * l.a.row_stride + c];
        const float dy = l.b.data[r * l.b.row_stride + c];
        const GeluTerms g = gelu_terms(x);
        const float du = 2.0f * cpu::kGeluScale * (1.0f + 3.0f * cpu::kGeluCubic * g.x2);
        l.out.data[r * l.out.row_stride + c] = dy * (g.s + x * g.ds * du);
    });
}

// The hash of cpu/elementwise.cpp: the upper half of SplitMix64's output number index + 1.
__device__ uint32_t dropout_hash(uint64_t seed, uint64_t index) {
    uint64_t z = seed + (index + 1) * cpu::kSplitMixGamma;
    z = (z ^ (z >> 30)) * cpu::kSplitMixMultiplier1;
    z = (z ^ (z >> 27)) * cpu::kSplitMixMultiplier2;
    z ^= z >> 31;
    return static_cast<uint32_t>(z >> 32);
}

__global__ void dropout_kernel(ElementwiseLaunch l) {
    for_each_element(l.rows, l.cols, [&](int64_t i, int64_t r, int64_t c) {
        const bool keep = dropout_hash(l.mask.seed, static_cast<uint64_t>(i)) >= l.mask.threshold;
        float* out = l.out.data + r * l.out.row_stride + c;
        *out = keep ? l.a.data[r * l.a.row_stride + c] * l.mask.scale : 0.0f;
    });
}

constexpr int kThreads = 256;

}  // namespace

void launch_elementwise(const Queue& queue, const ElementwiseLaunch& launch) {
    const unsigned blocks = grid_for(queue, launch.rows * launch.cols, kThreads);
    switch (launch.op) {
        case ElementwiseOp::add: add_kernel<<<blocks, kThreads, 0, queue.stream>>>(launch); break;
        case ElementwiseOp::axpby: axpby_kernel<<<blocks, kThreads, 0, queue.stream>>>(launch); break;
        case ElementwiseOp::gelu_forward: gelu_forward_kernel<<<blocks, kThreads, 0, queue.stream>>>(launch); break;
        case ElementwiseOp::gelu_backward: gelu_backward_kernel<<<blocks, kThreads, 0, queue.stream>>>(launch); break;
        case ElementwiseOp::dropout: dropout_kernel<<<blocks, kThreads, 0, queue.stream>>>(launch); break;
    }
    check_launch("elementwise kernel");
}

}  // namespace ne::cuda
