// Softmax cross-entropy over an output projection on CUDA, in chunks of classes (the CPU's
// algorithm, cpu/cross_entropy.cpp): the [N, V] logits never exist, only one [N, chunk] chunk of
// them at a time in scratch memory. Also the GEMM and column-sum helpers both losses share.
//
// Per chunk of classes [c0, c0 + width):
//   forward:  Z = hidden W_c^T (cuBLAS), then one block per row adds the bias, reduces the
//             chunk's max, rescales the running sum to the new max (online logsumexp) and picks
//             up the target's logit; a last kernel writes loss and lse.
//   backward: Z as above, dZ = dloss (exp(Z + bias - lse) - onehot) in place (0 on ignored
//             rows), then dhidden (+)= dZ W_c, dW_c (+)= dZ^T hidden (cuBLAS) and dbias_c (+)=
//             the column sums of dZ (cuBLAS gemv with ones).
// Determinism: block reductions combine in a fixed tree (common.cuh), cuBLAS's GEMM and gemv
// use no atomics, and the chunks follow one another on the stream: the bits of every output
// depend on the inputs and the chunk size alone.
#include "common.cuh"
#include "core/error.hpp"
#include "softmax_losses.hpp"

#include <algorithm>
#include <climits>

namespace ne::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kRowThreads = 256;

__global__ void fill_kernel(float* data, int64_t count, float value) {
    for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += int64_t{gridDim.x} * blockDim.x) {
        data[i] = value;
    }
}

// Running state of the online logsumexp, per row: max, sum of exp(z - max), target logit.
struct RowState {
    float* max;
    float* sum;
    float* target_logit;
};

__global__ void start_rows_kernel(RowState state, int64_t N) {
    for (int64_t n = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; n < N; n += int64_t{gridDim.x} * blockDim.x) {
        state.max[n] = -INFINITY;
        state.sum[n] = 0.0f;
        state.target_logit[n] = 0.0f;
    }
}

// One chunk's logits z [N, width] (without the bias) into the running state.
__global__ void forward_chunk_kernel(const float* z, int64_t N, int64_t width, int64_t c0, const float* bias,
                                     const int32_t* targets, RowState state) {
    __shared__ float shared[kRowThreads / kWarpSize];
    for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
        const float* zn = z + n * width;
        float local_max = -INFINITY;
        for (int64_t j = threadIdx.x; j < width; j += blockDim.x) {
            const float logit = bias ? zn[j] + bias[c0 + j] : zn[j];
            local_max = fmaxf(local_max, logit);
        }
        const float old_max = state.max[n];
        const float max = fmaxf(old_max, block_reduce(local_max, MaxOp{}, shared));
        float local_sum = 0.0f;
        for (int64_t j = threadIdx.x; j < width; j += blockDim.x) {
            const float logit = bias ? zn[j] + bias[c0 + j] : zn[j];
            local_sum += expf(logit - max);
        }
        const float sum = block_reduce(local_sum, SumOp{}, shared);
        if (threadIdx.x == 0) {
            state.sum[n] = state.sum[n] * expf(old_max - max) + sum;
            state.max[n] = max;
            const int64_t target = targets[n];
            if (target >= c0 && target < c0 + width) {
                state.target_logit[n] = bias ? zn[target - c0] + bias[target] : zn[target - c0];
            }
        }
    }
}

__global__ void finish_rows_kernel(RowState state, int64_t N, const int32_t* targets, float* loss, float* lse_out) {
    for (int64_t n = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; n < N; n += int64_t{gridDim.x} * blockDim.x) {
        const float lse = state.max[n] + logf(state.sum[n]);
        loss[n] = targets[n] < 0 ? 0.0f : lse - state.target_logit[n];
        if (lse_out) lse_out[n] = lse;
    }
}

// z [N, width] becomes dZ = dloss (softmax - onehot(target)); rows with a negative target get 0
// without reading their lse or dloss.
__global__ void backward_chunk_kernel(float* z, int64_t N, int64_t width, int64_t c0, const float* bias,
                                      const int32_t* targets, const float* lse, const float* dloss) {
    const int64_t count = N * width;
    for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += int64_t{gridDim.x} * blockDim.x) {
        const int64_t n = i / width, j = i % width;
        const int64_t target = targets[n];
        if (target < 0) {
            z[i] = 0.0f;
            continue;
        }
        const float logit = bias ? z[i] + bias[c0 + j] : z[i];
        const float scale = dloss[n];
        float dz = expf(logit - lse[n]) * scale;
        if (target == c0 + j) dz -= scale;
        z[i] = dz;
    }
}

void expect_int_range(std::initializer_list<int64_t> values) {
    for (const int64_t value : values) {
        if (value > INT_MAX) {
            fail(NE_STATUS_UNSUPPORTED, "a dimension or leading dimension of ", value,
                 " exceeds cuBLAS's 32-bit range; use smaller chunks or fewer rows");
        }
    }
}

}  // namespace

void sgemm_rows(const Queue& queue, bool tf32, bool transpose_a, bool transpose_b, int64_t M, int64_t N, int64_t K, float alpha,
                const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
    cpu::SgemmBatch product{};
    product.transpose_a = transpose_a;
    product.transpose_b = transpose_b;
    product.batch_count = 1;
    product.M = M;
    product.N = N;
    product.K = K;
    product.alpha = alpha;
    product.beta = beta;
    product.a = a;
    product.lda = lda;
    product.b = b;
    product.ldb = ldb;
    product.c = c;
    product.ldc = ldc;
    product.tf32 = tf32;
    launch_gemm(queue, product, NE_DTYPE_F32, NE_DTYPE_F32);
}

void fill_floats(const Queue& queue, float* data, int64_t count, float value) {
    if (count == 0) return;
    fill_kernel<<<grid_for(queue, count, kThreads), kThreads, 0, queue.stream>>>(data, count, value);
    check_launch("fill_kernel");
}

void column_sums(const Queue& queue, const float* matrix, int64_t rows, int64_t cols, int64_t row_stride, const float* ones,
                 float* sums, bool accumulate) {
    expect_int_range({rows, cols, row_stride});
    // The row-major [rows, cols] matrix is column-major [cols, rows]: sums = matrix^T ones.
    const float one = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    check(cublasSgemv(queue.blas, CUBLAS_OP_N, static_cast<int>(cols), static_cast<int>(rows), &one, matrix,
                      static_cast<int>(row_stride), ones, 1, &beta, sums, 1),
          "cublasSgemv");
}

void launch_cross_entropy_forward(const Queue& queue, const cpu::CrossEntropyForwardArgs& a) {
    const cpu::CrossEntropyArgs& in = a.in;
    const int64_t N = in.N;
    const Scratch logits(queue, N * in.chunk * static_cast<int64_t>(sizeof(float)));
    const Scratch row_state(queue, 3 * N * static_cast<int64_t>(sizeof(float)));
    float* z = logits.as<float>();
    const RowState state{row_state.as<float>(), row_state.as<float>() + N, row_state.as<float>() + 2 * N};
    start_rows_kernel<<<grid_for(queue, N, kThreads), kThreads, 0, queue.stream>>>(state, N);
    check_launch("start_rows_kernel");
    for (int64_t c0 = 0; c0 < in.V; c0 += in.chunk) {
        const int64_t width = std::min(in.chunk, in.V - c0);
        sgemm_rows(queue, in.tf32, false, true, N, width, in.D, 1.0f, in.hidden, in.hidden_stride, in.weight + c0 * in.weight_stride,
                   in.weight_stride, 0.0f, z, width);
        forward_chunk_kernel<<<row_blocks(N), kRowThreads, 0, queue.stream>>>(z, N, width, c0, in.bias, in.targets, state);
        check_launch("forward_chunk_kernel");
    }
    finish_rows_kernel<<<grid_for(queue, N, kThreads), kThreads, 0, queue.stream>>>(state, N, in.targets, a.loss, a.lse);
    check_launch("finish_rows_kernel");
}

void launch_cross_entropy_backward(const Queue& queue, const cpu::CrossEntropyBackwardArgs& a) {
    const cpu::CrossEntropyArgs& in = a.in;
    const int64_t N = in.N, D = in.D;
    const Scratch logits(queue, N * in.chunk * static_cast<int64_t>(sizeof(float)));
    const Scratch ones(queue, a.dbias ? N * static_cast<int64_t>(sizeof(float)) : 0);
    float* z = logits.as<float>();
    if (a.dbias) fill_floats(queue, ones.as<float>(), N, 1.0f);
    for (int64_t c0 = 0; c0 < in.V; c0 += in.chunk) {
        const int64_t width = std::min(in.chunk, in.V - c0);
        const float* weight_chunk = in.weight + c0 * in.weight_stride;
        sgemm_rows(queue, in.tf32, false, true, N, width, D, 1.0f, in.hidden, in.hidden_stride, weight_chunk, in.weight_stride, 0.0f, z,
                   width);
        backward_chunk_kernel<<<grid_for(queue, N * width, kThreads), kThreads, 0, queue.stream>>>(z, N, width, c0, in.bias,
                                                                                                   in.targets, a.lse, a.dloss);
        check_launch("backward_chunk_kernel");
        sgemm_rows(queue, in.tf32, false, false, N, D, width, 1.0f, z, width, weight_chunk, in.weight_stride, c0 == 0 ? 0.0f : 1.0f,
                   a.dhidden, a.dhidden_stride);
        if (a.dweight) {
            sgemm_rows(queue, in.tf32, true, false, width, D, N, 1.0f, z, width, in.hidden, in.hidden_stride, a.accumulate ? 1.0f : 0.0f,
                       a.dweight + c0 * a.dweight_stride, a.dweight_stride);
        }
        if (a.dbias) column_sums(queue, z, N, width, width, ones.as<float>(), a.dbias + c0, a.accumulate);
    }
}

}  // namespace ne::cuda
