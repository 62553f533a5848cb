// Element-wise ops on the CPU: ne_add, ne_axpby, ne_gelu_forward/backward and
// ne_dropout_forward/backward.
//
// Reads top-down: the scalar reference kernels (what NE_SIMD_LEVEL_SCALAR runs, on one thread),
// the validation of the C arguments, the dispatch to the multithreaded SIMD kernels of
// elementwise_avx2.cpp / elementwise_avx512.cpp (shared code in elementwise_simd.inl), and the
// exported functions.
//
// What the arguments may be, where the header leaves it open:
// - Tensors are f32 of any rank, a scalar included: the last dimension contiguous, the leading
//   ones collapsing into rows of one stride (views with padded rows are fine). Operands of one
//   shape must have exactly that shape.
// - ne_add: b has a's shape, or rank >= 1 and the shape of a's last b.rank dimensions.
// - Aliasing: an output may be the very same view as an input of its shape (out = a, or b when
//   not broadcast; y = x; dx = x or dy; out = x; dx = dout); any other overlap of an output
//   with an argument is NE_STATUS_INVALID_ARGUMENT.
// - ne_axpby takes any alpha and beta, with IEEE arithmetic (beta = 0 never reads y).
// - Dropout: probability in [0, 1); any seed.
//
// Results per element do not depend on the thread count or on where a thread's range begins
// (vector tails run the same code as full vectors). add, axpby and dropout give the same bits
// at every SIMD level; GELU differs between levels in the last bits (vectorized exp, fused
// multiply-adds).
//
// The dropout mask, for reproduction by other backends. Element i of the tensor (its flat
// row-major index, whatever the strides) is kept when hash(seed, i) >= threshold, with, in
// uint64 arithmetic modulo 2^64:
//   z = seed + (i + 1) * 0x9e3779b97f4a7c15
//   z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
//   z = (z ^ (z >> 27)) * 0x94d049bb133111eb
//   z = z ^ (z >> 31)
//   hash = (uint32) (z >> 32)
//   threshold = (uint32) floor(probability * 2^32)   (exact in double: the f32 probability < 1)
// that is, the upper half of output number i + 1 of SplitMix64 seeded with `seed`. A kept
// element is multiplied by scale = 1.0f / (1.0f - probability), computed in f32; a dropped one
// is 0, even when it is infinite or NaN. P(keep) = 1 - threshold / 2^32, within 2^-32 of
// 1 - probability.
#include "elementwise.hpp"

#include "small_ops.hpp"

#include <cmath>

namespace ne::cpu {
namespace {

// ------------------------------------------------------------------------------------------
// Scalar reference
// ------------------------------------------------------------------------------------------

void add_reference(const float* a, const float* b, float* out, int64_t count) {
    for (int64_t i = 0; i < count; ++i) out[i] = a[i] + b[i];
}

// One fused multiply-add, so that every SIMD level (and a CUDA port) can give the same bits.
void axpby_reference(float alpha, const float* x, float beta, float* y, int64_t count) {
    if (beta == 0.0f) {
        for (int64_t i = 0; i < count; ++i) y[i] = alpha * x[i];
    } else {
        for (int64_t i = 0; i < count; ++i) y[i] = std::fma(alpha, x[i], beta * y[i]);
    }
}

// GELU through 0.5 (1 + tanh(u)) = sigmoid(2u), with t = exp(-2|u|) in (0, 1] and
// q = 1 / (1 + t): sigmoid(2u) = q for u >= 0 and t q below (u has x's sign), and its
// derivative s (1 - s) = t q^2. Neither overflows nor cancels for any x, as 1 + tanh(u) does
// where tanh(u) is near -1 (x below -3 or so).
struct GeluTerms {
    float x2;
    float s;   // sigmoid(2u)
    float ds;  // s (1 - s)
};

GeluTerms gelu_terms(float x) {
    const float x2 = x * x;
    const float u = kGeluScale * x * (1.0f + kGeluCubic * x2);
    const float t = std::exp(-2.0f * std::fabs(u));
    const float q = 1.0f / (1.0f + t);
    return {x2, x >= 0.0f ? q : t * q, t * q * q};
}

void gelu_forward_reference(const float* x, float* y, int64_t count) {
    for (int64_t i = 0; i < count; ++i) y[i] = x[i] * gelu_terms(x[i]).s;
}

// GELU'(x) = s + 2 x s (1 - s) du/dx, du/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2).
void gelu_backward_reference(const float* x, const float* dy, float* dx, int64_t count) {
    for (int64_t i = 0; i < count; ++i) {
        const GeluTerms g = gelu_terms(x[i]);
        const float du = 2.0f * kGeluScale * (1.0f + 3.0f * kGeluCubic * g.x2);
        dx[i] = dy[i] * (g.s + x[i] * g.ds * du);
    }
}

// The dropout hash (see the top of this file).
uint32_t dropout_hash(uint64_t seed, uint64_t index) {
    uint64_t z = seed + (index + 1) * kSplitMixGamma;
    z = (z ^ (z >> 30)) * kSplitMixMultiplier1;
    z = (z ^ (z >> 27)) * kSplitMixMultiplier2;
    z ^= z >> 31;
    return static_cast<uint32_t>(z >> 32);
}

void dropout_reference(const DropoutMask& mask, uint64_t first_index, const float* x, float* out, int64_t count) {
    for (int64_t i = 0; i < count; ++i) {
        const bool keep = dropout_hash(mask.seed, first_index + static_cast<uint64_t>(i)) >= mask.threshold;
        out[i] = keep ? x[i] * mask.scale : 0.0f;
    }
}

constexpr ElementwiseKernels kReferenceKernels{add_reference, axpby_reference, gelu_forward_reference,
                                               gelu_backward_reference, dropout_reference};

// ------------------------------------------------------------------------------------------
// Validation
// ------------------------------------------------------------------------------------------

using small_ops::element_rows;
using small_ops::expect_separate;
using small_ops::expect_shape_of;
using small_ops::Extent;
using small_ops::f32_arg;
using small_ops::merge_contiguous_rows;
using small_ops::Operand;
using small_ops::operand;
using small_ops::run_segments;

struct AddArgs {
    Extent extent;
    int64_t b_rows;  // b's rows repeat over a's: a's row r meets b's row r % b_rows
    Operand<const float> a, b;
    Operand<float> out;
};

// b has rank >= 1 and the shape of a's last b.rank dimensions (all of them: a's shape).
bool is_trailing_shape(const ne_tensor& b, const ne_tensor& a) {
    if (b.rank < 1 || b.rank > a.rank) return false;
    const int32_t skipped = a.rank - b.rank;
    for (int32_t i = 0; i < b.rank; ++i) {
        if (b.shape[i] != a.shape[skipped + i]) return false;
    }
    return true;
}

AddArgs add_args(const ne_context& context, const ne_tensor* a_arg, const ne_tensor* b_arg, const ne_tensor* out_arg) {
    const ne_tensor& a = f32_arg(a_arg, "a", context);
    const ne_tensor& b = f32_arg(b_arg, "b", context);
    const ne_tensor& out = f32_arg(out_arg, "out", context);
    const RowMatrix a_rows = element_rows(a, "a");
    if (!is_trailing_shape(b, a) && !(a.rank == 0 && b.rank == 0)) {
        fail(NE_STATUS_SHAPE_MISMATCH, "argument 'b': expected shape ", shape_string(a),
             " (the shape of 'a') or the shape of its trailing dimensions, got ", shape_string(b));
    }
    const bool broadcast = b.rank < a.rank;
    const RowMatrix b_rows = element_rows(b, "b");
    expect_shape_of(out, "out", a, "a");
    const RowMatrix out_rows = element_rows(out, "out");
    expect_separate(out, "out", a, "a", true);
    expect_separate(out, "out", b, "b", !broadcast);

    AddArgs args{{a_rows.rows, a_rows.cols}, b_rows.rows, operand<const float>(a, a_rows), operand<const float>(b, b_rows),
                 operand<float>(out, out_rows)};
    // A group of b_rows rows of a and out lies back to back like b's rows: one row of them.
    if (args.a.row_stride == args.extent.cols && args.b.row_stride == args.extent.cols &&
        args.out.row_stride == args.extent.cols) {
        args.extent.cols *= args.b_rows;
        args.extent.rows /= args.b_rows;
        args.b_rows = 1;
        args.a.row_stride = args.b.row_stride = args.out.row_stride = args.extent.cols;
    }
    return args;
}

struct UnaryArgs {
    Extent extent;
    Operand<const float> x;
    Operand<float> y;
};

// y = f(x) element-wise, x and y of one shape; y may be x.
UnaryArgs unary_args(const ne_context& context, const ne_tensor* x_arg, const char* x_name, const ne_tensor* y_arg,
                     const char* y_name) {
    const ne_tensor& x = f32_arg(x_arg, x_name, context);
    const ne_tensor& y = f32_arg(y_arg, y_name, context);
    const RowMatrix x_rows = element_rows(x, x_name);
    expect_shape_of(y, y_name, x, x_name);
    const RowMatrix y_rows = element_rows(y, y_name);
    expect_separate(y, y_name, x, x_name, true);
    UnaryArgs args{{x_rows.rows, x_rows.cols}, operand<const float>(x, x_rows), operand<float>(y, y_rows)};
    merge_contiguous_rows(args.extent, args.x, args.y);
    return args;
}

struct GeluBackwardArgs {
    Extent extent;
    Operand<const float> x, dy;
    Operand<float> dx;
};

GeluBackwardArgs gelu_backward_args(const ne_context& context, const ne_tensor* x_arg, const ne_tensor* dy_arg,
                                    const ne_tensor* dx_arg) {
    const ne_tensor& x = f32_arg(x_arg, "x", context);
    const ne_tensor& dy = f32_arg(dy_arg, "dy", context);
    const ne_tensor& dx = f32_arg(dx_arg, "dx", context);
    const RowMatrix x_rows = element_rows(x, "x");
    expect_shape_of(dy, "dy", x, "x");
    const RowMatrix dy_rows = element_rows(dy, "dy");
    expect_shape_of(dx, "dx", x, "x");
    const RowMatrix dx_rows = element_rows(dx, "dx");
    expect_separate(dx, "dx", x, "x", true);
    expect_separate(dx, "dx", dy, "dy", true);
    GeluBackwardArgs args{{x_rows.rows, x_rows.cols}, operand<const float>(x, x_rows), operand<const float>(dy, dy_rows),
                          operand<float>(dx, dx_rows)};
    merge_contiguous_rows(args.extent, args.x, args.dy, args.dx);
    return args;
}

DropoutMask dropout_mask_arg(const ne_dropout_params* params) {
    const ne_dropout_params p = params_arg(params, "params", sizeof(ne_dropout_params), ne_dropout_params{});
    if (!(p.probability >= 0.0f && p.probability < 1.0f)) {
        fail(NE_STATUS_INVALID_ARGUMENT, "argument 'params': probability is ", p.probability, "; expected a value in [0, 1)");
    }
    const double threshold = std::floor(static_cast<double>(p.probability) * 4294967296.0);
    return {p.seed, static_cast<uint32_t>(threshold), 1.0f / (1.0f - p.probability)};
}

// ------------------------------------------------------------------------------------------
// Dispatch
// ------------------------------------------------------------------------------------------

// The launch of an element-wise op on a device: a = x, b = y of the CPU's operands.
ElementwiseLaunch device_launch(ElementwiseOp op, const Extent& extent, const Operand<const float>& a,
                                const Operand<const float>& b, int64_t b_rows, const Operand<float>& out) {
    ElementwiseLaunch launch{};
    launch.op = op;
    launch.rows = extent.rows;
    launch.cols = extent.cols;
    launch.a = {a.data, a.row_stride};
    launch.b = {b.data, b.row_stride};
    launch.b_rows = b_rows;
    launch.out = {out.data, out.row_stride};
    return launch;
}

void run_add(ne_context& context, const AddArgs& args) {
    if (context.device) {
        context.device->elementwise(device_launch(ElementwiseOp::add, args.extent, args.a, args.b, args.b_rows, args.out));
        return;
    }
    const ElementwiseKernels& kernels = elementwise_kernels_for(context.simd_level);
    run_segments(context, args.extent, [&](int64_t row, int64_t col, int64_t count) {
        kernels.add(args.a.at(row, col), args.b.at(row % args.b_rows, col), args.out.at(row, col), count);
    });
}

void run_axpby(ne_context& context, float alpha, float beta, const UnaryArgs& args) {
    if (context.device) {
        ElementwiseLaunch launch = device_launch(ElementwiseOp::axpby, args.extent, args.x, {nullptr, 0}, 1, args.y);
        launch.alpha = alpha;
        launch.beta = beta;
        context.device->elementwise(launch);
        return;
    }
    const ElementwiseKernels& kernels = elementwise_kernels_for(context.simd_level);
    run_segments(context, args.extent, [&](int64_t row, int64_t col, int64_t count) {
        kernels.axpby(alpha, args.x.at(row, col), beta, args.y.at(row, col), count);
    });
}

void run_gelu_forward(ne_context& context, const UnaryArgs& args) {
    if (context.device) {
        context.device->elementwise(device_launch(ElementwiseOp::gelu_forward, args.extent, args.x, {nullptr, 0}, 1, args.y));
        return;
    }
    const ElementwiseKernels& kernels = elementwise_kernels_for(context.simd_level);
    run_segments(context, args.extent, [&](int64_t row, int64_t col, int64_t count) {
        kernels.gelu_forward(args.x.at(row, col), args.y.at(row, col), count);
    });
}

void run_gelu_backward(ne_context& context, const GeluBackwardArgs& args) {
    if (context.device) {
        context.device->elementwise(device_launch(ElementwiseOp::gelu_backward, args.extent, args.x, args.dy, 1, args.dx));
        return;
    }
    const ElementwiseKernels& kernels = elementwise_kernels_for(context.simd_level);
    run_segments(context, args.extent, [&](int64_t row, int64_t col, int64_t count) {
        kernels.gelu_backward(args.x.at(row, col), args.dy.at(row, col), args.dx.at(row, col), count);
    });
}

// Forward (x -> out) and backward (dout -> dx) alike: elements of one index meet one mask bit.
void run_dropout(ne_context& context, const DropoutMask& mask, const UnaryArgs& args) {
    if (context.device) {
        ElementwiseLaunch launch = device_launch(ElementwiseOp::dropout, args.extent, args.x, {nullptr, 0}, 1, args.y);
        launch.mask = mask;
        context.device->elementwise(launch);
        return;
    }
    const ElementwiseKernels& kernels = elementwise_kernels_for(context.simd_level);
    run_segments(context, args.extent, [&](int64_t row, int64_t col, int64_t count) {
        const auto first_index = static_cast<uint64_t>(row * args.extent.cols + col);
        kernels.dropout(mask, first_index, args.x.at(row, col), args.y.at(row, col), count);
    });
}

}  // namespace

const ElementwiseKernels& elementwise_kernels_for(ne_simd_level level) {
    switch (level) {
        case NE_SIMD_LEVEL_AVX512: return avx512::elementwise_kernels;
        case NE_SIMD_LEVEL_AVX2: return avx2::elementwise_kernels;
        default: return kReferenceKernels;
    }
}

}  // namespace ne::cpu

// ------------------------------------------------------------------------------------------
// Exported functions
// ------------------------------------------------------------------------------------------

extern "C" {

NE_API ne_status ne_add(ne_context* context, const ne_tensor* a, const ne_tensor* b, ne_tensor* out) {
    return ne::guard("ne_add", [&] {
        ne_context& ctx = ne::context_arg(context, "context");
        const auto args = ne::cpu::add_args(ctx, a, b, out);
        ne::cpu::run_add(ctx, args);
    });
}

NE_API ne_status ne_axpby(ne_context* context, float alpha, const ne_tensor* x, float beta, ne_tensor* y) {
    return ne::guard("ne_axpby", [&] {
        ne_context& ctx = ne::context_arg(context, "context");
        const auto args = ne::cpu::unary_args(ctx, x, "x", y, "y");
        ne::cpu::run_axpby(ctx, alpha, beta, args);
    });
}

NE_API ne_status ne_gelu_forward(ne_context* context, const ne_tensor* x, ne_tensor* y) {
    return ne::guard("ne_gelu_forward", [&] {
        ne_context& ctx = ne::context_arg(context, "context");
        const auto args = ne::cpu::unary_args(ctx, x, "x", y, "y");
        ne::cpu::run_gelu_forward(ctx, args);
    });
}

NE_API ne_status ne_gelu_backward(ne_context* context, const ne_tensor* x, const ne_tensor* dy, ne_tensor* dx) {
    return ne::guard("ne_gelu_backward", [&] {
        ne_context& ctx = ne::context_arg(context, "context");
        const auto args = ne::cpu::gelu_backward_args(ctx, x, dy, dx);
        ne::cpu::run_gelu_backward(ctx, args);
    });
}

NE_API ne_status ne_dropout_forward(ne_context* context, const ne_dropout_params* params, const ne_tensor* x,
                                    ne_tensor* out) {
    return ne::guard("ne_dropout_forward", [&] {
        ne_context& ctx = ne::context_arg(context, "context");
        const ne::cpu::DropoutMask mask = ne::cpu::dropout_mask_arg(params);
        const auto args = ne::cpu::unary_args(ctx, x, "x", out, "out");
        ne::cpu::run_dropout(ctx, mask, args);
    });
}

NE_API ne_status ne_dropout_backward(ne_context* context, const ne_dropout_params* params, const ne_tensor* dout,
                                     ne_tensor* dx) {
    return ne::guard("ne_dropout_backward", [&] {
        ne_context& ctx = ne::context_arg(context, "context");
        const ne::cpu::DropoutMask mask = ne::cpu::dropout_mask_arg(params);
        const auto args = ne::cpu::unary_args(ctx, dout, "dout", dx, "dx");
        ne::cpu::run_dropout(ctx, mask, args);
    });
}

}  // extern "C"
