// The f32 GEMM that other CPU kernels call (cross-entropy, sampled softmax) and that ne_gemm
// exposes. Row-major: every matrix has a contiguous last dimension and a leading dimension (row
// stride) in elements.
//
// The per-ISA translation units (gemm_avx2.cpp, gemm_avx512.cpp) include this header while being
// compiled with -mavx2 or -mavx512*. It must therefore hold nothing the compiler could emit as
// code: no inline functions, no templates, no default member initializers.
#pragma once

#include "nativeengine.h"

#include <cstdint>

namespace ne::cpu {

// C[M,N] = alpha * op(A) * op(B) + beta * C, with op(A) [M,K] stored as A [M,K] (row stride lda)
// or, when transpose_a, as A [K,M]; op(B) [K,N] stored as B [K,N] (ldb) or, when transpose_b, as
// B [N,K]. beta == 0 overwrites C without reading it. Runs on the context's threads at its SIMD
// level (inline on the calling thread when called from a pool task); the bits of C do not depend
// on the thread count. Its packing buffers (ne::Scratch, at most about 3.3 MB per thread) are
// allocated for the threads it plans to use, also when called from a pool task, where those
// shares then run one after the other.
void sgemm(ne_context& context, bool transpose_a, bool transpose_b, int64_t M, int64_t N, int64_t K, float alpha,
           const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

// batch_count products C_i = alpha * op(A_i) * op(B_i) + beta * C_i, each as in sgemm. Matrix i
// of X starts at x + i * x_batch_stride; a batch stride of 0 shares one A or B with every
// product. The C matrices must not overlap each other or A and B.
struct SgemmBatch {
    bool transpose_a;
    bool transpose_b;
    int64_t batch_count;
    int64_t M;
    int64_t N;
    int64_t K;
    float alpha;
    float beta;
    const float* a;
    int64_t lda;
    int64_t a_batch_stride;
    const float* b;
    int64_t ldb;
    int64_t b_batch_stride;
    float* c;
    int64_t ldc;
    int64_t c_batch_stride;
    bool tf32;  // a device may round f32 operands to TF32 (ne_gemm_params.allow_tf32)
};

void sgemm_batched(ne_context& context, const SgemmBatch& batch);

// ------------------------------------------------------------------------------------------
// What each SIMD level provides to gemm.cpp, which splits the work across the context's threads
// and calls these on each thread's share. Every function here runs on one thread.
// ------------------------------------------------------------------------------------------

// Rows [m_begin, m_end) x columns [n_begin, n_end) of product `batch`: one thread's share of C.
struct SgemmBlock {
    int64_t batch;
    int64_t m_begin;
    int64_t m_end;
    int64_t n_begin;
    int64_t n_end;
};

// A product with a single row or column of C as a matrix-vector product, batched like
// SgemmBatch: y[i * y_stride] = alpha * sum_k W(i,k) * x[k * x_stride] + beta * y[i * y_stride]
// for i < length, where W(i,k) is w[i * ldw + k] when w_rows_are_k, else w[k * ldw + i].
struct SgemvBatch {
    int64_t batch_count;
    int64_t length;
    int64_t K;
    float alpha;
    float beta;
    const float* w;
    int64_t ldw;
    int64_t w_batch_stride;
    bool w_rows_are_k;
    const float* x;
    int64_t x_stride;
    int64_t x_batch_stride;
    float* y;
    int64_t y_stride;
    int64_t y_batch_stride;
};

struct SgemmKernels {
    // Register tile of the microkernel: blocks of C are split in multiples of it.
    int64_t tile_rows;
    int64_t tile_cols;
    // Scratch floats one thread needs for blocks of at most rows x cols; 64-byte aligned.
    int64_t (*gemm_workspace_floats)(int64_t rows, int64_t cols, int64_t K);
    // Computes `block` of C over all of K.
    void (*gemm)(const SgemmBatch& batch, const SgemmBlock& block, float* workspace);
    // Elements of y one register block of the matrix-vector kernels covers: shares of y are
    // split in multiples of it.
    int64_t gemv_unit;
    // Scratch floats one thread needs for the matrix-vector kernels; 64-byte aligned.
    int64_t (*gemv_workspace_floats)(int64_t K);
    // Computes y[begin, end) of product `batch`.
    void (*gemv)(const SgemvBatch& batch, int64_t index, int64_t begin, int64_t end, float* workspace);
};

namespace avx2 {
// AVX2 + FMA: 6x16 register tile.
extern const SgemmKernels sgemm_kernels;
}  // namespace avx2

namespace avx512 {
// AVX-512 F: 12x32 register tile.
extern const SgemmKernels sgemm_kernels;
}  // namespace avx512

}  // namespace ne::cpu
