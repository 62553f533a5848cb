// The fused AdamW step on the CPU: ne_adamw_step.
//
// Reads top-down: the scalar reference kernel (what NE_SIMD_LEVEL_SCALAR runs, on one thread),
// the validation of the C arguments, the dispatch to the multithreaded SIMD kernels of
// adamw_avx2.cpp / adamw_avx512.cpp (shared code in adamw_simd.inl), and the exported function.
//
// What the arguments may be, where the header leaves it open:
// - param, grad, m, v: f32 of one shape, any rank (a scalar included), each with a contiguous
//   last dimension and leading dimensions collapsing into rows of one stride. None may overlap
//   another.
// - grad_norm_squared: NULL, or an f32 tensor of shape [] or [1] that overlaps none of param, m
//   and v. It is read only with max_grad_norm > 0, where it is required (NE_STATUS_NULL_POINTER).
// - params: learning_rate finite and >= 0; beta1, beta2 in [0, 1); epsilon finite and > 0;
//   weight_decay finite and >= 0; step >= 1; grad_scale finite; max_grad_norm finite and >= 0.
//
// Arithmetic, for reproduction by other backends (every SIMD level gives these bits):
// once per call, in f32 unless stated:
//   clip = 1, or with max_grad_norm > 0:
//     ratio = max_grad_norm / (|grad_scale| * sqrt(grad_norm_squared))
//     clip = ratio < 1 ? ratio : 1     (a zero norm gives 1; a NaN ratio gives 1 too)
//   gradient_scale = grad_scale * clip
//   one_minus_beta1 = 1 - beta1, one_minus_beta2 = 1 - beta2
//   inverse_bias_correction1 = (float) (1.0 / (1.0 - pow((double) beta1, (double) step)))   (double)
//   inverse_bias_correction2 = (float) (1.0 / (1.0 - pow((double) beta2, (double) step)))   (double)
// then per element, each operation rounded to f32 (fma: one rounding), in this order:
//   g      = grad * gradient_scale
//   m      = fma(beta1, m, one_minus_beta1 * g)
//   v      = fma(beta2, v, one_minus_beta2 * (g * g))
//   m_hat  = m * inverse_bias_correction1
//   denom  = sqrt(v * inverse_bias_correction2) + epsilon
//   update = fma(weight_decay, param, m_hat / denom)
//   param  = fma(-learning_rate, update, param)
// This is PyTorch's AdamW (decoupled weight decay: param (1 - lr wd) - lr m_hat / denom, all
// from the old param), with the bias corrections applied as multiplications by their inverses.
#include "adamw.hpp"

#include "small_ops.hpp"

#include <cmath>

namespace ne::cpu {
namespace {

// ------------------------------------------------------------------------------------------
// Scalar reference
// ------------------------------------------------------------------------------------------

void adamw_step_reference(const AdamwConstants& k, float* param, const float* grad, float* m, float* v, int64_t count) {
    for (int64_t i = 0; i < count; ++i) {
        const float g = grad[i] * k.gradient_scale;
        m[i] = std::fma(k.beta1, m[i], k.one_minus_beta1 * g);
        v[i] = std::fma(k.beta2, v[i], k.one_minus_beta2 * (g * g));
        const float m_hat = m[i] * k.inverse_bias_correction1;
        const float denominator = std::sqrt(v[i] * k.inverse_bias_correction2) + k.epsilon;
        const float update = std::fma(k.weight_decay, param[i], m_hat / denominator);
        param[i] = std::fma(-k.learning_rate, update, param[i]);
    }
}

AdamwKernel adamw_kernel_for(ne_simd_level level) {
    switch (level) {
        case NE_SIMD_LEVEL_AVX512: return avx512::adamw_step;
        case NE_SIMD_LEVEL_AVX2: return avx2::adamw_step;
        default: return adamw_step_reference;
    }
}

// ------------------------------------------------------------------------------------------
// Validation
// ------------------------------------------------------------------------------------------

using small_ops::Extent;
using small_ops::f32_arg;
using small_ops::Operand;
using small_ops::operand;

void expect_finite_at_least(float value, float low, bool inclusive, const char* field) {
    if (!std::isfinite(value) || value < low || (!inclusive && value == low)) {
        fail(NE_STATUS_INVALID_ARGUMENT, "argument 'params': ", field, " is ", value, "; expected a finite value ",
             inclusive ? ">= " : "> ", low);
    }
}

void expect_decay_rate(float beta, const char* field) {
    if (!(beta >= 0.0f && beta < 1.0f)) {
        fail(NE_STATUS_INVALID_ARGUMENT, "argument 'params': ", field, " is ", beta, "; expected a value in [0, 1)");
    }
}

ne_adamw_params adamw_params_arg(const ne_adamw_params* params) {
    const ne_adamw_params p = params_arg(params, "params", sizeof(ne_adamw_params), ne_adamw_params{});
    expect_finite_at_least(p.learning_rate, 0.0f, true, "learning_rate");
    expect_decay_rate(p.beta1, "beta1");
    expect_decay_rate(p.beta2, "beta2");
    expect_finite_at_least(p.epsilon, 0.0f, false, "epsilon");
    expect_finite_at_least(p.weight_decay, 0.0f, true, "weight_decay");
    if (p.step < 1) {
        fail(NE_STATUS_INVALID_ARGUMENT, "argument 'params': step is ", p.step, "; expected >= 1 (the first step is 1)");
    }
    if (!std::isfinite(p.grad_scale)) {
        fail(NE_STATUS_INVALID_ARGUMENT, "argument 'params': grad_scale is ", p.grad_scale, "; expected a finite value");
    }
    expect_finite_at_least(p.max_grad_norm, 0.0f, true, "max_grad_norm");
    return p;
}

struct AdamwArgs {
    Extent extent;
    Operand<float> param;
    Operand<const float> grad;
    Operand<float> m, v;
    const float* grad_norm_squared;  // nullptr: no clipping
};

AdamwArgs adamw_args(const ne_context& context, const ne_adamw_params& p, const ne_tensor* param_arg,
                     const ne_tensor* grad_arg, const ne_tensor* m_arg, const ne_tensor* v_arg,
                     const ne_tensor* grad_norm_squared_arg) {
    const ne_tensor& param = f32_arg(param_arg, "param", context);
    const ne_tensor& grad = f32_arg(grad_arg, "grad", context);
    const ne_tensor& m = f32_arg(m_arg, "m", context);
    const ne_tensor& v = f32_arg(v_arg, "v", context);
    const bool clipping = p.max_grad_norm > 0.0f;
    if (clipping && grad_norm_squared_arg == nullptr) {
        fail(NE_STATUS_NULL_POINTER, "argument 'grad_norm_squared' is NULL; expected a one-element tensor, as params.max_grad_norm is ",
             p.max_grad_norm, " (> 0: clipping)");
    }
    const ne_tensor* norm = grad_norm_squared_arg ? &f32_arg(grad_norm_squared_arg, "grad_norm_squared", context) : nullptr;

    const RowMatrix param_rows = small_ops::element_rows(param, "param");
    small_ops::expect_shape_of(grad, "grad", param, "param");
    small_ops::expect_shape_of(m, "m", param, "param");
    small_ops::expect_shape_of(v, "v", param, "param");
    if (norm) small_ops::expect_one_element(*norm, "grad_norm_squared");
    const RowMatrix grad_rows = small_ops::element_rows(grad, "grad");
    const RowMatrix m_rows = small_ops::element_rows(m, "m");
    const RowMatrix v_rows = small_ops::element_rows(v, "v");

    expect_no_overlap(param, "param", grad, "grad");
    expect_no_overlap(param, "param", m, "m");
    expect_no_overlap(param, "param", v, "v");
    expect_no_overlap(m, "m", grad, "grad");
    expect_no_overlap(m, "m", v, "v");
    expect_no_overlap(v, "v", grad, "grad");
    if (norm) {
        expect_no_overlap(param, "param", *norm, "grad_norm_squared");
        expect_no_overlap(m, "m", *norm, "grad_norm_squared");
        expect_no_overlap(v, "v", *norm, "grad_norm_squared");
    }

    AdamwArgs args{{param_rows.rows, param_rows.cols},
                   operand<float>(param, param_rows),
                   operand<const float>(grad, grad_rows),
                   operand<float>(m, m_rows),
                   operand<float>(v, v_rows),
                   clipping ? data_of<float>(*norm) : nullptr};
    small_ops::merge_contiguous_rows(args.extent, args.param, args.grad, args.m, args.v);
    return args;
}

// ------------------------------------------------------------------------------------------
// Dispatch
// ------------------------------------------------------------------------------------------

float inverse_bias_correction(float beta, int64_t step) {
    return static_cast<float>(1.0 / (1.0 - std::pow(static_cast<double>(beta), static_cast<double>(step))));
}

// grad_norm_squared is read here, after validation, where the kernels run.
AdamwConstants adamw_constants(const ne_adamw_params& p, const float* grad_norm_squared) {
    float clip = 1.0f;
    if (grad_norm_squared != nullptr) {
        const float ratio = p.max_grad_norm / (std::fabs(p.grad_scale) * std::sqrt(*grad_norm_squared));
        clip = ratio < 1.0f ? ratio : 1.0f;
    }
    return {p.learning_rate,
            p.beta1,
            p.beta2,
            1.0f - p.beta1,
            1.0f - p.beta2,
            inverse_bias_correction(p.beta1, p.step),
            inverse_bias_correction(p.beta2, p.step),
            p.epsilon,
            p.weight_decay,
            p.grad_scale * clip};
}

void run_adamw(ne_context& context, const ne_adamw_params& p, const AdamwArgs& args) {
    if (context.device) {
        // The clip factor needs grad_norm_squared, which lives on the device: computed there.
        AdamwLaunch launch{adamw_constants(p, nullptr), p.max_grad_norm, args.extent.rows, args.extent.cols,
                           {args.param.data, args.param.row_stride}, {args.grad.data, args.grad.row_stride},
                           {args.m.data, args.m.row_stride}, {args.v.data, args.v.row_stride}, args.grad_norm_squared};
        context.device->adamw(launch);
        return;
    }
    const AdamwConstants constants = adamw_constants(p, args.grad_norm_squared);
    const AdamwKernel kernel = adamw_kernel_for(context.simd_level);
    small_ops::run_segments(context, args.extent, [&](int64_t row, int64_t col, int64_t count) {
        kernel(constants, args.param.at(row, col), args.grad.at(row, col), args.m.at(row, col), args.v.at(row, col), count);
    });
}

}  // namespace
}  // namespace ne::cpu

// ------------------------------------------------------------------------------------------
// Exported function
// ------------------------------------------------------------------------------------------

extern "C" {

NE_API ne_status ne_adamw_step(ne_context* context, const ne_adamw_params* params, ne_tensor* param, const ne_tensor* grad,
                               ne_tensor* m, ne_tensor* v, const ne_tensor* grad_norm_squared) {
    return ne::guard("ne_adamw_step", [&] {
        ne_context& ctx = ne::context_arg(context, "context");
        const ne_adamw_params p = ne::cpu::adamw_params_arg(params);
        const auto args = ne::cpu::adamw_args(ctx, p, param, grad, m, v, grad_norm_squared);
        ne::cpu::run_adamw(ctx, p, args);
    });
}

}  // extern "C"
