// Int8 quantization and the int8 GEMM on the CPU; the contract is in nativeengine.h.
//
// Reads top-down: the scalar references (what NE_SIMD_LEVEL_SCALAR runs, on one thread), argument
// validation, the drivers that split work across the context's threads and call the SIMD kernels
// of int8_avx2.cpp / int8_avx512.cpp, dispatch, and the exported functions.
//
// Non-finite input: quantizing NaN or infinity has no meaning (an infinite absmax would zero its
// whole group), so ne_quantize_int8 and ne_linear_int8 refuse it with NE_STATUS_INVALID_ARGUMENT,
// naming the first such element in row-major order, before writing any output. Dequantization and
// the GEMM epilogue take scales and biases as given: IEEE arithmetic propagates what they hold.
#include "cpu/int8.hpp"

#include "core/validate.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <limits>
#include <vector>

namespace ne::cpu {
namespace {

// ==========================================================================================
// Scalar references
// ==========================================================================================

// The constants of one quantization group (a row or a column). Every path computes them here and
// then q with one multiply per element, so that q is bitwise the same on every path.
struct GroupQuantization {
    float scale;     // absmax / 127; 0 for an all-zero group
    float inverse;   // 127 / absmax, one float division; 0 for an all-zero group
    float prescale;  // 1, or 2^64 for a group whose 127 / absmax overflows
};

// For absmax below 127 / FLT_MAX (about 3.7e-37), 127 / absmax overflows to infinity. Such a
// group is scaled by 2^64 first: exact for values that small, and 127 / (absmax * 2^64) is then
// finite even for the smallest subnormal, so q is still round(x * 127 / absmax).
GroupQuantization group_quantization(float absmax) {
    if (absmax == 0.0f) return {0.0f, 0.0f, 1.0f};
    const float scale = absmax / 127.0f;
    const float inverse = 127.0f / absmax;
    if (inverse <= FLT_MAX) return {scale, inverse, 1.0f};
    constexpr float kPrescale = 0x1p64f;
    return {scale, 127.0f / (absmax * kPrescale), kPrescale};
}

// clamp(round_half_even(x * 127 / absmax), -127, 127). nearbyint rounds to nearest even in the
// default floating-point environment, which the library requires (as vcvtps2dq does).
int8_t quantize_value(float x, const GroupQuantization& group) {
    const float rounded = std::nearbyint(x * group.prescale * group.inverse);
    return static_cast<int8_t>(std::clamp(rounded, -127.0f, 127.0f));
}

void quantize_reference(const QuantizeArgs& args) {
    const bool per_row = args.axis == QuantAxis::per_row;
    // absmax of each group: largest |x| of its row or column
    std::vector<float> absmax(static_cast<size_t>(per_row ? args.R : args.C), 0.0f);
    for (int64_t r = 0; r < args.R; ++r) {
        for (int64_t c = 0; c < args.C; ++c) {
            float& group_max = absmax[static_cast<size_t>(per_row ? r : c)];
            group_max = std::max(group_max, std::fabs(args.x[r * args.x_row_stride + c]));
        }
    }
    // scale = absmax / 127, and the inverse that maps absmax to 127
    std::vector<GroupQuantization> groups(absmax.size());
    for (size_t g = 0; g < groups.size(); ++g) {
        groups[g] = group_quantization(absmax[g]);
        args.scales[g] = groups[g].scale;
    }
    // q = round(x * inverse), clamped to the symmetric range [-127, 127]
    for (int64_t r = 0; r < args.R; ++r) {
        for (int64_t c = 0; c < args.C; ++c) {
            const GroupQuantization& group = groups[static_cast<size_t>(per_row ? r : c)];
            args.q[r * args.C + c] = quantize_value(args.x[r * args.x_row_stride + c], group);
        }
    }
}

void dequantize_reference(const DequantizeArgs& args) {
    const bool per_row = args.axis == QuantAxis::per_row;
    for (int64_t r = 0; r < args.R; ++r) {
        for (int64_t c = 0; c < args.C; ++c) {
            const float scale = args.scales[per_row ? r : c];
            args.x[r * args.x_row_stride + c] = static_cast<float>(args.q[r * args.C + c]) * scale;
        }
    }
}

// The float epilogue: (acc * a_scale) * b_scale, or fma(acc * a_scale, b_scale, bias) with a bias.
// The SIMD epilogues do the same operations in the same order, so the paths agree bitwise.
float scale_accumulator(int32_t acc, float a_scale, float b_scale, const float* bias) {
    const float scaled = static_cast<float>(acc) * a_scale;
    return bias == nullptr ? scaled * b_scale : std::fma(scaled, b_scale, *bias);
}

void gemm_reference(const GemmArgs& args) {
    for (int64_t m = 0; m < args.M; ++m) {
        const int8_t* a_row = args.a + m * args.a_row_stride;
        for (int64_t n = 0; n < args.N; ++n) {
            const int8_t* b_row = args.b + n * args.b_row_stride;
            // exact in int32: |acc| <= K * 128 * 128 <= 2^30 for K <= NE_INT8_GEMM_MAX_K
            int32_t acc = 0;
            for (int64_t k = 0; k < args.K; ++k) acc += int32_t{a_row[k]} * int32_t{b_row[k]};
            const int64_t offset = m * args.c_row_stride + n;
            if (args.float_output) {
                static_cast<float*>(args.c)[offset] =
                    scale_accumulator(acc, args.a_scales[m], args.b_scales[n], args.bias == nullptr ? nullptr : args.bias + n);
            } else {
                static_cast<int32_t*>(args.c)[offset] = acc;
            }
        }
    }
}

// ne_linear_int8: x [M,K] f32 is quantized per row into temporaries that become gemm.a and
// gemm.a_scales; w, w_scales, bias and y are gemm.b, gemm.b_scales, gemm.bias and gemm.c.
struct LinearArgs {
    const float* x;
    int64_t x_row_stride;
    GemmArgs gemm;
};

void linear_reference(const LinearArgs& args) {
    GemmArgs gemm = args.gemm;
    std::vector<int8_t> x_quantized(static_cast<size_t>(gemm.M * gemm.K));
    std::vector<float> x_scales(static_cast<size_t>(gemm.M));
    quantize_reference({QuantAxis::per_row, gemm.M, gemm.K, args.x, args.x_row_stride, x_quantized.data(), x_scales.data()});
    gemm.a = x_quantized.data();
    gemm.a_row_stride = gemm.K;
    gemm.a_scales = x_scales.data();
    gemm_reference(gemm);
}

// ==========================================================================================
// Validation
// ==========================================================================================

// The refusal of NaN and infinity (see the top of the file) in input `name` of `cols` columns,
// naming the first in row-major order: the host's check and a device's deferred one.
DescribeBadElement non_finite_input(const char* name, int64_t cols) {
    return [name, cols](int64_t index, uint32_t bits) {
        float value = 0.0f;
        std::memcpy(&value, &bits, sizeof value);
        return str("argument '", name, "' contains a non-finite value (", std::isnan(value) ? "nan" : "inf", ") ",
                   matrix_position(index, cols), "; expected finite values to quantize");
    };
}

void expect_finite(const float* x, int64_t rows, int64_t cols, int64_t row_stride, const char* name) {
    for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = 0; c < cols; ++c) {
            const float value = x[r * row_stride + c];
            if (!std::isfinite(value)) {
                uint32_t bits = 0;
                std::memcpy(&bits, &value, sizeof bits);
                fail(NE_STATUS_INVALID_ARGUMENT, non_finite_input(name, cols)(r * cols + c, bits));
            }
        }
    }
}

// By reference down to raw_enum: copying an out-of-range enum value is already undefined.
QuantAxis axis_arg(const ne_quant_axis& axis) {
    const int32_t raw = raw_enum(axis);
    if (raw == NE_QUANT_AXIS_PER_ROW) return QuantAxis::per_row;
    if (raw == NE_QUANT_AXIS_PER_COLUMN) return QuantAxis::per_column;
    fail(NE_STATUS_INVALID_ARGUMENT, "argument 'axis' is ", raw,
         ", not a valid ne_quant_axis; expected NE_QUANT_AXIS_PER_ROW (0) or NE_QUANT_AXIS_PER_COLUMN (1)");
}

// A 2-D tensor of `dtype` in `context` with contiguous rows (the row stride may exceed cols).
RowMatrix matrix_arg(const ne_tensor& tensor, const ne_context& context, ne_dtype dtype, const char* name) {
    expect_context(tensor, context, name);
    expect_dtype(tensor, dtype, name);
    if (tensor.rank != 2) {
        fail(NE_STATUS_SHAPE_MISMATCH, "argument '", name, "': expected a 2-D tensor, got shape ", shape_string(tensor));
    }
    return row_matrix(tensor, name);
}

// A contiguous f32 vector of `length` elements in `context`.
const float* vector_arg(const ne_tensor& tensor, const ne_context& context, int64_t length, const char* name) {
    expect_context(tensor, context, name);
    expect_dtype(tensor, NE_DTYPE_F32, name);
    expect_shape(tensor, {length}, name);
    expect_contiguous(tensor, name);
    return data_of<float>(tensor);
}

void expect_k_in_range(int64_t K) {
    if (K > NE_INT8_GEMM_MAX_K) {
        fail(NE_STATUS_OVERFLOW, "K = ", K, " exceeds NE_INT8_GEMM_MAX_K = ", static_cast<int64_t>(NE_INT8_GEMM_MAX_K),
             ", the largest K whose int32 accumulators cannot overflow; split K and add the partial products");
    }
}

QuantizeArgs quantize_args(const ne_context& context, const ne_quant_axis& axis, const ne_tensor* x_handle, ne_tensor* q_handle,
                           ne_tensor* scales_handle) {
    const QuantAxis quant_axis = axis_arg(axis);
    const ne_tensor& x = tensor_arg(x_handle, "x");
    const ne_tensor& q = tensor_arg(q_handle, "q");
    const ne_tensor& scales = tensor_arg(scales_handle, "scales");
    const RowMatrix x_matrix = matrix_arg(x, context, NE_DTYPE_F32, "x");
    const int64_t R = x_matrix.rows;
    const int64_t C = x_matrix.cols;
    expect_context(q, context, "q");
    expect_dtype(q, NE_DTYPE_I8, "q");
    expect_shape(q, {R, C}, "q");
    expect_contiguous(q, "q");
    vector_arg(scales, context, quant_axis == QuantAxis::per_row ? R : C, "scales");
    expect_no_overlap(q, "q", x, "x");
    expect_no_overlap(scales, "scales", x, "x");
    expect_no_overlap(scales, "scales", q, "q");
    return {quant_axis, R, C, data_of<float>(x), x_matrix.row_stride, data_of<int8_t>(q), data_of<float>(scales)};
}

DequantizeArgs dequantize_args(const ne_context& context, const ne_quant_axis& axis, const ne_tensor* q_handle,
                               const ne_tensor* scales_handle, ne_tensor* x_handle) {
    const QuantAxis quant_axis = axis_arg(axis);
    const ne_tensor& q = tensor_arg(q_handle, "q");
    const ne_tensor& scales = tensor_arg(scales_handle, "scales");
    const ne_tensor& x = tensor_arg(x_handle, "x");
    const RowMatrix q_matrix = matrix_arg(q, context, NE_DTYPE_I8, "q");
    expect_contiguous(q, "q");
    const int64_t R = q_matrix.rows;
    const int64_t C = q_matrix.cols;
    const float* scale_values = vector_arg(scales, context, quant_axis == QuantAxis::per_row ? R : C, "scales");
    const RowMatrix x_matrix = matrix_arg(x, context, NE_DTYPE_F32, "x");
    expect_shape(x, {R, C}, "x");
    expect_no_overlap(x, "x", q, "q");
    expect_no_overlap(x, "x", scales, "scales");
    return {quant_axis, R, C, data_of<int8_t>(q), scale_values, data_of<float>(x), x_matrix.row_stride};
}

GemmArgs gemm_args(const ne_context& context, const ne_tensor* a_handle, const ne_tensor* b_handle,
                   const ne_tensor* a_scales_handle, const ne_tensor* b_scales_handle, const ne_tensor* bias_handle,
                   ne_tensor* c_handle) {
    const ne_tensor& a = tensor_arg(a_handle, "a");
    const ne_tensor& b = tensor_arg(b_handle, "b");
    const ne_tensor& c = tensor_arg(c_handle, "c");
    const ne_tensor* a_scales = optional_tensor_arg(a_scales_handle, "a_scales");
    const ne_tensor* b_scales = optional_tensor_arg(b_scales_handle, "b_scales");
    const ne_tensor* bias = optional_tensor_arg(bias_handle, "bias");

    const RowMatrix a_matrix = matrix_arg(a, context, NE_DTYPE_I8, "a");
    const int64_t M = a_matrix.rows;
    const int64_t K = a_matrix.cols;
    const RowMatrix b_matrix = matrix_arg(b, context, NE_DTYPE_I8, "b");
    const int64_t N = b_matrix.rows;
    expect_shape(b, {N, K}, "b");

    expect_context(c, context, "c");
    if (c.dtype != NE_DTYPE_I32 && c.dtype != NE_DTYPE_F32) {
        fail(NE_STATUS_DTYPE_MISMATCH, "argument 'c': expected dtype i32 or f32, got ", dtype_name(c.dtype));
    }
    const bool float_output = c.dtype == NE_DTYPE_F32;
    expect_shape(c, {M, N}, "c");
    const RowMatrix c_matrix = row_matrix(c, "c");

    GemmArgs args{M, N, K, data_of<int8_t>(a), a_matrix.row_stride, data_of<int8_t>(b), b_matrix.row_stride,
                  data_of<unsigned char>(c), c_matrix.row_stride,
                  float_output, nullptr, nullptr, nullptr};
    if (float_output) {
        if (a_scales == nullptr) fail(NE_STATUS_NULL_POINTER, "argument 'a_scales' is NULL; expected f32 [M] scales for an f32 c");
        if (b_scales == nullptr) fail(NE_STATUS_NULL_POINTER, "argument 'b_scales' is NULL; expected f32 [N] scales for an f32 c");
        args.a_scales = vector_arg(*a_scales, context, M, "a_scales");
        args.b_scales = vector_arg(*b_scales, context, N, "b_scales");
        if (bias != nullptr) args.bias = vector_arg(*bias, context, N, "bias");
    } else {
        const char* given = a_scales != nullptr ? "a_scales" : (b_scales != nullptr ? "b_scales" : (bias != nullptr ? "bias" : nullptr));
        if (given != nullptr) {
            fail(NE_STATUS_INVALID_ARGUMENT, "argument '", given,
                 "' must be NULL for an i32 c, which receives the raw int32 accumulators");
        }
    }
    expect_k_in_range(K);
    expect_no_overlap(c, "c", a, "a");
    expect_no_overlap(c, "c", b, "b");
    if (a_scales != nullptr) expect_no_overlap(c, "c", *a_scales, "a_scales");
    if (b_scales != nullptr) expect_no_overlap(c, "c", *b_scales, "b_scales");
    if (bias != nullptr) expect_no_overlap(c, "c", *bias, "bias");
    return args;
}

LinearArgs linear_args(const ne_context& context, const ne_tensor* x_handle, const ne_tensor* w_handle,
                       const ne_tensor* w_scales_handle, const ne_tensor* bias_handle, ne_tensor* y_handle) {
    const ne_tensor& x = tensor_arg(x_handle, "x");
    const ne_tensor& w = tensor_arg(w_handle, "w");
    const ne_tensor& w_scales = tensor_arg(w_scales_handle, "w_scales");
    const ne_tensor* bias = optional_tensor_arg(bias_handle, "bias");
    const ne_tensor& y = tensor_arg(y_handle, "y");

    const RowMatrix x_matrix = matrix_arg(x, context, NE_DTYPE_F32, "x");
    const int64_t M = x_matrix.rows;
    const int64_t K = x_matrix.cols;
    const RowMatrix w_matrix = matrix_arg(w, context, NE_DTYPE_I8, "w");
    const int64_t N = w_matrix.rows;
    expect_shape(w, {N, K}, "w");
    const float* w_scale_values = vector_arg(w_scales, context, N, "w_scales");
    const float* bias_values = bias == nullptr ? nullptr : vector_arg(*bias, context, N, "bias");
    const RowMatrix y_matrix = matrix_arg(y, context, NE_DTYPE_F32, "y");
    expect_shape(y, {M, N}, "y");
    expect_k_in_range(K);
    expect_no_overlap(y, "y", x, "x");
    expect_no_overlap(y, "y", w, "w");
    expect_no_overlap(y, "y", w_scales, "w_scales");
    if (bias != nullptr) expect_no_overlap(y, "y", *bias, "bias");
    const GemmArgs gemm{M, N, K, nullptr, K, data_of<int8_t>(w), w_matrix.row_stride, data_of<float>(y), y_matrix.row_stride,
                        true, nullptr, w_scale_values, bias_values};
    return {data_of<float>(x), x_matrix.row_stride, gemm};
}

// ==========================================================================================
// Multithreaded drivers of the SIMD kernels
// ==========================================================================================

// Each thread's share of rows holds at least this many elements (64 KB of floats): smaller
// shares take less time than waking a worker.
constexpr int64_t kMinElementsPerTask = int64_t{1} << 14;
// Column shares of column_absmax: 64 floats, four cache lines, keep threads off each other's lines.
constexpr int64_t kMinColumnsPerTask = 64;

int64_t rows_per_task(int64_t cols) { return std::max<int64_t>(1, kMinElementsPerTask / cols); }

bool all_finite(const std::vector<float>& absmax) {
    return std::all_of(absmax.begin(), absmax.end(), [](float value) { return value <= FLT_MAX; });
}

// One row of a group whose 127 / absmax overflowed: rare, so the scalar reference does it.
void quantize_prescaled(const float* x, int64_t n, const GroupQuantization& group, int8_t* q) {
    for (int64_t i = 0; i < n; ++i) q[i] = quantize_value(x[i], group);
}

// Two passes over x, because nothing may be written before every value is known to be finite: the
// first finds each group's absmax (and any NaN or infinity), the second quantizes. Per row on
// 4096 x 1024 (Zen 3, 2 threads, shared machine) that is 9 to 11 GB/s counting x once and q,
// against 11.5 to 12.4 GB/s for memcpy counting its reads and writes.
void quantize_parallel(const Int8Kernels& kernels, ThreadPool& pool, const QuantizeArgs& args) {
    const bool per_row = args.axis == QuantAxis::per_row;
    const auto x_row = [&](int64_t r) { return args.x + r * args.x_row_stride; };
    const auto q_row = [&](int64_t r) { return args.q + r * args.C; };

    // Everything that can fail (allocations, non-finite input) happens before the first write.
    std::vector<float> absmax(static_cast<size_t>(per_row ? args.R : args.C));
    std::vector<GroupQuantization> groups(absmax.size());
    std::vector<float> column_inverse(per_row ? 0 : absmax.size());
    std::vector<int64_t> prescaled_columns;
    prescaled_columns.reserve(column_inverse.size());
    if (per_row) {
        pool.parallel_for(args.R, rows_per_task(args.C), [&](int64_t begin, int64_t end) {
            for (int64_t r = begin; r < end; ++r) absmax[static_cast<size_t>(r)] = kernels.absmax(x_row(r), args.C);
        });
    } else {
        pool.parallel_for(args.C, kMinColumnsPerTask, [&](int64_t begin, int64_t end) {
            kernels.column_absmax(args.x + begin, args.R, end - begin, args.x_row_stride, absmax.data() + begin);
        });
    }
    if (!all_finite(absmax)) expect_finite(args.x, args.R, args.C, args.x_row_stride, "x");
    for (size_t g = 0; g < groups.size(); ++g) groups[g] = group_quantization(absmax[g]);
    for (size_t c = 0; c < column_inverse.size(); ++c) {
        // The vector pass writes 0 into prescaled columns; the scalar fix-up below overwrites them.
        column_inverse[c] = groups[c].prescale == 1.0f ? groups[c].inverse : 0.0f;
        if (groups[c].prescale != 1.0f) prescaled_columns.push_back(static_cast<int64_t>(c));
    }

    for (size_t g = 0; g < groups.size(); ++g) args.scales[g] = groups[g].scale;
    pool.parallel_for(args.R, rows_per_task(args.C), [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) {
            if (per_row) {
                const GroupQuantization& group = groups[static_cast<size_t>(r)];
                if (group.prescale == 1.0f) kernels.quantize(x_row(r), args.C, group.inverse, q_row(r));
                else quantize_prescaled(x_row(r), args.C, group, q_row(r));
            } else {
                kernels.quantize_by_column(x_row(r), args.C, column_inverse.data(), q_row(r));
                for (int64_t c : prescaled_columns) q_row(r)[c] = quantize_value(x_row(r)[c], groups[static_cast<size_t>(c)]);
            }
        }
    });
}

void dequantize_parallel(const Int8Kernels& kernels, ThreadPool& pool, const DequantizeArgs& args) {
    pool.parallel_for(args.R, rows_per_task(args.C), [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) {
            const int8_t* q = args.q + r * args.C;
            float* x = args.x + r * args.x_row_stride;
            if (args.axis == QuantAxis::per_row) kernels.dequantize(q, args.C, args.scales[r], x);
            else kernels.dequantize_by_column(q, args.C, args.scales, x);
        }
    });
}

int64_t ceil_div(int64_t value, int64_t divisor) { return (value + divisor - 1) / divisor; }

// How C is split among threads: row_parts x col_parts blocks of whole register tiles, a static
// split, so each thread always gets the same block.
struct ThreadGrid {
    int64_t M, N, tile_rows, tile_cols, row_tiles, col_tiles;
    int row_parts, col_parts;

    int threads() const { return row_parts * col_parts; }
    int64_t max_rows() const { return std::min(M, ceil_div(row_tiles, row_parts) * tile_rows); }
    int64_t max_cols() const { return std::min(N, ceil_div(col_tiles, col_parts) * tile_cols); }
    GemmRange range(int index) const {
        const int64_t i = index / col_parts;
        const int64_t j = index % col_parts;
        return {std::min(M, row_tiles * i / row_parts * tile_rows), std::min(M, row_tiles * (i + 1) / row_parts * tile_rows),
                std::min(N, col_tiles * j / col_parts * tile_cols), std::min(N, col_tiles * (j + 1) / col_parts * tile_cols)};
    }
};

// The grid whose largest block costs least: its multiply-adds, plus the packing of its rows of A
// and columns of B, weighed at an estimated 16 multiply-adds per packed element. Tall activations
// get their rows split; a single row (decoding) gets its columns split.
ThreadGrid choose_thread_grid(const GemmArgs& args, const Int8Kernels& kernels, int threads) {
    const int64_t row_tiles = ceil_div(args.M, kernels.gemm_tile_rows);
    const int64_t col_tiles = ceil_div(args.N, kernels.gemm_tile_cols);
    ThreadGrid best{args.M, args.N, kernels.gemm_tile_rows, kernels.gemm_tile_cols, row_tiles, col_tiles, 1, 1};
    int64_t best_cost = std::numeric_limits<int64_t>::max();
    for (int row_parts = 1; row_parts <= threads && row_parts <= row_tiles; ++row_parts) {
        const int col_parts = static_cast<int>(std::min<int64_t>(threads / row_parts, col_tiles));
        ThreadGrid grid = best;
        grid.row_parts = row_parts;
        grid.col_parts = col_parts;
        const int64_t rows = ceil_div(row_tiles, row_parts) * kernels.gemm_tile_rows;
        const int64_t cols = ceil_div(col_tiles, col_parts) * kernels.gemm_tile_cols;
        const int64_t cost = rows * cols + 16 * (rows + cols);
        if (cost < best_cost) {
            best = grid;
            best_cost = cost;
        }
    }
    return best;
}

void gemm_parallel(const Int8Kernels& kernels, ne_context& context, const GemmArgs& args) {
    ThreadPool& pool = *context.pool;
    const ThreadGrid grid = choose_thread_grid(args, kernels, pool.size());
    // Whole cache lines per thread, so that threads' panels never share one.
    const int64_t bytes_per_thread = ceil_div(kernels.gemm_workspace_bytes(grid.max_rows(), grid.max_cols(), args.K), 64) * 64;
    const Scratch scratch(context, bytes_per_thread * grid.threads());
    pool.run(grid.threads(), [&](int index, int) {
        const GemmRange range = grid.range(index);
        if (range.m_begin < range.m_end && range.n_begin < range.n_end) {
            kernels.gemm(args, range, scratch.as<unsigned char>() + index * bytes_per_thread);
        }
    });
}

void linear_parallel(const Int8Kernels& kernels, ne_context& context, const LinearArgs& args) {
    ThreadPool& pool = *context.pool;
    GemmArgs gemm = args.gemm;
    const Scratch x_quantized_memory(context, gemm.M * gemm.K);
    int8_t* x_quantized = x_quantized_memory.as<int8_t>();
    std::vector<float> x_scales(static_cast<size_t>(gemm.M));
    std::vector<float> absmax(static_cast<size_t>(gemm.M));
    // One pass per row: absmax, then quantize while the row is still in L1.
    pool.parallel_for(gemm.M, rows_per_task(gemm.K), [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) {
            const float* x = args.x + r * args.x_row_stride;
            int8_t* q = x_quantized + r * gemm.K;
            const float row_max = kernels.absmax(x, gemm.K);
            absmax[static_cast<size_t>(r)] = row_max;
            if (!(row_max <= FLT_MAX)) continue;
            const GroupQuantization group = group_quantization(row_max);
            x_scales[static_cast<size_t>(r)] = group.scale;
            if (group.prescale == 1.0f) kernels.quantize(x, gemm.K, group.inverse, q);
            else quantize_prescaled(x, gemm.K, group, q);
        }
    });
    if (!all_finite(absmax)) expect_finite(args.x, gemm.M, gemm.K, args.x_row_stride, "x");
    gemm.a = x_quantized;
    gemm.a_row_stride = gemm.K;
    gemm.a_scales = x_scales.data();
    gemm_parallel(kernels, context, gemm);
}

// ==========================================================================================
// Dispatch
// ==========================================================================================

// The SIMD kernels of the context's level, or nullptr for the scalar references.
const Int8Kernels* simd_kernels(const ne_context& context) {
    switch (context.simd_level) {
        case NE_SIMD_LEVEL_AVX512: return &avx512::kernels;
        case NE_SIMD_LEVEL_AVX2: return &avx2::kernels;
        default: return nullptr;
    }
}

void run_quantize(ne_context& context, const QuantizeArgs& args) {
    if (context.device) {
        context.device->check_floats({args.x, args.R, args.C, args.x_row_stride, nullptr, false}, non_finite_input("x", args.C));
        context.device->quantize_int8(args);
    } else if (const Int8Kernels* kernels = simd_kernels(context)) {
        quantize_parallel(*kernels, *context.pool, args);
    } else {
        expect_finite(args.x, args.R, args.C, args.x_row_stride, "x");
        quantize_reference(args);
    }
}

void run_dequantize(ne_context& context, const DequantizeArgs& args) {
    if (context.device) context.device->dequantize_int8(args);
    else if (const Int8Kernels* kernels = simd_kernels(context)) dequantize_parallel(*kernels, *context.pool, args);
    else dequantize_reference(args);
}

void run_gemm(ne_context& context, const GemmArgs& args) {
    if (context.device) context.device->gemm_int8(args);
    else if (const Int8Kernels* kernels = simd_kernels(context)) gemm_parallel(*kernels, context, args);
    else gemm_reference(args);
}

void run_linear(ne_context& context, const LinearArgs& args) {
    if (context.device) {
        context.device->check_floats({args.x, args.gemm.M, args.gemm.K, args.x_row_stride, nullptr, false},
                                     non_finite_input("x", args.gemm.K));
        context.device->linear_int8(args.x, args.x_row_stride, args.gemm);
    } else if (const Int8Kernels* kernels = simd_kernels(context)) {
        linear_parallel(*kernels, context, args);
    } else {
        expect_finite(args.x, args.gemm.M, args.gemm.K, args.x_row_stride, "x");
        linear_reference(args);
    }
}

}  // namespace
}  // namespace ne::cpu

// ==========================================================================================
// Exported functions
// ==========================================================================================

extern "C" {

NE_API ne_status ne_quantize_int8(ne_context* context, ne_quant_axis axis, const ne_tensor* x, ne_tensor* q,
                                  ne_tensor* scales) {
    return ne::guard("ne_quantize_int8", [&] {
        ne_context& ctx = ne::context_arg(context, "context");
        ne::cpu::run_quantize(ctx, ne::cpu::quantize_args(ctx, axis, x, q, scales));
    });
}

NE_API ne_status ne_dequantize_int8(ne_context* context, ne_quant_axis axis, const ne_tensor* q,
                                    const ne_tensor* scales, ne_tensor* x) {
    return ne::guard("ne_dequantize_int8", [&] {
        ne_context& ctx = ne::context_arg(context, "context");
        ne::cpu::run_dequantize(ctx, ne::cpu::dequantize_args(ctx, axis, q, scales, x));
    });
}

NE_API ne_status ne_gemm_int8(ne_context* context, const ne_tensor* a, const ne_tensor* b, const ne_tensor* a_scales,
                              const ne_tensor* b_scales, const ne_tensor* bias, ne_tensor* c) {
    return ne::guard("ne_gemm_int8", [&] {
        ne_context& ctx = ne::context_arg(context, "context");
        ne::cpu::run_gemm(ctx, ne::cpu::gemm_args(ctx, a, b, a_scales, b_scales, bias, c));
    });
}

NE_API ne_status ne_linear_int8(ne_context* context, const ne_tensor* x, const ne_tensor* w, const ne_tensor* w_scales,
                                const ne_tensor* bias, ne_tensor* y) {
    return ne::guard("ne_linear_int8", [&] {
        ne_context& ctx = ne::context_arg(context, "context");
        ne::cpu::run_linear(ctx, ne::cpu::linear_args(ctx, x, w, w_scales, bias, y));
    });
}

}  // extern "C"
