// The f32 GEMM on CUDA: cuBLAS, in strict f32 (no TF32), so that results stay within the CPU's
// tolerances. Row-major C [M, N] = op(A) op(B) is column-major C^T [N, M] = op(B)^T op(A)^T, where
// the column-major views of the row-major buffers are the transposes: one strided batched call.
#include "common.cuh"
#include "core/error.hpp"

#include <climits>

namespace ne::cuda {

void launch_sgemm_batched(const Queue& queue, const cpu::SgemmBatch& b) {
    for (const int64_t value : {b.M, b.N, b.K, b.lda, b.ldb, b.ldc, b.batch_count}) {
        if (value > INT_MAX) {
            fail(NE_STATUS_UNSUPPORTED, "a dimension or leading dimension of ", value,
                 " exceeds cuBLAS's 32-bit range; split the product");
        }
    }
    const cublasOperation_t op_a = b.transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cublasOperation_t op_b = b.transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    check(cublasSgemmStridedBatched(queue.blas, op_b, op_a, static_cast<int>(b.N), static_cast<int>(b.M), static_cast<int>(b.K),
                                    &b.alpha, b.b, static_cast<int>(b.ldb), b.b_batch_stride, b.a, static_cast<int>(b.lda),
                                    b.a_batch_stride, &b.beta, b.c, static_cast<int>(b.ldc), b.c_batch_stride,
                                    static_cast<int>(b.batch_count)),
          "cublasSgemmStridedBatched");
}

}  // namespace ne::cuda
