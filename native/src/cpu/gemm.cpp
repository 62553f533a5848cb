// f32 GEMM on the CPU; the contract of ne_gemm is in nativeengine.h, that of ne::cpu::sgemm in
// gemm.hpp.
//
// Reads top-down: the scalar reference (what NE_SIMD_LEVEL_SCALAR runs, on one thread), argument
// validation, the drivers that split the work across the context's threads and call the SIMD
// kernels of gemm_avx2.cpp / gemm_avx512.cpp, dispatch, and the exported function.
//
// Threads: a product is cut into blocks of whole register tiles, and the blocks of every product
// of a batch form one list that the threads share out statically. Each block computes its part of
// C over all of K on one thread, with fixed cache blocking (gemm_simd.inl), so the bits of C do
// not depend on the thread count. Products with a single row or column of C (M = 1 as when
// decoding, or N = 1) run as matrix-vector products, which read their operands unpacked.
#include "cpu/gemm.hpp"

#include "core/validate.hpp"

#include <algorithm>
#include <cmath>
#include <utility>

namespace ne::cpu {
namespace {

// ==========================================================================================
// Scalar reference
// ==========================================================================================

// One dot product per element of C, accumulated in k order.
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

void sgemm_batched_reference(const SgemmBatch& p) {
    for (int64_t i = 0; i < p.batch_count; ++i) {
        sgemm_reference(p.transpose_a, p.transpose_b, p.M, p.N, p.K, p.alpha, p.a + i * p.a_batch_stride, p.lda,
                        p.b + i * p.b_batch_stride, p.ldb, p.beta, p.c + i * p.c_batch_stride, p.ldc);
    }
}

// ==========================================================================================
// Validation
// ==========================================================================================

// A tensor of rank >= 2 seen as batch_count matrices of rows x cols: a contiguous last dimension,
// a row stride, and leading dimensions that collapse into one batch dimension of uniform stride.
struct BatchedMatrix {
    int64_t batch_count;
    int64_t batch_stride;  // in elements; 0 for a single matrix
    int64_t rows;
    int64_t cols;
    int64_t row_stride;    // in elements
};

BatchedMatrix batched_matrix_arg(const ne_tensor& tensor, const ne_context& context, const char* name) {
    expect_context(tensor, context, name);
    if (tensor.rank < 2) {
        fail(NE_STATUS_SHAPE_MISMATCH, "argument '", name, "': expected a matrix or a batch of matrices (rank >= 2), got shape ",
             shape_string(tensor));
    }
    const int32_t last = tensor.rank - 1;
    BatchedMatrix matrix{1, 0, tensor.shape[last - 1], tensor.shape[last], tensor.shape[last]};
    if (tensor.shape[last] != 1 && tensor.strides[last] != 1) {
        fail(NE_STATUS_UNSUPPORTED, "argument '", name, "': expected the last dimension to be contiguous (stride 1), got stride ",
             tensor.strides[last]);
    }
    if (matrix.rows != 1) matrix.row_stride = tensor.strides[last - 1];
    // Collapse the leading dimensions from the innermost outwards; size-1 dimensions never matter.
    int64_t expected_stride = 0;
    for (int32_t i = last - 2; i >= 0; --i) {
        if (tensor.shape[i] == 1) continue;
        if (matrix.batch_count == 1) {
            matrix.batch_stride = tensor.strides[i];
        } else if (tensor.strides[i] != expected_stride) {
            fail(NE_STATUS_UNSUPPORTED, "argument '", name, "': leading dimensions of shape ", shape_string(tensor),
                 " do not collapse into one batch dimension of uniform stride");
        }
        expected_stride = tensor.strides[i] * tensor.shape[i];
        matrix.batch_count *= tensor.shape[i];
    }
    return matrix;
}

// Each element of C is written once, by one thread: no two of its elements may share memory.
// Rows and matrices are checked in stride order, so that layouts such as [batch, M, N] views of
// an [M, batch, N] tensor are accepted.
void expect_distinct_elements(const BatchedMatrix& c, const ne_tensor& tensor, const char* name) {
    std::pair<int64_t, int64_t> dims[] = {{c.row_stride, c.rows}, {c.batch_stride, c.batch_count}};
    if (dims[1].first < dims[0].first) std::swap(dims[0], dims[1]);
    int64_t extent = c.cols;
    for (const auto& [stride, count] : dims) {
        if (count == 1) continue;
        if (stride < extent) {
            fail(NE_STATUS_UNSUPPORTED, "argument '", name, "': elements of shape ", shape_string(tensor),
                 " overlap each other (row stride ", c.row_stride, ", batch stride ", c.batch_stride,
                 "); expected every element of the output in its own memory");
        }
        extent += stride * (count - 1);
    }
}

bool flag_arg(int32_t value, const char* name) {
    if (value != 0 && value != 1) fail(NE_STATUS_INVALID_ARGUMENT, "argument 'params': ", name, " is ", value, "; expected 0 or 1");
    return value == 1;
}

float finite_arg(float value, const char* name) {
    if (!std::isfinite(value)) fail(NE_STATUS_INVALID_ARGUMENT, "argument 'params': ", name, " is ", value, "; expected a finite value");
    return value;
}

// A's or B's batch: C's, or 1 for a matrix shared by every product.
int64_t operand_batch_stride(const BatchedMatrix& operand, const ne_tensor& tensor, const char* name, const BatchedMatrix& c,
                             const ne_tensor& c_tensor) {
    if (operand.batch_count == c.batch_count) return operand.batch_stride;
    if (operand.batch_count == 1) return 0;
    fail(NE_STATUS_SHAPE_MISMATCH, "argument '", name, "': ", operand.batch_count, " matrices (shape ", shape_string(tensor),
         ") for a batch of ", c.batch_count, " (c of shape ", shape_string(c_tensor), "); expected ", c.batch_count,
         " or 1 shared by every product");
}

SgemmBatch gemm_args(const ne_context& context, const ne_gemm_params& params, const ne_tensor* a_handle,
                     const ne_tensor* b_handle, ne_tensor* c_handle) {
    const bool transpose_a = flag_arg(params.transpose_a, "transpose_a");
    const bool transpose_b = flag_arg(params.transpose_b, "transpose_b");
    const float alpha = finite_arg(params.alpha, "alpha");
    const float beta = finite_arg(params.beta, "beta");
    const bool tf32 = flag_arg(params.allow_tf32, "allow_tf32");
    const ne_tensor& a = tensor_arg(a_handle, "a");
    const ne_tensor& b = tensor_arg(b_handle, "b");
    const ne_tensor& c = tensor_arg(c_handle, "c");
    // f32 everywhere; a device also multiplies bf16 or f16 operands into c of their dtype or f32.
    const bool half_operands = context.device && (a.dtype == NE_DTYPE_BF16 || a.dtype == NE_DTYPE_F16);
    expect_dtype(a, half_operands ? a.dtype : NE_DTYPE_F32, "a");
    expect_dtype(b, a.dtype, "b");
    if (c.dtype != a.dtype) expect_dtype(c, NE_DTYPE_F32, "c");
    const BatchedMatrix a_matrix = batched_matrix_arg(a, context, "a");
    const BatchedMatrix b_matrix = batched_matrix_arg(b, context, "b");
    const BatchedMatrix c_matrix = batched_matrix_arg(c, context, "c");

    // op(A) [M, K], op(B) [K, N], C [M, N]
    const int64_t M = transpose_a ? a_matrix.cols : a_matrix.rows;
    const int64_t K = transpose_a ? a_matrix.rows : a_matrix.cols;
    const int64_t b_K = transpose_b ? b_matrix.cols : b_matrix.rows;
    const int64_t N = transpose_b ? b_matrix.rows : b_matrix.cols;
    if (b_K != K) {
        fail(NE_STATUS_SHAPE_MISMATCH, "inner dimensions disagree: op(a) is [", M, ", ", K, "] (a of shape ", shape_string(a),
             ", transpose_a = ", params.transpose_a, ") but op(b) is [", b_K, ", ", N, "] (b of shape ", shape_string(b),
             ", transpose_b = ", params.transpose_b, "); expected op(a) [M, K] and op(b) [K, N]");
    }
    if (c_matrix.rows != M || c_matrix.cols != N) {
        fail(NE_STATUS_SHAPE_MISMATCH, "argument 'c': expected matrices of shape ", shape_string({M, N}), " (op(a) [M, K] = ",
             shape_string({M, K}), " times op(b) [K, N] = ", shape_string({K, N}), "), got shape ", shape_string(c));
    }
    const int64_t a_batch_stride = operand_batch_stride(a_matrix, a, "a", c_matrix, c);
    const int64_t b_batch_stride = operand_batch_stride(b_matrix, b, "b", c_matrix, c);
    expect_distinct_elements(c_matrix, c, "c");
    expect_no_overlap(c, "c", a, "a");
    expect_no_overlap(c, "c", b, "b");
    return {.transpose_a = transpose_a, .transpose_b = transpose_b, .batch_count = c_matrix.batch_count, .M = M, .N = N, .K = K,
            .alpha = alpha, .beta = beta,
            .a = data_of<float>(a), .lda = a_matrix.row_stride, .a_batch_stride = a_batch_stride,
            .b = data_of<float>(b), .ldb = b_matrix.row_stride, .b_batch_stride = b_batch_stride,
            .c = data_of<float>(c), .ldc = c_matrix.row_stride, .c_batch_stride = c_matrix.batch_count == 1 ? 0 : c_matrix.batch_stride,
            .tf32 = tf32};
}

// ==========================================================================================
// Multithreaded drivers of the SIMD kernels
// ==========================================================================================

// Each thread gets at least this many multiply-adds (about 10 us on one AVX2 core): smaller
// shares take less time than waking a worker.
constexpr int64_t kMinMultiplyAddsPerThread = int64_t{1} << 18;

int64_t ceil_div(int64_t value, int64_t divisor) { return (value + divisor - 1) / divisor; }

int useful_threads(const ThreadPool& pool, double multiply_adds) {
    if (ThreadPool::in_task()) return 1;
    const double threads = multiply_adds / static_cast<double>(kMinMultiplyAddsPerThread);
    return threads >= pool.size() ? pool.size() : std::max(1, static_cast<int>(threads));
}

// Items of work shared statically: thread `index` of `count` takes items
// [items * index / count, items * (index + 1) / count).
template <class Body>
void for_each_item(ThreadPool& pool, int threads, int64_t items, Body&& body) {
    pool.run(threads, [&](int index, int count) {
        for (int64_t item = items * index / count; item < items * (index + 1) / count; ++item) body(index, item);
    });
}

// How a batch of products is cut into blocks: each product into row_parts x col_parts blocks of
// whole register tiles; item i is block i % blocks_per_product() of product i / blocks_per_product().
struct GemmPlan {
    int64_t M, N, tile_rows, tile_cols, row_tiles, col_tiles, batch_count;
    int64_t row_parts, col_parts;
    int threads;

    int64_t blocks_per_product() const { return row_parts * col_parts; }
    int64_t items() const { return batch_count * blocks_per_product(); }
    int64_t max_rows() const { return std::min(M, ceil_div(row_tiles, row_parts) * tile_rows); }
    int64_t max_cols() const { return std::min(N, ceil_div(col_tiles, col_parts) * tile_cols); }
    SgemmBlock block(int64_t item) const {
        const int64_t part = item % blocks_per_product();
        const int64_t i = part / col_parts;
        const int64_t j = part % col_parts;
        return {item / blocks_per_product(), std::min(M, row_tiles * i / row_parts * tile_rows),
                std::min(M, row_tiles * (i + 1) / row_parts * tile_rows), std::min(N, col_tiles * j / col_parts * tile_cols),
                std::min(N, col_tiles * (j + 1) / col_parts * tile_cols)};
    }
};

// Packing one element of A or B costs about as much as this many multiply-adds.
constexpr double kPackCost = 16.0;

// The cut whose busiest thread does the least: its blocks' multiply-adds plus the packing of
// their rows of A and columns of B. A batch of at least as many products as threads stays whole
// (one product per item); a single product is cut into about one block per thread.
GemmPlan plan_gemm(const SgemmBatch& p, const SgemmKernels& kernels, const ThreadPool& pool) {
    const int threads = useful_threads(pool, static_cast<double>(p.batch_count) * static_cast<double>(p.M) *
                                                 static_cast<double>(p.N) * static_cast<double>(p.K));
    GemmPlan best{p.M, p.N, kernels.tile_rows, kernels.tile_cols, ceil_div(p.M, kernels.tile_rows),
                  ceil_div(p.N, kernels.tile_cols), p.batch_count, 1, 1, threads};
    double best_cost = 0.0;
    for (int64_t row_parts = 1; row_parts <= std::min<int64_t>(threads, best.row_tiles); ++row_parts) {
        for (int64_t col_parts = 1; row_parts * col_parts <= threads && col_parts <= best.col_tiles; ++col_parts) {
            GemmPlan plan = best;
            plan.row_parts = row_parts;
            plan.col_parts = col_parts;
            const double rows = static_cast<double>(ceil_div(plan.row_tiles, row_parts) * plan.tile_rows);
            const double cols = static_cast<double>(ceil_div(plan.col_tiles, col_parts) * plan.tile_cols);
            const double items_per_thread = static_cast<double>(ceil_div(plan.items(), threads));
            const double cost = items_per_thread * (rows * cols + kPackCost * (rows + cols));
            if (best_cost == 0.0 || cost < best_cost) {
                best = plan;
                best_cost = cost;
            }
        }
    }
    best.threads = static_cast<int>(std::min<int64_t>(threads, best.items()));
    return best;
}

void gemm_parallel(const SgemmKernels& kernels, ne_context& context, const SgemmBatch& p) {
    const GemmPlan plan = plan_gemm(p, kernels, *context.pool);
    const int64_t floats_per_thread = kernels.gemm_workspace_floats(plan.max_rows(), plan.max_cols(), p.K);
    const Scratch scratch(context, checked_multiply(floats_per_thread * int64_t{sizeof(float)}, plan.threads, "GEMM scratch memory"));
    for_each_item(*context.pool, plan.threads, plan.items(), [&](int thread, int64_t item) {
        kernels.gemm(p, plan.block(item), scratch.as<float>() + thread * floats_per_thread);
    });
}

// A product with one row (M = 1) or one column (N = 1) of C as y = alpha * W x + beta * y.
SgemvBatch as_matrix_vector(const SgemmBatch& p) {
    if (p.M == 1) {
        // y = C's row, x = op(A)'s row, W(n, k) = op(B)[k, n]
        return {.batch_count = p.batch_count, .length = p.N, .K = p.K, .alpha = p.alpha, .beta = p.beta,
                .w = p.b, .ldw = p.ldb, .w_batch_stride = p.b_batch_stride, .w_rows_are_k = p.transpose_b,
                .x = p.a, .x_stride = p.transpose_a ? p.lda : 1, .x_batch_stride = p.a_batch_stride,
                .y = p.c, .y_stride = 1, .y_batch_stride = p.c_batch_stride};
    }
    // y = C's column, x = op(B)'s column, W(m, k) = op(A)[m, k]
    return {.batch_count = p.batch_count, .length = p.M, .K = p.K, .alpha = p.alpha, .beta = p.beta,
            .w = p.a, .ldw = p.lda, .w_batch_stride = p.a_batch_stride, .w_rows_are_k = !p.transpose_a,
            .x = p.b, .x_stride = p.transpose_b ? 1 : p.ldb, .x_batch_stride = p.b_batch_stride,
            .y = p.c, .y_stride = p.ldc, .y_batch_stride = p.c_batch_stride};
}

void gemv_parallel(const SgemmKernels& kernels, ne_context& context, const SgemvBatch& g) {
    const int threads = useful_threads(*context.pool, static_cast<double>(g.batch_count) * static_cast<double>(g.length) *
                                                          static_cast<double>(g.K));
    // Each product's y is cut into `parts` shares of whole units, the fewest that keep the
    // busiest thread's share smallest.
    const int64_t units = ceil_div(g.length, kernels.gemv_unit);
    int64_t parts = 1;
    int64_t best_cost = 0;
    for (int64_t candidate = 1; candidate <= std::min<int64_t>(threads, units); ++candidate) {
        const int64_t cost = ceil_div(g.batch_count * candidate, threads) * ceil_div(units, candidate);
        if (best_cost == 0 || cost < best_cost) {
            parts = candidate;
            best_cost = cost;
        }
    }
    const int64_t items = g.batch_count * parts;
    const int used_threads = static_cast<int>(std::min<int64_t>(threads, items));
    const int64_t floats_per_thread = kernels.gemv_workspace_floats(g.K);
    const Scratch scratch(context, checked_multiply(floats_per_thread * int64_t{sizeof(float)}, used_threads, "GEMV scratch memory"));
    for_each_item(*context.pool, used_threads, items, [&](int thread, int64_t item) {
        const int64_t part = item % parts;
        const int64_t begin = std::min(g.length, units * part / parts * kernels.gemv_unit);
        const int64_t end = std::min(g.length, units * (part + 1) / parts * kernels.gemv_unit);
        if (begin < end) kernels.gemv(g, item / parts, begin, end, scratch.as<float>() + thread * floats_per_thread);
    });
}

// ==========================================================================================
// Dispatch
// ==========================================================================================

// The SIMD kernels of the context's level, or nullptr for the scalar reference.
const SgemmKernels* simd_kernels(const ne_context& context) {
    switch (context.simd_level) {
        case NE_SIMD_LEVEL_AVX512: return &avx512::sgemm_kernels;
        case NE_SIMD_LEVEL_AVX2: return &avx2::sgemm_kernels;
        default: return nullptr;
    }
}

}  // namespace

void sgemm_batched(ne_context& context, const SgemmBatch& batch) {
    if (batch.batch_count <= 0 || batch.M <= 0 || batch.N <= 0) return;
    const SgemmKernels* kernels = simd_kernels(context);
    if (kernels == nullptr || batch.K <= 0) sgemm_batched_reference(batch);
    else if (batch.M == 1 || batch.N == 1) gemv_parallel(*kernels, context, as_matrix_vector(batch));
    else gemm_parallel(*kernels, context, batch);
}

void sgemm(ne_context& context, bool transpose_a, bool transpose_b, int64_t M, int64_t N, int64_t K, float alpha,
           const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
    sgemm_batched(context, {.transpose_a = transpose_a, .transpose_b = transpose_b, .batch_count = 1, .M = M, .N = N, .K = K,
                            .alpha = alpha, .beta = beta, .a = a, .lda = lda, .a_batch_stride = 0, .b = b, .ldb = ldb,
                            .b_batch_stride = 0, .c = c, .ldc = ldc, .c_batch_stride = 0, .tf32 = false});
}

}  // namespace ne::cpu

// ==========================================================================================
// Exported function
// ==========================================================================================

extern "C" {

NE_API ne_status ne_gemm(ne_context* context, const ne_gemm_params* params, const ne_tensor* a, const ne_tensor* b,
                         ne_tensor* c) {
    return ne::guard("ne_gemm", [&] {
        ne_context& ctx = ne::context_arg(context, "context");
        const ne_gemm_params checked = ne::params_arg(params, "params", sizeof(ne_gemm_params), ne_gemm_params{});
        const ne::cpu::SgemmBatch batch = ne::cpu::gemm_args(ctx, checked, a, b, c);
        if (ctx.device) ctx.device->gemm(batch, a->dtype, c->dtype);
        else ne::cpu::sgemm_batched(ctx, batch);
    });
}

}  // extern "C"
