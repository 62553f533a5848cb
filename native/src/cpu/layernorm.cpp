// Fused residual-add + LayerNorm / RMSNorm on the CPU, forward and backward.
//
// Reads top-down: the scalar reference kernels (what NE_SIMD_LEVEL_SCALAR runs, on one thread),
// the validation of the C arguments, the dispatch to the multithreaded SIMD kernels of
// layernorm_avx2.cpp / layernorm_avx512.cpp, and the exported functions.
//
// What the arguments may be, where the header leaves it open:
// - [N,C] tensors (x, residual, y, sum; dy, ds, s, dx): f32, rank >= 1, the last dimension
//   contiguous and the leading ones collapsing into rows of one stride (views with padded rows
//   are fine). Each must have the N rows and C channels of the first one (x, or dy), whatever
//   its rank.
// - gamma, beta, dgamma, dbeta: f32 of shape [C]; mean, rstd: f32 of shape [N] (rank 1); all
//   contiguous.
// - mean and rstd of the LayerNorm forward: both or neither (NE_STATUS_INVALID_ARGUMENT).
// - Aliasing: y may be x, sum may be x or residual, dx may be dy or ds, each as the very same
//   view; any other overlap of an output with another argument is NE_STATUS_INVALID_ARGUMENT.
#include "layernorm.hpp"

#include "core/validate.hpp"

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <vector>

namespace ne::cpu {
namespace {

enum class Norm { layer, rms };

// ------------------------------------------------------------------------------------------
// Scalar reference, in the style of llm.c. Each kernel handles rows [row_begin, row_end) with
// the signature of its SIMD counterparts; float accumulation throughout.
// ------------------------------------------------------------------------------------------

void layernorm_forward_reference(const NormForwardArgs& a, int64_t row_begin, int64_t row_end) {
    const int64_t C = a.C;
    std::vector<float> s(static_cast<size_t>(C));
    for (int64_t n = row_begin; n < row_end; ++n) {
        const float* x = a.x + n * a.x_stride;
        const float* residual = a.residual ? a.residual + n * a.residual_stride : nullptr;
        float* y = a.y + n * a.y_stride;

        // s = x + residual, read in full before any output is written: y may be x, and sum
        // may be x or residual.
        for (int64_t c = 0; c < C; ++c) s[c] = residual ? x[c] + residual[c] : x[c];

        // Corrected two-pass mean and variance. The first estimate of the mean carries the
        // rounding error of a sum of large values when the row sits on a large offset;
        // d = s - estimate is then exact, and mean(d) corrects the estimate. var = mean(d^2) -
        // mean(d)^2 subtracts two small numbers, not two huge ones as E[s^2] - E[s]^2 would.
        float total = 0.0f;
        for (int64_t c = 0; c < C; ++c) total += s[c];
        const float estimate = total / static_cast<float>(C);
        float d_sum = 0.0f;
        float d_square_sum = 0.0f;
        for (int64_t c = 0; c < C; ++c) {
            const float d = s[c] - estimate;
            d_sum += d;
            d_square_sum += d * d;
        }
        const float correction = d_sum / static_cast<float>(C);
        const float variance = std::max(0.0f, d_square_sum / static_cast<float>(C) - correction * correction);
        const float rstd = 1.0f / std::sqrt(variance + a.epsilon);

        for (int64_t c = 0; c < C; ++c) {
            const float normalized = (s[c] - estimate - correction) * rstd;
            y[c] = a.beta ? normalized * a.gamma[c] + a.beta[c] : normalized * a.gamma[c];
        }
        if (a.sum) std::copy(s.begin(), s.end(), a.sum + n * a.sum_stride);
        if (a.mean) {
            a.mean[n] = estimate + correction;
            a.rstd[n] = rstd;
        }
    }
}

void rmsnorm_forward_reference(const NormForwardArgs& a, int64_t row_begin, int64_t row_end) {
    const int64_t C = a.C;
    std::vector<float> s(static_cast<size_t>(C));
    for (int64_t n = row_begin; n < row_end; ++n) {
        const float* x = a.x + n * a.x_stride;
        const float* residual = a.residual ? a.residual + n * a.residual_stride : nullptr;
        float* y = a.y + n * a.y_stride;

        for (int64_t c = 0; c < C; ++c) s[c] = residual ? x[c] + residual[c] : x[c];

        float square_sum = 0.0f;
        for (int64_t c = 0; c < C; ++c) square_sum += s[c] * s[c];
        const float rstd = 1.0f / std::sqrt(square_sum / static_cast<float>(C) + a.epsilon);

        for (int64_t c = 0; c < C; ++c) y[c] = s[c] * rstd * a.gamma[c];
        if (a.sum) std::copy(s.begin(), s.end(), a.sum + n * a.sum_stride);
        if (a.rstd) a.rstd[n] = rstd;
    }
}

// With dnorm = dy * gamma and xhat = (s - mean) * rstd (RMSNorm: s * rstd), the gradient of
// y = xhat * gamma + beta reaching s is
//   LayerNorm: dx = rstd * (dnorm - mean(dnorm) - xhat * mean(dnorm * xhat))
//   RMSNorm:   dx = rstd * (dnorm - xhat * mean(dnorm * xhat))
// plus ds, the gradient reaching s from its other uses; dgamma = sum dy * xhat, dbeta = sum dy.
template <Norm kNorm>
void backward_reference(const NormBackwardArgs& a, int64_t row_begin, int64_t row_end, float* dgamma_partial,
                        float* dbeta_partial) {
    const int64_t C = a.C;
    if (dgamma_partial) std::fill(dgamma_partial, dgamma_partial + C, 0.0f);
    if (dbeta_partial) std::fill(dbeta_partial, dbeta_partial + C, 0.0f);
    for (int64_t n = row_begin; n < row_end; ++n) {
        const float* dy = a.dy + n * a.dy_stride;
        const float* ds = a.ds ? a.ds + n * a.ds_stride : nullptr;
        const float* s = a.s + n * a.s_stride;
        float* dx = a.dx + n * a.dx_stride;
        const float mean = kNorm == Norm::layer ? a.mean[n] : 0.0f;
        const float rstd = a.rstd[n];

        float dnorm_mean = 0.0f;
        float dnorm_xhat_mean = 0.0f;
        for (int64_t c = 0; c < C; ++c) {
            const float xhat = (s[c] - mean) * rstd;
            const float dnorm = dy[c] * a.gamma[c];
            dnorm_mean += dnorm;
            dnorm_xhat_mean += dnorm * xhat;
        }
        dnorm_mean = kNorm == Norm::layer ? dnorm_mean / static_cast<float>(C) : 0.0f;
        dnorm_xhat_mean /= static_cast<float>(C);

        // dx may be dy or ds: each element of both is read before dx's is written.
        for (int64_t c = 0; c < C; ++c) {
            const float xhat = (s[c] - mean) * rstd;
            const float dy_c = dy[c];
            const float dnorm = dy_c * a.gamma[c];
            const float gradient = (dnorm - dnorm_mean - xhat * dnorm_xhat_mean) * rstd;
            dx[c] = ds ? gradient + ds[c] : gradient;
            if (dgamma_partial) dgamma_partial[c] += dy_c * xhat;
            if (dbeta_partial) dbeta_partial[c] += dy_c;
        }
    }
}

void layernorm_backward_reference(const NormBackwardArgs& a, int64_t row_begin, int64_t row_end,
                                  float* dgamma_partial, float* dbeta_partial) {
    backward_reference<Norm::layer>(a, row_begin, row_end, dgamma_partial, dbeta_partial);
}

void rmsnorm_backward_reference(const NormBackwardArgs& a, int64_t row_begin, int64_t row_end,
                                float* dgamma_partial, float*) {
    backward_reference<Norm::rms>(a, row_begin, row_end, dgamma_partial, nullptr);
}

// ------------------------------------------------------------------------------------------
// Validation
// ------------------------------------------------------------------------------------------

ne_norm_params norm_params_arg(const ne_norm_params* params, bool backward) {
    const ne_norm_params defaults{sizeof(ne_norm_params), 1e-5f, 0};
    const ne_norm_params p = params_arg(params, "params", sizeof(ne_norm_params), defaults);
    if (!std::isfinite(p.epsilon) || p.epsilon <= 0.0f) {
        fail(NE_STATUS_INVALID_ARGUMENT, "argument 'params': epsilon is ", p.epsilon, "; expected a finite value > 0");
    }
    if (backward && p.accumulate != 0 && p.accumulate != 1) {
        fail(NE_STATUS_INVALID_ARGUMENT, "argument 'params': accumulate is ", p.accumulate, "; expected 0 or 1");
    }
    return p;
}

const ne_tensor& f32_arg(const ne_tensor* tensor, const char* name, const ne_context& context) {
    const ne_tensor& t = tensor_arg(tensor, name);
    expect_context(t, context, name);
    expect_dtype(t, NE_DTYPE_F32, name);
    return t;
}

const ne_tensor* optional_f32_arg(const ne_tensor* tensor, const char* name, const ne_context& context) {
    return tensor == nullptr ? nullptr : &f32_arg(tensor, name, context);
}

// An [N,C] tensor as rows; nullptr stays an absent argument (zero stride).
int64_t row_stride_arg(const ne_tensor* tensor, const char* name, int64_t N, int64_t C) {
    if (tensor == nullptr) return 0;
    const RowMatrix rows = row_matrix(*tensor, name);
    if (rows.rows != N || rows.cols != C) {
        fail(NE_STATUS_SHAPE_MISMATCH, "argument '", name, "': expected ", N, " rows of ", C, " channels (shape ",
             shape_string({N, C}), " or any shape whose leading dimensions multiply to ", N, "), got shape ",
             shape_string(*tensor));
    }
    return rows.row_stride;
}

void expect_vector(const ne_tensor* tensor, const char* name, int64_t length) {
    if (tensor == nullptr) return;
    expect_shape(*tensor, {length}, name);
    expect_contiguous(*tensor, name);
}

struct Arg {
    const ne_tensor* tensor;  // nullptr for an absent optional argument
    const char* name;
};

// An output must not share memory with any of `others`, and may share it with one of `may_be`
// only by being the very same view: the kernels read each element before writing it, which is
// safe for an exact alias and nothing else.
void expect_separate(Arg output, std::initializer_list<Arg> others, std::initializer_list<Arg> may_be = {}) {
    if (output.tensor == nullptr) return;
    for (const Arg& other : others) {
        if (other.tensor) expect_no_overlap(*output.tensor, output.name, *other.tensor, other.name);
    }
    for (const Arg& input : may_be) {
        if (input.tensor && !same_view(*output.tensor, *input.tensor)) {
            expect_no_overlap(*output.tensor, output.name, *input.tensor, input.name);
        }
    }
}

template <class T>
T* data_or_null(const ne_tensor* tensor) {
    return tensor ? data_of<T>(*tensor) : nullptr;
}

NormForwardArgs forward_args(Norm norm, const ne_context& context, const ne_norm_params& params,
                             const ne_tensor* x_arg, const ne_tensor* residual_arg, const ne_tensor* gamma_arg,
                             const ne_tensor* beta_arg, const ne_tensor* y_arg, const ne_tensor* sum_arg,
                             const ne_tensor* mean_arg, const ne_tensor* rstd_arg) {
    const ne_tensor& x = f32_arg(x_arg, "x", context);
    const ne_tensor* residual = optional_f32_arg(residual_arg, "residual", context);
    const ne_tensor& gamma = f32_arg(gamma_arg, "gamma", context);
    const ne_tensor* beta = optional_f32_arg(beta_arg, "beta", context);
    const ne_tensor& y = f32_arg(y_arg, "y", context);
    const ne_tensor* sum = optional_f32_arg(sum_arg, "sum", context);
    const ne_tensor* mean = optional_f32_arg(mean_arg, "mean", context);
    const ne_tensor* rstd = optional_f32_arg(rstd_arg, "rstd", context);
    if (norm == Norm::layer && (mean == nullptr) != (rstd == nullptr)) {
        fail(NE_STATUS_INVALID_ARGUMENT, "arguments 'mean' and 'rstd': expected both or neither, got only '",
             mean ? "mean" : "rstd", "'");
    }

    const RowMatrix rows = row_matrix(x, "x");
    NormForwardArgs args{};
    args.N = rows.rows;
    args.C = rows.cols;
    args.x_stride = rows.row_stride;
    args.residual_stride = row_stride_arg(residual, "residual", args.N, args.C);
    expect_vector(&gamma, "gamma", args.C);
    expect_vector(beta, "beta", args.C);
    args.y_stride = row_stride_arg(&y, "y", args.N, args.C);
    args.sum_stride = row_stride_arg(sum, "sum", args.N, args.C);
    expect_vector(mean, "mean", args.N);
    expect_vector(rstd, "rstd", args.N);

    const Arg in_x{&x, "x"}, in_residual{residual, "residual"}, in_gamma{&gamma, "gamma"}, in_beta{beta, "beta"};
    const Arg out_y{&y, "y"}, out_sum{sum, "sum"}, out_mean{mean, "mean"}, out_rstd{rstd, "rstd"};
    expect_separate(out_y, {in_residual, in_gamma, in_beta, out_sum, out_mean, out_rstd}, {in_x});
    expect_separate(out_sum, {in_gamma, in_beta, out_mean, out_rstd}, {in_x, in_residual});
    expect_separate(out_mean, {in_x, in_residual, in_gamma, in_beta, out_rstd});
    expect_separate(out_rstd, {in_x, in_residual, in_gamma, in_beta});

    args.x = data_of<float>(x);
    args.residual = data_or_null<const float>(residual);
    args.gamma = data_of<float>(gamma);
    args.beta = data_or_null<const float>(beta);
    args.y = data_of<float>(y);
    args.sum = data_or_null<float>(sum);
    args.mean = data_or_null<float>(mean);
    args.rstd = data_or_null<float>(rstd);
    args.epsilon = params.epsilon;
    return args;
}

struct BackwardOutputs {
    NormBackwardArgs args;
    float* dgamma;  // [C] or nullptr
    float* dbeta;   // [C] or nullptr
};

BackwardOutputs backward_args(Norm norm, const ne_context& context, const ne_tensor* dy_arg, const ne_tensor* ds_arg,
                              const ne_tensor* s_arg, const ne_tensor* gamma_arg, const ne_tensor* mean_arg,
                              const ne_tensor* rstd_arg, const ne_tensor* dx_arg, const ne_tensor* dgamma_arg,
                              const ne_tensor* dbeta_arg) {
    const ne_tensor& dy = f32_arg(dy_arg, "dy", context);
    const ne_tensor* ds = optional_f32_arg(ds_arg, "ds", context);
    const ne_tensor& s = f32_arg(s_arg, "s", context);
    const ne_tensor& gamma = f32_arg(gamma_arg, "gamma", context);
    const ne_tensor* mean = norm == Norm::layer ? &f32_arg(mean_arg, "mean", context) : nullptr;
    const ne_tensor& rstd = f32_arg(rstd_arg, "rstd", context);
    const ne_tensor& dx = f32_arg(dx_arg, "dx", context);
    const ne_tensor* dgamma = optional_f32_arg(dgamma_arg, "dgamma", context);
    const ne_tensor* dbeta = optional_f32_arg(dbeta_arg, "dbeta", context);

    const RowMatrix rows = row_matrix(dy, "dy");
    BackwardOutputs out{};
    NormBackwardArgs& args = out.args;
    args.N = rows.rows;
    args.C = rows.cols;
    args.dy_stride = rows.row_stride;
    args.ds_stride = row_stride_arg(ds, "ds", args.N, args.C);
    args.s_stride = row_stride_arg(&s, "s", args.N, args.C);
    expect_vector(&gamma, "gamma", args.C);
    expect_vector(mean, "mean", args.N);
    expect_vector(&rstd, "rstd", args.N);
    args.dx_stride = row_stride_arg(&dx, "dx", args.N, args.C);
    expect_vector(dgamma, "dgamma", args.C);
    expect_vector(dbeta, "dbeta", args.C);

    const Arg in_dy{&dy, "dy"}, in_ds{ds, "ds"}, in_s{&s, "s"}, in_gamma{&gamma, "gamma"}, in_mean{mean, "mean"},
        in_rstd{&rstd, "rstd"};
    const Arg out_dx{&dx, "dx"}, out_dgamma{dgamma, "dgamma"}, out_dbeta{dbeta, "dbeta"};
    expect_separate(out_dx, {in_s, in_gamma, in_mean, in_rstd, out_dgamma, out_dbeta}, {in_dy, in_ds});
    expect_separate(out_dgamma, {in_dy, in_ds, in_s, in_gamma, in_mean, in_rstd, out_dbeta});
    expect_separate(out_dbeta, {in_dy, in_ds, in_s, in_gamma, in_mean, in_rstd});

    args.dy = data_of<float>(dy);
    args.ds = data_or_null<const float>(ds);
    args.s = data_of<float>(s);
    args.gamma = data_of<float>(gamma);
    args.mean = data_or_null<const float>(mean);
    args.rstd = data_of<float>(rstd);
    args.dx = data_of<float>(dx);
    out.dgamma = data_or_null<float>(dgamma);
    out.dbeta = data_or_null<float>(dbeta);
    return out;
}

// ------------------------------------------------------------------------------------------
// Dispatch
// ------------------------------------------------------------------------------------------

// Waking a worker costs about as much as normalizing this many elements (10 to 20 us measured
// on a 2-core VM, where one thread normalizes 64 x 768 cached elements in about 20 us), so
// smaller inputs run on fewer threads.
constexpr int64_t kMinElementsPerThread = int64_t{1} << 16;

// The parameter gradients are summed per chunk of rows, then the chunks in index order, so
// their bits do not depend on how the rows are split among threads. Chunks are kChunkRows
// rows, longer for inputs of more than kMaxChunks chunks so that the partial sums (2 x chunks
// x C floats) stay below 1/16 of one [N,C] input.
constexpr int64_t kChunkRows = 32;
constexpr int64_t kMaxChunks = 256;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The pool's parallel_for; inline on the calling thread for the scalar reference.
template <class Body>
void parallel_for(ne_context& context, int64_t count, int64_t min_grain, Body&& body) {
    if (context.simd_level == NE_SIMD_LEVEL_SCALAR) {
        body(int64_t{0}, count);
    } else {
        context.pool->parallel_for(count, min_grain, body);
    }
}

using ForwardKernel = void (*)(const NormForwardArgs&, int64_t, int64_t);
using BackwardKernel = void (*)(const NormBackwardArgs&, int64_t, int64_t, float*, float*);

ForwardKernel forward_kernel(Norm norm, ne_simd_level level) {
    const bool layer = norm == Norm::layer;
    switch (level) {
        case NE_SIMD_LEVEL_AVX512: return layer ? avx512::layernorm_forward : avx512::rmsnorm_forward;
        case NE_SIMD_LEVEL_AVX2: return layer ? avx2::layernorm_forward : avx2::rmsnorm_forward;
        default: return layer ? layernorm_forward_reference : rmsnorm_forward_reference;
    }
}

BackwardKernel backward_kernel(Norm norm, ne_simd_level level) {
    if (norm == Norm::layer) {
        switch (level) {
            case NE_SIMD_LEVEL_AVX512: return avx512::layernorm_backward;
            case NE_SIMD_LEVEL_AVX2: return avx2::layernorm_backward;
            default: return layernorm_backward_reference;
        }
    }
    switch (level) {
        case NE_SIMD_LEVEL_AVX512:
            return [](const NormBackwardArgs& a, int64_t begin, int64_t end, float* dgamma_partial, float*) {
                avx512::rmsnorm_backward(a, begin, end, dgamma_partial);
            };
        case NE_SIMD_LEVEL_AVX2:
            return [](const NormBackwardArgs& a, int64_t begin, int64_t end, float* dgamma_partial, float*) {
                avx2::rmsnorm_backward(a, begin, end, dgamma_partial);
            };
        default: return rmsnorm_backward_reference;
    }
}

void run_forward(Norm norm, ne_context& context, const NormForwardArgs& args) {
    if (context.device) {
        context.device->norm_forward(norm == Norm::rms, args);
        return;
    }
    const ForwardKernel kernel = forward_kernel(norm, context.simd_level);
    parallel_for(context, args.N, std::max<int64_t>(1, kMinElementsPerThread / args.C),
                 [&](int64_t begin, int64_t end) { kernel(args, begin, end); });
}

// out = sum of the chunk partials in chunk order (added to out when accumulating). The sum is
// formed in the first chunk's row before it meets out, so accumulating adds exactly the value
// a non-accumulating call would have written.
void reduce_chunks(ne_context& context, float* partials, int64_t chunk_count, int64_t C, float* out, bool accumulate) {
    parallel_for(context, C, std::max<int64_t>(1, kMinElementsPerThread / chunk_count), [&](int64_t begin, int64_t end) {
        for (int64_t k = 1; k < chunk_count; ++k) {
            const float* chunk = partials + k * C;
            for (int64_t c = begin; c < end; ++c) partials[c] += chunk[c];
        }
        for (int64_t c = begin; c < end; ++c) out[c] = accumulate ? out[c] + partials[c] : partials[c];
    });
}

void run_backward(Norm norm, ne_context& context, const BackwardOutputs& outputs, bool accumulate) {
    const NormBackwardArgs& args = outputs.args;
    if (context.device) {
        context.device->norm_backward(norm == Norm::rms, args, outputs.dgamma, outputs.dbeta, accumulate);
        return;
    }
    const int64_t N = args.N, C = args.C;
    // The reference sums all rows as one chunk, on one thread.
    const int64_t chunk_rows =
        context.simd_level == NE_SIMD_LEVEL_SCALAR ? N : std::max(kChunkRows, ceil_div(N, kMaxChunks));
    const int64_t chunk_count = ceil_div(N, chunk_rows);

    const int64_t partial_rows = (outputs.dgamma ? chunk_count : 0) + (outputs.dbeta ? chunk_count : 0);
    const Scratch partials(context, partial_rows * C * static_cast<int64_t>(sizeof(float)));
    float* dgamma_partials = outputs.dgamma ? partials.as<float>() : nullptr;
    float* dbeta_partials = outputs.dbeta ? partials.as<float>() + (partial_rows - chunk_count) * C : nullptr;

    const BackwardKernel kernel = backward_kernel(norm, context.simd_level);
    const int64_t min_chunks = std::max<int64_t>(1, kMinElementsPerThread / (chunk_rows * C));
    parallel_for(context, chunk_count, min_chunks, [&](int64_t chunk_begin, int64_t chunk_end) {
        for (int64_t k = chunk_begin; k < chunk_end; ++k) {
            kernel(args, k * chunk_rows, std::min(N, (k + 1) * chunk_rows),
                   dgamma_partials ? dgamma_partials + k * C : nullptr, dbeta_partials ? dbeta_partials + k * C : nullptr);
        }
    });
    if (outputs.dgamma) reduce_chunks(context, dgamma_partials, chunk_count, C, outputs.dgamma, accumulate);
    if (outputs.dbeta) reduce_chunks(context, dbeta_partials, chunk_count, C, outputs.dbeta, accumulate);
}

}  // namespace
}  // namespace ne::cpu

// ------------------------------------------------------------------------------------------
// Exported functions
// ------------------------------------------------------------------------------------------

using ne::cpu::Norm;

extern "C" {

NE_API ne_status ne_layernorm_forward(ne_context* context, const ne_norm_params* params, const ne_tensor* x,
                                      const ne_tensor* residual, const ne_tensor* gamma, const ne_tensor* beta,
                                      ne_tensor* y, ne_tensor* sum, ne_tensor* mean, ne_tensor* rstd) {
    return ne::guard("ne_layernorm_forward", [&] {
        ne_context& ctx = ne::context_arg(context, "context");
        const ne_norm_params p = ne::cpu::norm_params_arg(params, false);
        const auto args = ne::cpu::forward_args(Norm::layer, ctx, p, x, residual, gamma, beta, y, sum, mean, rstd);
        ne::cpu::run_forward(Norm::layer, ctx, args);
    });
}

NE_API ne_status ne_layernorm_backward(ne_context* context, const ne_norm_params* params, const ne_tensor* dy,
                                       const ne_tensor* ds, const ne_tensor* s, const ne_tensor* gamma,
                                       const ne_tensor* mean, const ne_tensor* rstd, ne_tensor* dx,
                                       ne_tensor* dgamma, ne_tensor* dbeta) {
    return ne::guard("ne_layernorm_backward", [&] {
        ne_context& ctx = ne::context_arg(context, "context");
        const ne_norm_params p = ne::cpu::norm_params_arg(params, true);
        const auto outputs =
            ne::cpu::backward_args(Norm::layer, ctx, dy, ds, s, gamma, mean, rstd, dx, dgamma, dbeta);
        ne::cpu::run_backward(Norm::layer, ctx, outputs, p.accumulate == 1);
    });
}

NE_API ne_status ne_rmsnorm_forward(ne_context* context, const ne_norm_params* params, const ne_tensor* x,
                                    const ne_tensor* residual, const ne_tensor* gamma, ne_tensor* y,
                                    ne_tensor* sum, ne_tensor* rstd) {
    return ne::guard("ne_rmsnorm_forward", [&] {
        ne_context& ctx = ne::context_arg(context, "context");
        const ne_norm_params p = ne::cpu::norm_params_arg(params, false);
        const auto args = ne::cpu::forward_args(Norm::rms, ctx, p, x, residual, gamma, nullptr, y, sum, nullptr, rstd);
        ne::cpu::run_forward(Norm::rms, ctx, args);
    });
}

NE_API ne_status ne_rmsnorm_backward(ne_context* context, const ne_norm_params* params, const ne_tensor* dy,
                                     const ne_tensor* ds, const ne_tensor* s, const ne_tensor* gamma,
                                     const ne_tensor* rstd, ne_tensor* dx, ne_tensor* dgamma) {
    return ne::guard("ne_rmsnorm_backward", [&] {
        ne_context& ctx = ne::context_arg(context, "context");
        const ne_norm_params p = ne::cpu::norm_params_arg(params, true);
        const auto outputs =
            ne::cpu::backward_args(Norm::rms, ctx, dy, ds, s, gamma, nullptr, rstd, dx, dgamma, nullptr);
        ne::cpu::run_backward(Norm::rms, ctx, outputs, p.accumulate == 1);
    });
}

}  // extern "C"
