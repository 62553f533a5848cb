// The SIMT emulator's cuBLAS and cuBLASLt: the calls NativeEngine makes, computed on the host
// with cuBLAS's documented semantics, so that a wrong operand order, transpose, leading
// dimension or stride in our CUDA code gives wrong numbers here as on a GPU. Column-major: the
// (i, j) element of an m x n matrix with leading dimension ld is at i + j * ld. beta == 0 never
// reads C (fresh device memory holds NaN). Operands are checked against live device allocations
// (a real GPU would fault). Accumulation is f32 in k order; FAST_TF32 rounds the inputs to
// TF32; cuBLASLt multiplies int8 operands only in the "TN" form with int32 results.
#include "runtime.hpp"

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

struct cublasContext {
    cudaStream_t stream;
    cublasMath_t math;
};
struct cublasLtContext {
    int unused;
};

namespace {

float load(const void* base, cudaDataType type, int64_t index) {
    switch (type) {
        case CUDA_R_16F: return __half2float(static_cast<const __half*>(base)[index]);
        case CUDA_R_16BF: return __bfloat162float(static_cast<const __nv_bfloat16*>(base)[index]);
        default: return static_cast<const float*>(base)[index];
    }
}

void store(void* base, cudaDataType type, int64_t index, float value) {
    switch (type) {
        case CUDA_R_16F: static_cast<__half*>(base)[index] = __float2half_rn(value); break;
        case CUDA_R_16BF: static_cast<__nv_bfloat16*>(base)[index] = __float2bfloat16_rn(value); break;
        default: static_cast<float*>(base)[index] = value; break;
    }
}

size_t element_bytes(cudaDataType type) {
    switch (type) {
        case CUDA_R_16F:
        case CUDA_R_16BF: return 2;
        case CUDA_R_8I: return 1;
        default: return 4;
    }
}

bool supported_float_type(cudaDataType type) { return type == CUDA_R_32F || type == CUDA_R_16F || type == CUDA_R_16BF; }

// Rounds to TF32 (10 explicit mantissa bits), to nearest even.
float to_tf32(float x) {
    if (!std::isfinite(x)) return x;
    uint32_t bits;
    std::memcpy(&bits, &x, sizeof bits);
    bits += 0xfffu + ((bits >> 13) & 1u);
    bits &= ~0x1fffu;
    std::memcpy(&x, &bits, sizeof x);
    return x;
}

// Whether the stored rows x cols matrix at `base` (leading dimension ld) lies in device memory.
bool in_device(const void* base, int64_t rows, int64_t cols, int64_t ld, size_t bytes_per_element) {
    if (rows == 0 || cols == 0) return true;
    const int64_t last = (rows - 1) + (cols - 1) * ld;
    return simt::is_device_range(base, static_cast<size_t>(last + 1) * bytes_per_element);
}

struct Gemm {
    cublasOperation_t transa, transb;
    int m, n, k;
    float alpha, beta;
    const void* A;
    cudaDataType a_type;
    int lda;
    int64_t stride_a;
    const void* B;
    cudaDataType b_type;
    int ldb;
    int64_t stride_b;
    void* C;
    cudaDataType c_type;
    int ldc;
    int64_t stride_c;
    int batches;
    bool tf32;
};

cublasStatus_t run(const char* api, const Gemm& g) {
    const bool ta = g.transa != CUBLAS_OP_N, tb = g.transb != CUBLAS_OP_N;
    if (g.m < 0 || g.n < 0 || g.k < 0 || g.batches < 0 || g.lda < std::max(1, ta ? g.k : g.m) ||
        g.ldb < std::max(1, tb ? g.n : g.k) || g.ldc < std::max(1, g.m)) {
        simt::report_misuse(api, "a size is negative or a leading dimension is smaller than its matrix's rows");
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    const size_t a_bytes = element_bytes(g.a_type), b_bytes = element_bytes(g.b_type), c_bytes = element_bytes(g.c_type);
    for (int batch = 0; batch < g.batches; ++batch) {
        const auto* A = static_cast<const unsigned char*>(g.A) + batch * g.stride_a * static_cast<int64_t>(a_bytes);
        const auto* B = static_cast<const unsigned char*>(g.B) + batch * g.stride_b * static_cast<int64_t>(b_bytes);
        auto* C = static_cast<unsigned char*>(g.C) + batch * g.stride_c * static_cast<int64_t>(c_bytes);
        if ((g.k > 0 && !in_device(A, ta ? g.k : g.m, ta ? g.m : g.k, g.lda, a_bytes)) ||
            (g.k > 0 && !in_device(B, tb ? g.n : g.k, tb ? g.k : g.n, g.ldb, b_bytes)) || !in_device(C, g.m, g.n, g.ldc, c_bytes)) {
            simt::report_misuse(api, "an operand extends outside its device allocation");
            return CUBLAS_STATUS_INVALID_VALUE;
        }
        for (int j = 0; j < g.n; ++j) {
            for (int i = 0; i < g.m; ++i) {
                float sum = 0.0f;
                for (int l = 0; l < g.k; ++l) {
                    float a = load(A, g.a_type, ta ? l + int64_t{i} * g.lda : i + int64_t{l} * g.lda);
                    float b = load(B, g.b_type, tb ? j + int64_t{l} * g.ldb : l + int64_t{j} * g.ldb);
                    if (g.tf32) {
                        a = to_tf32(a);
                        b = to_tf32(b);
                    }
                    sum += a * b;
                }
                const int64_t index = i + int64_t{j} * g.ldc;
                float value = g.alpha * sum;
                if (g.beta != 0.0f) value += g.beta * load(C, g.c_type, index);
                store(C, g.c_type, index, value);
            }
        }
    }
    return CUBLAS_STATUS_SUCCESS;
}

bool valid_operation(cublasOperation_t op) { return op == CUBLAS_OP_N || op == CUBLAS_OP_T; }

cublasStatus_t gemm_ex(const char* api, cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m,
                       int n, int k, const void* alpha, const void* A, cudaDataType a_type, int lda, long long stride_a,
                       const void* B, cudaDataType b_type, int ldb, long long stride_b, const void* beta, void* C,
                       cudaDataType c_type, int ldc, long long stride_c, int batches, cublasComputeType_t compute) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!valid_operation(transa) || !valid_operation(transb) || !alpha || !beta) return CUBLAS_STATUS_INVALID_VALUE;
    if (!supported_float_type(a_type) || a_type != b_type || !supported_float_type(c_type) ||
        (compute != CUBLAS_COMPUTE_32F && compute != CUBLAS_COMPUTE_32F_FAST_TF32) ||
        (compute == CUBLAS_COMPUTE_32F_FAST_TF32 && a_type != CUDA_R_32F)) {
        simt::report_misuse(api, "the emulator supports f32, f16 and bf16 operands of one type with f32 compute");
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    const Gemm g{transa, transb, m, n, k, *static_cast<const float*>(alpha), *static_cast<const float*>(beta), A, a_type, lda,
                 stride_a, B, b_type, ldb, stride_b, C, c_type, ldc, stride_c, batches, compute == CUBLAS_COMPUTE_32F_FAST_TF32};
    return run(api, g);
}

struct MatmulDesc {
    cublasComputeType_t compute;
    cudaDataType_t scale;
    cublasOperation_t transa, transb;
};
struct Layout {
    cudaDataType type;
    uint64_t rows, cols;
    int64_t ld;
};
static_assert(sizeof(MatmulDesc) <= sizeof(cublasLtMatmulDescOpaque_t) && sizeof(Layout) <= sizeof(cublasLtMatrixLayoutOpaque_t));

// The descriptors' fields live in the opaque structs' words.
MatmulDesc fields(cublasLtMatmulDesc_t desc) {
    MatmulDesc result;
    std::memcpy(&result, desc->data, sizeof result);
    return result;
}
Layout fields(cublasLtMatrixLayout_t layout) {
    Layout result;
    std::memcpy(&result, layout->data, sizeof result);
    return result;
}
void set_fields(cublasLtMatmulDesc_t desc, const MatmulDesc& value) { std::memcpy(desc->data, &value, sizeof value); }
void set_fields(cublasLtMatrixLayout_t layout, const Layout& value) { std::memcpy(layout->data, &value, sizeof value); }

// cuBLASLt's int8 products with column-major layouts: A transposed, B not (the "TN" form), int8
// operands, int32 C and D, int32 compute and scale.
bool int8_tn(cublasLtMatmulDesc_t desc, cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c,
             cublasLtMatrixLayout_t d) {
    const MatmulDesc op = fields(desc);
    return op.compute == CUBLAS_COMPUTE_32I && op.scale == CUDA_R_32I && op.transa == CUBLAS_OP_T && op.transb == CUBLAS_OP_N &&
           fields(a).type == CUDA_R_8I && fields(b).type == CUDA_R_8I && fields(c).type == CUDA_R_32I && fields(d).type == CUDA_R_32I;
}

}  // namespace

extern "C" {

cublasStatus_t cublasCreate(cublasHandle_t* handle) {
    if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
    *handle = new cublasContext{nullptr, CUBLAS_DEFAULT_MATH};
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy(cublasHandle_t handle) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    delete handle;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    handle->stream = stream;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    handle->math = mode;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                                         int k, const float* alpha, const float* A, int lda, long long stride_a, const float* B,
                                         int ldb, long long stride_b, const float* beta, float* C, int ldc, long long stride_c,
                                         int batches) {
    const cublasComputeType_t compute =
        handle && (handle->math & CUBLAS_TF32_TENSOR_OP_MATH) ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    return gemm_ex("cublasSgemmStridedBatched", handle, transa, transb, m, n, k, alpha, A, CUDA_R_32F, lda, stride_a, B,
                   CUDA_R_32F, ldb, stride_b, beta, C, CUDA_R_32F, ldc, stride_c, batches, compute);
}

cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                                          int k, const void* alpha, const void* A, cudaDataType a_type, int lda,
                                          long long stride_a, const void* B, cudaDataType b_type, int ldb, long long stride_b,
                                          const void* beta, void* C, cudaDataType c_type, int ldc, long long stride_c,
                                          int batches, cublasComputeType_t compute, cublasGemmAlgo_t) {
    return gemm_ex("cublasGemmStridedBatchedEx", handle, transa, transb, m, n, k, alpha, A, a_type, lda, stride_a, B, b_type, ldb,
                   stride_b, beta, C, c_type, ldc, stride_c, batches, compute);
}

cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
                            const void* alpha, const void* A, cudaDataType a_type, int lda, const void* B, cudaDataType b_type,
                            int ldb, const void* beta, void* C, cudaDataType c_type, int ldc, cublasComputeType_t compute,
                            cublasGemmAlgo_t) {
    return gemm_ex("cublasGemmEx", handle, transa, transb, m, n, k, alpha, A, a_type, lda, 0, B, b_type, ldb, 0, beta, C, c_type,
                   ldc, 0, 1, compute);
}

cublasStatus_t cublasSgemv(cublasHandle_t handle, cublasOperation_t trans, int m, int n, const float* alpha, const float* A,
                           int lda, const float* x, int incx, const float* beta, float* y, int incy) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!valid_operation(trans) || m < 0 || n < 0 || lda < std::max(1, m) || incx == 0 || incy == 0 || !alpha || !beta) {
        simt::report_misuse("cublasSgemv", "an invalid size, leading dimension or increment");
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    const bool t = trans != CUBLAS_OP_N;
    const int x_count = t ? m : n, y_count = t ? n : m;
    if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
    if (incx < 0 || incy < 0 || !in_device(A, m, n, lda, 4) || !in_device(x, 1, x_count, incx, 4) ||
        !in_device(y, 1, y_count, incy, 4)) {
        simt::report_misuse("cublasSgemv", "an operand extends outside its device allocation (or a negative increment)");
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    std::vector<float> result(static_cast<size_t>(y_count));
    for (int r = 0; r < y_count; ++r) {
        float sum = 0.0f;
        for (int c = 0; c < x_count; ++c) {
            const float a = t ? A[c + int64_t{r} * lda] : A[r + int64_t{c} * lda];
            sum += a * x[int64_t{c} * incx];
        }
        float value = *alpha * sum;
        if (*beta != 0.0f) value += *beta * y[int64_t{r} * incy];
        result[static_cast<size_t>(r)] = value;
    }
    for (int r = 0; r < y_count; ++r) y[int64_t{r} * incy] = result[static_cast<size_t>(r)];
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtCreate(cublasLtHandle_t* handle) {
    if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
    *handle = new cublasLtContext{0};
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    delete handle;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* desc, cublasComputeType_t compute, cudaDataType_t scale) {
    if (!desc) return CUBLAS_STATUS_INVALID_VALUE;
    *desc = new cublasLtMatmulDescOpaque_t{};
    set_fields(*desc, MatmulDesc{compute, scale, CUBLAS_OP_N, CUBLAS_OP_N});
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc) {
    delete desc;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attribute,
                                              const void* buffer, size_t bytes) {
    if (!desc || !buffer) return CUBLAS_STATUS_INVALID_VALUE;
    if (attribute != CUBLASLT_MATMUL_DESC_TRANSA && attribute != CUBLASLT_MATMUL_DESC_TRANSB) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (bytes != sizeof(cublasOperation_t)) return CUBLAS_STATUS_INVALID_VALUE;
    MatmulDesc value = fields(desc);
    std::memcpy(attribute == CUBLASLT_MATMUL_DESC_TRANSA ? &value.transa : &value.transb, buffer, bytes);
    set_fields(desc, value);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* layout, cudaDataType type, uint64_t rows, uint64_t cols,
                                          int64_t ld) {
    if (!layout) return CUBLAS_STATUS_INVALID_VALUE;
    if (ld < 0 || (rows > 0 && static_cast<uint64_t>(ld) < rows)) return CUBLAS_STATUS_INVALID_VALUE;
    *layout = new cublasLtMatrixLayoutOpaque_t{};
    set_fields(*layout, Layout{type, rows, cols, ld});
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t layout) {
    delete layout;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* preference) {
    if (!preference) return CUBLAS_STATUS_INVALID_VALUE;
    *preference = new cublasLtMatmulPreferenceOpaque_t{};
    return CUBLAS_STATUS_SUCCESS;
}

// The one preference the library sets: the workspace bound, kept in data[0] and reported as the
// chosen algorithm's workspace size (cublasLtMatmul checks that the workspace it gets is device
// memory of the size given).
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t preference,
                                                    cublasLtMatmulPreferenceAttributes_t attribute, const void* buffer,
                                                    size_t bytes) {
    if (!preference || !buffer) return CUBLAS_STATUS_INVALID_VALUE;
    if (attribute != CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (bytes != sizeof(uint64_t)) return CUBLAS_STATUS_INVALID_VALUE;
    std::memcpy(&preference->data[0], buffer, bytes);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t preference) {
    delete preference;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc, cublasLtMatrixLayout_t a,
                                              cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d,
                                              cublasLtMatmulPreference_t preference, int requested,
                                              cublasLtMatmulHeuristicResult_t results[], int* returned) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!desc || !a || !b || !c || !d || !preference || requested < 1 || !results || !returned) return CUBLAS_STATUS_INVALID_VALUE;
    *returned = 0;
    if (!int8_tn(desc, a, b, c, d)) return CUBLAS_STATUS_NOT_SUPPORTED;
    results[0] = cublasLtMatmulHeuristicResult_t{};
    results[0].state = CUBLAS_STATUS_SUCCESS;
    // As if the algorithm used all the workspace the preference allows.
    results[0].workspaceSize = preference->data[0];
    *returned = 1;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc, const void* alpha, const void* A,
                              cublasLtMatrixLayout_t a_layout, const void* B, cublasLtMatrixLayout_t b_layout, const void* beta,
                              const void* C, cublasLtMatrixLayout_t c_layout, void* D, cublasLtMatrixLayout_t d_layout,
                              const cublasLtMatmulAlgo_t*, void* workspace, size_t workspace_bytes, cudaStream_t) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!desc || !alpha || !beta || !a_layout || !b_layout || !c_layout || !d_layout) return CUBLAS_STATUS_INVALID_VALUE;
    if (workspace_bytes > 0 && !simt::is_device_range(workspace, workspace_bytes)) {
        simt::report_misuse("cublasLtMatmul", "the workspace extends outside its device allocation");
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    if (!int8_tn(desc, a_layout, b_layout, c_layout, d_layout)) return CUBLAS_STATUS_NOT_SUPPORTED;
    const Layout la = fields(a_layout), lb = fields(b_layout), lc = fields(c_layout), ld = fields(d_layout);
    // op(A) = A^T is m x k (A stored k x m); op(B) = B is k x n; C and D are m x n.
    const auto m = static_cast<int64_t>(la.cols), k = static_cast<int64_t>(la.rows), n = static_cast<int64_t>(lb.cols);
    if (static_cast<int64_t>(lb.rows) != k || static_cast<int64_t>(lc.rows) != m || static_cast<int64_t>(lc.cols) != n ||
        static_cast<int64_t>(ld.rows) != m || static_cast<int64_t>(ld.cols) != n) {
        simt::report_misuse("cublasLtMatmul", "the layouts' shapes do not chain");
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    const int32_t a_scale = *static_cast<const int32_t*>(alpha), b_scale = *static_cast<const int32_t*>(beta);
    if (!in_device(A, k, m, la.ld, 1) || !in_device(B, k, n, lb.ld, 1) || (b_scale != 0 && !in_device(C, m, n, lc.ld, 4)) ||
        !in_device(D, m, n, ld.ld, 4)) {
        simt::report_misuse("cublasLtMatmul", "an operand extends outside its device allocation");
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    const auto* a8 = static_cast<const int8_t*>(A);
    const auto* b8 = static_cast<const int8_t*>(B);
    std::vector<int32_t> result(static_cast<size_t>(m * n));
    for (int64_t j = 0; j < n; ++j) {
        for (int64_t i = 0; i < m; ++i) {
            int32_t sum = 0;
            for (int64_t l = 0; l < k; ++l) sum += int32_t{a8[l + i * la.ld]} * int32_t{b8[l + j * lb.ld]};
            int32_t value = a_scale * sum;
            if (b_scale != 0) value += b_scale * static_cast<const int32_t*>(C)[i + j * lc.ld];
            result[static_cast<size_t>(i + j * m)] = value;
        }
    }
    for (int64_t j = 0; j < n; ++j) {
        for (int64_t i = 0; i < m; ++i) static_cast<int32_t*>(D)[i + j * ld.ld] = result[static_cast<size_t>(i + j * m)];
    }
    return CUBLAS_STATUS_SUCCESS;
}

}  // extern "C"
