// The fused AdamW step, ne_adamw_step: every backend configuration against (1) the arithmetic
// documented in adamw.cpp, repeated here operation for operation in f32 and compared bit for bit
// (what a CUDA port must reproduce), and (2) PyTorch's AdamW in double over several steps;
// bias correction, decoupled weight decay, grad_scale, clipping by a global norm from
// ne_reduce_sum, and argument checks.
//
// Tolerance against double, as |actual - expected| <= tolerance * (1 + |expected|): 5e-7 for
// param, m and v after 8 steps (each step rounds a few f32 operations of relative error 6e-8;
// 1.1e-7 measured).
#include "small_ops_test_support.hpp"

#include <limits>

using namespace ne_test;
using namespace ne_test::small_ops;

namespace {

ne_adamw_params adamw_params(int64_t step) {
    ne_adamw_params p{};
    p.struct_size = sizeof p;
    p.learning_rate = 0.01f;
    p.beta1 = 0.9f;
    p.beta2 = 0.999f;
    p.epsilon = 1e-8f;
    p.weight_decay = 0.1f;
    p.step = step;
    p.grad_scale = 1.0f;
    p.max_grad_norm = 0.0f;
    return p;
}

struct State {
    std::vector<float> param, m, v;
};

// The documented arithmetic of adamw.cpp, in f32. The test is compiled without FMA
// instructions, so the compiler fuses nothing: every fma below is std::fma and nothing else.
State documented_step(const ne_adamw_params& p, State s, const std::vector<float>& grad, float grad_norm_squared) {
    float clip = 1.0f;
    if (p.max_grad_norm > 0.0f) {
        const float ratio = p.max_grad_norm / (std::fabs(p.grad_scale) * std::sqrt(grad_norm_squared));
        clip = ratio < 1.0f ? ratio : 1.0f;
    }
    const float gradient_scale = p.grad_scale * clip;
    const auto inverse_correction = [&](float beta) {
        return static_cast<float>(1.0 / (1.0 - std::pow(static_cast<double>(beta), static_cast<double>(p.step))));
    };
    const float c1 = inverse_correction(p.beta1), c2 = inverse_correction(p.beta2);
    for (size_t i = 0; i < grad.size(); ++i) {
        const float g = grad[i] * gradient_scale;
        s.m[i] = std::fma(p.beta1, s.m[i], (1.0f - p.beta1) * g);
        s.v[i] = std::fma(p.beta2, s.v[i], (1.0f - p.beta2) * (g * g));
        const float m_hat = s.m[i] * c1;
        const float denominator = std::sqrt(s.v[i] * c2) + p.epsilon;
        const float update = std::fma(p.weight_decay, s.param[i], m_hat / denominator);
        s.param[i] = std::fma(-p.learning_rate, update, s.param[i]);
    }
    return s;
}

struct DoubleState {
    std::vector<double> param, m, v;
};

// torch.optim.AdamW, in double: decay, then the Adam step with bias corrections, the gradient
// first unscaled (grad_scale) and clipped to max_grad_norm by its global norm.
void pytorch_step(const ne_adamw_params& p, DoubleState& s, const std::vector<float>& grad) {
    double clip = 1.0;
    if (p.max_grad_norm > 0.0f) {
        double squares = 0.0;
        for (float g : grad) squares += static_cast<double>(g) * g;
        clip = std::min(1.0, p.max_grad_norm / (std::abs(static_cast<double>(p.grad_scale)) * std::sqrt(squares)));
    }
    const double lr = p.learning_rate, beta1 = p.beta1, beta2 = p.beta2;
    const double correction1 = 1.0 - std::pow(beta1, static_cast<double>(p.step));
    const double correction2 = 1.0 - std::pow(beta2, static_cast<double>(p.step));
    for (size_t i = 0; i < grad.size(); ++i) {
        const double g = grad[i] * static_cast<double>(p.grad_scale) * clip;
        s.param[i] *= 1.0 - lr * p.weight_decay;
        s.m[i] = beta1 * s.m[i] + (1.0 - beta1) * g;
        s.v[i] = beta2 * s.v[i] + (1.0 - beta2) * g * g;
        const double denominator = std::sqrt(s.v[i]) / std::sqrt(correction2) + p.epsilon;
        s.param[i] -= lr / correction1 * s.m[i] / denominator;
    }
}

class AdamwOps : public ::testing::TestWithParam<BackendConfig> {
protected:
    // Tensors of one shape (rows padded by pad) on the test's context.
    struct Tensors {
        Tensors(ne_context* context, const std::vector<int64_t>& shape, int64_t pad, const State& s)
            : param(context, shape, pad, s.param), grad(context, shape, pad), m(context, shape, pad, s.m),
              v(context, shape, pad, s.v), norm(make_tensor(context, NE_DTYPE_F32, {})) {}

        State read() const { return {param.read_values(), m.read_values(), v.read_values()}; }

        PaddedTensor param, grad, m, v;
        Tensor norm;
    };

    // Runs `steps` steps from s with fresh gradients; each step's result must be the documented
    // arithmetic's, bit for bit. Returns the gradients used.
    std::vector<std::vector<float>> run_steps(const std::vector<int64_t>& shape, int64_t pad, ne_adamw_params p, State& s,
                                              int steps, uint64_t seed) {
        Tensors t(context.get(), shape, pad, s);
        std::vector<std::vector<float>> grads;
        for (int k = 0; k < steps; ++k) {
            p.step = k + 1;
            grads.push_back(random_floats(s.param.size(), seed + k, -3.0f, 3.0f));
            t.grad.write(grads.back());
            ne_tensor* norm = nullptr;
            float norm_value = 0.0f;
            if (p.max_grad_norm > 0.0f) {
                check(ne_reduce_sum(context.get(), t.grad.get(), 1, t.norm.get(), 0), "ne_reduce_sum");
                norm = t.norm.get();
                norm_value = ne_test::read<float>(norm)[0];
            }
            EXPECT_EQ(ne_adamw_step(context.get(), &p, t.param.get(), t.grad.get(), t.m.get(), t.v.get(), norm), NE_STATUS_OK)
                << ne_last_error();
            const State expected = documented_step(p, s, grads.back(), norm_value);
            s = t.read();
            EXPECT_TRUE(bitwise_equal(s.param, expected.param)) << "param, step " << p.step;
            EXPECT_TRUE(bitwise_equal(s.m, expected.m)) << "m, step " << p.step;
            EXPECT_TRUE(bitwise_equal(s.v, expected.v)) << "v, step " << p.step;
            for (const PaddedTensor* tensor : {&t.param, &t.m, &t.v}) EXPECT_TRUE(tensor->padding_untouched());
        }
        return grads;
    }

    Context context = make_context(GetParam());
};

State initial_state(size_t count, uint64_t seed) {
    std::vector<float> v = random_floats(count, seed + 2, 0.0f, 0.01f);
    return {random_floats(count, seed), random_floats(count, seed + 1, -0.1f, 0.1f), v};
}

const std::vector<std::vector<int64_t>> kShapes = {{}, {1}, {3}, {7}, {17}, {33}, {1025}, {5, 9}, {3, 2, 33}, {300, 1000}};

TEST_P(AdamwOps, StepsFollowTheDocumentedArithmeticAndPyTorch) {
    struct Variant {
        const char* name;
        float weight_decay, grad_scale, max_grad_norm;
    };
    const Variant variants[] = {
        {"plain", 0.0f, 1.0f, 0.0f},
        {"weight decay and grad_scale", 0.1f, 0.25f, 0.0f},
        {"clipped (clip < 1)", 0.01f, 2.0f, 1.0f},
        {"clipping inactive (clip = 1)", 0.01f, 0.5f, 1e6f},
    };
    uint64_t seed = 1000;
    for (const auto& shape : kShapes) {
        for (const Variant& variant : variants) {
            const int64_t pad = shape.empty() ? 0 : 3;
            SCOPED_TRACE(shape_name(shape) + " " + variant.name);
            const size_t count = static_cast<size_t>(element_count(shape));
            ne_adamw_params p = adamw_params(1);
            p.weight_decay = variant.weight_decay;
            p.grad_scale = variant.grad_scale;
            p.max_grad_norm = variant.max_grad_norm;
            State s = initial_state(count, seed += 10);
            DoubleState reference{{s.param.begin(), s.param.end()}, {s.m.begin(), s.m.end()}, {s.v.begin(), s.v.end()}};
            const int steps = count > 100'000 ? 2 : 8;
            const auto grads = run_steps(shape, pad, p, s, steps, seed);
            for (int k = 0; k < steps; ++k) {
                p.step = k + 1;
                pytorch_step(p, reference, grads[k]);
            }
            EXPECT_TRUE(all_near(s.param, reference.param, 5e-7));
            EXPECT_TRUE(all_near(s.m, reference.m, 5e-7));
            EXPECT_TRUE(all_near(s.v, reference.v, 5e-7));
        }
    }
}

// Step 1 from m = v = 0: m_hat = g and v_hat = g^2, so the update is lr * g / (|g| + eps),
// about lr * sign(g) whatever the gradient's size. Without the bias corrections it would be
// (1 - beta1) / sqrt(1 - beta2) = 3.2 times that. Within 1e-7: the rounding of param near 1.
TEST_P(AdamwOps, BiasCorrectionMakesTheFirstStepLearningRateSized) {
    std::vector<float> grad = random_floats(100, 7, 0.5f, 1.0f);
    for (size_t i = 0; i < grad.size(); ++i) grad[i] *= (i % 2 ? 1e-2f : 1e3f) * (i % 3 ? 1.0f : -1.0f);
    ne_adamw_params p = adamw_params(1);
    p.weight_decay = 0.0f;
    Tensor param = f32_tensor(context.get(), {100}, std::vector<float>(100, 1.0f)), tgrad = f32_tensor(context.get(), {100}, grad);
    Tensor m = make_tensor(context.get(), NE_DTYPE_F32, {100}), v = make_tensor(context.get(), NE_DTYPE_F32, {100});
    NE_ASSERT_OK(ne_adamw_step(context.get(), &p, param.get(), tgrad.get(), m.get(), v.get(), nullptr));
    const std::vector<float> after = read<float>(param.get());
    for (size_t i = 0; i < grad.size(); ++i) {
        const double step = static_cast<double>(p.learning_rate) * grad[i] / (std::abs(grad[i]) + static_cast<double>(p.epsilon));
        EXPECT_NEAR(after[i], 1.0 - step, 1e-7) << "element " << i;
        EXPECT_NEAR(std::abs(step), p.learning_rate, 1e-6) << "element " << i;
    }
}

// Without a gradient (and m = v = 0), only the decoupled weight decay acts:
// param = param - lr * wd * param.
TEST_P(AdamwOps, WeightDecayIsDecoupled) {
    const std::vector<float> start = random_floats(37, 8, -2.0f, 2.0f);
    ne_adamw_params p = adamw_params(3);
    Tensor param = f32_tensor(context.get(), {37}, start), grad = make_tensor(context.get(), NE_DTYPE_F32, {37});
    Tensor m = make_tensor(context.get(), NE_DTYPE_F32, {37}), v = make_tensor(context.get(), NE_DTYPE_F32, {37});
    NE_ASSERT_OK(ne_adamw_step(context.get(), &p, param.get(), grad.get(), m.get(), v.get(), nullptr));
    const std::vector<float> after = read<float>(param.get());
    for (size_t i = 0; i < start.size(); ++i) {
        EXPECT_EQ(after[i], std::fma(-p.learning_rate, p.weight_decay * start[i], start[i])) << "element " << i;
        EXPECT_NEAR(after[i], start[i] * (1.0 - 0.01 * 0.1), 1e-7) << "element " << i;
    }
}

// grad_scale unscales a scaled loss: grad * 4 with grad_scale 0.25 is the same step as grad
// with 1, bit for bit (the real products are equal, so are their roundings), and clipping
// measures the unscaled norm: the squares' sum is exactly 16 times larger.
TEST_P(AdamwOps, GradScaleUnscalesAndClippingSeesTheUnscaledNorm) {
    const std::vector<float> grad = random_floats(999, 9, -1.0f, 1.0f);
    std::vector<float> scaled(grad.size());
    for (size_t i = 0; i < grad.size(); ++i) scaled[i] = grad[i] * 4.0f;
    const State start = initial_state(grad.size(), 10);
    const auto step = [&](const std::vector<float>& g, float grad_scale, float max_grad_norm) {
        ne_adamw_params p = adamw_params(2);
        p.grad_scale = grad_scale;
        p.max_grad_norm = max_grad_norm;
        const int64_t n = static_cast<int64_t>(g.size());
        Tensor param = f32_tensor(context.get(), {n}, start.param), tgrad = f32_tensor(context.get(), {n}, g);
        Tensor m = f32_tensor(context.get(), {n}, start.m), v = f32_tensor(context.get(), {n}, start.v);
        Tensor norm = make_tensor(context.get(), NE_DTYPE_F32, {1});
        check(ne_reduce_sum(context.get(), tgrad.get(), 1, norm.get(), 0), "ne_reduce_sum");
        check(ne_adamw_step(context.get(), &p, param.get(), tgrad.get(), m.get(), v.get(), norm.get()), "ne_adamw_step");
        return State{read<float>(param.get()), read<float>(m.get()), read<float>(v.get())};
    };
    const State plain = step(grad, 1.0f, 0.0f), unscaled = step(scaled, 0.25f, 0.0f);
    EXPECT_TRUE(bitwise_equal(unscaled.param, plain.param));
    EXPECT_TRUE(bitwise_equal(unscaled.m, plain.m));
    // The unscaled norm is about sqrt(999 / 3) = 18: a limit of 100 leaves it, 1 clips it.
    EXPECT_TRUE(bitwise_equal(step(scaled, 0.25f, 100.0f).param, plain.param));
    const State clipped = step(scaled, 0.25f, 1.0f), clipped_plain = step(grad, 1.0f, 1.0f);
    EXPECT_TRUE(bitwise_equal(clipped.m, clipped_plain.m));
    EXPECT_FALSE(bitwise_equal(clipped.m, plain.m));
}

// The clipped gradient has norm max_grad_norm: with m = 0, beta1 = 0.5 and lr = 0, m after one
// step is (1 - beta1) g clip, whose norm is (1 - beta1) max_grad_norm.
TEST_P(AdamwOps, ClippingScalesTheGradientToTheMaximumNorm) {
    const std::vector<float> grad = random_floats(4096, 11, -1.0f, 1.0f);
    ne_adamw_params p = adamw_params(1);
    p.learning_rate = 0.0f;
    p.beta1 = 0.5f;
    p.max_grad_norm = 2.0f;
    Tensor param = make_tensor(context.get(), NE_DTYPE_F32, {64, 64}), tgrad = f32_tensor(context.get(), {64, 64}, grad);
    Tensor m = make_tensor(context.get(), NE_DTYPE_F32, {64, 64}), v = make_tensor(context.get(), NE_DTYPE_F32, {64, 64});
    Tensor norm = make_tensor(context.get(), NE_DTYPE_F32, {});
    NE_ASSERT_OK(ne_reduce_sum(context.get(), tgrad.get(), 1, norm.get(), 0));
    NE_ASSERT_OK(ne_adamw_step(context.get(), &p, param.get(), tgrad.get(), m.get(), v.get(), norm.get()));
    double squares = 0.0;
    for (float value : read<float>(m.get())) squares += static_cast<double>(value) * value;
    EXPECT_NEAR(std::sqrt(squares), 0.5 * 2.0, 1e-6);
}

INSTANTIATE_TEST_SUITE_P(Cpu, AdamwOps, ::testing::ValuesIn(backend_configurations()), config_name);

// ---- Argument checks ------------------------------------------------------------------------

class AdamwArguments : public ::testing::Test {
protected:
    static constexpr int64_t N = 4, C = 8;

    void expect_refused(ne_status status, ne_status expected, std::initializer_list<const char*> fragments) {
        EXPECT_TRUE(fails_with(status, expected, fragments));
        for (const Tensor* output : {&param, &m, &v, &shared}) {
            EXPECT_TRUE(untouched(*output)) << "an output was written by a refused call (" << ne_last_error() << ")";
        }
    }

    ne_status call(const ne_adamw_params& p, ne_tensor* param_arg, const ne_tensor* grad_arg, ne_tensor* m_arg,
                   ne_tensor* v_arg, const ne_tensor* norm_arg) {
        return ne_adamw_step(ctx, &p, param_arg, grad_arg, m_arg, v_arg, norm_arg);
    }

    Context context = make_cpu_context();
    Context other_context = make_cpu_context();
    ne_context* ctx = context.get();
    ne_adamw_params params = adamw_params(1);
    Tensor param = sentinel_tensor(ctx, {N, C});
    Tensor grad = f32_tensor(ctx, {N, C}, random_floats(N * C, 1));
    Tensor m = sentinel_tensor(ctx, {N, C});
    Tensor v = sentinel_tensor(ctx, {N, C});
    Tensor norm = f32_tensor(ctx, {1}, {4.0f});
    Tensor shared = sentinel_tensor(ctx, {N + 1, C});
};

TEST_F(AdamwArguments, RefusesNullsDtypesShapesAndContexts) {
    ne_tensor *P = param.get(), *G = grad.get(), *M = m.get(), *V = v.get(), *S = norm.get();
    expect_refused(ne_adamw_step(nullptr, &params, P, G, M, V, S), NE_STATUS_NULL_POINTER, {"ne_adamw_step", "'context'"});
    expect_refused(ne_adamw_step(ctx, nullptr, P, G, M, V, S), NE_STATUS_NULL_POINTER, {"'params'"});
    ne_adamw_params bad = params;
    bad.struct_size = 12;
    expect_refused(call(bad, P, G, M, V, S), NE_STATUS_VERSION_MISMATCH, {"'params'", "struct_size is 12"});
    expect_refused(call(params, nullptr, G, M, V, S), NE_STATUS_NULL_POINTER, {"'param'"});
    expect_refused(call(params, P, nullptr, M, V, S), NE_STATUS_NULL_POINTER, {"'grad'"});
    expect_refused(call(params, P, G, nullptr, V, S), NE_STATUS_NULL_POINTER, {"'m'"});
    expect_refused(call(params, P, G, M, nullptr, S), NE_STATUS_NULL_POINTER, {"'v'"});
    bad = params;
    bad.max_grad_norm = 1.0f;
    expect_refused(call(bad, P, G, M, V, nullptr), NE_STATUS_NULL_POINTER, {"'grad_norm_squared' is NULL", "max_grad_norm"});

    Tensor f16 = make_tensor(ctx, NE_DTYPE_F16, {N, C});
    expect_refused(call(params, P, f16.get(), M, V, S), NE_STATUS_DTYPE_MISMATCH, {"'grad'", "expected dtype f32", "got f16"});
    Tensor norm_i32 = make_tensor(ctx, NE_DTYPE_I32, {1});
    expect_refused(call(params, P, G, M, V, norm_i32.get()), NE_STATUS_DTYPE_MISMATCH, {"'grad_norm_squared'", "got i32"});
    Tensor foreign = sentinel_tensor(other_context.get(), {N, C});
    expect_refused(call(params, P, G, foreign.get(), V, S), NE_STATUS_CONTEXT_MISMATCH, {"'m'", "another context"});
    Tensor foreign_norm = f32_tensor(other_context.get(), {1}, {1.0f});
    expect_refused(call(params, P, G, M, V, foreign_norm.get()), NE_STATUS_CONTEXT_MISMATCH, {"'grad_norm_squared'"});

    Tensor wide = f32_tensor(ctx, {N, C + 1}, random_floats(N * (C + 1), 2));
    expect_refused(call(params, P, wide.get(), M, V, S), NE_STATUS_SHAPE_MISMATCH,
                   {"'grad'", "expected shape [4, 8] (the shape of 'param')", "got [4, 9]"});
    Tensor flat = sentinel_tensor(ctx, {N * C});
    expect_refused(call(params, P, G, M, flat.get(), S), NE_STATUS_SHAPE_MISMATCH, {"'v'", "[4, 8]", "got [32]"});
    EXPECT_TRUE(untouched(flat));
    Tensor two = f32_tensor(ctx, {2}, {1.0f, 1.0f});
    expect_refused(call(params, P, G, M, V, two.get()), NE_STATUS_SHAPE_MISMATCH,
                   {"'grad_norm_squared'", "expected one element (shape [] or [1])", "got [2]"});
    NE_EXPECT_OK(call(params, P, G, M, V, S));
}

TEST_F(AdamwArguments, RefusesBadHyperparameters) {
    ne_tensor *P = param.get(), *G = grad.get(), *M = m.get(), *V = v.get(), *S = norm.get();
    constexpr float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
    struct Bad {
        float ne_adamw_params::*field;
        float value;
        const char* fragment;
    };
    const Bad bads[] = {
        {&ne_adamw_params::learning_rate, -1e-3f, "learning_rate is -0.001; expected a finite value >= 0"},
        {&ne_adamw_params::learning_rate, nan, "learning_rate is nan"},
        {&ne_adamw_params::learning_rate, inf, "learning_rate is inf"},
        {&ne_adamw_params::beta1, 1.0f, "beta1 is 1; expected a value in [0, 1)"},
        {&ne_adamw_params::beta1, -0.1f, "beta1 is -0.1"},
        {&ne_adamw_params::beta1, nan, "beta1 is nan"},
        {&ne_adamw_params::beta2, 1.5f, "beta2 is 1.5; expected a value in [0, 1)"},
        {&ne_adamw_params::epsilon, 0.0f, "epsilon is 0; expected a finite value > 0"},
        {&ne_adamw_params::epsilon, -1e-8f, "epsilon is -1e-08"},
        {&ne_adamw_params::epsilon, inf, "epsilon is inf"},
        {&ne_adamw_params::weight_decay, -0.1f, "weight_decay is -0.1; expected a finite value >= 0"},
        {&ne_adamw_params::weight_decay, nan, "weight_decay is nan"},
        {&ne_adamw_params::grad_scale, inf, "grad_scale is inf; expected a finite value"},
        {&ne_adamw_params::grad_scale, nan, "grad_scale is nan"},
        {&ne_adamw_params::max_grad_norm, -1.0f, "max_grad_norm is -1; expected a finite value >= 0"},
        {&ne_adamw_params::max_grad_norm, inf, "max_grad_norm is inf"},
    };
    for (const Bad& bad : bads) {
        ne_adamw_params p = params;
        p.*bad.field = bad.value;
        expect_refused(call(p, P, G, M, V, S), NE_STATUS_INVALID_ARGUMENT, {"'params'", bad.fragment});
    }
    for (int64_t step : {int64_t{0}, int64_t{-3}}) {
        ne_adamw_params p = params;
        p.step = step;
        expect_refused(call(p, P, G, M, V, S), NE_STATUS_INVALID_ARGUMENT, {"step is", "expected >= 1"});
    }
    ne_adamw_params edge = params;  // the edges of the ranges are valid
    edge.learning_rate = 0.0f;
    edge.beta1 = 0.0f;
    edge.beta2 = 0.0f;
    edge.weight_decay = 0.0f;
    edge.grad_scale = -2.0f;
    edge.step = std::numeric_limits<int64_t>::max();
    NE_EXPECT_OK(call(edge, P, G, M, V, S));
}

TEST_F(AdamwArguments, RefusesOverlaps) {
    ne_tensor *P = param.get(), *G = grad.get(), *M = m.get(), *V = v.get(), *S = norm.get();
    expect_refused(call(params, P, G, M, M, S), NE_STATUS_INVALID_ARGUMENT, {"'m' overlaps argument 'v'"});
    expect_refused(call(params, P, P, M, V, S), NE_STATUS_INVALID_ARGUMENT, {"'param' overlaps argument 'grad'"});
    expect_refused(call(params, P, G, P, V, S), NE_STATUS_INVALID_ARGUMENT, {"'param' overlaps argument 'm'"});
    Tensor first_rows = view_of(shared, 0, {N, C}), last_rows = view_of(shared, C, {N, C});
    expect_refused(call(params, P, G, first_rows.get(), last_rows.get(), S), NE_STATUS_INVALID_ARGUMENT,
                   {"'m' overlaps argument 'v'"});
    expect_refused(call(params, P, last_rows.get(), first_rows.get(), V, S), NE_STATUS_INVALID_ARGUMENT,
                   {"'m' overlaps argument 'grad'"});
    Tensor norm_in_v = view_of(v, 3, {1});
    expect_refused(call(params, P, G, M, V, norm_in_v.get()), NE_STATUS_INVALID_ARGUMENT,
                   {"'v' overlaps argument 'grad_norm_squared'"});
    NE_EXPECT_OK(call(params, P, G, M, V, S));
}

}  // namespace
