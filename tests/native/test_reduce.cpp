// Reductions and softmax: ne_sum_rows, ne_reduce_sum, ne_softmax_forward. Every backend
// configuration against double-precision references, on edge shapes and padded rows; bitwise
// determinism across thread counts; accumulation; argument checks.
//
// Tolerances:
// - sum_rows: |actual - expected| <= 1e-6 * sum_n |x[n, c]| (float sums; measured at most 1.1e-7
//   for the scalar reference, which adds 9000 rows in order, and 3e-8 for AVX2's 32-row chunks).
// - reduce_sum: within 1 ulp of the exact sum rounded to float (a double sum of 3 * 10^6
//   floats is off by far less than half an ulp of float; only a sum within that distance of a
//   rounding boundary can round the other way).
// - softmax: |actual - expected| <= 5e-6 * expected + 1e-9 per element, and each row with a
//   finite entry sums to 1 within 1e-5. The float sum of the row dominates: 2.7e-6 measured at
//   C = 1025 for the scalar reference, which adds in order; below 1e-6 for AVX2 (8 partial sums).
#include "small_ops_test_support.hpp"

#include <limits>

using namespace ne_test;
using namespace ne_test::small_ops;

namespace {

constexpr float kInfinity = std::numeric_limits<float>::infinity();

class ReduceOps : public ::testing::TestWithParam<BackendConfig> {
protected:
    Context context = make_context(GetParam());
};

// ---- ne_sum_rows ----------------------------------------------------------------------------

struct RowsShape {
    std::vector<int64_t> shape;  // the last dimension is C
    int64_t pad;
};

const RowsShape kRowShapes[] = {{{1}, 0},        {{3}, 0},      {{1, 1}, 0},    {{5, 1}, 0},     {{4, 7}, 2},
                                {{3, 17}, 0},    {{33, 33}, 1}, {{7, 1025}, 0}, {{2, 3, 17}, 3}, {{1100, 45}, 0},
                                {{9000, 9}, 0},  {{600, 300}, 5}};

std::vector<double> column_sums(const std::vector<float>& x, int64_t C, bool absolute) {
    std::vector<double> sums(static_cast<size_t>(C), 0.0);
    for (size_t i = 0; i < x.size(); ++i) sums[i % C] += absolute ? std::abs(x[i]) : x[i];
    return sums;
}

TEST_P(ReduceOps, SumRowsMatchesDoubleSums) {
    uint64_t seed = 10;
    for (const RowsShape& s : kRowShapes) {
        for (int32_t accumulate : {0, 1}) {
            SCOPED_TRACE(shape_name(s.shape) + " pad=" + std::to_string(s.pad) + " accumulate=" + std::to_string(accumulate));
            const int64_t C = s.shape.back();
            const std::vector<float> x = random_floats(static_cast<size_t>(element_count(s.shape)), ++seed);
            const std::vector<float> before = random_floats(static_cast<size_t>(C), ++seed);
            PaddedTensor tx(context.get(), s.shape, s.pad, x);
            Tensor out = f32_tensor(context.get(), {C}, before);
            NE_ASSERT_OK(ne_sum_rows(context.get(), tx.get(), out.get(), accumulate));
            const std::vector<float> got = read<float>(out.get());
            const std::vector<double> expected = column_sums(x, C, false), magnitude = column_sums(x, C, true);
            for (int64_t c = 0; c < C; ++c) {
                const double want = expected[c] + (accumulate ? before[c] : 0.0);
                ASSERT_NEAR(got[c], want, 1e-6 * (magnitude[c] + std::abs(before[c]))) << "column " << c;
            }
        }
    }
}

// accumulate = 1 adds exactly the values accumulate = 0 writes.
TEST_P(ReduceOps, SumRowsAccumulatesExactly) {
    const std::vector<float> x = random_floats(700 * 65, 31), before = random_floats(65, 32);
    Tensor tx = f32_tensor(context.get(), {700, 65}, x);
    Tensor fresh = make_tensor(context.get(), NE_DTYPE_F32, {65}), added = f32_tensor(context.get(), {65}, before);
    NE_ASSERT_OK(ne_sum_rows(context.get(), tx.get(), fresh.get(), 0));
    NE_ASSERT_OK(ne_sum_rows(context.get(), tx.get(), added.get(), 1));
    const std::vector<float> totals = read<float>(fresh.get());
    std::vector<float> expected(65);
    for (size_t c = 0; c < 65; ++c) expected[c] = before[c] + totals[c];
    EXPECT_TRUE(bitwise_equal(read<float>(added.get()), expected));
}

// ---- ne_reduce_sum --------------------------------------------------------------------------

// The exact sum of floats (or their squares, exact in double) in long double: 64-bit mantissas
// lose nothing that matters over these sizes.
long double exact_sum(const std::vector<float>& x, bool squares) {
    long double total = 0.0L;
    for (float v : x) total += squares ? static_cast<long double>(v) * v : static_cast<long double>(v);
    return total;
}

::testing::AssertionResult within_one_ulp(float actual, long double exact) {
    const auto rounded = static_cast<float>(exact);
    if (std::abs(actual - rounded) <= ulp(rounded)) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << actual << " is not within 1 ulp of " << rounded << " (exact "
                                         << static_cast<double>(exact) << ")";
}

TEST_P(ReduceOps, ReduceSumIsWithinOneUlpOfTheExactSum) {
    struct Case {
        std::vector<int64_t> shape;
        int64_t pad;
    };
    const Case cases[] = {{{}, 0},       {{1}, 0},        {{3}, 0},          {{7}, 0},    {{17}, 0},
                          {{33}, 0},     {{1025}, 0},     {{100003}, 0},     {{5, 9}, 3}, {{70, 1031}, 2},
                          {{3, 4, 5}, 1}, {{3'000'000}, 0}};
    uint64_t seed = 50;
    for (const Case& c : cases) {
        const std::vector<float> x = random_floats(static_cast<size_t>(element_count(c.shape)), ++seed, -1.0f, 3.0f);
        PaddedTensor tx(context.get(), c.shape, c.pad, x);
        for (int32_t squares : {0, 1}) {
            for (int64_t out_rank : {0, 1}) {
                SCOPED_TRACE(shape_name(c.shape) + " pad=" + std::to_string(c.pad) + " squares=" + std::to_string(squares));
                Tensor out = sentinel_tensor(context.get(), out_rank ? std::vector<int64_t>{1} : std::vector<int64_t>{});
                NE_ASSERT_OK(ne_reduce_sum(context.get(), tx.get(), squares, out.get(), 0));
                EXPECT_TRUE(within_one_ulp(read<float>(out.get())[0], exact_sum(x, squares)));
            }
        }
    }
}

// 2^24 + 1000 ones: a float sum would drop every one of them (2^24 + 1 rounds to 2^24); the
// double sum is exact, and so is 16778216 in float.
TEST_P(ReduceOps, ReduceSumAccumulatesInDouble) {
    std::vector<float> x(1001, 1.0f);
    x[0] = 16777216.0f;
    Tensor tx = f32_tensor(context.get(), {1001}, x), out = sentinel_tensor(context.get(), {});
    NE_ASSERT_OK(ne_reduce_sum(context.get(), tx.get(), 0, out.get(), 0));
    EXPECT_EQ(read<float>(out.get())[0], 16778216.0f);
}

// A global gradient norm: the squares of three tensors summed into one value, each call adding
// (double) out + its sum, rounded once to float: within 3 ulps of the exact total.
TEST_P(ReduceOps, ReduceSumAccumulatesAcrossTensors) {
    const std::vector<std::vector<int64_t>> shapes = {{64, 33}, {1025}, {}};
    Tensor out = f32_tensor(context.get(), {1}, {0.0f});
    long double exact = 0.0L;
    uint64_t seed = 90;
    for (const auto& shape : shapes) {
        const std::vector<float> x = random_floats(static_cast<size_t>(element_count(shape)), ++seed);
        Tensor tx = f32_tensor(context.get(), shape, x);
        NE_ASSERT_OK(ne_reduce_sum(context.get(), tx.get(), 1, out.get(), 1));
        exact += exact_sum(x, true);
    }
    const float total = read<float>(out.get())[0];
    EXPECT_LE(std::abs(total - static_cast<float>(exact)), 3.0f * ulp(total));

    // accumulate = 1 adds to what is there: 0.5 + sum.
    const std::vector<float> x = random_floats(999, 99);
    Tensor tx = f32_tensor(context.get(), {999}, x), half = f32_tensor(context.get(), {}, {0.5f});
    NE_ASSERT_OK(ne_reduce_sum(context.get(), tx.get(), 0, half.get(), 1));
    EXPECT_TRUE(within_one_ulp(read<float>(half.get())[0], 0.5L + exact_sum(x, false)));
}

// ---- ne_softmax_forward ---------------------------------------------------------------------

std::vector<double> softmax_oracle(const std::vector<float>& x, int64_t C) {
    std::vector<double> out(x.size());
    for (size_t row = 0; row < x.size() / C; ++row) {
        const float* in = &x[row * C];
        double max = -INFINITY;
        for (int64_t c = 0; c < C; ++c) max = std::max(max, static_cast<double>(in[c]));
        double total = 0.0;
        for (int64_t c = 0; c < C; ++c) total += max == -INFINITY ? 0.0 : std::exp(in[c] - max);
        for (int64_t c = 0; c < C; ++c) out[row * C + c] = total == 0.0 ? 0.0 : std::exp(in[c] - max) / total;
    }
    return out;
}

::testing::AssertionResult softmax_close(const std::vector<float>& actual, const std::vector<double>& expected, int64_t C) {
    for (size_t i = 0; i < actual.size(); ++i) {
        if (!(std::abs(actual[i] - expected[i]) <= 5e-6 * expected[i] + 1e-9)) {
            return ::testing::AssertionFailure() << "element " << i << ": " << actual[i] << ", expected " << expected[i];
        }
    }
    for (size_t row = 0; row < actual.size() / C; ++row) {
        double total = 0.0, expected_total = 0.0;
        for (int64_t c = 0; c < C; ++c) {
            total += actual[row * C + c];
            expected_total += expected[row * C + c];
        }
        if (expected_total > 0.0 && !(std::abs(total - 1.0) <= 1e-5)) {
            return ::testing::AssertionFailure() << "row " << row << " sums to " << total;
        }
    }
    return ::testing::AssertionSuccess();
}

TEST_P(ReduceOps, SoftmaxMatchesDoubleSoftmax) {
    uint64_t seed = 200;
    for (const RowsShape& s : kRowShapes) {
        SCOPED_TRACE(shape_name(s.shape) + " pad=" + std::to_string(s.pad));
        const int64_t C = s.shape.back();
        std::vector<float> x = random_floats(static_cast<size_t>(element_count(s.shape)), ++seed, -8.0f, 8.0f);
        for (size_t i = 0; i < x.size() && i < 3 * static_cast<size_t>(C); ++i) x[i] += 1000.0f;  // rows on a large offset
        PaddedTensor tx(context.get(), s.shape, s.pad, x), out(context.get(), s.shape, s.pad);
        NE_ASSERT_OK(ne_softmax_forward(context.get(), tx.get(), out.get()));
        EXPECT_TRUE(softmax_close(out.read_values(), softmax_oracle(x, C), C));
        EXPECT_TRUE(out.padding_untouched());
    }
}

TEST_P(ReduceOps, SoftmaxOfMinusInfinityIsZero) {
    for (int64_t C : {1, 3, 8, 17, 33}) {
        SCOPED_TRACE("C=" + std::to_string(C));
        std::vector<float> x = random_floats(static_cast<size_t>(4 * C), 300);
        for (int64_t c = 0; c < C; ++c) x[C + c] = -kInfinity;  // row 1: all masked
        for (int64_t c = 0; c < C; c += 2) x[2 * C + c] = -kInfinity;  // row 2: every other one
        x[3 * C + C - 1] = -kInfinity;                                  // row 3: the last one (a vector tail)
        Tensor tx = f32_tensor(context.get(), {4, C}, x), out = sentinel_tensor(context.get(), {4, C});
        NE_ASSERT_OK(ne_softmax_forward(context.get(), tx.get(), out.get()));
        const std::vector<float> got = read<float>(out.get());
        for (size_t i = 0; i < got.size(); ++i) {
            ASSERT_FALSE(std::isnan(got[i])) << "element " << i;
            if (x[i] == -kInfinity) {
                EXPECT_EQ(got[i], 0.0f) << "element " << i;
            } else {
                EXPECT_GT(got[i], 0.0f) << "element " << i;
            }
        }
        EXPECT_TRUE(softmax_close({got.begin(), got.begin() + C}, softmax_oracle({x.begin(), x.begin() + C}, C), C));
        for (int64_t row : {2, 3}) {
            const std::vector<float> in(x.begin() + row * C, x.begin() + (row + 1) * C);
            EXPECT_TRUE(softmax_close({got.begin() + row * C, got.begin() + (row + 1) * C}, softmax_oracle(in, C), C));
        }
    }
}

TEST_P(ReduceOps, SoftmaxInPlace) {
    const std::vector<float> x = random_floats(13 * 77, 400, -5.0f, 5.0f);
    Tensor tx = f32_tensor(context.get(), {13, 77}, x), out = make_tensor(context.get(), NE_DTYPE_F32, {13, 77});
    NE_ASSERT_OK(ne_softmax_forward(context.get(), tx.get(), out.get()));
    NE_ASSERT_OK(ne_softmax_forward(context.get(), tx.get(), tx.get()));
    EXPECT_TRUE(bitwise_equal(read<float>(tx.get()), read<float>(out.get())));
}

INSTANTIATE_TEST_SUITE_P(Cpu, ReduceOps, ::testing::ValuesIn(backend_configurations()), config_name);

// ---- Determinism ----------------------------------------------------------------------------

// The partial sums of fixed chunks are combined in a fixed order: one thread and three give the
// same bits. The shapes are split among three threads, and their sizes are no multiple of a
// chunk.
TEST(ReduceDeterminism, BitsDoNotDependOnTheThreadCount) {
    const ne_simd_level best = best_simd_level();
    if (best < NE_SIMD_LEVEL_AVX2) GTEST_SKIP() << "only the single-threaded scalar reference runs here";
    const std::vector<float> x = random_floats(3001 * 257, 500);
    for (int level = NE_SIMD_LEVEL_AVX2; level <= best; ++level) {
        SCOPED_TRACE("level " + std::to_string(level));
        std::vector<std::vector<float>> sums, totals, softmaxes;
        for (int threads : {1, 3}) {
            Context context = make_cpu_context(threads, static_cast<ne_simd_level>(level));
            Tensor tx = f32_tensor(context.get(), {3001, 257}, x);
            Tensor sum = make_tensor(context.get(), NE_DTYPE_F32, {257}), total = make_tensor(context.get(), NE_DTYPE_F32, {});
            Tensor softmax = make_tensor(context.get(), NE_DTYPE_F32, {3001, 257});
            NE_ASSERT_OK(ne_sum_rows(context.get(), tx.get(), sum.get(), 0));
            NE_ASSERT_OK(ne_reduce_sum(context.get(), tx.get(), 1, total.get(), 0));
            NE_ASSERT_OK(ne_softmax_forward(context.get(), tx.get(), softmax.get()));
            sums.push_back(read<float>(sum.get()));
            totals.push_back(read<float>(total.get()));
            softmaxes.push_back(read<float>(softmax.get()));
        }
        EXPECT_TRUE(bitwise_equal(sums[0], sums[1]));
        EXPECT_TRUE(bitwise_equal(totals[0], totals[1]));
        EXPECT_TRUE(bitwise_equal(softmaxes[0], softmaxes[1]));
    }
}

// ---- Argument checks ------------------------------------------------------------------------

class ReduceArguments : public ::testing::Test {
protected:
    static constexpr int64_t N = 4, C = 8;

    void expect_refused(ne_status status, ne_status expected, std::initializer_list<const char*> fragments) {
        EXPECT_TRUE(fails_with(status, expected, fragments));
        for (const Tensor* output : {&sums, &total, &probs, &shared}) {
            EXPECT_TRUE(untouched(*output)) << "an output was written by a refused call (" << ne_last_error() << ")";
        }
    }

    Context context = make_cpu_context();
    Context other_context = make_cpu_context();
    ne_context* ctx = context.get();
    Tensor x = f32_tensor(ctx, {N, C}, random_floats(N * C, 1));
    Tensor sums = sentinel_tensor(ctx, {C});
    Tensor total = sentinel_tensor(ctx, {});
    Tensor probs = sentinel_tensor(ctx, {N, C});
    Tensor shared = sentinel_tensor(ctx, {N + 1, C});
    Tensor first_rows = view_of(shared, 0, {N, C}), last_rows = view_of(shared, C, {N, C});
    Tensor foreign = f32_tensor(other_context.get(), {N, C}, random_floats(N * C, 2));
    Tensor f16 = make_tensor(ctx, NE_DTYPE_F16, {N, C});
};

TEST_F(ReduceArguments, SumRowsRefusesBadArguments) {
    ne_tensor *X = x.get(), *S = sums.get();
    expect_refused(ne_sum_rows(nullptr, X, S, 0), NE_STATUS_NULL_POINTER, {"ne_sum_rows", "'context'"});
    expect_refused(ne_sum_rows(ctx, nullptr, S, 0), NE_STATUS_NULL_POINTER, {"'x'"});
    expect_refused(ne_sum_rows(ctx, X, nullptr, 0), NE_STATUS_NULL_POINTER, {"'out'"});
    expect_refused(ne_sum_rows(ctx, f16.get(), S, 0), NE_STATUS_DTYPE_MISMATCH, {"'x'", "expected dtype f32", "got f16"});
    expect_refused(ne_sum_rows(ctx, foreign.get(), S, 0), NE_STATUS_CONTEXT_MISMATCH, {"'x'", "another context"});
    expect_refused(ne_sum_rows(ctx, X, S, 2), NE_STATUS_INVALID_ARGUMENT, {"'accumulate' is 2", "0 or 1"});
    Tensor long_out = sentinel_tensor(ctx, {C + 1});
    expect_refused(ne_sum_rows(ctx, X, long_out.get(), 0), NE_STATUS_SHAPE_MISMATCH, {"'out'", "expected shape [8]", "got [9]"});
    Tensor matrix_out = sentinel_tensor(ctx, {1, C});
    expect_refused(ne_sum_rows(ctx, X, matrix_out.get(), 0), NE_STATUS_SHAPE_MISMATCH, {"'out'", "expected shape [8]", "got [1, 8]"});
    const int64_t shape[] = {C}, stride[] = {2};
    ne_tensor* raw = nullptr;
    NE_ASSERT_OK(ne_tensor_view(probs.get(), 0, 1, shape, stride, &raw));
    Tensor strided_out(raw);
    expect_refused(ne_sum_rows(ctx, X, strided_out.get(), 0), NE_STATUS_UNSUPPORTED, {"'out'", "contiguous"});
    ne_tensor* scalar = nullptr;
    NE_ASSERT_OK(ne_tensor_create(ctx, NE_DTYPE_F32, 0, nullptr, &scalar));
    Tensor scalar_tensor(scalar);
    expect_refused(ne_sum_rows(ctx, scalar, S, 0), NE_STATUS_SHAPE_MISMATCH, {"'x'", "rank >= 1"});
    Tensor out_in_x = view_of(shared, 2 * C, {C});
    expect_refused(ne_sum_rows(ctx, first_rows.get(), out_in_x.get(), 0), NE_STATUS_INVALID_ARGUMENT, {"'out' overlaps argument 'x'"});
    NE_EXPECT_OK(ne_sum_rows(ctx, X, S, 0));
}

TEST_F(ReduceArguments, ReduceSumRefusesBadArguments) {
    ne_tensor *X = x.get(), *T = total.get();
    expect_refused(ne_reduce_sum(nullptr, X, 0, T, 0), NE_STATUS_NULL_POINTER, {"ne_reduce_sum", "'context'"});
    expect_refused(ne_reduce_sum(ctx, nullptr, 0, T, 0), NE_STATUS_NULL_POINTER, {"'x'"});
    expect_refused(ne_reduce_sum(ctx, X, 0, nullptr, 0), NE_STATUS_NULL_POINTER, {"'out'"});
    expect_refused(ne_reduce_sum(ctx, f16.get(), 0, T, 0), NE_STATUS_DTYPE_MISMATCH, {"'x'", "got f16"});
    Tensor out_i32 = make_tensor(ctx, NE_DTYPE_I32, {});
    expect_refused(ne_reduce_sum(ctx, X, 0, out_i32.get(), 0), NE_STATUS_DTYPE_MISMATCH, {"'out'", "got i32"});
    expect_refused(ne_reduce_sum(ctx, foreign.get(), 0, T, 0), NE_STATUS_CONTEXT_MISMATCH, {"'x'"});
    expect_refused(ne_reduce_sum(ctx, X, 2, T, 0), NE_STATUS_INVALID_ARGUMENT, {"'squares' is 2", "0 or 1"});
    expect_refused(ne_reduce_sum(ctx, X, 0, T, -1), NE_STATUS_INVALID_ARGUMENT, {"'accumulate' is -1", "0 or 1"});
    for (std::vector<int64_t> shape : {std::vector<int64_t>{2}, std::vector<int64_t>{1, 1}}) {
        Tensor wrong = sentinel_tensor(ctx, shape);
        expect_refused(ne_reduce_sum(ctx, X, 0, wrong.get(), 0), NE_STATUS_SHAPE_MISMATCH,
                       {"'out'", "expected one element (shape [] or [1])", shape_name(shape).c_str()});
        EXPECT_TRUE(untouched(wrong));
    }
    Tensor out_in_x = view_of(shared, 5, {1});
    expect_refused(ne_reduce_sum(ctx, first_rows.get(), 0, out_in_x.get(), 0), NE_STATUS_INVALID_ARGUMENT,
                   {"'out' overlaps argument 'x'"});
    NE_EXPECT_OK(ne_reduce_sum(ctx, X, 1, T, 0));
}

TEST_F(ReduceArguments, SoftmaxRefusesBadArguments) {
    ne_tensor *X = x.get(), *P = probs.get();
    expect_refused(ne_softmax_forward(nullptr, X, P), NE_STATUS_NULL_POINTER, {"ne_softmax_forward", "'context'"});
    expect_refused(ne_softmax_forward(ctx, nullptr, P), NE_STATUS_NULL_POINTER, {"'x'"});
    expect_refused(ne_softmax_forward(ctx, X, nullptr), NE_STATUS_NULL_POINTER, {"'out'"});
    expect_refused(ne_softmax_forward(ctx, f16.get(), P), NE_STATUS_DTYPE_MISMATCH, {"'x'"});
    expect_refused(ne_softmax_forward(ctx, foreign.get(), P), NE_STATUS_CONTEXT_MISMATCH, {"'x'"});
    Tensor wide = sentinel_tensor(ctx, {N, C + 1});
    expect_refused(ne_softmax_forward(ctx, X, wide.get()), NE_STATUS_SHAPE_MISMATCH,
                   {"'out'", "expected shape [4, 8] (the shape of 'x')", "got [4, 9]"});
    ne_tensor* scalar = nullptr;
    NE_ASSERT_OK(ne_tensor_create(ctx, NE_DTYPE_F32, 0, nullptr, &scalar));
    Tensor scalar_tensor(scalar);
    expect_refused(ne_softmax_forward(ctx, scalar, scalar), NE_STATUS_SHAPE_MISMATCH, {"'x'", "rank >= 1"});
    expect_refused(ne_softmax_forward(ctx, first_rows.get(), last_rows.get()), NE_STATUS_INVALID_ARGUMENT,
                   {"'out' overlaps argument 'x'"});
    NE_EXPECT_OK(ne_softmax_forward(ctx, X, P));
}

}  // namespace
