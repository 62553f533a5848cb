// GEMM on CUDA through cuBLAS (which runs cuBLASLt's kernels): f32 in f32 (no TF32 unless the
// caller allows it, see device.cpp), and bf16 or f16 operands on tensor cores with f32
// accumulation.
//
// Row-major C [M, N] = op(A) op(B) is column-major C^T [N, M] = op(B)^T op(A)^T, where the
// column-major views of the row-major buffers are the transposes: one strided batched call with
// the operands swapped.
#include "common.cuh"
#include "core/error.hpp"

#include <climits>

namespace ne::cuda {
namespace {

cudaDataType_t cuda_type(ne_dtype dtype) {
    switch (dtype) {
        case NE_DTYPE_BF16: return CUDA_R_16BF;
        case NE_DTYPE_F16: return CUDA_R_16F;
        default: return CUDA_R_32F;
    }
}

}  // namespace

void launch_gemm(const Queue& queue, const cpu::SgemmBatch& b, ne_dtype ab_dtype, ne_dtype c_dtype) {
    for (const int64_t value : {b.M, b.N, b.K, b.lda, b.ldb, b.ldc, b.batch_count}) {
        if (value > INT_MAX) {
            fail(NE_STATUS_UNSUPPORTED, "a dimension or leading dimension of ", value,
                 " exceeds cuBLAS's 32-bit range; split the product");
        }
    }
    const cublasOperation_t op_a = b.transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cublasOperation_t op_b = b.transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    const auto M = static_cast<int>(b.M), N = static_cast<int>(b.N), K = static_cast<int>(b.K);
    const auto lda = static_cast<int>(b.lda), ldb = static_cast<int>(b.ldb), ldc = static_cast<int>(b.ldc);
    const auto batches = static_cast<int>(b.batch_count);
    if (ab_dtype == NE_DTYPE_F32 && !b.tf32) {
        check(cublasSgemmStridedBatched(queue.blas, op_b, op_a, N, M, K, &b.alpha, b.b, ldb, b.b_batch_stride, b.a, lda,
                                        b.a_batch_stride, &b.beta, b.c, ldc, b.c_batch_stride, batches),
              "cublasSgemmStridedBatched");
        return;
    }
    check(cublasGemmStridedBatchedEx(queue.blas, op_b, op_a, N, M, K, &b.alpha, b.b, cuda_type(ab_dtype), ldb, b.b_batch_stride,
                                     b.a, cuda_type(ab_dtype), lda, b.a_batch_stride, &b.beta, b.c, cuda_type(c_dtype), ldc,
                                     b.c_batch_stride, batches, b.tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F,
                                     CUBLAS_GEMM_DEFAULT),
          "cublasGemmStridedBatchedEx");
}

}  // namespace ne::cuda
