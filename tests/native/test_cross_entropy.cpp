// Chunked softmax cross-entropy over an output projection, forward and backward: every backend
// configuration (CUDA device 0 too, where present) against an unfused double-precision oracle (materialized logits, softmax,
// cross-entropy) and against finite differences; chunk sizes, ignored rows, accumulation,
// padded rows, large logits, working memory, determinism and argument checks.
//
// Tolerances, as |actual - expected| <= tolerance * (1 + |expected|):
// - forward (loss, lse): 5e-6. Logits are float dot products over D <= 64 terms of size <= 1,
//   and the logsumexp sums up to 1000 exponentials in float.
// - backward (dhidden, dweight, dbias): 2e-5. dhidden sums V products, dweight and dbias sum N
//   rows, in float.
// The largest errors seen on these shapes are about 10x smaller than the tolerances.
// - finite differences: see FiniteDifferences below.
#include "test_support.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

using namespace ne_test;

namespace {

constexpr double kForwardTolerance = 5e-6;
constexpr double kBackwardTolerance = 2e-5;
constexpr float kSentinel = -777.0f;

ne_cross_entropy_params ce_params(int64_t chunk_size = 0, int32_t accumulate = 0, int32_t allow_tf32 = 0) {
    return ne_cross_entropy_params{sizeof(ne_cross_entropy_params), chunk_size, accumulate, allow_tf32};
}

// ---- Host data and the double-precision oracle -------------------------------------------

// One problem: hidden [N, D], weight [V, D], bias [V] (empty: no bias), targets [N] (negative:
// ignored), dloss [N]. Arrays are row-major without padding.
struct Problem {
    int64_t N, D, V;
    std::vector<float> hidden, weight, bias;
    std::vector<int32_t> targets;
    std::vector<float> dloss;
};

// About a quarter of the rows are ignored (targets -1 or -100, both negative).
Problem make_problem(int64_t N, int64_t D, int64_t V, uint64_t seed, bool with_bias, bool with_ignored = true) {
    Problem p{N, D, V, random_floats(static_cast<size_t>(N * D), seed), random_floats(static_cast<size_t>(V * D), seed + 1),
              with_bias ? random_floats(static_cast<size_t>(V), seed + 2) : std::vector<float>{}, {},
              random_floats(static_cast<size_t>(N), seed + 3, -2.0f, 2.0f)};
    std::mt19937_64 generator(seed + 4);
    std::uniform_int_distribution<int32_t> classes(0, static_cast<int32_t>(V - 1));
    std::uniform_int_distribution<int> quarter(0, 3);
    for (int64_t n = 0; n < N; ++n) {
        const bool ignored = with_ignored && N > 1 && quarter(generator) == 0;
        p.targets.push_back(ignored ? (n % 2 ? -1 : -100) : classes(generator));
    }
    return p;
}

struct Oracle {
    std::vector<double> loss, lse, dhidden, dweight, dbias;
};

// Materializes every logit in double and follows the definitions.
Oracle oracle(const Problem& p) {
    const size_t N = static_cast<size_t>(p.N), D = static_cast<size_t>(p.D), V = static_cast<size_t>(p.V);
    Oracle out{std::vector<double>(N), std::vector<double>(N), std::vector<double>(N * D, 0.0),
               std::vector<double>(V * D, 0.0), std::vector<double>(V, 0.0)};
    std::vector<double> z(V);
    for (size_t n = 0; n < N; ++n) {
        for (size_t c = 0; c < V; ++c) {
            double sum = p.bias.empty() ? 0.0 : p.bias[c];
            for (size_t d = 0; d < D; ++d) sum += static_cast<double>(p.hidden[n * D + d]) * p.weight[c * D + d];
            z[c] = sum;
        }
        const double max = *std::max_element(z.begin(), z.end());
        double total = 0.0;
        for (double value : z) total += std::exp(value - max);
        const double lse = max + std::log(total);
        out.lse[n] = lse;
        const int32_t target = p.targets[n];
        out.loss[n] = target < 0 ? 0.0 : lse - z[static_cast<size_t>(target)];
        if (target < 0) continue;
        for (size_t c = 0; c < V; ++c) {
            const double dz = p.dloss[n] * (std::exp(z[c] - lse) - (c == static_cast<size_t>(target) ? 1.0 : 0.0));
            for (size_t d = 0; d < D; ++d) {
                out.dhidden[n * D + d] += dz * p.weight[c * D + d];
                out.dweight[c * D + d] += dz * p.hidden[n * D + d];
            }
            out.dbias[c] += dz;
        }
    }
    return out;
}

// ---- Running the kernels ------------------------------------------------------------------

struct RunOptions {
    int64_t chunk_size = 0;
    int32_t accumulate = 0;
    bool parameter_gradients = true;  // dweight and dbias
    std::vector<float> dweight_before, dbias_before;  // initial contents (default: zeros)
    int32_t allow_tf32 = 0;
};

struct Outputs {
    std::vector<float> loss, lse, dhidden, dweight, dbias;
};

// Forward, then backward from the forward's lse.
Outputs run(ne_context* context, const Problem& p, const RunOptions& options = {}) {
    Tensor hidden = make_tensor(context, NE_DTYPE_F32, {p.N, p.D}, p.hidden);
    Tensor weight = make_tensor(context, NE_DTYPE_F32, {p.V, p.D}, p.weight);
    Tensor bias = p.bias.empty() ? nullptr : make_tensor(context, NE_DTYPE_F32, {p.V}, p.bias);
    Tensor targets = make_tensor(context, NE_DTYPE_I32, {p.N}, p.targets);
    Tensor loss = make_tensor(context, NE_DTYPE_F32, {p.N}), lse = make_tensor(context, NE_DTYPE_F32, {p.N});
    Tensor dloss = make_tensor(context, NE_DTYPE_F32, {p.N}, p.dloss);
    Tensor dhidden = make_tensor(context, NE_DTYPE_F32, {p.N, p.D});
    Tensor dweight = make_tensor(context, NE_DTYPE_F32, {p.V, p.D}), dbias = make_tensor(context, NE_DTYPE_F32, {p.V});
    if (!options.dweight_before.empty()) write(dweight.get(), options.dweight_before);
    if (!options.dbias_before.empty()) write(dbias.get(), options.dbias_before);
    check(ne_tensor_fill(dhidden.get(), kSentinel), "ne_tensor_fill");

    const ne_cross_entropy_params params = ce_params(options.chunk_size, options.accumulate, options.allow_tf32);
    check(ne_cross_entropy_forward(context, &params, hidden.get(), weight.get(), bias.get(), targets.get(), loss.get(),
                                   lse.get()),
          "ne_cross_entropy_forward");
    check(ne_cross_entropy_backward(context, &params, hidden.get(), weight.get(), bias.get(), targets.get(), lse.get(),
                                    dloss.get(), dhidden.get(), options.parameter_gradients ? dweight.get() : nullptr,
                                    options.parameter_gradients ? dbias.get() : nullptr),
          "ne_cross_entropy_backward");
    return {read<float>(loss.get()), read<float>(lse.get()), read<float>(dhidden.get()), read<float>(dweight.get()),
            read<float>(dbias.get())};
}

struct Shape {
    int64_t N, D, V;
};

std::string describe(const Shape& s, int64_t chunk, bool bias) {
    return "N=" + std::to_string(s.N) + " D=" + std::to_string(s.D) + " V=" + std::to_string(s.V) +
           " chunk=" + std::to_string(chunk) + " bias=" + std::to_string(bias);
}

class CrossEntropy : public ::testing::TestWithParam<BackendConfig> {
protected:
    Context context = make_context(GetParam());
};

// ---- Against the oracle ---------------------------------------------------------------------

// Single rows, classes and hidden sizes, vector-loop edges (D and chunk widths around 8 and 16),
// and chunkings from one class at a time to one chunk larger than V.
TEST_P(CrossEntropy, MatchesOracle) {
    const Shape shapes[] = {{1, 1, 1}, {1, 1, 6}, {4, 1, 1}, {1, 9, 13}, {5, 3, 37}, {13, 17, 100}, {33, 64, 257}, {70, 40, 1000}};
    uint64_t seed = 10;
    for (const Shape& shape : shapes) {
        for (int64_t chunk : {int64_t{0}, int64_t{1}, int64_t{7}, shape.V, shape.V + 5}) {
            for (bool with_bias : {false, true}) {
                SCOPED_TRACE(describe(shape, chunk, with_bias));
                const Problem p = make_problem(shape.N, shape.D, shape.V, ++seed, with_bias);
                RunOptions options;
                options.chunk_size = chunk;
                const Outputs out = run(context.get(), p, options);
                const Oracle expected = oracle(p);
                EXPECT_TRUE(all_near(out.loss, expected.loss, kForwardTolerance)) << "loss";
                EXPECT_TRUE(all_near(out.lse, expected.lse, kForwardTolerance)) << "lse";
                EXPECT_TRUE(all_near(out.dhidden, expected.dhidden, kBackwardTolerance)) << "dhidden";
                EXPECT_TRUE(all_near(out.dweight, expected.dweight, kBackwardTolerance)) << "dweight";
                EXPECT_TRUE(all_near(out.dbias, expected.dbias, kBackwardTolerance)) << "dbias";
            }
        }
    }
}

// allow_tf32: the CPU computes in f32 all the same (the same bits); a device rounds the products'
// inputs to TF32 (10-bit mantissa), within 1e-2 of the oracle at these sizes (D = 64: the
// logits' errors are near 1e-3).
TEST_P(CrossEntropy, Tf32ProductsStayNearTheOracle) {
    const Problem p = make_problem(33, 64, 257, 95, true);
    RunOptions f32, tf32;
    f32.chunk_size = tf32.chunk_size = 100;
    tf32.allow_tf32 = 1;
    const Outputs exact = run(context.get(), p, f32), rounded = run(context.get(), p, tf32);
    if (!on_device(context.get())) {
        EXPECT_TRUE(bitwise_equal(rounded.loss, exact.loss));
        EXPECT_TRUE(bitwise_equal(rounded.dhidden, exact.dhidden));
        EXPECT_TRUE(bitwise_equal(rounded.dweight, exact.dweight));
        return;
    }
    const Oracle expected = oracle(p);
    EXPECT_TRUE(all_near(rounded.loss, expected.loss, 1e-2)) << "loss";
    EXPECT_TRUE(all_near(rounded.lse, expected.lse, 1e-2)) << "lse";
    EXPECT_TRUE(all_near(rounded.dhidden, expected.dhidden, 1e-2)) << "dhidden";
    EXPECT_TRUE(all_near(rounded.dweight, expected.dweight, 1e-2)) << "dweight";
    EXPECT_TRUE(all_near(rounded.dbias, expected.dbias, 1e-2)) << "dbias";
}

// Ignored rows have loss 0 and a zero dhidden row whatever their dloss, and add nothing to
// dweight and dbias: the results equal those of the problem without them.
TEST_P(CrossEntropy, IgnoredRowsContributeNothing) {
    const Problem p = make_problem(9, 12, 50, 31, true, false);
    Problem with_ignored = p;
    with_ignored.targets[2] = -1;
    with_ignored.targets[7] = -5;
    with_ignored.dloss[7] = std::numeric_limits<float>::quiet_NaN();
    Problem without = p;
    without.dloss[2] = 0.0f;
    without.dloss[7] = 0.0f;
    RunOptions options;
    options.chunk_size = 16;
    const Outputs ignored = run(context.get(), with_ignored, options);
    const Outputs zero_weighted = run(context.get(), without, options);
    EXPECT_EQ(ignored.loss[2], 0.0f);
    EXPECT_EQ(ignored.loss[7], 0.0f);
    for (int64_t d = 0; d < p.D; ++d) {
        EXPECT_EQ(ignored.dhidden[static_cast<size_t>(2 * p.D + d)], 0.0f);
        EXPECT_EQ(ignored.dhidden[static_cast<size_t>(7 * p.D + d)], 0.0f);
    }
    EXPECT_TRUE(all_near(ignored.dweight, zero_weighted.dweight, 1e-6));
    EXPECT_TRUE(all_near(ignored.dbias, zero_weighted.dbias, 1e-6));
    // The lse of an ignored row is still its logsumexp.
    EXPECT_TRUE(all_near(ignored.lse, zero_weighted.lse, 0.0));
}

// Logits of about +-100, and a largest logit of about 400 for row 0 in the last class: the
// running sum is rescaled by exp(old max - new max), which underflows to 0, and stays exact.
TEST_P(CrossEntropy, StableForLargeLogits) {
    Problem p = make_problem(6, 8, 300, 41, true);
    for (float& value : p.hidden) value *= 40.0f;
    for (int64_t d = 0; d < p.D; ++d) p.weight[static_cast<size_t>(299 * p.D + d)] = 0.1f * p.hidden[static_cast<size_t>(d)];
    p.targets[0] = 5;
    for (int64_t chunk : {int64_t{0}, int64_t{13}, int64_t{299}}) {
        SCOPED_TRACE("chunk " + std::to_string(chunk));
        RunOptions options;
        options.chunk_size = chunk;
        const Outputs out = run(context.get(), p, options);
        const Oracle expected = oracle(p);
        EXPECT_GT(expected.lse[0], 300.0);
        // Relative to logits of 100 to 400, float errors are as small as for small logits.
        EXPECT_TRUE(all_near(out.loss, expected.loss, 2e-6));
        EXPECT_TRUE(all_near(out.lse, expected.lse, 2e-6));
        EXPECT_TRUE(all_near(out.dhidden, expected.dhidden, 3e-5));
        EXPECT_TRUE(all_near(out.dweight, expected.dweight, 3e-5));
    }
}

// accumulate = 1 adds to dweight and dbias what accumulate = 0 writes; dhidden is overwritten
// either way. Without dweight and dbias, dhidden is unchanged.
TEST_P(CrossEntropy, AccumulateAddsAndOptionalGradientsAreSkipped) {
    const Problem p = make_problem(21, 10, 90, 51, true);
    RunOptions fresh_options;
    fresh_options.chunk_size = 32;
    const Outputs fresh = run(context.get(), p, fresh_options);

    RunOptions accumulate = fresh_options;
    accumulate.accumulate = 1;
    accumulate.dweight_before = random_floats(static_cast<size_t>(p.V * p.D), 52);
    accumulate.dbias_before = random_floats(static_cast<size_t>(p.V), 53);
    const Outputs added = run(context.get(), p, accumulate);
    std::vector<float> dweight_expected(accumulate.dweight_before), dbias_expected(accumulate.dbias_before);
    for (size_t i = 0; i < dweight_expected.size(); ++i) dweight_expected[i] += fresh.dweight[i];
    for (size_t i = 0; i < dbias_expected.size(); ++i) dbias_expected[i] += fresh.dbias[i];
    EXPECT_TRUE(all_near(added.dweight, dweight_expected, 1e-6));
    EXPECT_TRUE(all_near(added.dbias, dbias_expected, 1e-6));
    EXPECT_TRUE(bitwise_equal(added.dhidden, fresh.dhidden));

    RunOptions skipped = fresh_options;
    skipped.parameter_gradients = false;
    skipped.dweight_before = accumulate.dweight_before;
    const Outputs without = run(context.get(), p, skipped);
    EXPECT_TRUE(bitwise_equal(without.dhidden, fresh.dhidden));
    EXPECT_TRUE(bitwise_equal(without.dweight, accumulate.dweight_before));
}

// The forward without lse writes the same losses.
TEST_P(CrossEntropy, ForwardWithoutLse) {
    const Problem p = make_problem(11, 6, 40, 61, false);
    const Outputs with_lse = run(context.get(), p);
    Tensor hidden = make_tensor(context.get(), NE_DTYPE_F32, {p.N, p.D}, p.hidden);
    Tensor weight = make_tensor(context.get(), NE_DTYPE_F32, {p.V, p.D}, p.weight);
    Tensor targets = make_tensor(context.get(), NE_DTYPE_I32, {p.N}, p.targets);
    Tensor loss = make_tensor(context.get(), NE_DTYPE_F32, {p.N});
    const ne_cross_entropy_params params = ce_params();
    NE_ASSERT_OK(ne_cross_entropy_forward(context.get(), &params, hidden.get(), weight.get(), nullptr, targets.get(),
                                          loss.get(), nullptr));
    EXPECT_TRUE(bitwise_equal(read<float>(loss.get()), with_lse.loss));
}

// hidden, weight, dhidden and dweight as views with padded rows: the padding is neither read
// into the results nor written.
TEST_P(CrossEntropy, PaddedRows) {
    const Problem p = make_problem(7, 10, 30, 71, true);
    const int64_t pad = 3, stride = p.D + pad;
    const auto padded = [&](int64_t rows, const std::vector<float>& values, Tensor& base) {
        std::vector<float> all(static_cast<size_t>(rows * stride), kSentinel);
        for (int64_t r = 0; r < rows; ++r) {
            std::copy_n(values.begin() + r * p.D, p.D, all.begin() + r * stride);
        }
        base = make_tensor(context.get(), NE_DTYPE_F32, {rows, stride}, all);
        const int64_t shape[] = {rows, p.D}, strides[] = {stride, 1};
        ne_tensor* view = nullptr;
        check(ne_tensor_view(base.get(), 0, 2, shape, strides, &view), "ne_tensor_view");
        return Tensor(view);
    };
    const auto unpadded = [&](const Tensor& base, int64_t rows) {
        const std::vector<float> all = read<float>(base.get());
        std::vector<float> values(static_cast<size_t>(rows * p.D));
        for (int64_t r = 0; r < rows; ++r) {
            std::copy_n(all.begin() + r * stride, p.D, values.begin() + r * p.D);
            for (int64_t i = p.D; i < stride; ++i) EXPECT_EQ(all[static_cast<size_t>(r * stride + i)], kSentinel);
        }
        return values;
    };
    Tensor hidden_base, weight_base, dhidden_base, dweight_base;
    Tensor hidden = padded(p.N, p.hidden, hidden_base), weight = padded(p.V, p.weight, weight_base);
    Tensor dhidden = padded(p.N, std::vector<float>(static_cast<size_t>(p.N * p.D)), dhidden_base);
    Tensor dweight = padded(p.V, std::vector<float>(static_cast<size_t>(p.V * p.D)), dweight_base);
    Tensor bias = make_tensor(context.get(), NE_DTYPE_F32, {p.V}, p.bias);
    Tensor targets = make_tensor(context.get(), NE_DTYPE_I32, {p.N}, p.targets);
    Tensor loss = make_tensor(context.get(), NE_DTYPE_F32, {p.N}), lse = make_tensor(context.get(), NE_DTYPE_F32, {p.N});
    Tensor dloss = make_tensor(context.get(), NE_DTYPE_F32, {p.N}, p.dloss);
    const ne_cross_entropy_params params = ce_params(8);
    NE_ASSERT_OK(ne_cross_entropy_forward(context.get(), &params, hidden.get(), weight.get(), bias.get(), targets.get(),
                                          loss.get(), lse.get()));
    NE_ASSERT_OK(ne_cross_entropy_backward(context.get(), &params, hidden.get(), weight.get(), bias.get(), targets.get(),
                                           lse.get(), dloss.get(), dhidden.get(), dweight.get(), nullptr));
    const Oracle expected = oracle(p);
    EXPECT_TRUE(all_near(read<float>(loss.get()), expected.loss, kForwardTolerance));
    EXPECT_TRUE(all_near(unpadded(dhidden_base, p.N), expected.dhidden, kBackwardTolerance));
    EXPECT_TRUE(all_near(unpadded(dweight_base, p.V), expected.dweight, kBackwardTolerance));
}

// ---- Finite differences ---------------------------------------------------------------------

// L = sum_n dloss_n * loss_n, whose gradients the backward pass computes from dloss. Central
// differences of the forward kernel (float, L summed in double) with step h = 1e-2 on inputs of
// magnitude 1: the truncation error h^2/6 * L''' and the float noise of L (about 1e-6) divided
// by 2h stay below 1e-4 here; the tolerance is 5e-4 * (1 + |gradient|).
class FiniteDifferences {
public:
    FiniteDifferences(ne_context* context, const Problem& problem, int64_t chunk)
        : context_(context), p_(problem), params_(ce_params(chunk)) {}

    static constexpr float kStep = 1e-2f;
    static constexpr double kTolerance = 5e-4;

    void check_gradients() {
        const Outputs out = run(context_, p_, RunOptions{params_.chunk_size, 0, true, {}, {}, 0});
        EXPECT_TRUE(all_near(out.dhidden, numerical_gradient(p_.hidden), kTolerance)) << "dhidden";
        EXPECT_TRUE(all_near(out.dweight, numerical_gradient(p_.weight), kTolerance)) << "dweight";
        EXPECT_TRUE(all_near(out.dbias, numerical_gradient(p_.bias), kTolerance)) << "dbias";
    }

private:
    double loss() {
        Tensor hidden = make_tensor(context_, NE_DTYPE_F32, {p_.N, p_.D}, p_.hidden);
        Tensor weight = make_tensor(context_, NE_DTYPE_F32, {p_.V, p_.D}, p_.weight);
        Tensor bias = make_tensor(context_, NE_DTYPE_F32, {p_.V}, p_.bias);
        Tensor targets = make_tensor(context_, NE_DTYPE_I32, {p_.N}, p_.targets);
        Tensor losses = make_tensor(context_, NE_DTYPE_F32, {p_.N});
        check(ne_cross_entropy_forward(context_, &params_, hidden.get(), weight.get(), bias.get(), targets.get(),
                                       losses.get(), nullptr),
              "ne_cross_entropy_forward");
        const std::vector<float> values = read<float>(losses.get());
        double total = 0.0;
        for (size_t n = 0; n < values.size(); ++n) total += static_cast<double>(p_.dloss[n]) * values[n];
        return total;
    }

    std::vector<double> numerical_gradient(std::vector<float>& values) {
        std::vector<double> gradient(values.size());
        for (size_t i = 0; i < values.size(); ++i) {
            const float original = values[i];
            const float up = original + kStep, down = original - kStep;
            values[i] = up;
            const double loss_up = loss();
            values[i] = down;
            const double loss_down = loss();
            values[i] = original;
            gradient[i] = (loss_up - loss_down) / (static_cast<double>(up) - down);
        }
        return gradient;
    }

    ne_context* context_;
    Problem p_;
    ne_cross_entropy_params params_;
};

TEST_P(CrossEntropy, GradientsMatchFiniteDifferences) {
    Problem p = make_problem(4, 5, 11, 81, true, false);
    p.targets[1] = -1;  // an ignored row, whose gradient is 0
    FiniteDifferences(context.get(), p, 4).check_gradients();
}

// ---- Working memory ---------------------------------------------------------------------------

// The kernels never hold the [N, V] logits: their scratch memory (the context's peak bytes
// beyond its tensors) stays far below N x V floats.
TEST_P(CrossEntropy, WorkingMemoryStaysBelowTheLogits) {
    const Problem p = make_problem(64, 8, 20000, 91, true);
    Tensor hidden = make_tensor(context.get(), NE_DTYPE_F32, {p.N, p.D}, p.hidden);
    Tensor weight = make_tensor(context.get(), NE_DTYPE_F32, {p.V, p.D}, p.weight);
    Tensor bias = make_tensor(context.get(), NE_DTYPE_F32, {p.V}, p.bias);
    Tensor targets = make_tensor(context.get(), NE_DTYPE_I32, {p.N}, p.targets);
    Tensor loss = make_tensor(context.get(), NE_DTYPE_F32, {p.N}), lse = make_tensor(context.get(), NE_DTYPE_F32, {p.N});
    Tensor dloss = make_tensor(context.get(), NE_DTYPE_F32, {p.N}, p.dloss);
    Tensor dhidden = make_tensor(context.get(), NE_DTYPE_F32, {p.N, p.D});
    Tensor dweight = make_tensor(context.get(), NE_DTYPE_F32, {p.V, p.D}), dbias = make_tensor(context.get(), NE_DTYPE_F32, {p.V});
    ne_memory_stats before{};
    before.struct_size = sizeof before;
    NE_ASSERT_OK(ne_context_get_memory_stats(context.get(), &before));
    ASSERT_EQ(before.peak_bytes, before.live_bytes);
    const ne_cross_entropy_params params = ce_params(256);
    NE_ASSERT_OK(ne_cross_entropy_forward(context.get(), &params, hidden.get(), weight.get(), bias.get(), targets.get(),
                                          loss.get(), lse.get()));
    NE_ASSERT_OK(ne_cross_entropy_backward(context.get(), &params, hidden.get(), weight.get(), bias.get(), targets.get(),
                                           lse.get(), dloss.get(), dhidden.get(), dweight.get(), dbias.get()));
    ne_memory_stats after{};
    after.struct_size = sizeof after;
    NE_ASSERT_OK(ne_context_get_memory_stats(context.get(), &after));
    const int64_t logits_bytes = p.N * p.V * static_cast<int64_t>(sizeof(float));
    EXPECT_LT(after.peak_bytes - before.live_bytes, logits_bytes / 8);
    EXPECT_EQ(after.live_bytes, before.live_bytes);
}

// The same call twice gives the same bits: on the CPU (see also CrossEntropyDeterminism) and on
// a device, whose block reductions and cuBLAS calls have a fixed order. A chunk that does not
// divide V, and an odd N, exercise the last partial chunk and uneven row blocks.
TEST_P(CrossEntropy, RepeatedCallsGiveTheSameBits) {
    const Problem p = make_problem(129, 40, 1000, 92, true);
    RunOptions options;
    options.chunk_size = 96;
    const Outputs first = run(context.get(), p, options), second = run(context.get(), p, options);
    EXPECT_TRUE(bitwise_equal(first.loss, second.loss));
    EXPECT_TRUE(bitwise_equal(first.lse, second.lse));
    EXPECT_TRUE(bitwise_equal(first.dhidden, second.dhidden));
    EXPECT_TRUE(bitwise_equal(first.dweight, second.dweight));
    EXPECT_TRUE(bitwise_equal(first.dbias, second.dbias));
}

// Targets are checked where they live (on a device, by a kernel reported at the next wait): the
// first one out of range is named, and on the CPU nothing is written.
TEST_P(CrossEntropy, RefusesTargetsOutOfRange) {
    const Problem p = make_problem(5, 4, 10, 93, false, false);
    Tensor hidden = make_tensor(context.get(), NE_DTYPE_F32, {p.N, p.D}, p.hidden);
    Tensor weight = make_tensor(context.get(), NE_DTYPE_F32, {p.V, p.D}, p.weight);
    Tensor targets = make_tensor(context.get(), NE_DTYPE_I32, {p.N}, std::vector<int32_t>{-1, 3, 12, 10, 0});
    Tensor loss = make_tensor(context.get(), NE_DTYPE_F32, {p.N});
    check(ne_tensor_fill(loss.get(), kSentinel), "ne_tensor_fill");
    const ne_cross_entropy_params params = ce_params();
    EXPECT_TRUE(refused_for_data(context.get(),
                                 ne_cross_entropy_forward(context.get(), &params, hidden.get(), weight.get(), nullptr,
                                                          targets.get(), loss.get(), nullptr),
                                 NE_STATUS_INVALID_ARGUMENT, {"ne_cross_entropy_forward", "'targets'", "element 2 is 12", "[0, 10)"}));
    if (!on_device(context.get())) {
        EXPECT_TRUE(bitwise_equal(read<float>(loss.get()), std::vector<float>(static_cast<size_t>(p.N), kSentinel)));
    }
}

// Every configuration, the CUDA device included where present (backend_configurations()).
INSTANTIATE_TEST_SUITE_P(Cpu, CrossEntropy, ::testing::ValuesIn(backend_configurations()), config_name);

// ---- Determinism ----------------------------------------------------------------------------

// Every output has the same bits on 1 and 3 threads: the GEMMs' bits do not depend on the thread
// count and dbias sums each column in row order.
TEST(CrossEntropyDeterminism, ResultsDoNotDependOnThreadCount) {
    const ne_simd_level best = best_simd_level();
    if (best < NE_SIMD_LEVEL_AVX2) GTEST_SKIP() << "only the single-threaded scalar reference runs here";
    const Problem p = make_problem(301, 70, 2003, 101, true);
    for (ne_simd_level level = NE_SIMD_LEVEL_AVX2; level <= best; level = static_cast<ne_simd_level>(level + 1)) {
        SCOPED_TRACE("level " + std::to_string(level));
        Context one = make_cpu_context(1, level), three = make_cpu_context(3, level);
        const Outputs a = run(one.get(), p), b = run(three.get(), p);
        EXPECT_TRUE(bitwise_equal(a.loss, b.loss));
        EXPECT_TRUE(bitwise_equal(a.lse, b.lse));
        EXPECT_TRUE(bitwise_equal(a.dhidden, b.dhidden));
        EXPECT_TRUE(bitwise_equal(a.dweight, b.dweight));
        EXPECT_TRUE(bitwise_equal(a.dbias, b.dbias));
    }
}

// ---- Argument checks ------------------------------------------------------------------------

// Valid arguments for both functions: N = 4 rows, D = 8, V = 10. Outputs start filled with
// kSentinel, and every refused call must leave them so.
class CrossEntropyArguments : public ::testing::Test {
protected:
    static constexpr int64_t N = 4, D = 8, V = 10;

    Tensor output(std::vector<int64_t> shape) {
        Tensor tensor = make_tensor(context.get(), NE_DTYPE_F32, std::move(shape));
        check(ne_tensor_fill(tensor.get(), kSentinel), "ne_tensor_fill");
        return tensor;
    }
    Tensor view(const Tensor& base, int64_t offset, std::vector<int64_t> shape) {
        ne_tensor* raw = nullptr;
        check(ne_tensor_view(base.get(), offset, static_cast<int32_t>(shape.size()), shape.data(), nullptr, &raw), "ne_tensor_view");
        return Tensor(raw);
    }

    void expect_refused(ne_status status, ne_status expected, std::initializer_list<const char*> fragments) {
        EXPECT_TRUE(fails_with(status, expected, fragments));
        for (const Tensor* tensor : {&loss, &lse, &dhidden, &dweight, &dbias}) {
            const std::vector<float> values = read<float>(tensor->get());
            EXPECT_EQ(std::count(values.begin(), values.end(), kSentinel), static_cast<std::ptrdiff_t>(values.size()))
                << "an output was written by a refused call (" << ne_last_error() << ")";
        }
    }

    Context context = make_cpu_context();
    Context other_context = make_cpu_context();
    ne_cross_entropy_params params = ce_params();
    Tensor hidden = make_tensor(context.get(), NE_DTYPE_F32, {N, D}, random_floats(N * D, 1));
    Tensor weight = make_tensor(context.get(), NE_DTYPE_F32, {V, D}, random_floats(V * D, 2));
    Tensor bias = make_tensor(context.get(), NE_DTYPE_F32, {V}, random_floats(V, 3));
    Tensor targets = make_tensor(context.get(), NE_DTYPE_I32, {N}, std::vector<int32_t>{3, -1, 9, 0});
    Tensor saved_lse = make_tensor(context.get(), NE_DTYPE_F32, {N}, random_floats(N, 4, 2.0f, 3.0f));
    Tensor dloss = make_tensor(context.get(), NE_DTYPE_F32, {N}, random_floats(N, 5));
    Tensor loss = output({N}), lse = output({N});
    Tensor dhidden = output({N, D}), dweight = output({V, D}), dbias = output({V});
};

TEST_F(CrossEntropyArguments, ForwardRefusesBadArguments) {
    ne_context* ctx = context.get();
    ne_tensor *H = hidden.get(), *W = weight.get(), *B = bias.get(), *T = targets.get(), *L = loss.get(), *S = lse.get();
    const auto call = [&](const ne_cross_entropy_params* p, const ne_tensor* h, const ne_tensor* w, const ne_tensor* b,
                          const ne_tensor* t, ne_tensor* l, ne_tensor* s) {
        return ne_cross_entropy_forward(ctx, p, h, w, b, t, l, s);
    };
    expect_refused(ne_cross_entropy_forward(nullptr, &params, H, W, B, T, L, S), NE_STATUS_NULL_POINTER,
                   {"ne_cross_entropy_forward", "'context'"});
    expect_refused(call(nullptr, H, W, B, T, L, S), NE_STATUS_NULL_POINTER, {"'params'"});
    ne_cross_entropy_params bad = params;
    bad.struct_size = 4;
    expect_refused(call(&bad, H, W, B, T, L, S), NE_STATUS_VERSION_MISMATCH, {"'params'", "struct_size is 4"});
    bad.struct_size = sizeof(ne_cross_entropy_params) + 8;
    expect_refused(call(&bad, H, W, B, T, L, S), NE_STATUS_VERSION_MISMATCH, {"struct_size is"});
    bad = ce_params(-1);
    expect_refused(call(&bad, H, W, B, T, L, S), NE_STATUS_INVALID_ARGUMENT, {"chunk_size is -1", ">= 1, or 0"});
    bad = ce_params(0, 0, 2);
    expect_refused(call(&bad, H, W, B, T, L, S), NE_STATUS_INVALID_ARGUMENT, {"allow_tf32 is 2", "0 or 1"});

    expect_refused(call(&params, nullptr, W, B, T, L, S), NE_STATUS_NULL_POINTER, {"'hidden'"});
    expect_refused(call(&params, H, nullptr, B, T, L, S), NE_STATUS_NULL_POINTER, {"'weight'"});
    expect_refused(call(&params, H, W, B, nullptr, L, S), NE_STATUS_NULL_POINTER, {"'targets'"});
    expect_refused(call(&params, H, W, B, T, nullptr, S), NE_STATUS_NULL_POINTER, {"'loss'"});

    Tensor hidden_f16 = make_tensor(ctx, NE_DTYPE_F16, {N, D});
    expect_refused(call(&params, hidden_f16.get(), W, B, T, L, S), NE_STATUS_DTYPE_MISMATCH, {"'hidden'", "expected dtype f32", "got f16"});
    Tensor targets_f32 = make_tensor(ctx, NE_DTYPE_F32, {N});
    expect_refused(call(&params, H, W, B, targets_f32.get(), L, S), NE_STATUS_DTYPE_MISMATCH, {"'targets'", "expected dtype i32", "got f32"});
    Tensor lse_i32 = make_tensor(ctx, NE_DTYPE_I32, {N});
    expect_refused(call(&params, H, W, B, T, L, lse_i32.get()), NE_STATUS_DTYPE_MISMATCH, {"'lse'", "f32", "got i32"});

    Tensor hidden_3d = make_tensor(ctx, NE_DTYPE_F32, {2, 2, D});
    expect_refused(call(&params, hidden_3d.get(), W, B, T, L, S), NE_STATUS_SHAPE_MISMATCH, {"'hidden'", "expected shape [*, *]", "got [2, 2, 8]"});
    Tensor weight_narrow = make_tensor(ctx, NE_DTYPE_F32, {V, D - 1});
    expect_refused(call(&params, H, weight_narrow.get(), B, T, L, S), NE_STATUS_SHAPE_MISMATCH, {"'weight'", "expected shape [*, 8]", "got [10, 7]"});
    Tensor bias_short = make_tensor(ctx, NE_DTYPE_F32, {V - 1});
    expect_refused(call(&params, H, W, bias_short.get(), T, L, S), NE_STATUS_SHAPE_MISMATCH, {"'bias'", "expected shape [10]", "got [9]"});
    Tensor targets_long = make_tensor(ctx, NE_DTYPE_I32, {N + 1});
    expect_refused(call(&params, H, W, B, targets_long.get(), L, S), NE_STATUS_SHAPE_MISMATCH, {"'targets'", "[4]", "got [5]"});
    Tensor loss_2d = output({N, 1});
    expect_refused(call(&params, H, W, B, T, loss_2d.get(), S), NE_STATUS_SHAPE_MISMATCH, {"'loss'", "expected shape [4]", "got [4, 1]"});

    for (int32_t bad_target : {10, 1000}) {
        Tensor out_of_range = make_tensor(ctx, NE_DTYPE_I32, {N}, std::vector<int32_t>{0, 1, bad_target, 2});
        expect_refused(call(&params, H, W, B, out_of_range.get(), L, S), NE_STATUS_INVALID_ARGUMENT,
                       {"'targets'", ("element 2 is " + std::to_string(bad_target)).c_str(), "[0, 10)", "negative"});
    }

    Tensor foreign_weight = make_tensor(other_context.get(), NE_DTYPE_F32, {V, D});
    expect_refused(call(&params, H, foreign_weight.get(), B, T, L, S), NE_STATUS_CONTEXT_MISMATCH, {"'weight'", "another context"});
    Tensor foreign_loss = make_tensor(other_context.get(), NE_DTYPE_F32, {N});
    expect_refused(call(&params, H, W, B, T, foreign_loss.get(), S), NE_STATUS_CONTEXT_MISMATCH, {"'loss'"});

    expect_refused(call(&params, H, W, B, T, L, L), NE_STATUS_INVALID_ARGUMENT, {"'loss' overlaps argument 'lse'"});
    Tensor loss_in_hidden = view(hidden, 2, {N});
    expect_refused(call(&params, H, W, B, T, loss_in_hidden.get(), S), NE_STATUS_INVALID_ARGUMENT, {"'loss' overlaps argument 'hidden'"});
    Tensor lse_in_bias = view(bias, 1, {N});
    expect_refused(call(&params, H, W, B, T, L, lse_in_bias.get()), NE_STATUS_INVALID_ARGUMENT, {"'lse' overlaps argument 'bias'"});

    const int64_t shape[] = {N, D / 2}, strides[] = {D, 2};
    ne_tensor* raw = nullptr;
    NE_ASSERT_OK(ne_tensor_view(hidden.get(), 0, 2, shape, strides, &raw));
    Tensor strided(raw);
    Tensor weight_half = make_tensor(ctx, NE_DTYPE_F32, {V, D / 2});
    expect_refused(call(&params, strided.get(), weight_half.get(), B, T, L, S), NE_STATUS_UNSUPPORTED, {"'hidden'", "stride 1"});

    NE_EXPECT_OK(call(&params, H, W, B, T, L, S));
}

TEST_F(CrossEntropyArguments, BackwardRefusesBadArguments) {
    ne_context* ctx = context.get();
    ne_tensor *H = hidden.get(), *W = weight.get(), *B = bias.get(), *T = targets.get(), *S = saved_lse.get(),
              *G = dloss.get(), *DH = dhidden.get(), *DW = dweight.get(), *DB = dbias.get();
    const auto call = [&](const ne_cross_entropy_params* p, const ne_tensor* h, const ne_tensor* w, const ne_tensor* b,
                          const ne_tensor* t, const ne_tensor* s, const ne_tensor* g, ne_tensor* dh, ne_tensor* dw,
                          ne_tensor* db) { return ne_cross_entropy_backward(ctx, p, h, w, b, t, s, g, dh, dw, db); };
    expect_refused(ne_cross_entropy_backward(nullptr, &params, H, W, B, T, S, G, DH, DW, DB), NE_STATUS_NULL_POINTER,
                   {"ne_cross_entropy_backward", "'context'"});
    expect_refused(call(nullptr, H, W, B, T, S, G, DH, DW, DB), NE_STATUS_NULL_POINTER, {"'params'"});
    ne_cross_entropy_params bad = params;
    bad.struct_size = 0;
    expect_refused(call(&bad, H, W, B, T, S, G, DH, DW, DB), NE_STATUS_VERSION_MISMATCH, {"struct_size is 0"});
    bad = ce_params(0, 2);
    expect_refused(call(&bad, H, W, B, T, S, G, DH, DW, DB), NE_STATUS_INVALID_ARGUMENT, {"accumulate is 2", "0 or 1"});
    bad = ce_params(-5);
    expect_refused(call(&bad, H, W, B, T, S, G, DH, DW, DB), NE_STATUS_INVALID_ARGUMENT, {"chunk_size is -5"});

    expect_refused(call(&params, H, W, B, T, nullptr, G, DH, DW, DB), NE_STATUS_NULL_POINTER, {"'lse'"});
    expect_refused(call(&params, H, W, B, T, S, nullptr, DH, DW, DB), NE_STATUS_NULL_POINTER, {"'dloss'"});
    expect_refused(call(&params, H, W, B, T, S, G, nullptr, DW, DB), NE_STATUS_NULL_POINTER, {"'dhidden'"});

    Tensor dloss_f16 = make_tensor(ctx, NE_DTYPE_F16, {N});
    expect_refused(call(&params, H, W, B, T, S, dloss_f16.get(), DH, DW, DB), NE_STATUS_DTYPE_MISMATCH, {"'dloss'", "f32", "f16"});
    Tensor dhidden_wide = output({N, D + 1});
    expect_refused(call(&params, H, W, B, T, S, G, dhidden_wide.get(), DW, DB), NE_STATUS_SHAPE_MISMATCH,
                   {"'dhidden'", "expected shape [4, 8]", "got [4, 9]"});
    Tensor dweight_tall = output({V + 1, D});
    expect_refused(call(&params, H, W, B, T, S, G, DH, dweight_tall.get(), DB), NE_STATUS_SHAPE_MISMATCH,
                   {"'dweight'", "expected shape [10, 8]", "got [11, 8]"});
    Tensor dbias_short = output({V - 2});
    expect_refused(call(&params, H, W, B, T, S, G, DH, DW, dbias_short.get()), NE_STATUS_SHAPE_MISMATCH, {"'dbias'", "[10]", "got [8]"});
    Tensor lse_long = make_tensor(ctx, NE_DTYPE_F32, {N + 3});
    expect_refused(call(&params, H, W, B, T, lse_long.get(), G, DH, DW, DB), NE_STATUS_SHAPE_MISMATCH, {"'lse'", "[4]", "got [7]"});

    Tensor out_of_range = make_tensor(ctx, NE_DTYPE_I32, {N}, std::vector<int32_t>{0, 10, 1, 2});
    expect_refused(call(&params, H, W, B, out_of_range.get(), S, G, DH, DW, DB), NE_STATUS_INVALID_ARGUMENT,
                   {"'targets'", "element 1 is 10"});

    Tensor foreign_dbias = make_tensor(other_context.get(), NE_DTYPE_F32, {V});
    expect_refused(call(&params, H, W, B, T, S, G, DH, DW, foreign_dbias.get()), NE_STATUS_CONTEXT_MISMATCH, {"'dbias'"});
    Tensor foreign_lse = make_tensor(other_context.get(), NE_DTYPE_F32, {N});
    expect_refused(call(&params, H, W, B, T, foreign_lse.get(), G, DH, DW, DB), NE_STATUS_CONTEXT_MISMATCH, {"'lse'"});

    expect_refused(call(&params, H, W, B, T, S, G, H, DW, DB), NE_STATUS_INVALID_ARGUMENT, {"'dhidden' overlaps argument 'hidden'"});
    expect_refused(call(&params, H, W, B, T, S, G, DH, W, DB), NE_STATUS_INVALID_ARGUMENT, {"'dweight' overlaps argument 'weight'"});
    Tensor dbias_in_dweight = view(dweight, 5, {V});
    expect_refused(call(&params, H, W, B, T, S, G, DH, DW, dbias_in_dweight.get()), NE_STATUS_INVALID_ARGUMENT,
                   {"'dweight' overlaps argument 'dbias'"});
    Tensor dbias_in_lse_memory = make_tensor(ctx, NE_DTYPE_F32, {V + N});
    Tensor lse_part = view(dbias_in_lse_memory, 0, {N}), dbias_part = view(dbias_in_lse_memory, N - 1, {V});
    expect_refused(call(&params, H, W, B, T, lse_part.get(), G, DH, DW, dbias_part.get()), NE_STATUS_INVALID_ARGUMENT,
                   {"'dbias' overlaps argument 'lse'"});

    NE_EXPECT_OK(call(&params, H, W, B, T, S, G, DH, DW, DB));
    NE_EXPECT_OK(call(&params, H, W, nullptr, T, S, G, DH, nullptr, nullptr));
}

}  // namespace
