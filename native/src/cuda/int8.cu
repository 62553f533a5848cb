// Int8 on CUDA: symmetric absmax quantization per row or column, dequantization, and the int8
// GEMM with int32 accumulation and the fused dequantizing epilogue. Kernels, then launchers.
//
// Every path computes a group's constants and q exactly as cpu/int8.cpp does (one float
// division for the inverse, q = rint((x * prescale) * inverse) clamped to [-127, 127], the
// epilogue (acc * a_scale) * b_scale or fma(acc * a_scale, b_scale, bias)), so quantized values
// and GEMM outputs agree with the CPU bit for bit.
//
// The GEMM runs on cuBLASLt (int8 tensor cores, int32 accumulators) when its layout rules hold
// (the "TN" form with 4-aligned leading dimensions and addresses) and a heuristic finds an
// algorithm, followed by the epilogue kernel for an f32 output; otherwise on our tiled kernel,
// which fuses the epilogue.
#include "common.cuh"
#include "core/error.hpp"

#include <cfloat>
#include <climits>

namespace ne::cuda {
namespace {

struct Group {
    float scale;
    float inverse;
    float prescale;
};

__device__ Group group_quantization(float absmax) {
    if (absmax == 0.0f) return {0.0f, 0.0f, 1.0f};
    const float scale = absmax / 127.0f;
    const float inverse = 127.0f / absmax;
    if (inverse <= FLT_MAX) return {scale, inverse, 1.0f};
    const float prescale = 18446744073709551616.0f;  // 2^64
    return {scale, 127.0f / (absmax * prescale), prescale};
}

__device__ int8_t quantize_value(float x, const Group& group) {
    const float rounded = rintf(x * group.prescale * group.inverse);
    return static_cast<int8_t>(fminf(fmaxf(rounded, -127.0f), 127.0f));
}

// One block per row: absmax, scale, then q.
__global__ void quantize_rows_kernel(cpu::QuantizeArgs a) {
    __shared__ float reduce_space[kWarpSize];
    const int64_t r = blockIdx.x;
    const float* x = a.x + r * a.x_row_stride;
    float absmax = 0.0f;
    for (int64_t c = threadIdx.x; c < a.C; c += blockDim.x) absmax = fmaxf(absmax, fabsf(x[c]));
    const Group group = group_quantization(block_reduce(absmax, MaxOp{}, reduce_space));
    for (int64_t c = threadIdx.x; c < a.C; c += blockDim.x) a.q[r * a.C + c] = quantize_value(x[c], group);
    if (threadIdx.x == 0) a.scales[r] = group.scale;
}

// One thread per column (adjacent threads read adjacent columns): the column's absmax.
__global__ void column_absmax_kernel(cpu::QuantizeArgs a, float* absmax) {
    for (int64_t c = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; c < a.C; c += int64_t{gridDim.x} * blockDim.x) {
        float largest = 0.0f;
        for (int64_t r = 0; r < a.R; ++r) largest = fmaxf(largest, fabsf(a.x[r * a.x_row_stride + c]));
        absmax[c] = largest;
    }
}

__global__ void quantize_columns_kernel(cpu::QuantizeArgs a, const float* absmax) {
    const int64_t count = a.R * a.C;
    for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += int64_t{gridDim.x} * blockDim.x) {
        const int64_t r = i / a.C, c = i % a.C;
        a.q[i] = quantize_value(a.x[r * a.x_row_stride + c], group_quantization(absmax[c]));
    }
}

__global__ void column_scale_values_kernel(const float* absmax, float* scales, int64_t C) {
    for (int64_t c = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; c < C; c += int64_t{gridDim.x} * blockDim.x) {
        scales[c] = group_quantization(absmax[c]).scale;
    }
}

__global__ void dequantize_kernel(cpu::DequantizeArgs a) {
    const int64_t count = a.R * a.C;
    const bool per_row = a.axis == cpu::QuantAxis::per_row;
    for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += int64_t{gridDim.x} * blockDim.x) {
        const int64_t r = i / a.C, c = i % a.C;
        a.x[r * a.x_row_stride + c] = static_cast<float>(a.q[i]) * a.scales[per_row ? r : c];
    }
}

__device__ void store_output(const cpu::GemmArgs& a, int64_t m, int64_t n, int32_t acc) {
    const int64_t offset = m * a.c_row_stride + n;
    if (a.float_output) {
        const float scaled = static_cast<float>(acc) * a.a_scales[m];
        static_cast<float*>(a.c)[offset] = a.bias ? fmaf(scaled, a.b_scales[n], a.bias[n]) : scaled * a.b_scales[n];
    } else {
        static_cast<int32_t*>(a.c)[offset] = acc;
    }
}

// Our GEMM: a 32 x 32 tile of C per block of 32 x 8 threads, K in steps of 32 through shared
// memory; each thread accumulates 4 outputs in int32 (exact for K <= NE_INT8_GEMM_MAX_K).
constexpr int kTile = 32;
constexpr int kTileRowsPerThread = 4;

__global__ void gemm_int8_kernel(cpu::GemmArgs a) {
    __shared__ int32_t a_tile[kTile][kTile + 1];
    __shared__ int32_t b_tile[kTile][kTile + 1];
    const int64_t m0 = blockIdx.x * int64_t{kTile}, n0 = blockIdx.y * int64_t{kTile};
    const int tx = threadIdx.x, ty = threadIdx.y;
    int32_t acc[kTileRowsPerThread] = {};
    for (int64_t k0 = 0; k0 < a.K; k0 += kTile) {
        for (int i = 0; i < kTileRowsPerThread; ++i) {
            const int row = ty + i * (kTile / kTileRowsPerThread);
            const int64_t m = m0 + row, n = n0 + row, k = k0 + tx;
            a_tile[row][tx] = m < a.M && k < a.K ? a.a[m * a.a_row_stride + k] : 0;
            b_tile[row][tx] = n < a.N && k < a.K ? a.b[n * a.b_row_stride + k] : 0;
        }
        __syncthreads();
        for (int k = 0; k < kTile; ++k) {
            const int32_t b_value = b_tile[tx][k];
            for (int i = 0; i < kTileRowsPerThread; ++i) acc[i] += a_tile[ty + i * (kTile / kTileRowsPerThread)][k] * b_value;
        }
        __syncthreads();
    }
    for (int i = 0; i < kTileRowsPerThread; ++i) {
        const int64_t m = m0 + ty + i * (kTile / kTileRowsPerThread), n = n0 + tx;
        if (m < a.M && n < a.N) store_output(a, m, n, acc[i]);
    }
}

// The epilogue after cuBLASLt: acc [M, N] int32 (row stride N) into C.
__global__ void epilogue_kernel(cpu::GemmArgs a, const int32_t* acc) {
    const int64_t count = a.M * a.N;
    for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += int64_t{gridDim.x} * blockDim.x) {
        store_output(a, i / a.N, i % a.N, acc[i]);
    }
}

constexpr int kThreads = 256;

bool aligned4(const void* pointer) { return reinterpret_cast<uintptr_t>(pointer) % 4 == 0; }

// Whether cuBLASLt's int8 kernels take these operands and an int32 output of row stride ldc.
bool cublaslt_layout(const cpu::GemmArgs& a, const void* acc, int64_t ldc) {
    // cuBLASLt's int8 kernels with row/column-major data need m (our N) and k multiples of 4.
    return a.N % 4 == 0 && a.K % 4 == 0 && a.a_row_stride % 4 == 0 && a.b_row_stride % 4 == 0 && ldc % 4 == 0 && aligned4(a.a) &&
           aligned4(a.b) && aligned4(acc) && a.M <= INT32_MAX && a.N <= INT32_MAX;
}

// acc[M, N] (row stride ldc) = a b^T on cuBLASLt; false when no algorithm takes this problem.
bool gemm_int8_cublaslt(const Queue& queue, const cpu::GemmArgs& a, int32_t* acc, int64_t ldc) {
    // Row-major C [M, N] is column-major C^T [N, M] = B A^T: B is the column-major [K, N]
    // matrix b (transposed), A^T the column-major [K, M] matrix a.
    cublasLtMatmulDesc_t operation = nullptr;
    cublasLtMatrixLayout_t b_layout = nullptr, a_layout = nullptr, c_layout = nullptr;
    cublasLtMatmulPreference_t preference = nullptr;
    bool done = false;
    cublasStatus_t status = CUBLAS_STATUS_SUCCESS;  // of the product, checked once the descriptors are released
    if (cublasLtMatmulDescCreate(&operation, CUBLAS_COMPUTE_32I, CUDA_R_32I) == CUBLAS_STATUS_SUCCESS) {
        const cublasOperation_t transpose = CUBLAS_OP_T, keep = CUBLAS_OP_N;
        cublasLtMatmulDescSetAttribute(operation, CUBLASLT_MATMUL_DESC_TRANSA, &transpose, sizeof transpose);
        cublasLtMatmulDescSetAttribute(operation, CUBLASLT_MATMUL_DESC_TRANSB, &keep, sizeof keep);
        const bool layouts =
            cublasLtMatrixLayoutCreate(&b_layout, CUDA_R_8I, static_cast<uint64_t>(a.K), static_cast<uint64_t>(a.N),
                                       a.b_row_stride) == CUBLAS_STATUS_SUCCESS &&
            cublasLtMatrixLayoutCreate(&a_layout, CUDA_R_8I, static_cast<uint64_t>(a.K), static_cast<uint64_t>(a.M),
                                       a.a_row_stride) == CUBLAS_STATUS_SUCCESS &&
            cublasLtMatrixLayoutCreate(&c_layout, CUDA_R_32I, static_cast<uint64_t>(a.N), static_cast<uint64_t>(a.M),
                                       ldc) == CUBLAS_STATUS_SUCCESS &&
            cublasLtMatmulPreferenceCreate(&preference) == CUBLAS_STATUS_SUCCESS &&
            cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                 &queue.blas_lt_workspace_bytes,
                                                 sizeof queue.blas_lt_workspace_bytes) == CUBLAS_STATUS_SUCCESS;
        cublasLtMatmulHeuristicResult_t heuristic{};
        int found = 0;
        if (layouts &&
            cublasLtMatmulAlgoGetHeuristic(queue.blas_lt, operation, b_layout, a_layout, c_layout, c_layout, preference, 1,
                                           &heuristic, &found) == CUBLAS_STATUS_SUCCESS &&
            found > 0) {
            const int32_t one = 1, zero = 0;
            status = cublasLtMatmul(queue.blas_lt, operation, &one, a.b, b_layout, a.a, a_layout, &zero, acc, c_layout, acc,
                                    c_layout, &heuristic.algo, queue.blas_lt_workspace, queue.blas_lt_workspace_bytes,
                                    queue.stream);
            done = true;
        }
    }
    if (preference) cublasLtMatmulPreferenceDestroy(preference);
    if (c_layout) cublasLtMatrixLayoutDestroy(c_layout);
    if (a_layout) cublasLtMatrixLayoutDestroy(a_layout);
    if (b_layout) cublasLtMatrixLayoutDestroy(b_layout);
    if (operation) cublasLtMatmulDescDestroy(operation);
    check(status, "cublasLtMatmul (int8)");
    return done;
}

}  // namespace

void launch_quantize_int8(const Queue& queue, const cpu::QuantizeArgs& args) {
    if (args.axis == cpu::QuantAxis::per_row) {
        quantize_rows_kernel<<<static_cast<unsigned>(args.R), kThreads, 0, queue.stream>>>(args);
        check_launch("quantize_rows_kernel");
        return;
    }
    const Scratch absmax(queue, args.C * static_cast<int64_t>(sizeof(float)));
    column_absmax_kernel<<<grid_for(queue, args.C, kThreads), kThreads, 0, queue.stream>>>(args, absmax.as<float>());
    check_launch("column_absmax_kernel");
    quantize_columns_kernel<<<grid_for(queue, args.R * args.C, kThreads), kThreads, 0, queue.stream>>>(args, absmax.as<float>());
    check_launch("quantize_columns_kernel");
    column_scale_values_kernel<<<grid_for(queue, args.C, kThreads), kThreads, 0, queue.stream>>>(absmax.as<float>(), args.scales,
                                                                                                 args.C);
    check_launch("column_scale_values_kernel");
}

void launch_dequantize_int8(const Queue& queue, const cpu::DequantizeArgs& args) {
    dequantize_kernel<<<grid_for(queue, args.R * args.C, kThreads), kThreads, 0, queue.stream>>>(args);
    check_launch("dequantize_kernel");
}

void launch_gemm_int8(const Queue& queue, const cpu::GemmArgs& args) {
    if (!args.float_output) {
        // The accumulators are the output: cuBLASLt writes them in place.
        if (cublaslt_layout(args, args.c, args.c_row_stride) &&
            gemm_int8_cublaslt(queue, args, static_cast<int32_t*>(args.c), args.c_row_stride)) {
            return;
        }
    } else if (cublaslt_layout(args, nullptr, args.N)) {  // scratch memory is aligned
        const Scratch acc(queue, args.M * args.N * static_cast<int64_t>(sizeof(int32_t)));
        if (gemm_int8_cublaslt(queue, args, acc.as<int32_t>(), args.N)) {
            epilogue_kernel<<<grid_for(queue, args.M * args.N, kThreads), kThreads, 0, queue.stream>>>(args, acc.as<int32_t>());
            check_launch("epilogue_kernel");
            return;
        }
    }
    // Rows of the output in x (2^31 - 1 blocks), columns in y (65535 blocks).
    const int64_t column_tiles = ceil_div(args.N, kTile);
    if (column_tiles > 65535) {
        fail(NE_STATUS_UNSUPPORTED, "N = ", args.N, " output columns exceed the int8 fallback kernel's grid (at most ",
             65535 * kTile, "); use a shape that cuBLASLt takes (N and K multiples of 4)");
    }
    const dim3 blocks(static_cast<unsigned>(ceil_div(args.M, kTile)), static_cast<unsigned>(column_tiles));
    gemm_int8_kernel<<<blocks, dim3(kTile, kTile / kTileRowsPerThread), 0, queue.stream>>>(args);
    check_launch("gemm_int8_kernel");
}

void launch_linear_int8(const Queue& queue, const float* x, int64_t x_row_stride, const cpu::GemmArgs& gemm) {
    const Scratch x_quantized(queue, gemm.M * gemm.K);
    const Scratch x_scales(queue, gemm.M * static_cast<int64_t>(sizeof(float)));
    launch_quantize_int8(queue, {cpu::QuantAxis::per_row, gemm.M, gemm.K, x, x_row_stride, x_quantized.as<int8_t>(),
                                 x_scales.as<float>()});
    cpu::GemmArgs args = gemm;
    args.a = x_quantized.as<int8_t>();
    args.a_row_stride = gemm.K;
    args.a_scales = x_scales.as<float>();
    launch_gemm_int8(queue, args);
}

}  // namespace ne::cuda
