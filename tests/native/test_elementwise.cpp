// Element-wise ops: ne_add (with broadcasting), ne_axpby, GELU forward and backward, dropout.
// Every backend configuration against independent double-precision references, on edge shapes
// (a scalar, 1, 3, 7, 17, 33, 1025 elements), padded rows and in place; argument checks.
//
// Tolerances, as |actual - expected| <= tolerance * (1 + |expected|):
// - add: exact (one f32 addition is the correctly rounded double sum).
// - axpby: bitwise the documented fma(alpha, x, beta * y); against double, 2e-7.
// - GELU forward: 3e-7 against the formula in double (1e-7 measured over [-12, 12] in steps of
//   1e-4, scalar and AVX2); relative 1e-5 in the negative tail, where y is tiny (3e-6 measured).
// - GELU backward: 3e-7 against the derivative in double (1e-7 measured); 1e-4 against central
//   differences of the forward kernel on x in [-4, 4] (h = 1e-2: the rounding of two |y| <= 4
//   over 2h stays below 2.4e-5, the truncation h^2 / 6 max |f'''| = 1e-4 / 6 * 0.78 below 1.3e-5).
// - Dropout: bitwise the documented SplitMix64 mask; the kept fraction of 10^6 elements within
//   5 standard deviations, sqrt(p (1 - p) / 10^6) <= 5e-4, of 1 - p.
#include "small_ops_test_support.hpp"

#include <limits>

using namespace ne_test;
using namespace ne_test::small_ops;

namespace {

// Shapes of one operand: a scalar, the vector loop edges (below, at and around 8 and 16 lanes,
// 1025), rows of several ranks, and one large enough to be split among three threads.
const std::vector<std::vector<int64_t>> kShapes = {{},     {1},       {3},        {7},          {17},     {33},
                                                   {1025}, {4, 7},    {3, 17},    {5, 33},      {2, 3, 1025},
                                                   {9, 1}, {2, 2, 3}, {300, 1024}};

std::vector<float> values_for(const std::vector<int64_t>& shape, uint64_t seed, float low = -2.0f, float high = 2.0f) {
    return random_floats(static_cast<size_t>(element_count(shape)), seed, low, high);
}

class ElementwiseOps : public ::testing::TestWithParam<BackendConfig> {
protected:
    Context context = make_context(GetParam());
};

// ---- ne_add ---------------------------------------------------------------------------------

TEST_P(ElementwiseOps, AddMatchesDoubleSumOnEveryShape) {
    uint64_t seed = 10;
    for (const auto& shape : kShapes) {
        for (int64_t pad : {0, 3}) {
            if (shape.empty() && pad > 0) continue;
            SCOPED_TRACE(shape_name(shape) + " pad=" + std::to_string(pad));
            const std::vector<float> a = values_for(shape, ++seed), b = values_for(shape, ++seed);
            PaddedTensor ta(context.get(), shape, pad, a), tb(context.get(), shape, pad, b), out(context.get(), shape, pad);
            NE_ASSERT_OK(ne_add(context.get(), ta.get(), tb.get(), out.get()));
            std::vector<double> expected(a.size());
            for (size_t i = 0; i < a.size(); ++i) expected[i] = static_cast<float>(static_cast<double>(a[i]) + b[i]);
            EXPECT_TRUE(all_near(out.read_values(), expected, 0.0));
            EXPECT_TRUE(out.padding_untouched());
        }
    }
}

// b broadcast over a's leading dimensions: out[..., i] = a[..., i] + b[i] over b's shape.
TEST_P(ElementwiseOps, AddBroadcastsOverLeadingDimensions) {
    struct Case {
        std::vector<int64_t> a_shape, b_shape;
        int64_t pad;
    };
    const Case cases[] = {
        {{5, 33}, {33}, 0},            // a bias [C] over [N, C]
        {{3, 4, 17}, {4, 17}, 0},      // a positional table [T, C] over [B, T, C]
        {{3, 4, 17}, {17}, 0},         // a bias over [B, T, C]
        {{3, 4, 17}, {4, 17}, 2},      // padded rows everywhere
        {{2, 3, 5, 7}, {3, 5, 7}, 1},  // rank 4
        {{1}, {1}, 0},
        {{6, 1}, {1}, 0},
        {{300, 1024}, {1024}, 0},      // split among threads
        {{64, 16, 64}, {16, 64}, 0},
    };
    uint64_t seed = 40;
    for (const Case& c : cases) {
        SCOPED_TRACE(shape_name(c.b_shape) + " over " + shape_name(c.a_shape) + " pad=" + std::to_string(c.pad));
        const std::vector<float> a = values_for(c.a_shape, ++seed), b = values_for(c.b_shape, ++seed);
        PaddedTensor ta(context.get(), c.a_shape, c.pad, a), tb(context.get(), c.b_shape, c.pad, b);
        PaddedTensor out(context.get(), c.a_shape, c.pad);
        NE_ASSERT_OK(ne_add(context.get(), ta.get(), tb.get(), out.get()));
        std::vector<double> expected(a.size());
        for (size_t i = 0; i < a.size(); ++i) expected[i] = static_cast<float>(static_cast<double>(a[i]) + b[i % b.size()]);
        EXPECT_TRUE(all_near(out.read_values(), expected, 0.0));
        EXPECT_TRUE(out.padding_untouched());
    }
}

TEST_P(ElementwiseOps, AddInPlace) {
    const std::vector<int64_t> shape = {7, 19};
    const std::vector<float> a = values_for(shape, 1), b = values_for(shape, 2), bias = values_for({19}, 3);
    Tensor expected_out = make_tensor(context.get(), NE_DTYPE_F32, shape);
    Tensor ta = f32_tensor(context.get(), shape, a), tb = f32_tensor(context.get(), shape, b);
    NE_ASSERT_OK(ne_add(context.get(), ta.get(), tb.get(), expected_out.get()));
    const std::vector<float> expected = read<float>(expected_out.get());

    NE_ASSERT_OK(ne_add(context.get(), ta.get(), tb.get(), ta.get()));  // out = a
    EXPECT_TRUE(bitwise_equal(read<float>(ta.get()), expected));
    write(ta.get(), a);
    NE_ASSERT_OK(ne_add(context.get(), ta.get(), tb.get(), tb.get()));  // out = b
    EXPECT_TRUE(bitwise_equal(read<float>(tb.get()), expected));

    NE_ASSERT_OK(ne_add(context.get(), ta.get(), ta.get(), ta.get()));  // out = a + a
    std::vector<float> doubled(a.size());
    for (size_t i = 0; i < a.size(); ++i) doubled[i] = a[i] + a[i];
    EXPECT_TRUE(bitwise_equal(read<float>(ta.get()), doubled));

    write(ta.get(), a);
    Tensor tbias = f32_tensor(context.get(), {19}, bias);
    NE_ASSERT_OK(ne_add(context.get(), ta.get(), tbias.get(), ta.get()));  // a += bias
    std::vector<float> biased(a.size());
    for (size_t i = 0; i < a.size(); ++i) biased[i] = a[i] + bias[i % 19];
    EXPECT_TRUE(bitwise_equal(read<float>(ta.get()), biased));
}

// ---- ne_axpby -------------------------------------------------------------------------------

TEST_P(ElementwiseOps, AxpbyIsTheDocumentedFusedMultiplyAdd) {
    const std::pair<float, float> coefficients[] = {{0.5f, -1.25f}, {-3.0f, 0.1f}, {1.0f, 1.0f}, {0.0f, 2.0f}};
    uint64_t seed = 70;
    for (const auto& shape : kShapes) {
        for (const auto& [alpha, beta] : coefficients) {
            const int64_t pad = shape.empty() ? 0 : 2;
            SCOPED_TRACE(shape_name(shape) + " alpha=" + std::to_string(alpha) + " beta=" + std::to_string(beta));
            const std::vector<float> x = values_for(shape, ++seed), y = values_for(shape, ++seed);
            PaddedTensor tx(context.get(), shape, pad, x), ty(context.get(), shape, pad, y);
            NE_ASSERT_OK(ne_axpby(context.get(), alpha, tx.get(), beta, ty.get()));
            const std::vector<float> got = ty.read_values();
            std::vector<float> fused(x.size());
            std::vector<double> exact(x.size());
            for (size_t i = 0; i < x.size(); ++i) {
                fused[i] = std::fma(alpha, x[i], beta * y[i]);
                exact[i] = static_cast<double>(alpha) * x[i] + static_cast<double>(beta) * y[i];
            }
            EXPECT_TRUE(bitwise_equal(got, fused));
            EXPECT_TRUE(all_near(got, exact, 2e-7));
            EXPECT_TRUE(ty.padding_untouched());
        }
    }
}

TEST_P(ElementwiseOps, AxpbyWithBetaZeroNeverReadsY) {
    const std::vector<int64_t> shape = {5, 37};
    const std::vector<float> x = values_for(shape, 81);
    Tensor tx = f32_tensor(context.get(), shape, x);
    Tensor ty = f32_tensor(context.get(), shape, std::vector<float>(x.size(), std::numeric_limits<float>::quiet_NaN()));
    NE_ASSERT_OK(ne_axpby(context.get(), -1.5f, tx.get(), 0.0f, ty.get()));
    std::vector<float> expected(x.size());
    for (size_t i = 0; i < x.size(); ++i) expected[i] = -1.5f * x[i];
    EXPECT_TRUE(bitwise_equal(read<float>(ty.get()), expected));
}

TEST_P(ElementwiseOps, AxpbyInPlace) {
    const std::vector<float> x = values_for({3, 33}, 82);
    Tensor tx = f32_tensor(context.get(), {3, 33}, x);
    NE_ASSERT_OK(ne_axpby(context.get(), 0.75f, tx.get(), -2.0f, tx.get()));
    std::vector<float> expected(x.size());
    for (size_t i = 0; i < x.size(); ++i) expected[i] = std::fma(0.75f, x[i], -2.0f * x[i]);
    EXPECT_TRUE(bitwise_equal(read<float>(tx.get()), expected));
}

// ---- GELU -----------------------------------------------------------------------------------

constexpr double kSqrt2OverPi = 0.79788456080286535588;

double gelu_oracle(double x) { return 0.5 * x * (1.0 + std::tanh(kSqrt2OverPi * (x + 0.044715 * x * x * x))); }

double gelu_derivative_oracle(double x) {
    const double t = std::tanh(kSqrt2OverPi * (x + 0.044715 * x * x * x));
    return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * kSqrt2OverPi * (1.0 + 3.0 * 0.044715 * x * x);
}

// Random values and the points where the approximation bends or saturates.
std::vector<float> gelu_inputs(const std::vector<int64_t>& shape, uint64_t seed) {
    std::vector<float> x = values_for(shape, seed, -6.0f, 6.0f);
    const float specials[] = {0.0f, -0.0f, 1e-3f, -1e-3f, 0.5f, -0.5f, 3.0f, -3.0f, 5.0f, -5.0f, 8.0f, -8.0f, -10.0f, 20.0f, -20.0f, 100.0f, -100.0f};
    for (size_t i = 0; i < x.size() && i < std::size(specials); ++i) x[i * 7 % x.size()] = specials[i];
    return x;
}

TEST_P(ElementwiseOps, GeluForwardMatchesTheFormulaInDouble) {
    uint64_t seed = 100;
    for (const auto& shape : kShapes) {
        const int64_t pad = shape.empty() ? 0 : 1;
        SCOPED_TRACE(shape_name(shape));
        const std::vector<float> x = gelu_inputs(shape, ++seed);
        PaddedTensor tx(context.get(), shape, pad, x), ty(context.get(), shape, pad);
        NE_ASSERT_OK(ne_gelu_forward(context.get(), tx.get(), ty.get()));
        std::vector<double> expected(x.size());
        for (size_t i = 0; i < x.size(); ++i) expected[i] = gelu_oracle(x[i]);
        EXPECT_TRUE(all_near(ty.read_values(), expected, 3e-7));
        EXPECT_TRUE(ty.padding_untouched());
    }
}

// For x in [-5, -2], y is 1e-6 to 0.05 of x: 0.5 x (1 + tanh(u)) in float would lose its digits
// to cancellation. The oracle is the same function as x sigmoid(2u), exact in double here;
// float rounding of u, amplified by exp, allows 2 |u| * 3e-7 < 1e-5 relative.
TEST_P(ElementwiseOps, GeluIsRelativelyAccurateInTheNegativeTail) {
    std::vector<float> x(301);
    for (size_t i = 0; i < x.size(); ++i) x[i] = -5.0f + 3.0f * static_cast<float>(i) / 300.0f;
    Tensor tx = f32_tensor(context.get(), {301}, x), ty = make_tensor(context.get(), NE_DTYPE_F32, {301});
    NE_ASSERT_OK(ne_gelu_forward(context.get(), tx.get(), ty.get()));
    const std::vector<float> y = read<float>(ty.get());
    for (size_t i = 0; i < x.size(); ++i) {
        const double u = kSqrt2OverPi * (x[i] + 0.044715 * std::pow(static_cast<double>(x[i]), 3));
        const double expected = x[i] / (1.0 + std::exp(-2.0 * u));
        EXPECT_NEAR(y[i] / expected, 1.0, 1e-5) << "x = " << x[i];
    }
}

TEST_P(ElementwiseOps, GeluBackwardMatchesTheDerivativeInDouble) {
    uint64_t seed = 200;
    for (const auto& shape : kShapes) {
        const int64_t pad = shape.empty() ? 0 : 2;
        SCOPED_TRACE(shape_name(shape));
        const std::vector<float> x = gelu_inputs(shape, ++seed), dy = values_for(shape, ++seed);
        PaddedTensor tx(context.get(), shape, pad, x), tdy(context.get(), shape, pad, dy), tdx(context.get(), shape, pad);
        NE_ASSERT_OK(ne_gelu_backward(context.get(), tx.get(), tdy.get(), tdx.get()));
        std::vector<double> expected(x.size());
        for (size_t i = 0; i < x.size(); ++i) expected[i] = dy[i] * gelu_derivative_oracle(x[i]);
        EXPECT_TRUE(all_near(tdx.read_values(), expected, 3e-7));
        EXPECT_TRUE(tdx.padding_untouched());
    }
}

TEST_P(ElementwiseOps, GeluBackwardMatchesFiniteDifferences) {
    constexpr float kStep = 1e-2f;
    const std::vector<float> x = values_for({203}, 301, -4.0f, 4.0f);
    std::vector<float> up(x.size()), down(x.size());
    for (size_t i = 0; i < x.size(); ++i) {
        up[i] = x[i] + kStep;
        down[i] = x[i] - kStep;
    }
    const auto forward = [&](const std::vector<float>& input) {
        Tensor tx = f32_tensor(context.get(), {203}, input), ty = make_tensor(context.get(), NE_DTYPE_F32, {203});
        check(ne_gelu_forward(context.get(), tx.get(), ty.get()), "ne_gelu_forward");
        return read<float>(ty.get());
    };
    const std::vector<float> y_up = forward(up), y_down = forward(down);
    Tensor tx = f32_tensor(context.get(), {203}, x), tdy = f32_tensor(context.get(), {203}, std::vector<float>(203, 1.0f));
    Tensor tdx = make_tensor(context.get(), NE_DTYPE_F32, {203});
    NE_ASSERT_OK(ne_gelu_backward(context.get(), tx.get(), tdy.get(), tdx.get()));
    std::vector<double> numerical(x.size());
    for (size_t i = 0; i < x.size(); ++i) {
        numerical[i] = (static_cast<double>(y_up[i]) - y_down[i]) / (static_cast<double>(up[i]) - down[i]);
    }
    EXPECT_TRUE(all_near(read<float>(tdx.get()), numerical, 1e-4));
}

TEST_P(ElementwiseOps, GeluInPlace) {
    const std::vector<int64_t> shape = {6, 45};
    const std::vector<float> x = gelu_inputs(shape, 401), dy = values_for(shape, 402);
    Tensor tx = f32_tensor(context.get(), shape, x), tdy = f32_tensor(context.get(), shape, dy);
    Tensor y = make_tensor(context.get(), NE_DTYPE_F32, shape), dx = make_tensor(context.get(), NE_DTYPE_F32, shape);
    NE_ASSERT_OK(ne_gelu_forward(context.get(), tx.get(), y.get()));
    NE_ASSERT_OK(ne_gelu_backward(context.get(), tx.get(), tdy.get(), dx.get()));

    NE_ASSERT_OK(ne_gelu_backward(context.get(), tx.get(), tdy.get(), tdy.get()));  // dx = dy
    EXPECT_TRUE(bitwise_equal(read<float>(tdy.get()), read<float>(dx.get())));
    write(tdy.get(), dy);
    NE_ASSERT_OK(ne_gelu_backward(context.get(), tx.get(), tdy.get(), tx.get()));  // dx = x
    EXPECT_TRUE(bitwise_equal(read<float>(tx.get()), read<float>(dx.get())));
    write(tx.get(), x);
    NE_ASSERT_OK(ne_gelu_forward(context.get(), tx.get(), tx.get()));  // y = x
    EXPECT_TRUE(bitwise_equal(read<float>(tx.get()), read<float>(y.get())));
}

INSTANTIATE_TEST_SUITE_P(Cpu, ElementwiseOps, ::testing::ValuesIn(backend_configurations()), config_name);

// ---- Dropout --------------------------------------------------------------------------------

// The documented mask, written out independently of the library.
bool dropout_keeps(uint64_t seed, uint64_t index, float probability) {
    uint64_t z = seed + (index + 1) * 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    const auto threshold = static_cast<uint32_t>(std::floor(static_cast<double>(probability) * 4294967296.0));
    return static_cast<uint32_t>(z >> 32) >= threshold;
}

std::vector<float> dropout_expected(const std::vector<float>& x, uint64_t seed, float probability) {
    const float scale = 1.0f / (1.0f - probability);
    std::vector<float> out(x.size());
    for (size_t i = 0; i < x.size(); ++i) out[i] = dropout_keeps(seed, i, probability) ? x[i] * scale : 0.0f;
    return out;
}

ne_dropout_params dropout_params(float probability, uint64_t seed) { return {sizeof(ne_dropout_params), probability, seed}; }

class DropoutOps : public ::testing::TestWithParam<BackendConfig> {
protected:
    std::vector<float> forward(const std::vector<int64_t>& shape, const std::vector<float>& x, float probability,
                               uint64_t seed) {
        Tensor tx = f32_tensor(context.get(), shape, x), out = make_tensor(context.get(), NE_DTYPE_F32, shape);
        const ne_dropout_params params = dropout_params(probability, seed);
        check(ne_dropout_forward(context.get(), &params, tx.get(), out.get()), "ne_dropout_forward");
        return read<float>(out.get());
    }

    Context context = make_context(GetParam());
};

TEST_P(DropoutOps, ForwardAndBackwardApplyTheDocumentedMask) {
    uint64_t seed = 500;
    for (const auto& shape : kShapes) {
        for (float probability : {0.1f, 0.5f, 0.9f}) {
            const int64_t pad = shape.empty() ? 0 : 3;
            SCOPED_TRACE(shape_name(shape) + " p=" + std::to_string(probability));
            const std::vector<float> x = values_for(shape, ++seed), dout = values_for(shape, ++seed);
            const ne_dropout_params params = dropout_params(probability, seed * 0x1234567ull);
            PaddedTensor tx(context.get(), shape, pad, x), out(context.get(), shape, pad);
            NE_ASSERT_OK(ne_dropout_forward(context.get(), &params, tx.get(), out.get()));
            EXPECT_TRUE(bitwise_equal(out.read_values(), dropout_expected(x, params.seed, probability)));
            EXPECT_TRUE(out.padding_untouched());

            PaddedTensor tdout(context.get(), shape, pad, dout), dx(context.get(), shape, pad);
            NE_ASSERT_OK(ne_dropout_backward(context.get(), &params, tdout.get(), dx.get()));
            EXPECT_TRUE(bitwise_equal(dx.read_values(), dropout_expected(dout, params.seed, probability)));
            EXPECT_TRUE(dx.padding_untouched());
        }
    }
}

TEST_P(DropoutOps, KeptFractionIsOneMinusProbability) {
    constexpr int64_t kCount = 1'000'000;
    const std::vector<float> ones(kCount, 1.0f);
    for (float probability : {0.1f, 0.5f, 0.9f}) {
        SCOPED_TRACE("p=" + std::to_string(probability));
        const std::vector<float> out = forward({kCount}, ones, probability, 2024);
        const auto kept = std::count_if(out.begin(), out.end(), [](float v) { return v != 0.0f; });
        const double fraction = static_cast<double>(kept) / kCount;
        const double sigma = std::sqrt(probability * (1.0 - probability) / kCount);
        EXPECT_NEAR(fraction, 1.0 - probability, 5.0 * sigma);
        // Inverted dropout keeps the mean.
        const double mean = std::accumulate(out.begin(), out.end(), 0.0) / kCount;
        EXPECT_NEAR(mean, 1.0, 5.0 * sigma / (1.0 - probability));
    }
}

TEST_P(DropoutOps, MaskDependsOnTheSeedOnly) {
    constexpr int64_t kCount = 100'000;
    const std::vector<float> ones(kCount, 1.0f);
    const std::vector<float> first = forward({kCount}, ones, 0.5f, 7);
    EXPECT_TRUE(bitwise_equal(forward({kCount}, ones, 0.5f, 7), first));
    EXPECT_TRUE(bitwise_equal(forward({100, 1000}, ones, 0.5f, 7), first));  // the shape does not matter
    for (uint64_t other_seed : {8ull, 7ull + (1ull << 32), ~7ull}) {
        const std::vector<float> other = forward({kCount}, ones, 0.5f, other_seed);
        int64_t agree = 0;
        for (int64_t i = 0; i < kCount; ++i) agree += (first[i] != 0.0f) == (other[i] != 0.0f);
        // Independent masks agree on p^2 + (1 - p)^2 = 1/2 of the elements; 5 sigma = 0.008.
        EXPECT_NEAR(static_cast<double>(agree) / kCount, 0.5, 0.008) << "seed " << other_seed;
    }
}

TEST_P(DropoutOps, BackwardUsesTheForwardMask) {
    const std::vector<int64_t> shape = {37, 29};
    const std::vector<float> x = values_for(shape, 601, 0.5f, 1.5f), dout = values_for(shape, 602);
    const float probability = 0.3f, scale = 1.0f / (1.0f - probability);
    const ne_dropout_params params = dropout_params(probability, 99);
    const std::vector<float> out = forward(shape, x, probability, 99);
    Tensor tdout = f32_tensor(context.get(), shape, dout), dx = make_tensor(context.get(), NE_DTYPE_F32, shape);
    NE_ASSERT_OK(ne_dropout_backward(context.get(), &params, tdout.get(), dx.get()));
    std::vector<float> expected(x.size());
    for (size_t i = 0; i < x.size(); ++i) expected[i] = out[i] != 0.0f ? dout[i] * scale : 0.0f;
    EXPECT_TRUE(bitwise_equal(read<float>(dx.get()), expected));
}

TEST_P(DropoutOps, ProbabilityZeroIsTheIdentity) {
    for (const auto& shape : kShapes) {
        SCOPED_TRACE(shape_name(shape));
        const std::vector<float> x = values_for(shape, 700);
        EXPECT_TRUE(bitwise_equal(forward(shape, x, 0.0f, 1), x));
    }
}

TEST_P(DropoutOps, InPlace) {
    const std::vector<int64_t> shape = {5, 41};
    const std::vector<float> x = values_for(shape, 801);
    const ne_dropout_params params = dropout_params(0.25f, 3);
    Tensor tx = f32_tensor(context.get(), shape, x);
    NE_ASSERT_OK(ne_dropout_forward(context.get(), &params, tx.get(), tx.get()));
    EXPECT_TRUE(bitwise_equal(read<float>(tx.get()), dropout_expected(x, 3, 0.25f)));
    write(tx.get(), x);
    NE_ASSERT_OK(ne_dropout_backward(context.get(), &params, tx.get(), tx.get()));
    EXPECT_TRUE(bitwise_equal(read<float>(tx.get()), dropout_expected(x, 3, 0.25f)));
}

INSTANTIATE_TEST_SUITE_P(Cpu, DropoutOps, ::testing::ValuesIn(backend_configurations()), config_name);

// ---- Argument checks ------------------------------------------------------------------------

// Valid arguments for every function, N = 4 rows of C = 8 channels. Outputs start filled with
// kSentinel, and every refused call must leave them so.
class ElementwiseArguments : public ::testing::Test {
protected:
    static constexpr int64_t N = 4, C = 8;

    void expect_refused(ne_status status, ne_status expected, std::initializer_list<const char*> fragments) {
        EXPECT_TRUE(fails_with(status, expected, fragments));
        for (const Tensor* output : {&out, &shared}) {
            EXPECT_TRUE(untouched(*output)) << "an output was written by a refused call (" << ne_last_error() << ")";
        }
    }

    Context context = make_cpu_context();
    Context other_context = make_cpu_context();
    ne_context* ctx = context.get();
    Tensor a = f32_tensor(ctx, {N, C}, random_floats(N * C, 1));
    Tensor b = f32_tensor(ctx, {N, C}, random_floats(N * C, 2));
    Tensor bias = f32_tensor(ctx, {C}, random_floats(C, 3));
    Tensor out = sentinel_tensor(ctx, {N, C});
    Tensor shared = sentinel_tensor(ctx, {N + 1, C});  // rows 0..3 and 1..4 overlap
    Tensor first_rows = view_of(shared, 0, {N, C}), last_rows = view_of(shared, C, {N, C});
    Tensor foreign = f32_tensor(other_context.get(), {N, C}, random_floats(N * C, 4));
    Tensor wide = sentinel_tensor(ctx, {N, C + 1});
    Tensor f16 = make_tensor(ctx, NE_DTYPE_F16, {N, C});
    ne_dropout_params dropout = dropout_params(0.5f, 1);
};

TEST_F(ElementwiseArguments, AddRefusesBadArguments) {
    ne_tensor *A = a.get(), *B = b.get(), *O = out.get();
    expect_refused(ne_add(nullptr, A, B, O), NE_STATUS_NULL_POINTER, {"ne_add", "'context'"});
    expect_refused(ne_add(ctx, nullptr, B, O), NE_STATUS_NULL_POINTER, {"'a'"});
    expect_refused(ne_add(ctx, A, nullptr, O), NE_STATUS_NULL_POINTER, {"'b'"});
    expect_refused(ne_add(ctx, A, B, nullptr), NE_STATUS_NULL_POINTER, {"'out'"});
    expect_refused(ne_add(ctx, f16.get(), B, O), NE_STATUS_DTYPE_MISMATCH, {"'a'", "expected dtype f32", "got f16"});
    Tensor b_i32 = make_tensor(ctx, NE_DTYPE_I32, {C});
    expect_refused(ne_add(ctx, A, b_i32.get(), O), NE_STATUS_DTYPE_MISMATCH, {"'b'", "got i32"});
    expect_refused(ne_add(ctx, A, foreign.get(), O), NE_STATUS_CONTEXT_MISMATCH, {"'b'", "another context"});
    expect_refused(ne_add(other_context.get(), A, B, O), NE_STATUS_CONTEXT_MISMATCH, {"'a'"});

    Tensor bias_long = f32_tensor(ctx, {C + 1}, random_floats(C + 1, 5));
    expect_refused(ne_add(ctx, A, bias_long.get(), O), NE_STATUS_SHAPE_MISMATCH,
                   {"'b'", "expected shape [4, 8] (the shape of 'a') or the shape of its trailing dimensions", "got [9]"});
    Tensor row = f32_tensor(ctx, {1, C}, random_floats(C, 6));
    expect_refused(ne_add(ctx, A, row.get(), O), NE_STATUS_SHAPE_MISMATCH, {"'b'", "got [1, 8]"});
    Tensor higher = f32_tensor(ctx, {1, N, C}, random_floats(N * C, 7));
    expect_refused(ne_add(ctx, A, higher.get(), O), NE_STATUS_SHAPE_MISMATCH, {"'b'", "got [1, 4, 8]"});
    Tensor positional_wrong = f32_tensor(ctx, {N + 1, C}, random_floats((N + 1) * C, 8));
    Tensor batch = f32_tensor(ctx, {2, N, C}, random_floats(2 * N * C, 9));
    Tensor batch_out = sentinel_tensor(ctx, {2, N, C});
    expect_refused(ne_add(ctx, batch.get(), positional_wrong.get(), batch_out.get()), NE_STATUS_SHAPE_MISMATCH,
                   {"'b'", "[2, 4, 8]", "got [5, 8]"});
    EXPECT_TRUE(untouched(batch_out));
    ne_tensor* scalar = nullptr;
    NE_ASSERT_OK(ne_tensor_create(ctx, NE_DTYPE_F32, 0, nullptr, &scalar));
    Tensor scalar_tensor(scalar);
    expect_refused(ne_add(ctx, A, scalar, O), NE_STATUS_SHAPE_MISMATCH, {"'b'", "got []"});
    expect_refused(ne_add(ctx, A, B, wide.get()), NE_STATUS_SHAPE_MISMATCH,
                   {"'out'", "expected shape [4, 8] (the shape of 'a')", "got [4, 9]"});
    EXPECT_TRUE(untouched(wide));

    expect_refused(ne_add(ctx, first_rows.get(), B, last_rows.get()), NE_STATUS_INVALID_ARGUMENT, {"'out' overlaps argument 'a'"});
    expect_refused(ne_add(ctx, A, first_rows.get(), last_rows.get()), NE_STATUS_INVALID_ARGUMENT, {"'out' overlaps argument 'b'"});
    // out may be b only where b is not broadcast: a bias inside out is read after it is written.
    Tensor bias_in_out = view_of(out, 0, {C});
    expect_refused(ne_add(ctx, A, bias_in_out.get(), O), NE_STATUS_INVALID_ARGUMENT, {"'out' overlaps argument 'b'"});
    const int64_t shape[] = {N, C / 2}, strides[] = {C, 2};
    ne_tensor* raw = nullptr;
    NE_ASSERT_OK(ne_tensor_view(a.get(), 0, 2, shape, strides, &raw));
    Tensor strided(raw);
    Tensor half_out = sentinel_tensor(ctx, {N, C / 2});
    expect_refused(ne_add(ctx, strided.get(), strided.get(), half_out.get()), NE_STATUS_UNSUPPORTED, {"'a'", "stride 1"});
    EXPECT_TRUE(untouched(half_out));

    NE_EXPECT_OK(ne_add(ctx, A, bias.get(), O));
}

TEST_F(ElementwiseArguments, AxpbyRefusesBadArguments) {
    ne_tensor *X = a.get(), *Y = out.get();
    expect_refused(ne_axpby(nullptr, 1.0f, X, 1.0f, Y), NE_STATUS_NULL_POINTER, {"ne_axpby", "'context'"});
    expect_refused(ne_axpby(ctx, 1.0f, nullptr, 1.0f, Y), NE_STATUS_NULL_POINTER, {"'x'"});
    expect_refused(ne_axpby(ctx, 1.0f, X, 1.0f, nullptr), NE_STATUS_NULL_POINTER, {"'y'"});
    expect_refused(ne_axpby(ctx, 1.0f, f16.get(), 1.0f, Y), NE_STATUS_DTYPE_MISMATCH, {"'x'", "got f16"});
    expect_refused(ne_axpby(ctx, 1.0f, foreign.get(), 1.0f, Y), NE_STATUS_CONTEXT_MISMATCH, {"'x'"});
    expect_refused(ne_axpby(ctx, 1.0f, X, 1.0f, wide.get()), NE_STATUS_SHAPE_MISMATCH,
                   {"'y'", "expected shape [4, 8] (the shape of 'x')", "got [4, 9]"});
    expect_refused(ne_axpby(ctx, 1.0f, first_rows.get(), 1.0f, last_rows.get()), NE_STATUS_INVALID_ARGUMENT,
                   {"'y' overlaps argument 'x'"});
    NE_EXPECT_OK(ne_axpby(ctx, 1.0f, X, 0.0f, Y));
}

TEST_F(ElementwiseArguments, GeluRefusesBadArguments) {
    ne_tensor *X = a.get(), *DY = b.get(), *Y = out.get();
    expect_refused(ne_gelu_forward(nullptr, X, Y), NE_STATUS_NULL_POINTER, {"ne_gelu_forward", "'context'"});
    expect_refused(ne_gelu_forward(ctx, nullptr, Y), NE_STATUS_NULL_POINTER, {"'x'"});
    expect_refused(ne_gelu_forward(ctx, X, nullptr), NE_STATUS_NULL_POINTER, {"'y'"});
    expect_refused(ne_gelu_forward(ctx, f16.get(), Y), NE_STATUS_DTYPE_MISMATCH, {"'x'"});
    expect_refused(ne_gelu_forward(ctx, X, wide.get()), NE_STATUS_SHAPE_MISMATCH, {"'y'", "[4, 8]", "got [4, 9]"});
    expect_refused(ne_gelu_forward(ctx, foreign.get(), Y), NE_STATUS_CONTEXT_MISMATCH, {"'x'"});
    expect_refused(ne_gelu_forward(ctx, first_rows.get(), last_rows.get()), NE_STATUS_INVALID_ARGUMENT,
                   {"'y' overlaps argument 'x'"});

    expect_refused(ne_gelu_backward(nullptr, X, DY, Y), NE_STATUS_NULL_POINTER, {"ne_gelu_backward", "'context'"});
    expect_refused(ne_gelu_backward(ctx, nullptr, DY, Y), NE_STATUS_NULL_POINTER, {"'x'"});
    expect_refused(ne_gelu_backward(ctx, X, nullptr, Y), NE_STATUS_NULL_POINTER, {"'dy'"});
    expect_refused(ne_gelu_backward(ctx, X, DY, nullptr), NE_STATUS_NULL_POINTER, {"'dx'"});
    expect_refused(ne_gelu_backward(ctx, X, f16.get(), Y), NE_STATUS_DTYPE_MISMATCH, {"'dy'"});
    Tensor dy_wide = f32_tensor(ctx, {N, C + 1}, random_floats(N * (C + 1), 10));
    expect_refused(ne_gelu_backward(ctx, X, dy_wide.get(), Y), NE_STATUS_SHAPE_MISMATCH,
                   {"'dy'", "expected shape [4, 8] (the shape of 'x')", "got [4, 9]"});
    expect_refused(ne_gelu_backward(ctx, X, DY, wide.get()), NE_STATUS_SHAPE_MISMATCH, {"'dx'", "got [4, 9]"});
    expect_refused(ne_gelu_backward(ctx, X, foreign.get(), Y), NE_STATUS_CONTEXT_MISMATCH, {"'dy'"});
    expect_refused(ne_gelu_backward(ctx, first_rows.get(), DY, last_rows.get()), NE_STATUS_INVALID_ARGUMENT,
                   {"'dx' overlaps argument 'x'"});
    expect_refused(ne_gelu_backward(ctx, X, first_rows.get(), last_rows.get()), NE_STATUS_INVALID_ARGUMENT,
                   {"'dx' overlaps argument 'dy'"});
    NE_EXPECT_OK(ne_gelu_backward(ctx, X, DY, Y));
}

TEST_F(ElementwiseArguments, DropoutRefusesBadArguments) {
    ne_tensor *X = a.get(), *O = out.get();
    expect_refused(ne_dropout_forward(nullptr, &dropout, X, O), NE_STATUS_NULL_POINTER, {"ne_dropout_forward", "'context'"});
    expect_refused(ne_dropout_forward(ctx, nullptr, X, O), NE_STATUS_NULL_POINTER, {"'params'"});
    ne_dropout_params bad = dropout;
    bad.struct_size = 8;
    expect_refused(ne_dropout_forward(ctx, &bad, X, O), NE_STATUS_VERSION_MISMATCH, {"'params'", "struct_size is 8"});
    bad.struct_size = sizeof(ne_dropout_params) + 8;
    expect_refused(ne_dropout_backward(ctx, &bad, X, O), NE_STATUS_VERSION_MISMATCH, {"ne_dropout_backward", "struct_size"});
    for (float probability : {-0.1f, 1.0f, 1.5f, std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
        bad = dropout_params(probability, 1);
        expect_refused(ne_dropout_forward(ctx, &bad, X, O), NE_STATUS_INVALID_ARGUMENT, {"probability is", "[0, 1)"});
        expect_refused(ne_dropout_backward(ctx, &bad, X, O), NE_STATUS_INVALID_ARGUMENT, {"probability is", "[0, 1)"});
    }
    expect_refused(ne_dropout_forward(ctx, &dropout, nullptr, O), NE_STATUS_NULL_POINTER, {"'x'"});
    expect_refused(ne_dropout_forward(ctx, &dropout, X, nullptr), NE_STATUS_NULL_POINTER, {"'out'"});
    expect_refused(ne_dropout_backward(ctx, &dropout, nullptr, O), NE_STATUS_NULL_POINTER, {"'dout'"});
    expect_refused(ne_dropout_backward(ctx, &dropout, X, nullptr), NE_STATUS_NULL_POINTER, {"'dx'"});
    expect_refused(ne_dropout_forward(ctx, &dropout, f16.get(), O), NE_STATUS_DTYPE_MISMATCH, {"'x'"});
    expect_refused(ne_dropout_forward(ctx, &dropout, X, wide.get()), NE_STATUS_SHAPE_MISMATCH,
                   {"'out'", "expected shape [4, 8] (the shape of 'x')", "got [4, 9]"});
    expect_refused(ne_dropout_backward(ctx, &dropout, X, wide.get()), NE_STATUS_SHAPE_MISMATCH,
                   {"'dx'", "expected shape [4, 8] (the shape of 'dout')", "got [4, 9]"});
    expect_refused(ne_dropout_forward(ctx, &dropout, foreign.get(), O), NE_STATUS_CONTEXT_MISMATCH, {"'x'"});
    expect_refused(ne_dropout_forward(ctx, &dropout, first_rows.get(), last_rows.get()), NE_STATUS_INVALID_ARGUMENT,
                   {"'out' overlaps argument 'x'"});
    expect_refused(ne_dropout_backward(ctx, &dropout, first_rows.get(), last_rows.get()), NE_STATUS_INVALID_ARGUMENT,
                   {"'dx' overlaps argument 'dout'"});
    NE_EXPECT_OK(ne_dropout_forward(ctx, &dropout, X, O));
}

}  // namespace
