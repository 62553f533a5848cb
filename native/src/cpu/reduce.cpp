// Reductions and softmax on the CPU: ne_sum_rows, ne_reduce_sum and ne_softmax_forward.
//
// Reads top-down: the scalar reference kernels (what NE_SIMD_LEVEL_SCALAR runs, on one thread),
// the validation of the C arguments, the dispatch to the multithreaded SIMD kernels of
// reduce_avx2.cpp / reduce_avx512.cpp (shared code in reduce_simd.inl), and the exported
// functions.
//
// What the arguments may be, where the header leaves it open:
// - x of ne_sum_rows and ne_softmax_forward: f32, rank >= 1, the last dimension contiguous and
//   the leading ones collapsing into rows of one stride. x of ne_reduce_sum: any rank, a scalar
//   included, laid out the same way.
// - out of ne_sum_rows: f32 of shape [C], contiguous; of ne_reduce_sum: f32 of shape [] or [1];
//   of ne_softmax_forward: x's shape, rows laid out as x's are allowed to be.
// - accumulate and squares: 0 or 1.
// - Aliasing: the softmax's out may be the very same view as x; otherwise no output overlaps x.
//
// Order of the sums. Results depend on the SIMD level but never on the thread count:
// - ne_sum_rows: rows are summed in float per chunk of kChunkRows rows (longer chunks beyond
//   kMaxChunks of them), then the chunks in order; out receives the total, or out + total. The
//   scalar reference sums all rows in order, one chunk.
// - ne_reduce_sum: elements (or their squares, exact in double) are summed in double per chunk
//   of kSumChunk elements in row-major order, then the chunks in order; out receives
//   (float) total, or (float) ((double) out + total). The scalar reference sums all elements in
//   order, one chunk.
// - ne_softmax_forward: per row, max, then e = exp(x - max) and their float sum, then
//   out = e * (1 / sum); a row whose max is -infinity (all -infinity) is all 0.
#include "reduce.hpp"

#include "elementwise.hpp"
#include "small_ops.hpp"

#include <cmath>
#include <cstring>

namespace ne::cpu {
namespace {

// ------------------------------------------------------------------------------------------
// Scalar reference
// ------------------------------------------------------------------------------------------

double sum_reference(const float* x, int64_t count) {
    double total = 0.0;
    for (int64_t i = 0; i < count; ++i) total += static_cast<double>(x[i]);
    return total;
}

double sum_squares_reference(const float* x, int64_t count) {
    double total = 0.0;
    for (int64_t i = 0; i < count; ++i) total += static_cast<double>(x[i]) * static_cast<double>(x[i]);
    return total;
}

void softmax_reference(const float* x, float* out, int64_t count) {
    float max = -INFINITY;
    for (int64_t i = 0; i < count; ++i) max = std::fmax(max, x[i]);
    if (max == -INFINITY) {
        for (int64_t i = 0; i < count; ++i) out[i] = 0.0f;
        return;
    }
    float total = 0.0f;
    for (int64_t i = 0; i < count; ++i) {
        out[i] = std::exp(x[i] - max);
        total += out[i];
    }
    const float scale = 1.0f / total;
    for (int64_t i = 0; i < count; ++i) out[i] *= scale;
}

constexpr ReduceKernels kReferenceKernels{sum_reference, sum_squares_reference, softmax_reference};

const ReduceKernels& reduce_kernels_for(ne_simd_level level) {
    switch (level) {
        case NE_SIMD_LEVEL_AVX512: return avx512::reduce_kernels;
        case NE_SIMD_LEVEL_AVX2: return avx2::reduce_kernels;
        default: return kReferenceKernels;
    }
}

// ------------------------------------------------------------------------------------------
// Validation
// ------------------------------------------------------------------------------------------

using small_ops::element_rows;
using small_ops::f32_arg;
using small_ops::flag_arg;

struct SumRowsArgs {
    int64_t N;
    int64_t C;
    const float* x;
    int64_t x_stride;
    float* out;  // [C]
    bool accumulate;
};

SumRowsArgs sum_rows_args(const ne_context& context, const ne_tensor* x_arg, const ne_tensor* out_arg, int32_t accumulate) {
    const ne_tensor& x = f32_arg(x_arg, "x", context);
    const ne_tensor& out = f32_arg(out_arg, "out", context);
    const bool accumulating = flag_arg(accumulate, "accumulate");
    const RowMatrix rows = row_matrix(x, "x");
    expect_shape(out, {rows.cols}, "out");
    expect_contiguous(out, "out");
    expect_no_overlap(out, "out", x, "x");
    return {rows.rows, rows.cols, data_of<float>(x), rows.row_stride, data_of<float>(out), accumulating};
}

struct ReduceSumArgs {
    int64_t rows;
    int64_t cols;
    const float* x;
    int64_t x_stride;
    bool squares;
    float* out;  // one element
    bool accumulate;
};

ReduceSumArgs reduce_sum_args(const ne_context& context, const ne_tensor* x_arg, int32_t squares, const ne_tensor* out_arg,
                              int32_t accumulate) {
    const ne_tensor& x = f32_arg(x_arg, "x", context);
    const bool squaring = flag_arg(squares, "squares");
    const ne_tensor& out = f32_arg(out_arg, "out", context);
    const bool accumulating = flag_arg(accumulate, "accumulate");
    RowMatrix rows = element_rows(x, "x");
    small_ops::expect_one_element(out, "out");
    expect_no_overlap(out, "out", x, "x");
    if (rows.row_stride == rows.cols) {  // back-to-back rows: one row
        rows.cols *= rows.rows;
        rows.rows = 1;
        rows.row_stride = rows.cols;
    }
    return {rows.rows, rows.cols, data_of<float>(x), rows.row_stride, squaring, data_of<float>(out), accumulating};
}

struct SoftmaxArgs {
    int64_t N;
    int64_t C;
    const float* x;
    int64_t x_stride;
    float* out;
    int64_t out_stride;
};

SoftmaxArgs softmax_args(const ne_context& context, const ne_tensor* x_arg, const ne_tensor* out_arg) {
    const ne_tensor& x = f32_arg(x_arg, "x", context);
    const ne_tensor& out = f32_arg(out_arg, "out", context);
    const RowMatrix x_rows = row_matrix(x, "x");
    small_ops::expect_shape_of(out, "out", x, "x");
    const RowMatrix out_rows = row_matrix(out, "out");
    small_ops::expect_separate(out, "out", x, "x", true);
    return {x_rows.rows, x_rows.cols, data_of<float>(x), x_rows.row_stride, data_of<float>(out), out_rows.row_stride};
}

// ------------------------------------------------------------------------------------------
// Dispatch
// ------------------------------------------------------------------------------------------

using small_ops::kMinElementsPerThread;
using small_ops::parallel_for;

// ne_sum_rows: rows are summed per chunk of kChunkRows rows, longer for inputs of more than
// kMaxChunks chunks so that the partial sums (chunks x C floats) stay below 1/32 of the input.
constexpr int64_t kChunkRows = 32;
constexpr int64_t kMaxChunks = 256;

// ne_reduce_sum: elements are summed per chunk of kSumChunk (64 KiB of floats).
constexpr int64_t kSumChunk = int64_t{1} << 14;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

void run_sum_rows(ne_context& context, const SumRowsArgs& args) {
    if (context.device) {
        context.device->row_reduce({RowReduceOp::sum_rows, args.N, args.C, {args.x, args.x_stride}, {args.out, args.C}, false,
                                    args.accumulate});
        return;
    }
    const ElementwiseKernels& kernels = elementwise_kernels_for(context.simd_level);
    const int64_t N = args.N, C = args.C;
    const int64_t chunk_rows =
        context.simd_level == NE_SIMD_LEVEL_SCALAR ? N : std::max(kChunkRows, ceil_div(N, kMaxChunks));
    const int64_t chunk_count = ceil_div(N, chunk_rows);
    const Scratch scratch(context, chunk_count * C * static_cast<int64_t>(sizeof(float)));
    float* partials = scratch.as<float>();

    const int64_t min_chunks = std::max<int64_t>(1, kMinElementsPerThread / (chunk_rows * C));
    parallel_for(context, chunk_count, min_chunks, [&](int64_t chunk_begin, int64_t chunk_end) {
        for (int64_t k = chunk_begin; k < chunk_end; ++k) {
            float* partial = partials + k * C;
            std::memset(partial, 0, static_cast<size_t>(C) * sizeof(float));
            for (int64_t n = k * chunk_rows; n < std::min(N, (k + 1) * chunk_rows); ++n) {
                kernels.add(partial, args.x + n * args.x_stride, partial, C);
            }
        }
    });
    // The chunks in order, then into out: accumulating adds exactly the total a
    // non-accumulating call writes.
    const int64_t min_columns = std::max<int64_t>(small_ops::kLineFloats, kMinElementsPerThread / chunk_count);
    parallel_for(context, C, min_columns, [&](int64_t begin, int64_t end) {
        const int64_t count = end - begin;
        for (int64_t k = 1; k < chunk_count; ++k) kernels.add(partials + begin, partials + k * C + begin, partials + begin, count);
        if (args.accumulate) {
            kernels.add(args.out + begin, partials + begin, args.out + begin, count);
        } else {
            std::memcpy(args.out + begin, partials + begin, static_cast<size_t>(count) * sizeof(float));
        }
    });
}

void run_reduce_sum(ne_context& context, const ReduceSumArgs& args) {
    if (context.device) {
        context.device->row_reduce({RowReduceOp::reduce_sum, args.rows, args.cols, {args.x, args.x_stride}, {args.out, 1},
                                    args.squares, args.accumulate});
        return;
    }
    const ReduceKernels& kernels = reduce_kernels_for(context.simd_level);
    const auto sum = args.squares ? kernels.sum_squares : kernels.sum;
    const int64_t total = args.rows * args.cols;
    const int64_t chunk = context.simd_level == NE_SIMD_LEVEL_SCALAR ? total : kSumChunk;
    const int64_t chunk_count = ceil_div(total, chunk);
    const Scratch scratch(context, chunk_count * static_cast<int64_t>(sizeof(double)));
    double* partials = scratch.as<double>();

    parallel_for(context, chunk_count, std::max<int64_t>(1, kMinElementsPerThread / chunk), [&](int64_t begin, int64_t end) {
        for (int64_t k = begin; k < end; ++k) {
            double partial = 0.0;
            small_ops::for_each_segment(args.cols, k * chunk, std::min(total, (k + 1) * chunk),
                                        [&](int64_t row, int64_t col, int64_t count) {
                                            partial += sum(args.x + row * args.x_stride + col, count);
                                        });
            partials[k] = partial;
        }
    });
    double result = args.accumulate ? static_cast<double>(*args.out) : 0.0;
    double chunks_total = 0.0;
    for (int64_t k = 0; k < chunk_count; ++k) chunks_total += partials[k];
    result += chunks_total;
    *args.out = static_cast<float>(result);
}

void run_softmax(ne_context& context, const SoftmaxArgs& args) {
    if (context.device) {
        context.device->row_reduce({RowReduceOp::softmax, args.N, args.C, {args.x, args.x_stride}, {args.out, args.out_stride},
                                    false, false});
        return;
    }
    const ReduceKernels& kernels = reduce_kernels_for(context.simd_level);
    parallel_for(context, args.N, std::max<int64_t>(1, kMinElementsPerThread / args.C), [&](int64_t begin, int64_t end) {
        for (int64_t n = begin; n < end; ++n) kernels.softmax(args.x + n * args.x_stride, args.out + n * args.out_stride, args.C);
    });
}

}  // namespace
}  // namespace ne::cpu

// ------------------------------------------------------------------------------------------
// Exported functions
// ------------------------------------------------------------------------------------------

extern "C" {

NE_API ne_status ne_sum_rows(ne_context* context, const ne_tensor* x, ne_tensor* out, int32_t accumulate) {
    return ne::guard("ne_sum_rows", [&] {
        ne_context& ctx = ne::context_arg(context, "context");
        const auto args = ne::cpu::sum_rows_args(ctx, x, out, accumulate);
        ne::cpu::run_sum_rows(ctx, args);
    });
}

NE_API ne_status ne_reduce_sum(ne_context* context, const ne_tensor* x, int32_t squares, ne_tensor* out,
                               int32_t accumulate) {
    return ne::guard("ne_reduce_sum", [&] {
        ne_context& ctx = ne::context_arg(context, "context");
        const auto args = ne::cpu::reduce_sum_args(ctx, x, squares, out, accumulate);
        ne::cpu::run_reduce_sum(ctx, args);
    });
}

NE_API ne_status ne_softmax_forward(ne_context* context, const ne_tensor* x, ne_tensor* out) {
    return ne::guard("ne_softmax_forward", [&] {
        ne_context& ctx = ne::context_arg(context, "context");
        const auto args = ne::cpu::softmax_args(ctx, x, out);
        ne::cpu::run_softmax(ctx, args);
    });
}

}  // extern "C"
