// Log-uniform sampling and the sampled softmax, on every backend configuration: the sampler
// against its documented draws and the log-uniform distribution, expected counts against their
// formulas in long double, the sampler's own exp against the C library's; the loss against a
// double-precision oracle, against the full cross-entropy when every class is sampled, against
// hand-computed cases and against finite differences; scattering of duplicate classes,
// accumulation, determinism and argument checks.
//
// Tolerances, as |actual - expected| <= tolerance * (1 + |expected|):
// - expected counts: 1e-6 relative (float rounding of a double formula); across backends, 4
//   float ulps (each backend's log1p and expm1 in double).
// - forward (loss, probs): 5e-6; backward (dhidden, dweight, dbias): 2e-5, as for the full
//   cross-entropy (test_cross_entropy.cpp): the errors seen are about 10x smaller.
#include "test_support.hpp"

#include "cpu/log_uniform.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <set>

using namespace ne_test;

namespace {

constexpr double kForwardTolerance = 5e-6;
constexpr double kBackwardTolerance = 2e-5;
constexpr double kCountTolerance = 1e-6;
constexpr float kSentinel = -777.0f;
constexpr int32_t kSentinelId = -777;

using Doubles = std::vector<double>;

// ---- The sampler ----------------------------------------------------------------------------

ne_sampler_params sampler_params(int64_t V, uint64_t seed, int32_t unique) {
    return ne_sampler_params{sizeof(ne_sampler_params), V, seed, unique};
}

struct Draws {
    std::vector<int32_t> samples;
    std::vector<float> sample_counts, target_counts;
};

Draws sample(ne_context* context, int64_t V, int64_t S, uint64_t seed, int32_t unique,
             const std::vector<int32_t>& targets = {}) {
    Tensor samples = make_tensor(context, NE_DTYPE_I32, {S});
    Tensor sample_counts = make_tensor(context, NE_DTYPE_F32, {S});
    const int64_t N = static_cast<int64_t>(targets.size());
    Tensor target_tensor = targets.empty() ? nullptr : make_tensor(context, NE_DTYPE_I32, {N}, targets);
    Tensor target_counts = targets.empty() ? nullptr : make_tensor(context, NE_DTYPE_F32, {N});
    const ne_sampler_params params = sampler_params(V, seed, unique);
    check(ne_sample_log_uniform(context, &params, target_tensor.get(), samples.get(), sample_counts.get(), target_counts.get()),
          "ne_sample_log_uniform");
    return {read<int32_t>(samples.get()), read<float>(sample_counts.get()),
            targets.empty() ? std::vector<float>{} : read<float>(target_counts.get())};
}

// The draws as sampled_softmax.cpp documents them, written out independently: SplitMix64 from
// the seed, u = (bits >> 11) * 2^-53, c = floor(exp(u * log(V + 1))) - 1 clamped to [0, V - 1];
// unique sampling keeps first occurrences until S classes and counts every draw in tries. exp is
// the sampler's own (checked against the C library's by LogUniformExp below): the draws are
// specified with it.
struct DocumentedDraws {
    std::vector<int32_t> samples;
    int64_t tries;
};

DocumentedDraws documented_draws(int64_t V, int64_t S, uint64_t seed, bool unique) {
    uint64_t state = seed;
    const auto next = [&state] {
        state += 0x9e3779b97f4a7c15ull;
        uint64_t z = state;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    };
    const double log_range = std::log(static_cast<double>(V) + 1.0);
    const auto draw = [&] {
        const double u = static_cast<double>(next() >> 11) * 0x1p-53;
        const int64_t c = static_cast<int64_t>(std::floor(ne::log_uniform::log_uniform_exp(u * log_range))) - 1;
        return static_cast<int32_t>(std::clamp<int64_t>(c, 0, V - 1));
    };
    DocumentedDraws out{{}, 0};
    std::set<int32_t> seen;
    while (static_cast<int64_t>(out.samples.size()) < S) {
        const int32_t c = draw();
        ++out.tries;
        if (!unique || seen.insert(c).second) out.samples.push_back(c);
    }
    return out;
}

// P(c) = log((c + 2) / (c + 1)) / log(V + 1), and the expected counts of the header.
long double probability(int64_t c, int64_t V) {
    return std::log((static_cast<long double>(c) + 2.0L) / (static_cast<long double>(c) + 1.0L)) /
           std::log(static_cast<long double>(V) + 1.0L);
}

long double expected_count(int64_t c, int64_t V, int64_t S, int64_t tries, bool unique) {
    const long double p = probability(c, V);
    return unique ? 1.0L - std::pow(1.0L - p, static_cast<long double>(tries)) : static_cast<long double>(S) * p;
}

::testing::AssertionResult counts_match(const std::vector<float>& counts, const std::vector<int32_t>& classes, int64_t V,
                                        int64_t S, int64_t tries, bool unique) {
    for (size_t i = 0; i < counts.size(); ++i) {
        const long double expected = classes[i] < 0 ? 1.0L : expected_count(classes[i], V, S, tries, unique);
        if (std::abs(static_cast<long double>(counts[i]) - expected) > kCountTolerance * expected) {
            return ::testing::AssertionFailure() << "count " << i << " (class " << classes[i] << ") is " << counts[i]
                                                 << ", expected " << static_cast<double>(expected);
        }
    }
    return ::testing::AssertionSuccess();
}

class LogUniformSampler : public ::testing::TestWithParam<BackendConfig> {
protected:
    Context context = make_context(GetParam());
};

// Independent and unique sampling, from one class to 100000, from one sample to 8192; the cases
// with S = V (unique) draw every class.
TEST_P(LogUniformSampler, FollowsTheDocumentedDrawsAndCountFormulas) {
    struct Case {
        int64_t V, S;
        int32_t unique;
        uint64_t seed;
    };
    const Case cases[] = {{1, 1, 0, 1},          {1, 1, 1, 2},          {1, 5, 0, 3},       {5, 3, 0, 4},
                          {10, 25, 0, 5},        {1000, 64, 1, 6},      {100000, 1024, 1, 7}, {100000, 1024, 0, 8},
                          {40, 40, 1, 9},        {100000, 1, 1, 10},    {100000, 1, 0, 11}, {100000, 8192, 1, 12},
                          {100000, 8192, 0, 13}, {3000, 3000, 1, 14}};
    for (const Case& c : cases) {
        SCOPED_TRACE("V=" + std::to_string(c.V) + " S=" + std::to_string(c.S) + " unique=" + std::to_string(c.unique));
        const std::vector<int32_t> targets{0, -1, static_cast<int32_t>(c.V - 1), static_cast<int32_t>(c.V / 2), -100};
        const Draws draws = sample(context.get(), c.V, c.S, c.seed, c.unique, targets);
        const DocumentedDraws expected = documented_draws(c.V, c.S, c.seed, c.unique == 1);
        EXPECT_EQ(draws.samples, expected.samples);
        EXPECT_TRUE(counts_match(draws.sample_counts, draws.samples, c.V, c.S, expected.tries, c.unique == 1));
        EXPECT_TRUE(counts_match(draws.target_counts, targets, c.V, c.S, expected.tries, c.unique == 1));
    }
}

TEST_P(LogUniformSampler, UniqueSamplingGivesDistinctClasses) {
    for (const auto& [V, S] : {std::pair<int64_t, int64_t>{50, 50}, {1000, 200}, {100000, 4000}}) {
        SCOPED_TRACE("V=" + std::to_string(V) + " S=" + std::to_string(S));
        const Draws draws = sample(context.get(), V, S, 11, 1);
        const std::set<int32_t> distinct(draws.samples.begin(), draws.samples.end());
        EXPECT_EQ(static_cast<int64_t>(distinct.size()), S);
        EXPECT_GE(*distinct.begin(), 0);
        EXPECT_LT(*distinct.rbegin(), V);
        // A class among S distinct samples is expected at most once.
        for (float count : draws.sample_counts) {
            EXPECT_GT(count, 0.0f);
            EXPECT_LE(count, 1.0f);
        }
    }
}

TEST_P(LogUniformSampler, SameSeedSameDrawsOtherSeedOtherDraws) {
    for (int32_t unique : {0, 1}) {
        SCOPED_TRACE("unique=" + std::to_string(unique));
        const Draws first = sample(context.get(), 1000, 64, 21, unique);
        const Draws again = sample(context.get(), 1000, 64, 21, unique);
        const Draws other = sample(context.get(), 1000, 64, 22, unique);
        EXPECT_EQ(first.samples, again.samples);
        EXPECT_TRUE(bitwise_equal(first.sample_counts, again.sample_counts));
        EXPECT_NE(first.samples, other.samples);
    }
}

// How many floats lie between two finite floats of the same sign (0: equal).
int64_t float_steps_apart(float a, float b) {
    int32_t a_bits = 0, b_bits = 0;
    std::memcpy(&a_bits, &a, sizeof a);
    std::memcpy(&b_bits, &b, sizeof b);
    return std::abs(static_cast<int64_t>(a_bits) - static_cast<int64_t>(b_bits));
}

::testing::AssertionResult counts_within_ulps(const std::vector<float>& actual, const std::vector<float>& expected) {
    constexpr int64_t kCountUlps = 4;
    if (actual.size() != expected.size()) {
        return ::testing::AssertionFailure() << "size " << actual.size() << ", expected " << expected.size();
    }
    for (size_t i = 0; i < actual.size(); ++i) {
        if (float_steps_apart(actual[i], expected[i]) > kCountUlps) {
            return ::testing::AssertionFailure() << "count " << i << " is " << actual[i] << ", expected " << expected[i]
                                                 << " within " << kCountUlps << " ulps";
        }
    }
    return ::testing::AssertionSuccess();
}

// Every backend draws the CPU's samples: the same classes (every backend computes them with the
// same code, cpu/log_uniform.hpp), and expected counts within a few float ulps (a device
// evaluates the same double formulas with its own log1p and expm1, each within an ulp of exact
// in double). Large V with many unique samples takes a device's unique sampler through many
// rounds of draws.
TEST_P(LogUniformSampler, DrawsEqualTheCpuDraws) {
    Context cpu = make_cpu_context();
    for (int32_t unique : {0, 1}) {
        for (const auto& [V, S] : {std::pair<int64_t, int64_t>{1, 1}, {1, 5}, {7, 20}, {50, 50}, {1000, 64}, {100000, 1},
                                   {100000, 1024}, {100000, 8192}}) {
            SCOPED_TRACE("V=" + std::to_string(V) + " S=" + std::to_string(S) + " unique=" + std::to_string(unique));
            if (unique == 1 && S > V) continue;
            std::vector<int32_t> targets;
            for (int64_t n = 0; n < 300; ++n) targets.push_back(n % 7 == 3 ? -1 : static_cast<int32_t>((n * n * 7919) % V));
            const Draws ours = sample(context.get(), V, S, 31 + static_cast<uint64_t>(V), unique, targets);
            const Draws reference = sample(cpu.get(), V, S, 31 + static_cast<uint64_t>(V), unique, targets);
            EXPECT_EQ(ours.samples, reference.samples);
            EXPECT_TRUE(counts_within_ulps(ours.sample_counts, reference.sample_counts)) << "sample counts";
            EXPECT_TRUE(counts_within_ulps(ours.target_counts, reference.target_counts)) << "target counts";
        }
    }
}

// Every configuration, the CUDA device included where present (backend_configurations()).
INSTANTIATE_TEST_SUITE_P(Cpu, LogUniformSampler, ::testing::ValuesIn(backend_configurations()), config_name);

// 10^6 independent draws over V = 1000 classes against P(c): Pearson's chi-square over the
// 1000 classes (every expected count is above 140) has 999 degrees of freedom, mean 999 and
// standard deviation 44.7; a correct sampler exceeds 1250 (5.6 standard deviations) with
// probability below 1e-6. With the fixed seed the statistic is fixed too (about 960); a sampler
// whose probabilities were 5% off on the ten most frequent classes alone would add about 870.
TEST(LogUniformSamplerDistribution, MatchesLogUniformProbabilities) {
    constexpr int64_t V = 1000, S = 1000000;
    Context context = make_cpu_context();
    const Draws draws = sample(context.get(), V, S, 20240601, 0);
    std::vector<int64_t> observed(V, 0);
    for (int32_t c : draws.samples) {
        ASSERT_GE(c, 0);
        ASSERT_LT(c, V);
        ++observed[static_cast<size_t>(c)];
    }
    long double chi_square = 0.0L;
    for (int64_t c = 0; c < V; ++c) {
        const long double expected = static_cast<long double>(S) * probability(c, V);
        const long double difference = static_cast<long double>(observed[static_cast<size_t>(c)]) - expected;
        chi_square += difference * difference / expected;
    }
    EXPECT_LT(static_cast<double>(chi_square), 1250.0);
    EXPECT_TRUE(counts_match(draws.sample_counts, draws.samples, V, S, S, false));
}

// The sampler's exp (cpu/log_uniform.hpp) over its whole range, [0, 22] (log(V + 1) < 21.5):
// within 4e-16 relative of the C library's exp (each is within about an ulp, 2.2e-16, of exact).
TEST(LogUniformExp, AgreesWithTheCLibrary) {
    std::mt19937_64 generator(20240602);
    std::uniform_real_distribution<double> range(0.0, 22.0);
    double worst = 0.0;
    for (int i = 0; i < 1000000; ++i) {
        const double x = i < 1000 ? 22.0 * i / 1000 : range(generator);
        const double expected = std::exp(x);
        worst = std::max(worst, std::abs(ne::log_uniform::log_uniform_exp(x) - expected) / expected);
    }
    EXPECT_LT(worst, 4e-16);
    EXPECT_EQ(ne::log_uniform::log_uniform_exp(0.0), 1.0);
}

// The classes of the sampler's exp are the C library's, floor(exp(u log(V + 1))) - 1, except
// where exp lands within 1e-12 (relative) of an integer, where an ulp may move the class.
TEST(LogUniformExp, ClassesMatchTheCLibraryAwayFromBoundaries) {
    for (const int64_t V : {int64_t{10}, int64_t{100000}, int64_t{2147483648}}) {
        SCOPED_TRACE("V=" + std::to_string(V));
        const double log_range = std::log(static_cast<double>(V) + 1.0);
        int64_t near_boundary = 0;
        for (uint64_t index = 0; index < 200000; ++index) {
            const double u = static_cast<double>(ne::log_uniform::splitmix64(99, index) >> 11) * 0x1p-53;
            const double exact = std::exp(u * log_range);
            if (std::abs(exact - std::round(exact)) < 1e-12 * exact) {
                ++near_boundary;
                continue;
            }
            const int64_t expected = std::clamp<int64_t>(static_cast<int64_t>(std::floor(exact)) - 1, 0, V - 1);
            ASSERT_EQ(ne::log_uniform::log_uniform_class(99, index, log_range, V), expected) << "draw " << index;
        }
        EXPECT_LT(near_boundary, 100);
    }
}

// ---- The sampled softmax: problems and the double-precision oracle ---------------------------

ne_sampled_softmax_params softmax_params(int32_t subtract, int32_t remove, int32_t accumulate = 0) {
    return ne_sampled_softmax_params{sizeof(ne_sampled_softmax_params), subtract, remove, accumulate};
}

// hidden [N, D], weight [V, D], bias [V] (empty: no bias), targets [N] (negative: ignored),
// samples [S], expected counts, dloss [N]. Row-major without padding.
struct Problem {
    int64_t N, D, V, S;
    std::vector<float> hidden, weight, bias;
    std::vector<int32_t> targets, samples;
    std::vector<float> sample_counts, target_counts, dloss;
};

// Samples with repeats, a quarter of them equal to some row's target (accidental hits); about
// one row in five ignored; expected counts in [0.1, 3].
Problem make_problem(int64_t N, int64_t D, int64_t V, int64_t S, uint64_t seed, bool with_bias) {
    Problem p{N, D, V, S, random_floats(static_cast<size_t>(N * D), seed), random_floats(static_cast<size_t>(V * D), seed + 1),
              with_bias ? random_floats(static_cast<size_t>(V), seed + 2) : std::vector<float>{}, {}, {},
              random_floats(static_cast<size_t>(S), seed + 3, 0.1f, 3.0f), random_floats(static_cast<size_t>(N), seed + 4, 0.1f, 3.0f),
              random_floats(static_cast<size_t>(N), seed + 5, -2.0f, 2.0f)};
    std::mt19937_64 generator(seed + 6);
    std::uniform_int_distribution<int32_t> classes(0, static_cast<int32_t>(V - 1));
    std::uniform_int_distribution<int> fifth(0, 4);
    for (int64_t n = 0; n < N; ++n) p.targets.push_back(N > 1 && fifth(generator) == 0 ? -1 : classes(generator));
    for (int64_t s = 0; s < S; ++s) {
        const int32_t target = p.targets[static_cast<size_t>(s % N)];
        p.samples.push_back(fifth(generator) == 0 && target >= 0 ? target : classes(generator));
    }
    return p;
}

struct Oracle {
    std::vector<double> loss, probs, dhidden, dweight, dbias;
};

// Follows the definitions in double: z over [target, samples], removed hits left out.
Oracle oracle(const Problem& p, bool subtract, bool remove) {
    const size_t N = static_cast<size_t>(p.N), D = static_cast<size_t>(p.D), V = static_cast<size_t>(p.V);
    const size_t width = static_cast<size_t>(p.S) + 1;
    Oracle out{std::vector<double>(N, 0.0), std::vector<double>(N * width, 0.0), std::vector<double>(N * D, 0.0),
               std::vector<double>(V * D, 0.0), std::vector<double>(V, 0.0)};
    std::vector<double> z(width);
    std::vector<bool> removed(width);
    for (size_t n = 0; n < N; ++n) {
        const int32_t target = p.targets[n];
        if (target < 0) continue;
        const auto class_of = [&](size_t j) { return static_cast<size_t>(j == 0 ? target : p.samples[j - 1]); };
        double max = -std::numeric_limits<double>::infinity();
        for (size_t j = 0; j < width; ++j) {
            const size_t c = class_of(j);
            removed[j] = j > 0 && remove && c == static_cast<size_t>(target);
            double logit = p.bias.empty() ? 0.0 : p.bias[c];
            for (size_t d = 0; d < D; ++d) logit += static_cast<double>(p.hidden[n * D + d]) * p.weight[c * D + d];
            if (subtract) logit -= std::log(static_cast<double>(j == 0 ? p.target_counts[n] : p.sample_counts[j - 1]));
            z[j] = logit;
            if (!removed[j]) max = std::max(max, logit);
        }
        double total = 0.0;
        for (size_t j = 0; j < width; ++j) total += removed[j] ? 0.0 : std::exp(z[j] - max);
        const double lse = max + std::log(total);
        out.loss[n] = lse - z[0];
        for (size_t j = 0; j < width; ++j) {
            const double probability = removed[j] ? 0.0 : std::exp(z[j] - lse);
            out.probs[n * width + j] = probability;
            const double dz = p.dloss[n] * (j == 0 ? probability - 1.0 : probability);
            const size_t c = class_of(j);
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
    int32_t subtract = 1;
    int32_t remove = 1;
    int32_t accumulate = 0;
    bool probs_output = true;                         // false: forward without probs
    std::vector<float> dweight_before, dbias_before;  // initial contents (default: zeros)
};

struct Outputs {
    std::vector<float> loss, probs, dhidden, dweight, dbias;
};

// Forward, then backward from the forward's probs.
Outputs run(ne_context* context, const Problem& p, const RunOptions& options = {}) {
    Tensor hidden = make_tensor(context, NE_DTYPE_F32, {p.N, p.D}, p.hidden);
    Tensor weight = make_tensor(context, NE_DTYPE_F32, {p.V, p.D}, p.weight);
    Tensor bias = p.bias.empty() ? nullptr : make_tensor(context, NE_DTYPE_F32, {p.V}, p.bias);
    Tensor targets = make_tensor(context, NE_DTYPE_I32, {p.N}, p.targets);
    Tensor samples = make_tensor(context, NE_DTYPE_I32, {p.S}, p.samples);
    Tensor sample_counts = make_tensor(context, NE_DTYPE_F32, {p.S}, p.sample_counts);
    Tensor target_counts = make_tensor(context, NE_DTYPE_F32, {p.N}, p.target_counts);
    Tensor loss = make_tensor(context, NE_DTYPE_F32, {p.N}), probs = make_tensor(context, NE_DTYPE_F32, {p.N, p.S + 1});
    Tensor dloss = make_tensor(context, NE_DTYPE_F32, {p.N}, p.dloss);
    Tensor dhidden = make_tensor(context, NE_DTYPE_F32, {p.N, p.D});
    Tensor dweight = make_tensor(context, NE_DTYPE_F32, {p.V, p.D}), dbias = make_tensor(context, NE_DTYPE_F32, {p.V});
    check(ne_tensor_fill(probs.get(), kSentinel), "ne_tensor_fill");
    check(ne_tensor_fill(dhidden.get(), kSentinel), "ne_tensor_fill");
    if (!options.dweight_before.empty()) write(dweight.get(), options.dweight_before);
    if (!options.dbias_before.empty()) write(dbias.get(), options.dbias_before);

    const ne_sampled_softmax_params params = softmax_params(options.subtract, options.remove, options.accumulate);
    ne_tensor* sample_counts_arg = options.subtract ? sample_counts.get() : nullptr;
    ne_tensor* target_counts_arg = options.subtract ? target_counts.get() : nullptr;
    if (!options.probs_output) {
        check(ne_sampled_softmax_forward(context, &params, hidden.get(), weight.get(), bias.get(), targets.get(), samples.get(),
                                         sample_counts_arg, target_counts_arg, loss.get(), nullptr),
              "ne_sampled_softmax_forward");
        return {read<float>(loss.get()), {}, {}, {}, {}};
    }
    check(ne_sampled_softmax_forward(context, &params, hidden.get(), weight.get(), bias.get(), targets.get(), samples.get(),
                                     sample_counts_arg, target_counts_arg, loss.get(), probs.get()),
          "ne_sampled_softmax_forward");
    check(ne_sampled_softmax_backward(context, &params, hidden.get(), weight.get(), targets.get(), samples.get(), probs.get(),
                                      dloss.get(), dhidden.get(), dweight.get(), dbias.get()),
          "ne_sampled_softmax_backward");
    return {read<float>(loss.get()), read<float>(probs.get()), read<float>(dhidden.get()), read<float>(dweight.get()),
            read<float>(dbias.get())};
}

// The classes of the targets and samples, whose rows of dweight and dbias the backward writes.
std::vector<bool> touched_classes(const Problem& p) {
    std::vector<bool> touched(static_cast<size_t>(p.V), false);
    for (int32_t c : p.samples) touched[static_cast<size_t>(c)] = true;
    for (int32_t c : p.targets) {
        if (c >= 0) touched[static_cast<size_t>(c)] = true;
    }
    return touched;
}

class SampledSoftmax : public ::testing::TestWithParam<BackendConfig> {
protected:
    Context context = make_context(GetParam());
};

// ---- Against the oracle ---------------------------------------------------------------------

struct Shape {
    int64_t N, D, V, S;
};

TEST_P(SampledSoftmax, MatchesOracle) {
    const Shape shapes[] = {{1, 1, 1, 1}, {1, 3, 2, 4}, {5, 9, 20, 8}, {13, 17, 100, 40}, {40, 33, 500, 64}};
    uint64_t seed = 100;
    for (const Shape& shape : shapes) {
        for (int32_t subtract : {0, 1}) {
            for (int32_t remove : {0, 1}) {
                const bool with_bias = (subtract + remove) % 2 == 0;
                SCOPED_TRACE("N=" + std::to_string(shape.N) + " D=" + std::to_string(shape.D) + " V=" + std::to_string(shape.V) +
                             " S=" + std::to_string(shape.S) + " subtract=" + std::to_string(subtract) +
                             " remove=" + std::to_string(remove) + " bias=" + std::to_string(with_bias));
                const Problem p = make_problem(shape.N, shape.D, shape.V, shape.S, ++seed, with_bias);
                RunOptions options;
                options.subtract = subtract;
                options.remove = remove;
                const Outputs out = run(context.get(), p, options);
                const Oracle expected = oracle(p, subtract == 1, remove == 1);
                EXPECT_TRUE(all_near(out.loss, expected.loss, kForwardTolerance)) << "loss";
                EXPECT_TRUE(all_near(out.probs, expected.probs, kForwardTolerance)) << "probs";
                EXPECT_TRUE(all_near(out.dhidden, expected.dhidden, kBackwardTolerance)) << "dhidden";
                EXPECT_TRUE(all_near(out.dweight, expected.dweight, kBackwardTolerance)) << "dweight";
                EXPECT_TRUE(all_near(out.dbias, expected.dbias, kBackwardTolerance)) << "dbias";
            }
        }
    }
}

// Unique sampling of all V classes, without the correction and with accidental hits removed,
// scores each row against every class exactly once: the full softmax cross-entropy.
TEST_P(SampledSoftmax, EqualsFullCrossEntropyWhenEveryClassIsSampled) {
    constexpr int64_t N = 13, D = 9, V = 37;
    Problem p = make_problem(N, D, V, V, 201, true);
    p.samples = sample(context.get(), V, V, 202, 1).samples;
    RunOptions options;
    options.subtract = 0;
    options.remove = 1;
    const Outputs sampled = run(context.get(), p, options);

    Tensor hidden = make_tensor(context.get(), NE_DTYPE_F32, {N, D}, p.hidden);
    Tensor weight = make_tensor(context.get(), NE_DTYPE_F32, {V, D}, p.weight);
    Tensor bias = make_tensor(context.get(), NE_DTYPE_F32, {V}, p.bias);
    Tensor targets = make_tensor(context.get(), NE_DTYPE_I32, {N}, p.targets);
    Tensor loss = make_tensor(context.get(), NE_DTYPE_F32, {N}), lse = make_tensor(context.get(), NE_DTYPE_F32, {N});
    Tensor dloss = make_tensor(context.get(), NE_DTYPE_F32, {N}, p.dloss);
    Tensor dhidden = make_tensor(context.get(), NE_DTYPE_F32, {N, D});
    Tensor dweight = make_tensor(context.get(), NE_DTYPE_F32, {V, D}), dbias = make_tensor(context.get(), NE_DTYPE_F32, {V});
    const ne_cross_entropy_params params{sizeof(ne_cross_entropy_params), 0, 0, 0};
    NE_ASSERT_OK(ne_cross_entropy_forward(context.get(), &params, hidden.get(), weight.get(), bias.get(), targets.get(),
                                          loss.get(), lse.get()));
    NE_ASSERT_OK(ne_cross_entropy_backward(context.get(), &params, hidden.get(), weight.get(), bias.get(), targets.get(),
                                           lse.get(), dloss.get(), dhidden.get(), dweight.get(), dbias.get()));
    EXPECT_TRUE(all_near(sampled.loss, read<float>(loss.get()), kForwardTolerance));
    EXPECT_TRUE(all_near(sampled.dhidden, read<float>(dhidden.get()), kBackwardTolerance));
    EXPECT_TRUE(all_near(sampled.dweight, read<float>(dweight.get()), kBackwardTolerance));
    EXPECT_TRUE(all_near(sampled.dbias, read<float>(dbias.get()), kBackwardTolerance));
}

// ---- Hand-checked cases -----------------------------------------------------------------------

// D = 1, V = 3: hidden [1], weight [0, 1, 2] (z_c = c), target 1, samples [1, 2]. The sample 1 is
// an accidental hit.
//   kept:    z = [1, 1, 2], loss = log(2e + e^2) - 1, probs = [e, e, e^2] / (2e + e^2);
//            dhidden = (p0 - 1) + p1 + 2 p2 = e / (2 + e), dweight[1] = -e / (2 + e), dweight[2] = e / (2 + e).
//   removed: z = [1, -inf, 2], loss = log(e + e^2) - 1, probs = [1, 0, e] / (1 + e);
//            dhidden = (p0 - 1) + 2 p2 = e / (1 + e), dweight[1] = -e / (1 + e), dweight[2] = e / (1 + e).
TEST_P(SampledSoftmax, AccidentalHitsHandChecked) {
    const double e = std::exp(1.0);
    const Problem p{1, 1, 3, 2, {1.0f}, {0.0f, 1.0f, 2.0f}, {}, {1}, {1, 2}, {1.0f, 1.0f}, {1.0f}, {1.0f}};
    RunOptions options;
    options.subtract = 0;

    options.remove = 0;
    const Outputs kept = run(context.get(), p, options);
    EXPECT_TRUE(all_near(kept.loss, Doubles{std::log(2 * e + e * e) - 1}, 1e-6));
    EXPECT_TRUE(all_near(kept.probs, Doubles{1 / (2 + e), 1 / (2 + e), e / (2 + e)}, 1e-6));
    EXPECT_TRUE(all_near(kept.dhidden, Doubles{e / (2 + e)}, 1e-6));
    EXPECT_TRUE(all_near(kept.dweight, Doubles{0.0, -e / (2 + e), e / (2 + e)}, 1e-6));
    EXPECT_TRUE(all_near(kept.dbias, Doubles{0.0, -e / (2 + e), e / (2 + e)}, 1e-6));

    options.remove = 1;
    const Outputs removed = run(context.get(), p, options);
    EXPECT_TRUE(all_near(removed.loss, Doubles{std::log(e + e * e) - 1}, 1e-6));
    EXPECT_TRUE(all_near(removed.probs, Doubles{1 / (1 + e), 0.0, e / (1 + e)}, 1e-6));
    EXPECT_EQ(removed.probs[1], 0.0f);
    EXPECT_TRUE(all_near(removed.dhidden, Doubles{e / (1 + e)}, 1e-6));
    EXPECT_TRUE(all_near(removed.dweight, Doubles{0.0, -e / (1 + e), e / (1 + e)}, 1e-6));
}

// D = 1, V = 3: hidden [1], weight [0, 1, 2], bias [0.5, 0, -0.5], target 0, samples [1, 2] with
// expected counts [0.5, 2] and the target's 0.25. The correction subtracts their logs:
//   z = [0.5 + log 4, 1 + log 2, 1.5 - log 2], loss = log(4 e^0.5 + 2 e + e^1.5 / 2) - 0.5 - log 4;
// without it, z = [0.5, 1, 1.5] and loss = log(e^0.5 + e + e^1.5) - 0.5.
TEST_P(SampledSoftmax, CorrectionHandChecked) {
    const Problem p{1, 1, 3, 2, {1.0f}, {0.0f, 1.0f, 2.0f}, {0.5f, 0.0f, -0.5f}, {0}, {1, 2}, {0.5f, 2.0f}, {0.25f}, {1.0f}};
    RunOptions options;
    options.remove = 0;
    options.subtract = 1;
    const Outputs corrected = run(context.get(), p, options);
    const double corrected_total = 4 * std::exp(0.5) + 2 * std::exp(1.0) + std::exp(1.5) / 2;
    EXPECT_TRUE(all_near(corrected.loss, Doubles{std::log(corrected_total) - 0.5 - std::log(4.0)}, 1e-6));
    EXPECT_TRUE(all_near(corrected.probs, Doubles{4 * std::exp(0.5) / corrected_total, 2 * std::exp(1.0) / corrected_total,
                                           std::exp(1.5) / 2 / corrected_total},
                         1e-6));

    options.subtract = 0;
    const Outputs plain = run(context.get(), p, options);
    const double plain_total = std::exp(0.5) + std::exp(1.0) + std::exp(1.5);
    EXPECT_TRUE(all_near(plain.loss, Doubles{std::log(plain_total) - 0.5}, 1e-6));
}

// ---- Scattering, accumulation, optional outputs ------------------------------------------------

// Class 2 is sampled three times and is the target of two rows, class 5 once and the target of
// one row: each contribution lands in the class's row of dweight and dbias; other rows stay 0.
TEST_P(SampledSoftmax, DuplicateClassesScatterIntoOneRow) {
    Problem p = make_problem(4, 6, 9, 4, 301, true);
    p.targets = {2, 5, 2, -1};
    p.samples = {2, 2, 5, 2};
    for (int32_t remove : {0, 1}) {
        SCOPED_TRACE("remove=" + std::to_string(remove));
        RunOptions options;
        options.remove = remove;
        const Outputs out = run(context.get(), p, options);
        const Oracle expected = oracle(p, true, remove == 1);
        EXPECT_TRUE(all_near(out.dweight, expected.dweight, kBackwardTolerance));
        EXPECT_TRUE(all_near(out.dbias, expected.dbias, kBackwardTolerance));
        for (int64_t c = 0; c < p.V; ++c) {
            if (c == 2 || c == 5) continue;
            EXPECT_EQ(out.dbias[static_cast<size_t>(c)], 0.0f) << "class " << c;
        }
        EXPECT_NE(out.dbias[2], 0.0f);
    }
}

// accumulate = 0 overwrites the touched rows and zeroes the others; accumulate = 1 adds to the
// touched rows and leaves the others as they were.
TEST_P(SampledSoftmax, AccumulateZeroesOrKeepsUntouchedRows) {
    const Problem p = make_problem(17, 11, 60, 12, 401, true);
    const std::vector<bool> touched = touched_classes(p);
    const Oracle expected = oracle(p, true, true);
    RunOptions options;
    options.dweight_before = random_floats(static_cast<size_t>(p.V * p.D), 402);
    options.dbias_before = random_floats(static_cast<size_t>(p.V), 403);

    options.accumulate = 0;
    const Outputs overwritten = run(context.get(), p, options);
    EXPECT_TRUE(all_near(overwritten.dweight, expected.dweight, kBackwardTolerance));
    EXPECT_TRUE(all_near(overwritten.dbias, expected.dbias, kBackwardTolerance));

    options.accumulate = 1;
    const Outputs added = run(context.get(), p, options);
    for (int64_t c = 0; c < p.V; ++c) {
        const size_t row = static_cast<size_t>(c);
        SCOPED_TRACE("class " + std::to_string(c) + (touched[row] ? " (touched)" : ""));
        const float bias_before = options.dbias_before[row];
        if (touched[row]) {
            EXPECT_NEAR(added.dbias[row], bias_before + expected.dbias[row], kBackwardTolerance * (2 + std::abs(bias_before)));
        } else {
            EXPECT_EQ(added.dbias[row], bias_before);
            EXPECT_EQ(overwritten.dbias[row], 0.0f);
        }
        for (int64_t d = 0; d < p.D; ++d) {
            const size_t i = static_cast<size_t>(c * p.D + d);
            const float before = options.dweight_before[i];
            if (touched[row]) {
                ASSERT_NEAR(added.dweight[i], before + expected.dweight[i], kBackwardTolerance * (2 + std::abs(before)));
            } else {
                ASSERT_EQ(added.dweight[i], before);
                ASSERT_EQ(overwritten.dweight[i], 0.0f);
            }
        }
    }
    EXPECT_TRUE(bitwise_equal(added.dhidden, overwritten.dhidden));
}

TEST_P(SampledSoftmax, ForwardWithoutProbsGivesTheSameLoss) {
    const Problem p = make_problem(23, 10, 80, 16, 501, true);
    const Outputs with_probs = run(context.get(), p);
    RunOptions options;
    options.probs_output = false;
    EXPECT_TRUE(bitwise_equal(run(context.get(), p, options).loss, with_probs.loss));
}

// ---- Finite differences ---------------------------------------------------------------------

// L = sum_n dloss_n * loss_n with the samples fixed, removed hits and the correction on: central
// differences of the forward kernel as in test_cross_entropy.cpp (step 1e-2, tolerance
// 5e-4 * (1 + |gradient|)), for dhidden, the touched rows of dweight (the others are 0) and dbias.
class FiniteDifferences {
public:
    FiniteDifferences(ne_context* context, const Problem& problem) : context_(context), p_(problem) {}

    static constexpr float kStep = 1e-2f;
    static constexpr double kTolerance = 5e-4;

    void check_gradients() {
        const Outputs out = run(context_, p_);
        EXPECT_TRUE(all_near(out.dhidden, numerical_gradient(p_.hidden), kTolerance)) << "dhidden";
        EXPECT_TRUE(all_near(out.dweight, numerical_gradient(p_.weight), kTolerance)) << "dweight";
        EXPECT_TRUE(all_near(out.dbias, numerical_gradient(p_.bias), kTolerance)) << "dbias";
    }

private:
    double loss() {
        RunOptions options;
        options.probs_output = false;
        const std::vector<float> values = run(context_, p_, options).loss;
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
};

TEST_P(SampledSoftmax, GradientsMatchFiniteDifferences) {
    Problem p = make_problem(4, 5, 12, 6, 601, true);
    p.targets = {3, -1, 7, 3};
    p.samples = {7, 0, 3, 7, 11, 2};
    FiniteDifferences(context.get(), p).check_gradients();
}

// A training step as a caller runs it: samples drawn on the context (independent draws repeat
// classes, unique ones do not; both hit targets by accident), then forward and backward against
// the oracle, and the same call again gives the same bits (a device's scatter sums every class
// in a fixed order, without atomics).
TEST_P(SampledSoftmax, DrawnSamplesMatchOracleAndRepeatBitwise) {
    for (int32_t unique : {0, 1}) {
        SCOPED_TRACE("unique=" + std::to_string(unique));
        Problem p = make_problem(67, 24, 300, 96, 801 + static_cast<uint64_t>(unique), true);
        const Draws draws = sample(context.get(), p.V, p.S, 802, unique, p.targets);
        p.samples = draws.samples;
        p.sample_counts = draws.sample_counts;
        p.target_counts = draws.target_counts;
        const Outputs first = run(context.get(), p), second = run(context.get(), p);
        const Oracle expected = oracle(p, true, true);
        EXPECT_TRUE(all_near(first.loss, expected.loss, kForwardTolerance)) << "loss";
        EXPECT_TRUE(all_near(first.probs, expected.probs, kForwardTolerance)) << "probs";
        EXPECT_TRUE(all_near(first.dhidden, expected.dhidden, kBackwardTolerance)) << "dhidden";
        EXPECT_TRUE(all_near(first.dweight, expected.dweight, kBackwardTolerance)) << "dweight";
        EXPECT_TRUE(all_near(first.dbias, expected.dbias, kBackwardTolerance)) << "dbias";
        EXPECT_TRUE(bitwise_equal(first.loss, second.loss));
        EXPECT_TRUE(bitwise_equal(first.probs, second.probs));
        EXPECT_TRUE(bitwise_equal(first.dhidden, second.dhidden));
        EXPECT_TRUE(bitwise_equal(first.dweight, second.dweight));
        EXPECT_TRUE(bitwise_equal(first.dbias, second.dbias));
    }
}

// Samples and expected counts are checked where they live (on a device, by kernels): the first
// bad element is named, and nothing is written. An ignored row's count is not read.
TEST_P(SampledSoftmax, RefusesBadSamplesAndCounts) {
    Problem p = make_problem(3, 4, 10, 4, 901, false);
    p.targets = {2, -1, 5};
    p.target_counts = {1.0f, 0.0f, 2.0f};
    Tensor hidden = make_tensor(context.get(), NE_DTYPE_F32, {p.N, p.D}, p.hidden);
    Tensor weight = make_tensor(context.get(), NE_DTYPE_F32, {p.V, p.D}, p.weight);
    Tensor targets = make_tensor(context.get(), NE_DTYPE_I32, {p.N}, p.targets);
    Tensor target_counts = make_tensor(context.get(), NE_DTYPE_F32, {p.N}, p.target_counts);
    Tensor loss = make_tensor(context.get(), NE_DTYPE_F32, {p.N});
    check(ne_tensor_fill(loss.get(), kSentinel), "ne_tensor_fill");
    const ne_sampled_softmax_params params = softmax_params(1, 1);
    const auto forward = [&](const std::vector<int32_t>& samples, const std::vector<float>& counts) {
        Tensor sample_tensor = make_tensor(context.get(), NE_DTYPE_I32, {p.S}, samples);
        Tensor count_tensor = make_tensor(context.get(), NE_DTYPE_F32, {p.S}, counts);
        return ne_sampled_softmax_forward(context.get(), &params, hidden.get(), weight.get(), nullptr, targets.get(),
                                          sample_tensor.get(), count_tensor.get(), target_counts.get(), loss.get(), nullptr);
    };
    ne_context* ctx = context.get();
    EXPECT_TRUE(refused_for_data(ctx, forward({1, 2, -3, 4}, p.sample_counts), NE_STATUS_INVALID_ARGUMENT,
                                 {"ne_sampled_softmax_forward", "'samples'", "element 2 is -3"}));
    EXPECT_TRUE(refused_for_data(ctx, forward({1, 2, 3, 10}, p.sample_counts), NE_STATUS_INVALID_ARGUMENT,
                                 {"'samples'", "element 3 is 10"}));
    EXPECT_TRUE(refused_for_data(ctx, forward({1, 2, 3, 4}, {1.0f, -2.0f, 1.0f, 1.0f}), NE_STATUS_INVALID_ARGUMENT,
                                 {"'sample_expected_counts'", "element 1 is -2"}));
    EXPECT_TRUE(refused_for_data(ctx, forward({1, 2, 3, 4}, {1.0f, 1.0f, 1.0f, std::numeric_limits<float>::infinity()}),
                                 NE_STATUS_INVALID_ARGUMENT, {"'sample_expected_counts'", "element 3 is inf"}));
    if (!on_device(ctx)) {
        EXPECT_TRUE(bitwise_equal(read<float>(loss.get()), std::vector<float>(static_cast<size_t>(p.N), kSentinel)));
    }
    NE_EXPECT_OK(forward({1, 2, 3, 4}, p.sample_counts));
    NE_EXPECT_OK(ne_context_synchronize(ctx));
}

// Every configuration, the CUDA device included where present (backend_configurations()).
INSTANTIATE_TEST_SUITE_P(Cpu, SampledSoftmax, ::testing::ValuesIn(backend_configurations()), config_name);

// ---- Determinism ----------------------------------------------------------------------------

// The same bits on 1 and 3 threads, sampling included: dweight and dbias sum each touched class
// in a fixed order whatever the split.
TEST(SampledSoftmaxDeterminism, ResultsDoNotDependOnThreadCount) {
    const ne_simd_level best = best_simd_level();
    if (best < NE_SIMD_LEVEL_AVX2) GTEST_SKIP() << "only the single-threaded scalar reference runs here";
    for (ne_simd_level level = NE_SIMD_LEVEL_AVX2; level <= best; level = static_cast<ne_simd_level>(level + 1)) {
        SCOPED_TRACE("level " + std::to_string(level));
        Context one = make_cpu_context(1, level), three = make_cpu_context(3, level);
        Problem p = make_problem(301, 70, 2003, 257, 701, true);
        const Draws draws_one = sample(one.get(), p.V, p.S, 702, 0, p.targets);
        const Draws draws_three = sample(three.get(), p.V, p.S, 702, 0, p.targets);
        EXPECT_EQ(draws_one.samples, draws_three.samples);
        EXPECT_TRUE(bitwise_equal(draws_one.sample_counts, draws_three.sample_counts));
        p.samples = draws_one.samples;
        p.sample_counts = draws_one.sample_counts;
        p.target_counts = draws_one.target_counts;
        const Outputs a = run(one.get(), p), b = run(three.get(), p);
        EXPECT_TRUE(bitwise_equal(a.loss, b.loss));
        EXPECT_TRUE(bitwise_equal(a.probs, b.probs));
        EXPECT_TRUE(bitwise_equal(a.dhidden, b.dhidden));
        EXPECT_TRUE(bitwise_equal(a.dweight, b.dweight));
        EXPECT_TRUE(bitwise_equal(a.dbias, b.dbias));
    }
}

// ---- Argument checks ------------------------------------------------------------------------

// Valid arguments for the three functions: N = 4 rows, D = 8, V = 10, S = 5. Outputs start
// filled with sentinels, and every refused call must leave them so.
class SampledSoftmaxArguments : public ::testing::Test {
protected:
    static constexpr int64_t N = 4, D = 8, V = 10, S = 5;

    Tensor output(std::vector<int64_t> shape, ne_dtype dtype = NE_DTYPE_F32) {
        Tensor tensor = make_tensor(context.get(), dtype, std::move(shape));
        check(ne_tensor_fill(tensor.get(), dtype == NE_DTYPE_I32 ? kSentinelId : kSentinel), "ne_tensor_fill");
        return tensor;
    }
    Tensor view(const Tensor& base, int64_t offset, std::vector<int64_t> shape) {
        ne_tensor* raw = nullptr;
        check(ne_tensor_view(base.get(), offset, static_cast<int32_t>(shape.size()), shape.data(), nullptr, &raw), "ne_tensor_view");
        return Tensor(raw);
    }
    Tensor ids(std::vector<int32_t> values) {
        return make_tensor(context.get(), NE_DTYPE_I32, {static_cast<int64_t>(values.size())}, values);
    }

    void expect_refused(ne_status status, ne_status expected, std::initializer_list<const char*> fragments) {
        EXPECT_TRUE(fails_with(status, expected, fragments));
        for (const Tensor* tensor : {&out_sample_counts, &out_target_counts, &loss, &probs, &dhidden, &dweight, &dbias}) {
            const std::vector<float> values = read<float>(tensor->get());
            EXPECT_EQ(std::count(values.begin(), values.end(), kSentinel), static_cast<std::ptrdiff_t>(values.size()))
                << "an output was written by a refused call (" << ne_last_error() << ")";
        }
        const std::vector<int32_t> drawn = read<int32_t>(out_samples.get());
        EXPECT_EQ(std::count(drawn.begin(), drawn.end(), kSentinelId), static_cast<std::ptrdiff_t>(drawn.size()))
            << "samples were written by a refused call (" << ne_last_error() << ")";
    }

    Context context = make_cpu_context();
    Context other_context = make_cpu_context();
    ne_sampler_params sampler = sampler_params(V, 1, 1);
    ne_sampled_softmax_params params = softmax_params(1, 1);
    Tensor hidden = make_tensor(context.get(), NE_DTYPE_F32, {N, D}, random_floats(N * D, 1));
    Tensor weight = make_tensor(context.get(), NE_DTYPE_F32, {V, D}, random_floats(V * D, 2));
    Tensor bias = make_tensor(context.get(), NE_DTYPE_F32, {V}, random_floats(V, 3));
    Tensor targets = ids({3, -1, 9, 0});
    Tensor samples = ids({0, 3, 3, 7, 9});
    Tensor sample_counts = make_tensor(context.get(), NE_DTYPE_F32, {S}, random_floats(S, 4, 0.5f, 2.0f));
    Tensor target_counts = make_tensor(context.get(), NE_DTYPE_F32, {N}, random_floats(N, 5, 0.5f, 2.0f));
    Tensor saved_probs = make_tensor(context.get(), NE_DTYPE_F32, {N, S + 1}, random_floats(N * (S + 1), 6, 0.0f, 0.3f));
    Tensor dloss = make_tensor(context.get(), NE_DTYPE_F32, {N}, random_floats(N, 7));
    Tensor out_samples = output({S}, NE_DTYPE_I32), out_sample_counts = output({S}), out_target_counts = output({N});
    Tensor loss = output({N}), probs = output({N, S + 1});
    Tensor dhidden = output({N, D}), dweight = output({V, D}), dbias = output({V});
};

TEST_F(SampledSoftmaxArguments, SamplerRefusesBadArguments) {
    ne_context* ctx = context.get();
    ne_tensor *T = targets.get(), *X = out_samples.get(), *SC = out_sample_counts.get(), *TC = out_target_counts.get();
    expect_refused(ne_sample_log_uniform(nullptr, &sampler, T, X, SC, TC), NE_STATUS_NULL_POINTER,
                   {"ne_sample_log_uniform", "'context'"});
    expect_refused(ne_sample_log_uniform(ctx, nullptr, T, X, SC, TC), NE_STATUS_NULL_POINTER, {"'params'"});
    ne_sampler_params bad = sampler;
    bad.struct_size = 8;
    expect_refused(ne_sample_log_uniform(ctx, &bad, T, X, SC, TC), NE_STATUS_VERSION_MISMATCH, {"struct_size is 8"});
    for (int64_t classes : {int64_t{0}, int64_t{-3}, int64_t{1} << 31 | 1}) {
        bad = sampler_params(classes, 1, 0);
        expect_refused(ne_sample_log_uniform(ctx, &bad, T, X, SC, TC), NE_STATUS_INVALID_ARGUMENT,
                       {"num_classes is", "expected 1 to 2147483648"});
    }
    bad = sampler_params(V, 1, 2);
    expect_refused(ne_sample_log_uniform(ctx, &bad, T, X, SC, TC), NE_STATUS_INVALID_ARGUMENT, {"unique is 2", "0 or 1"});

    expect_refused(ne_sample_log_uniform(ctx, &sampler, T, nullptr, SC, TC), NE_STATUS_NULL_POINTER, {"'samples'"});
    expect_refused(ne_sample_log_uniform(ctx, &sampler, T, X, nullptr, TC), NE_STATUS_NULL_POINTER, {"'sample_expected_counts'"});
    expect_refused(ne_sample_log_uniform(ctx, &sampler, T, X, SC, nullptr), NE_STATUS_INVALID_ARGUMENT, {"both or neither"});
    expect_refused(ne_sample_log_uniform(ctx, &sampler, nullptr, X, SC, TC), NE_STATUS_INVALID_ARGUMENT, {"both or neither"});

    Tensor samples_f32 = output({S});
    expect_refused(ne_sample_log_uniform(ctx, &sampler, T, samples_f32.get(), SC, TC), NE_STATUS_DTYPE_MISMATCH,
                   {"'samples'", "expected dtype i32", "got f32"});
    Tensor samples_2d = output({1, S}, NE_DTYPE_I32);
    expect_refused(ne_sample_log_uniform(ctx, &sampler, T, samples_2d.get(), SC, TC), NE_STATUS_SHAPE_MISMATCH,
                   {"'samples'", "1-D", "got shape [1, 5]"});
    Tensor counts_long = output({S + 1});
    expect_refused(ne_sample_log_uniform(ctx, &sampler, T, X, counts_long.get(), TC), NE_STATUS_SHAPE_MISMATCH,
                   {"'sample_expected_counts'", "[5]", "got [6]"});
    Tensor target_counts_short = output({N - 1});
    expect_refused(ne_sample_log_uniform(ctx, &sampler, T, X, SC, target_counts_short.get()), NE_STATUS_SHAPE_MISMATCH,
                   {"'target_expected_counts'", "[4]", "got [3]"});
    Tensor bad_targets = ids({1, 10, 2, 3});
    expect_refused(ne_sample_log_uniform(ctx, &sampler, bad_targets.get(), X, SC, TC), NE_STATUS_INVALID_ARGUMENT,
                   {"'targets'", "element 1 is 10", "[0, 10)"});
    Tensor many = output({V + 1}, NE_DTYPE_I32), many_counts = output({V + 1});
    expect_refused(ne_sample_log_uniform(ctx, &sampler, T, many.get(), many_counts.get(), TC), NE_STATUS_INVALID_ARGUMENT,
                   {"11 distinct samples", "10 classes"});
    Tensor foreign_samples = make_tensor(other_context.get(), NE_DTYPE_I32, {S});
    expect_refused(ne_sample_log_uniform(ctx, &sampler, T, foreign_samples.get(), SC, TC), NE_STATUS_CONTEXT_MISMATCH,
                   {"'samples'", "another context"});
    Tensor shared_counts = output({N});
    Tensor four_samples = output({N}, NE_DTYPE_I32);
    expect_refused(ne_sample_log_uniform(ctx, &sampler, T, four_samples.get(), shared_counts.get(), shared_counts.get()),
                   NE_STATUS_INVALID_ARGUMENT, {"'sample_expected_counts' overlaps argument 'target_expected_counts'"});

    NE_EXPECT_OK(ne_sample_log_uniform(ctx, &sampler, T, X, SC, TC));
    NE_EXPECT_OK(ne_sample_log_uniform(ctx, &sampler, nullptr, X, SC, nullptr));
    Tensor all_classes = make_tensor(ctx, NE_DTYPE_I32, {V}), all_counts = make_tensor(ctx, NE_DTYPE_F32, {V});
    NE_EXPECT_OK(ne_sample_log_uniform(ctx, &sampler, nullptr, all_classes.get(), all_counts.get(), nullptr));
}

TEST_F(SampledSoftmaxArguments, ForwardRefusesBadArguments) {
    ne_context* ctx = context.get();
    ne_tensor *H = hidden.get(), *W = weight.get(), *B = bias.get(), *T = targets.get(), *X = samples.get(),
              *SC = sample_counts.get(), *TC = target_counts.get(), *L = loss.get(), *P = probs.get();
    const auto call = [&](const ne_sampled_softmax_params* p, const ne_tensor* h, const ne_tensor* w, const ne_tensor* b,
                          const ne_tensor* t, const ne_tensor* x, const ne_tensor* sc, const ne_tensor* tc, ne_tensor* l,
                          ne_tensor* pr) { return ne_sampled_softmax_forward(ctx, p, h, w, b, t, x, sc, tc, l, pr); };
    expect_refused(ne_sampled_softmax_forward(nullptr, &params, H, W, B, T, X, SC, TC, L, P), NE_STATUS_NULL_POINTER,
                   {"ne_sampled_softmax_forward", "'context'"});
    expect_refused(call(nullptr, H, W, B, T, X, SC, TC, L, P), NE_STATUS_NULL_POINTER, {"'params'"});
    ne_sampled_softmax_params bad = params;
    bad.struct_size = sizeof(ne_sampled_softmax_params) - 4;
    expect_refused(call(&bad, H, W, B, T, X, SC, TC, L, P), NE_STATUS_VERSION_MISMATCH, {"struct_size is"});
    bad = softmax_params(2, 1);
    expect_refused(call(&bad, H, W, B, T, X, SC, TC, L, P), NE_STATUS_INVALID_ARGUMENT, {"subtract_log_expected_count is 2"});
    bad = softmax_params(1, -1);
    expect_refused(call(&bad, H, W, B, T, X, SC, TC, L, P), NE_STATUS_INVALID_ARGUMENT, {"remove_accidental_hits is -1"});

    expect_refused(call(&params, nullptr, W, B, T, X, SC, TC, L, P), NE_STATUS_NULL_POINTER, {"'hidden'"});
    expect_refused(call(&params, H, nullptr, B, T, X, SC, TC, L, P), NE_STATUS_NULL_POINTER, {"'weight'"});
    expect_refused(call(&params, H, W, B, nullptr, X, SC, TC, L, P), NE_STATUS_NULL_POINTER, {"'targets'"});
    expect_refused(call(&params, H, W, B, T, nullptr, SC, TC, L, P), NE_STATUS_NULL_POINTER, {"'samples'"});
    expect_refused(call(&params, H, W, B, T, X, SC, TC, nullptr, P), NE_STATUS_NULL_POINTER, {"'loss'"});
    expect_refused(call(&params, H, W, B, T, X, nullptr, TC, L, P), NE_STATUS_NULL_POINTER,
                   {"'sample_expected_counts' is NULL", "subtract_log_expected_count = 1"});
    expect_refused(call(&params, H, W, B, T, X, SC, nullptr, L, P), NE_STATUS_NULL_POINTER, {"'target_expected_counts' is NULL"});

    Tensor weight_f16 = make_tensor(ctx, NE_DTYPE_F16, {V, D});
    expect_refused(call(&params, H, weight_f16.get(), B, T, X, SC, TC, L, P), NE_STATUS_DTYPE_MISMATCH, {"'weight'", "f32", "f16"});
    Tensor samples_f32 = make_tensor(ctx, NE_DTYPE_F32, {S});
    expect_refused(call(&params, H, W, B, T, samples_f32.get(), SC, TC, L, P), NE_STATUS_DTYPE_MISMATCH, {"'samples'", "i32"});
    Tensor weight_wide = make_tensor(ctx, NE_DTYPE_F32, {V, D + 2});
    expect_refused(call(&params, H, weight_wide.get(), B, T, X, SC, TC, L, P), NE_STATUS_SHAPE_MISMATCH,
                   {"'weight'", "expected shape [*, 8]", "got [10, 10]"});
    Tensor bias_long = make_tensor(ctx, NE_DTYPE_F32, {V + 1});
    expect_refused(call(&params, H, W, bias_long.get(), T, X, SC, TC, L, P), NE_STATUS_SHAPE_MISMATCH, {"'bias'", "[10]", "got [11]"});
    Tensor samples_2d = make_tensor(ctx, NE_DTYPE_I32, {S, 1});
    expect_refused(call(&params, H, W, B, T, samples_2d.get(), SC, TC, L, P), NE_STATUS_SHAPE_MISMATCH, {"'samples'", "1-D"});
    Tensor counts_short = make_tensor(ctx, NE_DTYPE_F32, {S - 1});
    expect_refused(call(&params, H, W, B, T, X, counts_short.get(), TC, L, P), NE_STATUS_SHAPE_MISMATCH,
                   {"'sample_expected_counts'", "[5]", "got [4]"});
    Tensor probs_narrow = output({N, S});
    expect_refused(call(&params, H, W, B, T, X, SC, TC, L, probs_narrow.get()), NE_STATUS_SHAPE_MISMATCH,
                   {"'probs'", "expected shape [4, 6]", "got [4, 5]"});

    Tensor negative_sample = ids({0, -1, 3, 7, 9});
    expect_refused(call(&params, H, W, B, T, negative_sample.get(), SC, TC, L, P), NE_STATUS_INVALID_ARGUMENT,
                   {"'samples'", "element 1 is -1", "expected a class in [0, 10)"});
    Tensor large_sample = ids({0, 1, 3, 7, 10});
    expect_refused(call(&params, H, W, B, T, large_sample.get(), SC, TC, L, P), NE_STATUS_INVALID_ARGUMENT,
                   {"'samples'", "element 4 is 10"});
    Tensor bad_targets = ids({3, -1, 12, 0});
    expect_refused(call(&params, H, W, B, bad_targets.get(), X, SC, TC, L, P), NE_STATUS_INVALID_ARGUMENT,
                   {"'targets'", "element 2 is 12"});
    Tensor zero_count = make_tensor(ctx, NE_DTYPE_F32, {S}, std::vector<float>{1.0f, 0.0f, 1.0f, 1.0f, 1.0f});
    expect_refused(call(&params, H, W, B, T, X, zero_count.get(), TC, L, P), NE_STATUS_INVALID_ARGUMENT,
                   {"'sample_expected_counts'", "element 1 is 0", "finite expected count > 0"});
    Tensor nan_count = make_tensor(ctx, NE_DTYPE_F32, {N}, std::vector<float>{1.0f, 1.0f, std::nanf(""), 1.0f});
    expect_refused(call(&params, H, W, B, T, X, SC, nan_count.get(), L, P), NE_STATUS_INVALID_ARGUMENT,
                   {"'target_expected_counts'", "element 2 is nan"});

    Tensor foreign_hidden = make_tensor(other_context.get(), NE_DTYPE_F32, {N, D});
    expect_refused(call(&params, foreign_hidden.get(), W, B, T, X, SC, TC, L, P), NE_STATUS_CONTEXT_MISMATCH, {"'hidden'"});
    Tensor foreign_counts = make_tensor(other_context.get(), NE_DTYPE_F32, {S});
    expect_refused(call(&params, H, W, B, T, X, foreign_counts.get(), TC, L, P), NE_STATUS_CONTEXT_MISMATCH,
                   {"'sample_expected_counts'"});

    Tensor loss_in_probs = view(probs, 3, {N});
    expect_refused(call(&params, H, W, B, T, X, SC, TC, loss_in_probs.get(), P), NE_STATUS_INVALID_ARGUMENT,
                   {"'loss' overlaps argument 'probs'"});
    Tensor loss_in_counts = view(target_counts, 0, {N});
    expect_refused(call(&params, H, W, B, T, X, SC, TC, loss_in_counts.get(), P), NE_STATUS_INVALID_ARGUMENT,
                   {"'loss' overlaps argument 'target_expected_counts'"});

    // Without the correction the counts may be NULL, and an ignored row's count is never read.
    const ne_sampled_softmax_params uncorrected = softmax_params(0, 0);
    NE_EXPECT_OK(call(&uncorrected, H, W, nullptr, T, X, nullptr, nullptr, L, nullptr));
    Tensor ignored_zero = make_tensor(ctx, NE_DTYPE_F32, {N}, std::vector<float>{1.0f, 0.0f, 1.0f, 1.0f});
    NE_EXPECT_OK(call(&params, H, W, B, T, X, SC, ignored_zero.get(), L, P));
}

TEST_F(SampledSoftmaxArguments, BackwardRefusesBadArguments) {
    ne_context* ctx = context.get();
    ne_tensor *H = hidden.get(), *W = weight.get(), *T = targets.get(), *X = samples.get(), *P = saved_probs.get(),
              *G = dloss.get(), *DH = dhidden.get(), *DW = dweight.get(), *DB = dbias.get();
    const auto call = [&](const ne_sampled_softmax_params* p, const ne_tensor* h, const ne_tensor* w, const ne_tensor* t,
                          const ne_tensor* x, const ne_tensor* pr, const ne_tensor* g, ne_tensor* dh, ne_tensor* dw,
                          ne_tensor* db) { return ne_sampled_softmax_backward(ctx, p, h, w, t, x, pr, g, dh, dw, db); };
    expect_refused(ne_sampled_softmax_backward(nullptr, &params, H, W, T, X, P, G, DH, DW, DB), NE_STATUS_NULL_POINTER,
                   {"ne_sampled_softmax_backward", "'context'"});
    expect_refused(call(nullptr, H, W, T, X, P, G, DH, DW, DB), NE_STATUS_NULL_POINTER, {"'params'"});
    ne_sampled_softmax_params bad = params;
    bad.struct_size = 2;
    expect_refused(call(&bad, H, W, T, X, P, G, DH, DW, DB), NE_STATUS_VERSION_MISMATCH, {"struct_size is 2"});
    bad = softmax_params(1, 1, 3);
    expect_refused(call(&bad, H, W, T, X, P, G, DH, DW, DB), NE_STATUS_INVALID_ARGUMENT, {"accumulate is 3", "0 or 1"});

    expect_refused(call(&params, H, W, T, X, nullptr, G, DH, DW, DB), NE_STATUS_NULL_POINTER, {"'probs'"});
    expect_refused(call(&params, H, W, T, X, P, nullptr, DH, DW, DB), NE_STATUS_NULL_POINTER, {"'dloss'"});
    expect_refused(call(&params, H, W, T, X, P, G, nullptr, DW, DB), NE_STATUS_NULL_POINTER, {"'dhidden'"});

    Tensor dloss_i32 = make_tensor(ctx, NE_DTYPE_I32, {N});
    expect_refused(call(&params, H, W, T, X, P, dloss_i32.get(), DH, DW, DB), NE_STATUS_DTYPE_MISMATCH, {"'dloss'", "f32", "i32"});
    Tensor probs_wide = make_tensor(ctx, NE_DTYPE_F32, {N, S + 2});
    expect_refused(call(&params, H, W, T, X, probs_wide.get(), G, DH, DW, DB), NE_STATUS_SHAPE_MISMATCH,
                   {"'probs'", "expected shape [4, 6]", "got [4, 7]"});
    Tensor dweight_wide = output({V, D + 1});
    expect_refused(call(&params, H, W, T, X, P, G, DH, dweight_wide.get(), DB), NE_STATUS_SHAPE_MISMATCH,
                   {"'dweight'", "expected shape [10, 8]", "got [10, 9]"});
    Tensor dbias_short = output({V - 1});
    expect_refused(call(&params, H, W, T, X, P, G, DH, DW, dbias_short.get()), NE_STATUS_SHAPE_MISMATCH, {"'dbias'", "[10]", "got [9]"});
    Tensor dhidden_tall = output({N + 1, D});
    expect_refused(call(&params, H, W, T, X, P, G, dhidden_tall.get(), DW, DB), NE_STATUS_SHAPE_MISMATCH,
                   {"'dhidden'", "expected shape [4, 8]", "got [5, 8]"});

    Tensor large_sample = ids({0, 1, 3, 11, 2});
    expect_refused(call(&params, H, W, T, large_sample.get(), P, G, DH, DW, DB), NE_STATUS_INVALID_ARGUMENT,
                   {"'samples'", "element 3 is 11"});
    Tensor bad_targets = ids({-2, 10, 1, 0});
    expect_refused(call(&params, H, W, bad_targets.get(), X, P, G, DH, DW, DB), NE_STATUS_INVALID_ARGUMENT,
                   {"'targets'", "element 1 is 10"});

    Tensor foreign_probs = make_tensor(other_context.get(), NE_DTYPE_F32, {N, S + 1});
    expect_refused(call(&params, H, W, T, X, foreign_probs.get(), G, DH, DW, DB), NE_STATUS_CONTEXT_MISMATCH, {"'probs'"});
    Tensor foreign_dweight = make_tensor(other_context.get(), NE_DTYPE_F32, {V, D});
    expect_refused(call(&params, H, W, T, X, P, G, DH, foreign_dweight.get(), DB), NE_STATUS_CONTEXT_MISMATCH, {"'dweight'"});

    expect_refused(call(&params, H, W, T, X, P, G, DH, W, DB), NE_STATUS_INVALID_ARGUMENT, {"'dweight' overlaps argument 'weight'"});
    Tensor dbias_in_dhidden = view(dhidden, 20, {V});
    expect_refused(call(&params, H, W, T, X, P, G, DH, DW, dbias_in_dhidden.get()), NE_STATUS_INVALID_ARGUMENT,
                   {"'dhidden' overlaps argument 'dbias'"});
    Tensor dhidden_in_probs_memory = make_tensor(ctx, NE_DTYPE_F32, {N * (S + 1) + N * D});
    Tensor probs_part = view(dhidden_in_probs_memory, 0, {N, S + 1}), dhidden_part = view(dhidden_in_probs_memory, 1, {N, D});
    expect_refused(call(&params, H, W, T, X, probs_part.get(), G, dhidden_part.get(), DW, DB), NE_STATUS_INVALID_ARGUMENT,
                   {"'dhidden' overlaps argument 'probs'"});

    NE_EXPECT_OK(call(&params, H, W, T, X, P, G, DH, DW, DB));
    NE_EXPECT_OK(call(&params, H, W, T, X, P, G, DH, nullptr, nullptr));
}

}  // namespace
