// f32 GEMM on the CPU.
#include "gemm.hpp"

#include "core/objects.hpp"

namespace ne::cpu {
namespace {

// Scalar reference: one dot product per element of C, accumulated in k order.
void sgemm_reference(bool transpose_a, bool transpose_b, int64_t M, int64_t N, int64_t K, float alpha, const float* a,
                     int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
    for (int64_t m = 0; m < M; ++m) {
        for (int64_t n = 0; n < N; ++n) {
            float sum = 0.0f;
            for (int64_t k = 0; k < K; ++k) {
                const float a_mk = transpose_a ? a[k * lda + m] : a[m * lda + k];
                const float b_kn = transpose_b ? b[n * ldb + k] : b[k * ldb + n];
                sum += a_mk * b_kn;
            }
            float& out = c[m * ldc + n];
            out = beta == 0.0f ? alpha * sum : alpha * sum + beta * out;
        }
    }
}

}  // namespace

void sgemm(ne_context&, bool transpose_a, bool transpose_b, int64_t M, int64_t N, int64_t K, float alpha,
           const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
    sgemm_reference(transpose_a, transpose_b, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace ne::cpu
