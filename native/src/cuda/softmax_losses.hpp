// The CUDA launchers of the softmax losses (cross_entropy.cu, sampled_softmax.cu), on arguments
// validated by the exported functions (cpu/cross_entropy.cpp, cpu/sampled_softmax.cpp), and the
// helpers both files share. Launchers queue their work on the queue's stream and return without
// waiting, unless their comment says they synchronize.
#pragma once

#include "cpu/softmax_losses.hpp"
#include "launch.hpp"

#include <cstdint>

namespace ne::cuda {

// ---- cross_entropy.cu ----

void launch_cross_entropy_forward(const Queue& queue, const cpu::CrossEntropyForwardArgs& args);
void launch_cross_entropy_backward(const Queue& queue, const cpu::CrossEntropyBackwardArgs& args);

// Row-major C [M, N] = alpha op(A) op(B) + beta C, accumulated in f32: one product of
// launch_gemm (gemm.cu), inputs in f32, or rounded to TF32 for tensor cores when tf32 is set.
void sgemm_rows(const Queue& queue, bool tf32, bool transpose_a, bool transpose_b, int64_t M, int64_t N, int64_t K, float alpha,
                const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

// data[0, count) = value.
void fill_floats(const Queue& queue, float* data, int64_t count, float value);

// sums[c] (= or +=, by accumulate) the sum over the rows of matrix [rows, cols] (row_stride
// apart) at column c, as a cuBLAS matrix-vector product with `ones` (rows floats equal to 1):
// deterministic, as cuBLAS's gemv uses no atomics unless CUBLAS_ATOMICS_ALLOWED is set.
void column_sums(const Queue& queue, const float* matrix, int64_t rows, int64_t cols, int64_t row_stride, const float* ones,
                 float* sums, bool accumulate);

// ---- sampled_softmax.cu ----

void launch_sample_log_uniform(const Queue& queue, const cpu::SamplerArgs& args);
void launch_sampled_softmax_forward(const Queue& queue, const cpu::SampledForwardArgs& args);
void launch_sampled_softmax_backward(const Queue& queue, const cpu::SampledBackwardArgs& args);

}  // namespace ne::cuda
