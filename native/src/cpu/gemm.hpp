// The f32 GEMM that other CPU kernels call (cross-entropy, sampled softmax) and that ne_gemm
// exposes. Row-major: every matrix has a contiguous last dimension and a leading dimension (row
// stride) in elements.
#pragma once

#include "nativeengine.h"

#include <cstdint>

namespace ne::cpu {

// C[M,N] = alpha * op(A) * op(B) + beta * C, with op(A) [M,K] stored as A [M,K] (row stride lda)
// or, when transpose_a, as A [K,M]; op(B) [K,N] stored as B [K,N] (ldb) or, when transpose_b, as
// B [N,K]. beta == 0 overwrites C without reading it. Runs on the context's threads at its SIMD
// level (inline on the calling thread when called from a pool task); the bits of C do not depend
// on the thread count.
void sgemm(ne_context& context, bool transpose_a, bool transpose_b, int64_t M, int64_t N, int64_t K, float alpha,
           const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

}  // namespace ne::cpu
