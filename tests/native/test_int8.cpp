// Int8 quantization, dequantization, GEMM and linear layer, on every backend configuration.
// References are written here, independently of the library: int64 for the integer GEMM, double
// for scaled outputs, and the documented float formula for quantization.
#include "test_support.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>

using namespace ne_test;

namespace {

std::vector<int8_t> random_int8(size_t count, uint64_t seed, int low = -128, int high = 127) {
    std::mt19937_64 generator(seed);
    std::uniform_int_distribution<int> distribution(low, high);
    std::vector<int8_t> values(count);
    for (int8_t& value : values) value = static_cast<int8_t>(distribution(generator));
    return values;
}

// acc[m,n] = sum_k a[m,k] * b[n,k] in int64: cannot overflow, so it is the exact answer.
std::vector<int64_t> gemm_int64(const std::vector<int8_t>& a, const std::vector<int8_t>& b, int64_t M, int64_t N,
                                int64_t K) {
    std::vector<int64_t> acc(static_cast<size_t>(M * N), 0);
    for (int64_t m = 0; m < M; ++m) {
        for (int64_t n = 0; n < N; ++n) {
            int64_t sum = 0;
            for (int64_t k = 0; k < K; ++k) sum += int64_t{a[static_cast<size_t>(m * K + k)]} * b[static_cast<size_t>(n * K + k)];
            acc[static_cast<size_t>(m * N + n)] = sum;
        }
    }
    return acc;
}

struct Quantized {
    std::vector<int8_t> q;
    std::vector<float> scales;
};

// The documented algorithm: scale = absmax / 127; inverse = 127 / absmax (one float division);
// q = clamp(round_half_even(x * inverse), -127, 127); an all-zero group has scale 0 and q 0.
Quantized quantize_expected(const std::vector<float>& x, int64_t R, int64_t C, bool per_row) {
    std::vector<float> absmax(static_cast<size_t>(per_row ? R : C), 0.0f);
    for (int64_t r = 0; r < R; ++r) {
        for (int64_t c = 0; c < C; ++c) {
            float& group = absmax[static_cast<size_t>(per_row ? r : c)];
            group = std::max(group, std::fabs(x[static_cast<size_t>(r * C + c)]));
        }
    }
    Quantized out{std::vector<int8_t>(x.size()), std::vector<float>(absmax.size())};
    for (size_t g = 0; g < absmax.size(); ++g) out.scales[g] = absmax[g] / 127.0f;
    for (int64_t r = 0; r < R; ++r) {
        for (int64_t c = 0; c < C; ++c) {
            const float group_max = absmax[static_cast<size_t>(per_row ? r : c)];
            const size_t i = static_cast<size_t>(r * C + c);
            if (group_max == 0.0f) {
                out.q[i] = 0;
                continue;
            }
            const float inverse = 127.0f / group_max;
            out.q[i] = static_cast<int8_t>(std::clamp(std::nearbyint(x[i] * inverse), -127.0f, 127.0f));
        }
    }
    return out;
}

uint32_t bits_of(float value) {
    uint32_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    return bits;
}

std::vector<uint32_t> bits_of(const std::vector<float>& values) {
    std::vector<uint32_t> bits(values.size());
    std::memcpy(bits.data(), values.data(), values.size() * sizeof(float));
    return bits;
}

Tensor make_view(const ne_tensor* base, int64_t offset, std::vector<int64_t> shape, std::vector<int64_t> strides) {
    ne_tensor* view = nullptr;
    check(ne_tensor_view(base, offset, static_cast<int32_t>(shape.size()), shape.data(), strides.data(), &view),
          "ne_tensor_view");
    return Tensor(view);
}

struct Shape {
    int64_t M, N, K;
};

// Every size class of the kernels: 1, around the register tiles (6 rows; 16 columns for AVX2, 64
// for AVX-512), odd K, and K, M, N past the cache blocks (AVX2: K 1024, M 192, N 2048; AVX-512:
// K 384, M 384, N 4096), where the K slices add up in C.
std::vector<Shape> gemm_shapes() {
    std::vector<Shape> shapes;
    for (int64_t s : {1, 5, 6, 7, 15, 16, 17, 33, 100, 257}) {
        shapes.push_back({s, s, s});
        shapes.push_back({s, 17, 33});
        shapes.push_back({5, s, 100});
        shapes.push_back({33, 7, s});
    }
    shapes.push_back({9, 63, 383});
    shapes.push_back({13, 65, 385});
    shapes.push_back({200, 24, 1100});
    shapes.push_back({400, 70, 400});
    shapes.push_back({3, 4200, 40});
    return shapes;
}

class Int8Test : public ::testing::TestWithParam<BackendConfig> {
protected:
    void SetUp() override { context_ = make_context(GetParam()); }
    ne_context* ctx() const { return context_.get(); }

    std::vector<int32_t> gemm_i32(const std::vector<int8_t>& a, const std::vector<int8_t>& b, int64_t M, int64_t N, int64_t K) {
        Tensor ta = make_tensor(ctx(), NE_DTYPE_I8, {M, K}, a);
        Tensor tb = make_tensor(ctx(), NE_DTYPE_I8, {N, K}, b);
        Tensor tc = make_tensor(ctx(), NE_DTYPE_I32, {M, N});
        check(ne_gemm_int8(ctx(), ta.get(), tb.get(), nullptr, nullptr, nullptr, tc.get()), "ne_gemm_int8");
        return read<int32_t>(tc.get());
    }

    std::vector<float> gemm_f32(const std::vector<int8_t>& a, const std::vector<int8_t>& b, const std::vector<float>& a_scales,
                                const std::vector<float>& b_scales, const std::vector<float>* bias, int64_t M, int64_t N,
                                int64_t K) {
        Tensor ta = make_tensor(ctx(), NE_DTYPE_I8, {M, K}, a);
        Tensor tb = make_tensor(ctx(), NE_DTYPE_I8, {N, K}, b);
        Tensor tsa = make_tensor(ctx(), NE_DTYPE_F32, {M}, a_scales);
        Tensor tsb = make_tensor(ctx(), NE_DTYPE_F32, {N}, b_scales);
        Tensor tbias = bias == nullptr ? Tensor() : make_tensor(ctx(), NE_DTYPE_F32, {N}, *bias);
        Tensor tc = make_tensor(ctx(), NE_DTYPE_F32, {M, N});
        check(ne_gemm_int8(ctx(), ta.get(), tb.get(), tsa.get(), tsb.get(), tbias.get(), tc.get()), "ne_gemm_int8");
        return read<float>(tc.get());
    }

    Quantized quantize(const std::vector<float>& x, int64_t R, int64_t C, ne_quant_axis axis) {
        Tensor tx = make_tensor(ctx(), NE_DTYPE_F32, {R, C}, x);
        Tensor tq = make_tensor(ctx(), NE_DTYPE_I8, {R, C});
        Tensor ts = make_tensor(ctx(), NE_DTYPE_F32, {axis == NE_QUANT_AXIS_PER_ROW ? R : C});
        check(ne_quantize_int8(ctx(), axis, tx.get(), tq.get(), ts.get()), "ne_quantize_int8");
        return {read<int8_t>(tq.get()), read<float>(ts.get())};
    }

    Context context_;
};

// ------------------------------------------------------------------------------------------
// GEMM
// ------------------------------------------------------------------------------------------

TEST_P(Int8Test, GemmI32EqualsInt64ReferenceOnEveryShapeClass) {
    uint64_t seed = 1;
    for (const Shape& s : gemm_shapes()) {
        const auto a = random_int8(static_cast<size_t>(s.M * s.K), seed++);
        const auto b = random_int8(static_cast<size_t>(s.N * s.K), seed++);
        const std::vector<int64_t> expected = gemm_int64(a, b, s.M, s.N, s.K);
        const std::vector<int32_t> actual = gemm_i32(a, b, s.M, s.N, s.K);
        ASSERT_EQ(actual.size(), expected.size());
        for (size_t i = 0; i < actual.size(); ++i) {
            ASSERT_EQ(actual[i], expected[i]) << "M=" << s.M << " N=" << s.N << " K=" << s.K << " at " << i;
        }
    }
}

TEST_P(Int8Test, GemmI32IsExactAtExtremeValues) {
    const Shape shapes[] = {{7, 17, 33}, {6, 16, 1024}, {13, 70, 1100}};
    for (const Shape& s : shapes) {
        const size_t a_count = static_cast<size_t>(s.M * s.K), b_count = static_cast<size_t>(s.N * s.K);
        const std::vector<std::pair<std::vector<int8_t>, std::vector<int8_t>>> cases = {
            {std::vector<int8_t>(a_count, -128), std::vector<int8_t>(b_count, -128)},
            {std::vector<int8_t>(a_count, 127), std::vector<int8_t>(b_count, 127)},
            {std::vector<int8_t>(a_count, -128), std::vector<int8_t>(b_count, 127)},
            {random_int8(a_count, 11, -128, -120), random_int8(b_count, 12, 120, 127)},
        };
        for (const auto& [a, b] : cases) {
            const std::vector<int64_t> expected = gemm_int64(a, b, s.M, s.N, s.K);
            const std::vector<int32_t> actual = gemm_i32(a, b, s.M, s.N, s.K);
            for (size_t i = 0; i < actual.size(); ++i) ASSERT_EQ(actual[i], expected[i]) << "K=" << s.K << " at " << i;
        }
    }
}

TEST_P(Int8Test, GemmI32IsExactAtMaxKWithLargestAccumulators) {
    const int64_t M = 5, N = 19, K = NE_INT8_GEMM_MAX_K;
    // (-128)(-128) K = 2^30 is the largest accumulator; (-128)(127) K the most negative.
    const std::vector<int32_t> largest = gemm_i32(std::vector<int8_t>(M * K, -128), std::vector<int8_t>(N * K, -128), M, N, K);
    EXPECT_EQ(largest, std::vector<int32_t>(M * N, 1 << 30));
    const std::vector<int32_t> most_negative = gemm_i32(std::vector<int8_t>(M * K, -128), std::vector<int8_t>(N * K, 127), M, N, K);
    EXPECT_EQ(most_negative, std::vector<int32_t>(M * N, -128 * 127 * K));

    const auto a = random_int8(static_cast<size_t>(M * K), 21);
    const auto b = random_int8(static_cast<size_t>(N * K), 22);
    const std::vector<int64_t> expected = gemm_int64(a, b, M, N, K);
    const std::vector<int32_t> actual = gemm_i32(a, b, M, N, K);
    for (size_t i = 0; i < actual.size(); ++i) ASSERT_EQ(actual[i], expected[i]) << i;
}

TEST_P(Int8Test, GemmRefusesKAboveTheLimit) {
    const int64_t K = NE_INT8_GEMM_MAX_K + 1;
    Tensor a = make_tensor(ctx(), NE_DTYPE_I8, {2, K});
    Tensor b = make_tensor(ctx(), NE_DTYPE_I8, {3, K});
    Tensor c = make_tensor(ctx(), NE_DTYPE_I32, {2, 3});
    NE_ASSERT_OK(ne_tensor_fill(c.get(), 5.0));
    EXPECT_TRUE(fails_with(ne_gemm_int8(ctx(), a.get(), b.get(), nullptr, nullptr, nullptr, c.get()), NE_STATUS_OVERFLOW,
                           {"ne_gemm_int8", "K = 65537", "NE_INT8_GEMM_MAX_K = 65536"}));
    EXPECT_EQ(read<int32_t>(c.get()), std::vector<int32_t>(6, 5));
}

// c = acc * sa * sb (+ bias): float(acc), two products and an fma each round once, so the error is
// below 2 FLT_EPSILON (4 units of 2^-24) of |acc * sa * sb| + |bias|.
TEST_P(Int8Test, GemmF32MatchesDoubleReferenceWithAndWithoutBias) {
    uint64_t seed = 100;
    for (const Shape& s : {Shape{1, 1, 1}, Shape{7, 17, 33}, Shape{33, 100, 257}, Shape{13, 70, 1100}, Shape{200, 24, 1100}}) {
        const auto a = random_int8(static_cast<size_t>(s.M * s.K), seed++);
        const auto b = random_int8(static_cast<size_t>(s.N * s.K), seed++);
        const auto a_scales = random_floats(static_cast<size_t>(s.M), seed++, 1e-3f, 1e-2f);
        const auto b_scales = random_floats(static_cast<size_t>(s.N), seed++, -2e-2f, 2e-2f);
        const auto bias = random_floats(static_cast<size_t>(s.N), seed++, -5.0f, 5.0f);
        const std::vector<int64_t> acc = gemm_int64(a, b, s.M, s.N, s.K);
        for (const std::vector<float>* bias_values : {static_cast<const std::vector<float>*>(nullptr), &bias}) {
            const std::vector<float> c = gemm_f32(a, b, a_scales, b_scales, bias_values, s.M, s.N, s.K);
            for (int64_t m = 0; m < s.M; ++m) {
                for (int64_t n = 0; n < s.N; ++n) {
                    const double product = static_cast<double>(acc[static_cast<size_t>(m * s.N + n)]) * a_scales[static_cast<size_t>(m)] *
                                           b_scales[static_cast<size_t>(n)];
                    const double shift = bias_values == nullptr ? 0.0 : bias[static_cast<size_t>(n)];
                    const double tolerance = 2.0 * FLT_EPSILON * (std::fabs(product) + std::fabs(shift));
                    ASSERT_NEAR(c[static_cast<size_t>(m * s.N + n)], product + shift, tolerance)
                        << "M=" << s.M << " N=" << s.N << " K=" << s.K << " m=" << m << " n=" << n;
                }
            }
        }
    }
}

TEST_P(Int8Test, GemmAgreesBitwiseWithTheScalarReference) {
    Context scalar = make_cpu_context(1, NE_SIMD_LEVEL_SCALAR);
    const int64_t M = 45, N = 70, K = 1100;
    const auto a = random_int8(static_cast<size_t>(M * K), 31);
    const auto b = random_int8(static_cast<size_t>(N * K), 32);
    const auto a_scales = random_floats(static_cast<size_t>(M), 33, 1e-3f, 1e-2f);
    const auto b_scales = random_floats(static_cast<size_t>(N), 34, 1e-3f, 1e-2f);
    const auto bias = random_floats(static_cast<size_t>(N), 35);

    const std::vector<int32_t> i32 = gemm_i32(a, b, M, N, K);
    const std::vector<float> f32 = gemm_f32(a, b, a_scales, b_scales, &bias, M, N, K);
    std::swap(context_, scalar);
    EXPECT_EQ(gemm_i32(a, b, M, N, K), i32);
    EXPECT_EQ(bits_of(gemm_f32(a, b, a_scales, b_scales, &bias, M, N, K)), bits_of(f32));
    std::swap(context_, scalar);
}

TEST_P(Int8Test, GemmReadsAndWritesRowStridedViews) {
    const int64_t M = 21, N = 35, K = 77;
    const auto a = random_int8(static_cast<size_t>(M * K), 41);
    const auto b = random_int8(static_cast<size_t>(N * K), 42);
    const std::vector<int64_t> expected = gemm_int64(a, b, M, N, K);

    // a, b and c live inside wider matrices: row strides K + 9 and N + 5, nonzero offsets.
    std::vector<int8_t> a_wide(static_cast<size_t>(M * (K + 9) + 3), 99), b_wide(static_cast<size_t>(N * (K + 9) + 1), -99);
    for (int64_t m = 0; m < M; ++m) std::copy_n(&a[static_cast<size_t>(m * K)], K, &a_wide[static_cast<size_t>(3 + m * (K + 9))]);
    for (int64_t n = 0; n < N; ++n) std::copy_n(&b[static_cast<size_t>(n * K)], K, &b_wide[static_cast<size_t>(1 + n * (K + 9))]);
    Tensor a_base = make_tensor(ctx(), NE_DTYPE_I8, {static_cast<int64_t>(a_wide.size())}, a_wide);
    Tensor b_base = make_tensor(ctx(), NE_DTYPE_I8, {static_cast<int64_t>(b_wide.size())}, b_wide);
    Tensor c_base = make_tensor(ctx(), NE_DTYPE_I32, {M * (N + 5) + 2});
    NE_ASSERT_OK(ne_tensor_fill(c_base.get(), -7.0));
    Tensor a_view = make_view(a_base.get(), 3, {M, K}, {K + 9, 1});
    Tensor b_view = make_view(b_base.get(), 1, {N, K}, {K + 9, 1});
    Tensor c_view = make_view(c_base.get(), 2, {M, N}, {N + 5, 1});
    NE_ASSERT_OK(ne_gemm_int8(ctx(), a_view.get(), b_view.get(), nullptr, nullptr, nullptr, c_view.get()));

    const std::vector<int32_t> c_wide = read<int32_t>(c_base.get());
    for (int64_t i = 0; i < static_cast<int64_t>(c_wide.size()); ++i) {
        const int64_t position = i - 2;
        const int64_t m = position / (N + 5), n = position % (N + 5);
        if (position >= 0 && n < N) {
            ASSERT_EQ(c_wide[static_cast<size_t>(i)], expected[static_cast<size_t>(m * N + n)]) << m << ", " << n;
        } else {
            ASSERT_EQ(c_wide[static_cast<size_t>(i)], -7) << "gap element " << i << " was written";
        }
    }
}

// ------------------------------------------------------------------------------------------
// Quantization
// ------------------------------------------------------------------------------------------

TEST_P(Int8Test, QuantizeMatchesTheDocumentedFormulaPerRowAndPerColumn) {
    uint64_t seed = 200;
    for (const auto& [R, C] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {3, 7}, {37, 77}, {64, 256}, {5, 1000}, {300, 3}}) {
        std::vector<float> x = random_floats(static_cast<size_t>(R * C), seed++, -3.0f, 3.0f);
        for (int64_t c = 0; c < C; ++c) x[static_cast<size_t>(c)] *= 100.0f;  // rows and columns of different ranges
        for (ne_quant_axis axis : {NE_QUANT_AXIS_PER_ROW, NE_QUANT_AXIS_PER_COLUMN}) {
            const Quantized expected = quantize_expected(x, R, C, axis == NE_QUANT_AXIS_PER_ROW);
            const Quantized actual = quantize(x, R, C, axis);
            EXPECT_EQ(actual.q, expected.q) << R << "x" << C << " axis " << axis;
            EXPECT_EQ(bits_of(actual.scales), bits_of(expected.scales)) << R << "x" << C << " axis " << axis;
        }
    }
}

TEST_P(Int8Test, QuantizeRoundsTiesToEven) {
    // absmax 127 makes the inverse exactly 1 and absmax 254 exactly 0.5, so x * inverse lands on
    // k + 0.5 exactly: half-even gives 2, 4, -2, 0, 2, -126, 0 where half-away would not.
    const std::vector<float> row1{127.0f, 2.5f, 3.5f, -2.5f, 0.5f, 1.5f, -126.5f, -0.5f, 126.5f};
    const std::vector<int8_t> q1{127, 2, 4, -2, 0, 2, -126, 0, 126};
    const std::vector<float> row2{-254.0f, 5.0f, 7.0f, -5.0f, 1.0f, 3.0f, -253.0f, -1.0f, 253.0f};
    const std::vector<int8_t> q2{-127, 2, 4, -2, 0, 2, -126, 0, 126};
    std::vector<float> x = row1;
    x.insert(x.end(), row2.begin(), row2.end());
    const Quantized actual = quantize(x, 2, 9, NE_QUANT_AXIS_PER_ROW);
    std::vector<int8_t> expected = q1;
    expected.insert(expected.end(), q2.begin(), q2.end());
    EXPECT_EQ(actual.q, expected);
    EXPECT_EQ(actual.scales, (std::vector<float>{1.0f, 2.0f}));

    // The same ties along columns: the transposed matrix, per column.
    std::vector<float> transposed(18);
    for (int64_t r = 0; r < 2; ++r) {
        for (int64_t c = 0; c < 9; ++c) transposed[static_cast<size_t>(c * 2 + r)] = x[static_cast<size_t>(r * 9 + c)];
    }
    const Quantized by_column = quantize(transposed, 9, 2, NE_QUANT_AXIS_PER_COLUMN);
    for (int64_t r = 0; r < 2; ++r) {
        for (int64_t c = 0; c < 9; ++c) {
            EXPECT_EQ(by_column.q[static_cast<size_t>(c * 2 + r)], expected[static_cast<size_t>(r * 9 + c)]) << r << ", " << c;
        }
    }
    EXPECT_EQ(by_column.scales, (std::vector<float>{1.0f, 2.0f}));
}

TEST_P(Int8Test, QuantizeZeroGroupsAndSingleElement) {
    // Row 1 and column 2 are all zero (negative zero included).
    const std::vector<float> x{1.0f, -4.0f, 0.0f, 2.0f, 0.0f, -0.0f, 0.0f, 0.0f, 3.0f, 8.0f, -0.0f, -1.0f};
    const Quantized rows = quantize(x, 3, 4, NE_QUANT_AXIS_PER_ROW);
    EXPECT_EQ(rows.scales[1], 0.0f);
    EXPECT_EQ(std::vector<int8_t>(rows.q.begin() + 4, rows.q.begin() + 8), std::vector<int8_t>(4, 0));
    EXPECT_EQ(rows.q, quantize_expected(x, 3, 4, true).q);
    const Quantized columns = quantize(x, 3, 4, NE_QUANT_AXIS_PER_COLUMN);
    EXPECT_EQ(columns.scales[2], 0.0f);
    EXPECT_EQ(columns.q[2], 0);
    EXPECT_EQ(columns.q[6], 0);
    EXPECT_EQ(columns.q[10], 0);
    EXPECT_EQ(columns.q, quantize_expected(x, 3, 4, false).q);

    const Quantized single = quantize({-3.5f}, 1, 1, NE_QUANT_AXIS_PER_COLUMN);
    EXPECT_EQ(single.q, std::vector<int8_t>{-127});
    EXPECT_EQ(single.scales, std::vector<float>{3.5f / 127.0f});
}

// Below absmax = 127 / FLT_MAX the float inverse overflows; q must still be round(x * 127 / absmax).
TEST_P(Int8Test, QuantizeTinyGroupsKeepTheirMeaning) {
    const float absmax = 1e-38f;
    const std::vector<float> row{absmax, 0.3e-38f, -0.7e-38f, 2e-45f, 0.0f, -absmax, 0.11e-38f, 0.5e-39f, 0.9e-38f};
    for (ne_quant_axis axis : {NE_QUANT_AXIS_PER_ROW, NE_QUANT_AXIS_PER_COLUMN}) {
        const bool per_row = axis == NE_QUANT_AXIS_PER_ROW;
        const int64_t R = per_row ? 1 : 9, C = per_row ? 9 : 1;
        const Quantized actual = quantize(row, R, C, axis);
        for (size_t i = 0; i < row.size(); ++i) {
            EXPECT_EQ(actual.q[i], static_cast<int8_t>(std::nearbyint(static_cast<double>(row[i]) * 127.0 / absmax))) << i;
        }
        EXPECT_EQ(actual.scales[0], absmax / 127.0f);
    }
}

TEST_P(Int8Test, QuantizeReadsRowStridedX) {
    const int64_t R = 9, C = 45, stride = 50;
    const auto wide = random_floats(static_cast<size_t>(R * stride), 300);
    std::vector<float> dense(static_cast<size_t>(R * C));
    for (int64_t r = 0; r < R; ++r) std::copy_n(&wide[static_cast<size_t>(r * stride + 4)], C, &dense[static_cast<size_t>(r * C)]);
    Tensor base = make_tensor(ctx(), NE_DTYPE_F32, {R, stride}, wide);
    Tensor x = make_view(base.get(), 4, {R, C}, {stride, 1});
    for (ne_quant_axis axis : {NE_QUANT_AXIS_PER_ROW, NE_QUANT_AXIS_PER_COLUMN}) {
        Tensor q = make_tensor(ctx(), NE_DTYPE_I8, {R, C});
        Tensor scales = make_tensor(ctx(), NE_DTYPE_F32, {axis == NE_QUANT_AXIS_PER_ROW ? R : C});
        NE_ASSERT_OK(ne_quantize_int8(ctx(), axis, x.get(), q.get(), scales.get()));
        const Quantized expected = quantize_expected(dense, R, C, axis == NE_QUANT_AXIS_PER_ROW);
        EXPECT_EQ(read<int8_t>(q.get()), expected.q);
        EXPECT_EQ(read<float>(scales.get()), expected.scales);
    }
}

// On the CPU the call fails and writes nothing; a device reports at the next wait.
TEST_P(Int8Test, QuantizeRefusesNonFiniteInput) {
    const int64_t R = 4, C = 37;
    for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                      -std::numeric_limits<float>::infinity()}) {
        std::vector<float> values = random_floats(static_cast<size_t>(R * C), 400);
        values[static_cast<size_t>(2 * C + 33)] = bad;
        values[static_cast<size_t>(3 * C + 1)] = bad;
        Tensor x = make_tensor(ctx(), NE_DTYPE_F32, {R, C}, values);
        for (ne_quant_axis axis : {NE_QUANT_AXIS_PER_ROW, NE_QUANT_AXIS_PER_COLUMN}) {
            Tensor q = make_tensor(ctx(), NE_DTYPE_I8, {R, C});
            Tensor scales = make_tensor(ctx(), NE_DTYPE_F32, {axis == NE_QUANT_AXIS_PER_ROW ? R : C});
            NE_ASSERT_OK(ne_tensor_fill(q.get(), 9.0));
            NE_ASSERT_OK(ne_tensor_fill(scales.get(), 9.0));
            EXPECT_TRUE(refused_for_data(ctx(), ne_quantize_int8(ctx(), axis, x.get(), q.get(), scales.get()),
                                         NE_STATUS_INVALID_ARGUMENT, {"ne_quantize_int8", "'x'", "non-finite", "at [2, 33]"}));
            if (on_device(ctx())) continue;
            EXPECT_EQ(read<int8_t>(q.get()), std::vector<int8_t>(R * C, 9));
            EXPECT_EQ(read<float>(scales.get()), std::vector<float>(axis == NE_QUANT_AXIS_PER_ROW ? R : C, 9.0f));
        }
    }
}

TEST_P(Int8Test, DequantizeIsExactlyQTimesScale) {
    const int64_t R = 13, C = 203;
    const auto q = random_int8(static_cast<size_t>(R * C), 500);
    for (ne_quant_axis axis : {NE_QUANT_AXIS_PER_ROW, NE_QUANT_AXIS_PER_COLUMN}) {
        const bool per_row = axis == NE_QUANT_AXIS_PER_ROW;
        const auto scales = random_floats(static_cast<size_t>(per_row ? R : C), 501, 1e-4f, 1.0f);
        Tensor tq = make_tensor(ctx(), NE_DTYPE_I8, {R, C}, q);
        Tensor ts = make_tensor(ctx(), NE_DTYPE_F32, {per_row ? R : C}, scales);
        Tensor tx = make_tensor(ctx(), NE_DTYPE_F32, {R, C});
        NE_ASSERT_OK(ne_dequantize_int8(ctx(), axis, tq.get(), ts.get(), tx.get()));
        const std::vector<float> x = read<float>(tx.get());
        for (int64_t r = 0; r < R; ++r) {
            for (int64_t c = 0; c < C; ++c) {
                const float expected = static_cast<float>(q[static_cast<size_t>(r * C + c)]) * scales[static_cast<size_t>(per_row ? r : c)];
                ASSERT_EQ(bits_of(x[static_cast<size_t>(r * C + c)]), bits_of(expected)) << r << ", " << c;
            }
        }
    }
}

TEST_P(Int8Test, QuantizeAndDequantizeAgreeBitwiseWithTheScalarReference) {
    Context scalar = make_cpu_context(1, NE_SIMD_LEVEL_SCALAR);
    const int64_t R = 61, C = 333;
    std::vector<float> x = random_floats(static_cast<size_t>(R * C), 600, -10.0f, 10.0f);
    // Row 0 and column 17 are tiny groups, whose float inverse 127 / absmax would overflow.
    for (int64_t r = 0; r < R; ++r) x[static_cast<size_t>(r * C + 17)] *= 1e-38f;
    for (int64_t c = 0; c < C; ++c) x[static_cast<size_t>(c)] *= 1e-38f;
    for (ne_quant_axis axis : {NE_QUANT_AXIS_PER_ROW, NE_QUANT_AXIS_PER_COLUMN}) {
        const Quantized here = quantize(x, R, C, axis);
        std::swap(context_, scalar);
        const Quantized reference = quantize(x, R, C, axis);
        std::swap(context_, scalar);
        EXPECT_EQ(here.q, reference.q) << "axis " << axis;
        EXPECT_EQ(bits_of(here.scales), bits_of(reference.scales)) << "axis " << axis;
    }
}

// ------------------------------------------------------------------------------------------
// Linear
// ------------------------------------------------------------------------------------------

// y = dequant(quant_per_row(x)) * dequant(w)^T + bias. Against a double reference of exactly that,
// the error is the float epilogue's (2 FLT_EPSILON of |product| + |bias|). Against the fp32
// product x * dequant(w)^T, it is the quantization error of x: each x[m,k] moves by at most half a
// step s_m = absmax_m / 127, so |error| <= s_m / 2 * sum_k |dequant(w)[n,k]|, and on random data its
// RMS is close to the uniform-rounding prediction s_m * sqrt(sum_k dequant(w)[n,k]^2 / 12).
TEST_P(Int8Test, LinearMatchesQuantizedReferenceAndFp32WithinQuantizationError) {
    const int64_t M = 64, N = 48, K = 300;
    const std::vector<float> x = random_floats(static_cast<size_t>(M * K), 700, -2.0f, 2.0f);
    const std::vector<float> w_float = random_floats(static_cast<size_t>(N * K), 701, -0.5f, 0.5f);
    const std::vector<float> bias = random_floats(static_cast<size_t>(N), 702);
    const Quantized w = quantize_expected(w_float, N, K, true);
    const Quantized xq = quantize_expected(x, M, K, true);

    Tensor tx = make_tensor(ctx(), NE_DTYPE_F32, {M, K}, x);
    Tensor tw = make_tensor(ctx(), NE_DTYPE_I8, {N, K}, w.q);
    Tensor tws = make_tensor(ctx(), NE_DTYPE_F32, {N}, w.scales);
    Tensor tb = make_tensor(ctx(), NE_DTYPE_F32, {N}, bias);
    Tensor ty = make_tensor(ctx(), NE_DTYPE_F32, {M, N});
    NE_ASSERT_OK(ne_linear_int8(ctx(), tx.get(), tw.get(), tws.get(), tb.get(), ty.get()));
    const std::vector<float> y = read<float>(ty.get());

    double squared_error = 0.0, predicted_variance = 0.0;
    for (int64_t m = 0; m < M; ++m) {
        const double x_scale = xq.scales[static_cast<size_t>(m)];
        for (int64_t n = 0; n < N; ++n) {
            const double w_scale = w.scales[static_cast<size_t>(n)];
            int64_t acc = 0;
            double fp32_product = 0.0, w_abs_sum = 0.0, w_square_sum = 0.0;
            for (int64_t k = 0; k < K; ++k) {
                const size_t xi = static_cast<size_t>(m * K + k), wi = static_cast<size_t>(n * K + k);
                acc += int64_t{xq.q[xi]} * w.q[wi];
                const double w_value = w.q[wi] * w_scale;
                fp32_product += static_cast<double>(x[xi]) * w_value;
                w_abs_sum += std::fabs(w_value);
                w_square_sum += w_value * w_value;
            }
            const double product = static_cast<double>(acc) * x_scale * w_scale;
            const double actual = y[static_cast<size_t>(m * N + n)];
            const double shift = bias[static_cast<size_t>(n)];
            ASSERT_NEAR(actual, product + shift, 2.0 * FLT_EPSILON * (std::fabs(product) + std::fabs(shift))) << m << ", " << n;
            const double error = actual - (fp32_product + shift);
            ASSERT_LE(std::fabs(error), x_scale / 2.0 * w_abs_sum * (1.0 + 1e-4) + 1e-5) << m << ", " << n;
            squared_error += error * error;
            predicted_variance += x_scale * x_scale * w_square_sum / 12.0;
        }
    }
    const double rms_ratio = std::sqrt(squared_error / predicted_variance);
    EXPECT_GT(rms_ratio, 0.8);
    EXPECT_LT(rms_ratio, 1.2);
}

TEST_P(Int8Test, LinearWithoutBiasAgreesBitwiseWithTheScalarReferenceAndTheGemm) {
    Context scalar = make_cpu_context(1, NE_SIMD_LEVEL_SCALAR);
    const int64_t M = 37, N = 70, K = 530;
    const std::vector<float> x = random_floats(static_cast<size_t>(M * K), 800, -4.0f, 4.0f);
    const auto w = random_int8(static_cast<size_t>(N * K), 801);
    const auto w_scales = random_floats(static_cast<size_t>(N), 802, 1e-3f, 1e-2f);
    const auto linear = [&](ne_context* context) {
        Tensor tx = make_tensor(context, NE_DTYPE_F32, {M, K}, x);
        Tensor tw = make_tensor(context, NE_DTYPE_I8, {N, K}, w);
        Tensor tws = make_tensor(context, NE_DTYPE_F32, {N}, w_scales);
        Tensor ty = make_tensor(context, NE_DTYPE_F32, {M, N});
        check(ne_linear_int8(context, tx.get(), tw.get(), tws.get(), nullptr, ty.get()), "ne_linear_int8");
        return read<float>(ty.get());
    };
    const std::vector<float> here = linear(ctx());
    EXPECT_EQ(bits_of(here), bits_of(linear(scalar.get())));
    // The same as quantizing x per row, then the GEMM with its fused epilogue.
    const Quantized xq = quantize(x, M, K, NE_QUANT_AXIS_PER_ROW);
    EXPECT_EQ(bits_of(here), bits_of(gemm_f32(xq.q, w, xq.scales, w_scales, nullptr, M, N, K)));
}

TEST_P(Int8Test, LinearRefusesNonFiniteInput) {
    const int64_t M = 6, N = 5, K = 40;
    std::vector<float> values = random_floats(static_cast<size_t>(M * K), 900);
    values[static_cast<size_t>(4 * K + 39)] = std::numeric_limits<float>::infinity();
    Tensor x = make_tensor(ctx(), NE_DTYPE_F32, {M, K}, values);
    Tensor w = make_tensor(ctx(), NE_DTYPE_I8, {N, K}, random_int8(static_cast<size_t>(N * K), 901));
    Tensor w_scales = make_tensor(ctx(), NE_DTYPE_F32, {N}, std::vector<float>(N, 0.01f));
    Tensor y = make_tensor(ctx(), NE_DTYPE_F32, {M, N});
    NE_ASSERT_OK(ne_tensor_fill(y.get(), 3.0));
    EXPECT_TRUE(refused_for_data(ctx(), ne_linear_int8(ctx(), x.get(), w.get(), w_scales.get(), nullptr, y.get()),
                                 NE_STATUS_INVALID_ARGUMENT, {"ne_linear_int8", "'x'", "non-finite value (inf) at [4, 39]"}));
    if (!on_device(ctx())) {
        EXPECT_EQ(read<float>(y.get()), std::vector<float>(M * N, 3.0f));
    }
}

INSTANTIATE_TEST_SUITE_P(Int8, Int8Test, ::testing::ValuesIn(backend_configurations()), config_name);

// ------------------------------------------------------------------------------------------
// Argument validation (the same code on every configuration: one context suffices)
// ------------------------------------------------------------------------------------------

class Int8Arguments : public ::testing::Test {
protected:
    Context context_ = make_cpu_context();
    Context other_ = make_cpu_context();
    ne_context* ctx() const { return context_.get(); }
};

TEST_F(Int8Arguments, QuantizeRefusesBadArgumentsAndWritesNothing) {
    Tensor x = make_tensor(ctx(), NE_DTYPE_F32, {4, 6}, random_floats(24, 1));
    Tensor q = make_tensor(ctx(), NE_DTYPE_I8, {4, 6});
    Tensor scales = make_tensor(ctx(), NE_DTYPE_F32, {4});
    NE_ASSERT_OK(ne_tensor_fill(q.get(), 9.0));
    NE_ASSERT_OK(ne_tensor_fill(scales.get(), 9.0));
    const auto row = NE_QUANT_AXIS_PER_ROW;

    EXPECT_TRUE(fails_with(ne_quantize_int8(nullptr, row, x.get(), q.get(), scales.get()), NE_STATUS_NULL_POINTER, {"context"}));
    EXPECT_TRUE(fails_with(ne_quantize_int8(ctx(), row, nullptr, q.get(), scales.get()), NE_STATUS_NULL_POINTER, {"'x'"}));
    EXPECT_TRUE(fails_with(ne_quantize_int8(ctx(), row, x.get(), nullptr, scales.get()), NE_STATUS_NULL_POINTER, {"'q'"}));
    EXPECT_TRUE(fails_with(ne_quantize_int8(ctx(), row, x.get(), q.get(), nullptr), NE_STATUS_NULL_POINTER, {"'scales'"}));
    EXPECT_TRUE(fails_with(ne_quantize_int8(ctx(), static_cast<ne_quant_axis>(2), x.get(), q.get(), scales.get()),
                           NE_STATUS_INVALID_ARGUMENT, {"'axis' is 2", "NE_QUANT_AXIS_PER_ROW"}));

    Tensor x_i8 = make_tensor(ctx(), NE_DTYPE_I8, {4, 6});
    EXPECT_TRUE(fails_with(ne_quantize_int8(ctx(), row, x_i8.get(), q.get(), scales.get()), NE_STATUS_DTYPE_MISMATCH,
                           {"'x'", "expected dtype f32, got i8"}));
    Tensor q_f32 = make_tensor(ctx(), NE_DTYPE_F32, {4, 6});
    EXPECT_TRUE(fails_with(ne_quantize_int8(ctx(), row, x.get(), q_f32.get(), scales.get()), NE_STATUS_DTYPE_MISMATCH,
                           {"'q'", "expected dtype i8, got f32"}));
    Tensor x_3d = make_tensor(ctx(), NE_DTYPE_F32, {2, 2, 6});
    EXPECT_TRUE(fails_with(ne_quantize_int8(ctx(), row, x_3d.get(), q.get(), scales.get()), NE_STATUS_SHAPE_MISMATCH,
                           {"'x'", "2-D", "[2, 2, 6]"}));
    Tensor q_wrong = make_tensor(ctx(), NE_DTYPE_I8, {4, 5});
    EXPECT_TRUE(fails_with(ne_quantize_int8(ctx(), row, x.get(), q_wrong.get(), scales.get()), NE_STATUS_SHAPE_MISMATCH,
                           {"'q'", "expected shape [4, 6], got [4, 5]"}));
    EXPECT_TRUE(fails_with(ne_quantize_int8(ctx(), NE_QUANT_AXIS_PER_COLUMN, x.get(), q.get(), scales.get()),
                           NE_STATUS_SHAPE_MISMATCH, {"'scales'", "expected shape [6], got [4]"}));
    Tensor q_base = make_tensor(ctx(), NE_DTYPE_I8, {4, 8});
    Tensor q_strided = make_view(q_base.get(), 0, {4, 6}, {8, 1});
    EXPECT_TRUE(fails_with(ne_quantize_int8(ctx(), row, x.get(), q_strided.get(), scales.get()), NE_STATUS_UNSUPPORTED,
                           {"'q'", "contiguous"}));
    Tensor foreign = make_tensor(other_.get(), NE_DTYPE_F32, {4});
    EXPECT_TRUE(fails_with(ne_quantize_int8(ctx(), row, x.get(), q.get(), foreign.get()), NE_STATUS_CONTEXT_MISMATCH,
                           {"'scales'", "another context"}));
    Tensor x_foreign = make_tensor(other_.get(), NE_DTYPE_F32, {4, 6});
    EXPECT_TRUE(fails_with(ne_quantize_int8(ctx(), row, x_foreign.get(), q.get(), scales.get()), NE_STATUS_CONTEXT_MISMATCH,
                           {"'x'"}));
    // scales inside x's memory
    Tensor x_with_room = make_tensor(ctx(), NE_DTYPE_F32, {5, 6}, random_floats(30, 2));
    Tensor x_part = make_view(x_with_room.get(), 0, {4, 6}, {6, 1});
    Tensor scales_in_x = make_view(x_with_room.get(), 22, {4}, {1});
    EXPECT_TRUE(fails_with(ne_quantize_int8(ctx(), row, x_part.get(), q.get(), scales_in_x.get()), NE_STATUS_INVALID_ARGUMENT,
                           {"'scales' overlaps argument 'x'"}));

    EXPECT_EQ(read<int8_t>(q.get()), std::vector<int8_t>(24, 9));
    EXPECT_EQ(read<float>(scales.get()), std::vector<float>(4, 9.0f));
}

TEST_F(Int8Arguments, DequantizeRefusesBadArgumentsAndWritesNothing) {
    Tensor q = make_tensor(ctx(), NE_DTYPE_I8, {3, 5}, random_int8(15, 3));
    Tensor scales = make_tensor(ctx(), NE_DTYPE_F32, {5}, std::vector<float>(5, 0.5f));
    Tensor x = make_tensor(ctx(), NE_DTYPE_F32, {3, 5});
    NE_ASSERT_OK(ne_tensor_fill(x.get(), 9.0));
    const auto column = NE_QUANT_AXIS_PER_COLUMN;

    EXPECT_TRUE(fails_with(ne_dequantize_int8(nullptr, column, q.get(), scales.get(), x.get()), NE_STATUS_NULL_POINTER, {"context"}));
    EXPECT_TRUE(fails_with(ne_dequantize_int8(ctx(), column, nullptr, scales.get(), x.get()), NE_STATUS_NULL_POINTER, {"'q'"}));
    EXPECT_TRUE(fails_with(ne_dequantize_int8(ctx(), column, q.get(), nullptr, x.get()), NE_STATUS_NULL_POINTER, {"'scales'"}));
    EXPECT_TRUE(fails_with(ne_dequantize_int8(ctx(), column, q.get(), scales.get(), nullptr), NE_STATUS_NULL_POINTER, {"'x'"}));
    EXPECT_TRUE(fails_with(ne_dequantize_int8(ctx(), static_cast<ne_quant_axis>(7), q.get(), scales.get(), x.get()),
                           NE_STATUS_INVALID_ARGUMENT, {"'axis' is 7"}));
    EXPECT_TRUE(fails_with(ne_dequantize_int8(ctx(), NE_QUANT_AXIS_PER_ROW, q.get(), scales.get(), x.get()),
                           NE_STATUS_SHAPE_MISMATCH, {"'scales'", "expected shape [3], got [5]"}));
    Tensor x_i32 = make_tensor(ctx(), NE_DTYPE_I32, {3, 5});
    EXPECT_TRUE(fails_with(ne_dequantize_int8(ctx(), column, q.get(), scales.get(), x_i32.get()), NE_STATUS_DTYPE_MISMATCH,
                           {"'x'", "expected dtype f32, got i32"}));
    Tensor x_wrong = make_tensor(ctx(), NE_DTYPE_F32, {5, 3});
    EXPECT_TRUE(fails_with(ne_dequantize_int8(ctx(), column, q.get(), scales.get(), x_wrong.get()), NE_STATUS_SHAPE_MISMATCH,
                           {"'x'", "expected shape [3, 5], got [5, 3]"}));
    Tensor scales_foreign = make_tensor(other_.get(), NE_DTYPE_F32, {5});
    EXPECT_TRUE(fails_with(ne_dequantize_int8(ctx(), column, q.get(), scales_foreign.get(), x.get()), NE_STATUS_CONTEXT_MISMATCH,
                           {"'scales'"}));
    // x written over its own scales
    Tensor shared = make_tensor(ctx(), NE_DTYPE_F32, {20});
    Tensor x_over = make_view(shared.get(), 0, {3, 5}, {5, 1});
    Tensor scales_under = make_view(shared.get(), 15, {5}, {1});
    Tensor scales_inside = make_view(shared.get(), 10, {5}, {1});
    NE_EXPECT_OK(ne_dequantize_int8(ctx(), column, q.get(), scales_under.get(), x_over.get()));
    EXPECT_TRUE(fails_with(ne_dequantize_int8(ctx(), column, q.get(), scales_inside.get(), x_over.get()), NE_STATUS_INVALID_ARGUMENT,
                           {"'x' overlaps argument 'scales'"}));

    EXPECT_EQ(read<float>(x.get()), std::vector<float>(15, 9.0f));
}

TEST_F(Int8Arguments, GemmRefusesBadArgumentsAndWritesNothing) {
    Tensor a = make_tensor(ctx(), NE_DTYPE_I8, {3, 8}, random_int8(24, 4));
    Tensor b = make_tensor(ctx(), NE_DTYPE_I8, {5, 8}, random_int8(40, 5));
    Tensor a_scales = make_tensor(ctx(), NE_DTYPE_F32, {3}, std::vector<float>(3, 0.5f));
    Tensor b_scales = make_tensor(ctx(), NE_DTYPE_F32, {5}, std::vector<float>(5, 0.5f));
    Tensor bias = make_tensor(ctx(), NE_DTYPE_F32, {5});
    Tensor c_i32 = make_tensor(ctx(), NE_DTYPE_I32, {3, 5});
    Tensor c_f32 = make_tensor(ctx(), NE_DTYPE_F32, {3, 5});
    NE_ASSERT_OK(ne_tensor_fill(c_i32.get(), 9.0));
    NE_ASSERT_OK(ne_tensor_fill(c_f32.get(), 9.0));
    ne_context* c = ctx();

    EXPECT_TRUE(fails_with(ne_gemm_int8(nullptr, a.get(), b.get(), nullptr, nullptr, nullptr, c_i32.get()), NE_STATUS_NULL_POINTER,
                           {"ne_gemm_int8", "context"}));
    EXPECT_TRUE(fails_with(ne_gemm_int8(c, nullptr, b.get(), nullptr, nullptr, nullptr, c_i32.get()), NE_STATUS_NULL_POINTER, {"'a'"}));
    EXPECT_TRUE(fails_with(ne_gemm_int8(c, a.get(), nullptr, nullptr, nullptr, nullptr, c_i32.get()), NE_STATUS_NULL_POINTER, {"'b'"}));
    EXPECT_TRUE(fails_with(ne_gemm_int8(c, a.get(), b.get(), nullptr, nullptr, nullptr, nullptr), NE_STATUS_NULL_POINTER, {"'c'"}));

    Tensor a_f32 = make_tensor(ctx(), NE_DTYPE_F32, {3, 8});
    EXPECT_TRUE(fails_with(ne_gemm_int8(c, a_f32.get(), b.get(), nullptr, nullptr, nullptr, c_i32.get()), NE_STATUS_DTYPE_MISMATCH,
                           {"'a'", "expected dtype i8, got f32"}));
    Tensor c_f16 = make_tensor(ctx(), NE_DTYPE_F16, {3, 5});
    EXPECT_TRUE(fails_with(ne_gemm_int8(c, a.get(), b.get(), nullptr, nullptr, nullptr, c_f16.get()), NE_STATUS_DTYPE_MISMATCH,
                           {"'c'", "i32 or f32, got f16"}));
    Tensor b_wrong_k = make_tensor(ctx(), NE_DTYPE_I8, {5, 7});
    EXPECT_TRUE(fails_with(ne_gemm_int8(c, a.get(), b_wrong_k.get(), nullptr, nullptr, nullptr, c_i32.get()), NE_STATUS_SHAPE_MISMATCH,
                           {"'b'", "expected shape [5, 8], got [5, 7]"}));
    Tensor c_wrong = make_tensor(ctx(), NE_DTYPE_I32, {5, 3});
    EXPECT_TRUE(fails_with(ne_gemm_int8(c, a.get(), b.get(), nullptr, nullptr, nullptr, c_wrong.get()), NE_STATUS_SHAPE_MISMATCH,
                           {"'c'", "expected shape [3, 5], got [5, 3]"}));
    Tensor a_1d = make_tensor(ctx(), NE_DTYPE_I8, {24});
    EXPECT_TRUE(fails_with(ne_gemm_int8(c, a_1d.get(), b.get(), nullptr, nullptr, nullptr, c_i32.get()), NE_STATUS_SHAPE_MISMATCH,
                           {"'a'", "2-D", "[24]"}));
    Tensor a_base = make_tensor(ctx(), NE_DTYPE_I8, {3, 16});
    Tensor a_column_strided = make_view(a_base.get(), 0, {3, 8}, {16, 2});
    EXPECT_TRUE(fails_with(ne_gemm_int8(c, a_column_strided.get(), b.get(), nullptr, nullptr, nullptr, c_i32.get()),
                           NE_STATUS_UNSUPPORTED, {"'a'", "stride 1"}));

    // Scales: forbidden for an i32 c, required for an f32 c, with the right shapes.
    EXPECT_TRUE(fails_with(ne_gemm_int8(c, a.get(), b.get(), a_scales.get(), b_scales.get(), nullptr, c_i32.get()),
                           NE_STATUS_INVALID_ARGUMENT, {"'a_scales' must be NULL", "i32"}));
    EXPECT_TRUE(fails_with(ne_gemm_int8(c, a.get(), b.get(), nullptr, nullptr, bias.get(), c_i32.get()), NE_STATUS_INVALID_ARGUMENT,
                           {"'bias' must be NULL"}));
    EXPECT_TRUE(fails_with(ne_gemm_int8(c, a.get(), b.get(), nullptr, b_scales.get(), nullptr, c_f32.get()), NE_STATUS_NULL_POINTER,
                           {"'a_scales' is NULL", "f32"}));
    EXPECT_TRUE(fails_with(ne_gemm_int8(c, a.get(), b.get(), a_scales.get(), nullptr, nullptr, c_f32.get()), NE_STATUS_NULL_POINTER,
                           {"'b_scales' is NULL"}));
    EXPECT_TRUE(fails_with(ne_gemm_int8(c, a.get(), b.get(), b_scales.get(), b_scales.get(), nullptr, c_f32.get()),
                           NE_STATUS_SHAPE_MISMATCH, {"'a_scales'", "expected shape [3], got [5]"}));
    Tensor bias_i32 = make_tensor(ctx(), NE_DTYPE_I32, {5});
    EXPECT_TRUE(fails_with(ne_gemm_int8(c, a.get(), b.get(), a_scales.get(), b_scales.get(), bias_i32.get(), c_f32.get()),
                           NE_STATUS_DTYPE_MISMATCH, {"'bias'", "expected dtype f32, got i32"}));
    Tensor b_foreign = make_tensor(other_.get(), NE_DTYPE_I8, {5, 8});
    EXPECT_TRUE(fails_with(ne_gemm_int8(c, a.get(), b_foreign.get(), nullptr, nullptr, nullptr, c_i32.get()),
                           NE_STATUS_CONTEXT_MISMATCH, {"'b'", "another context"}));
    Tensor bias_foreign = make_tensor(other_.get(), NE_DTYPE_F32, {5});
    EXPECT_TRUE(fails_with(ne_gemm_int8(c, a.get(), b.get(), a_scales.get(), b_scales.get(), bias_foreign.get(), c_f32.get()),
                           NE_STATUS_CONTEXT_MISMATCH, {"'bias'"}));

    // c over its own bias
    Tensor shared = make_tensor(ctx(), NE_DTYPE_F32, {20});
    Tensor c_over = make_view(shared.get(), 0, {3, 5}, {5, 1});
    Tensor bias_inside = make_view(shared.get(), 12, {5}, {1});
    EXPECT_TRUE(fails_with(ne_gemm_int8(c, a.get(), b.get(), a_scales.get(), b_scales.get(), bias_inside.get(), c_over.get()),
                           NE_STATUS_INVALID_ARGUMENT, {"'c' overlaps argument 'bias'"}));

    EXPECT_EQ(read<int32_t>(c_i32.get()), std::vector<int32_t>(15, 9));
    EXPECT_EQ(read<float>(c_f32.get()), std::vector<float>(15, 9.0f));
}

TEST_F(Int8Arguments, LinearRefusesBadArgumentsAndWritesNothing) {
    Tensor x = make_tensor(ctx(), NE_DTYPE_F32, {3, 8}, random_floats(24, 6));
    Tensor w = make_tensor(ctx(), NE_DTYPE_I8, {5, 8}, random_int8(40, 7));
    Tensor w_scales = make_tensor(ctx(), NE_DTYPE_F32, {5}, std::vector<float>(5, 0.5f));
    Tensor bias = make_tensor(ctx(), NE_DTYPE_F32, {5});
    Tensor y = make_tensor(ctx(), NE_DTYPE_F32, {3, 5});
    NE_ASSERT_OK(ne_tensor_fill(y.get(), 9.0));
    ne_context* c = ctx();

    EXPECT_TRUE(fails_with(ne_linear_int8(nullptr, x.get(), w.get(), w_scales.get(), bias.get(), y.get()), NE_STATUS_NULL_POINTER,
                           {"ne_linear_int8", "context"}));
    EXPECT_TRUE(fails_with(ne_linear_int8(c, nullptr, w.get(), w_scales.get(), bias.get(), y.get()), NE_STATUS_NULL_POINTER, {"'x'"}));
    EXPECT_TRUE(fails_with(ne_linear_int8(c, x.get(), nullptr, w_scales.get(), bias.get(), y.get()), NE_STATUS_NULL_POINTER, {"'w'"}));
    EXPECT_TRUE(fails_with(ne_linear_int8(c, x.get(), w.get(), nullptr, bias.get(), y.get()), NE_STATUS_NULL_POINTER, {"'w_scales'"}));
    EXPECT_TRUE(fails_with(ne_linear_int8(c, x.get(), w.get(), w_scales.get(), bias.get(), nullptr), NE_STATUS_NULL_POINTER, {"'y'"}));

    Tensor w_f32 = make_tensor(ctx(), NE_DTYPE_F32, {5, 8});
    EXPECT_TRUE(fails_with(ne_linear_int8(c, x.get(), w_f32.get(), w_scales.get(), bias.get(), y.get()), NE_STATUS_DTYPE_MISMATCH,
                           {"'w'", "expected dtype i8, got f32"}));
    Tensor w_wrong = make_tensor(ctx(), NE_DTYPE_I8, {5, 9});
    EXPECT_TRUE(fails_with(ne_linear_int8(c, x.get(), w_wrong.get(), w_scales.get(), bias.get(), y.get()), NE_STATUS_SHAPE_MISMATCH,
                           {"'w'", "expected shape [5, 8], got [5, 9]"}));
    Tensor bias_wrong = make_tensor(ctx(), NE_DTYPE_F32, {3});
    EXPECT_TRUE(fails_with(ne_linear_int8(c, x.get(), w.get(), w_scales.get(), bias_wrong.get(), y.get()), NE_STATUS_SHAPE_MISMATCH,
                           {"'bias'", "expected shape [5], got [3]"}));
    Tensor y_wrong = make_tensor(ctx(), NE_DTYPE_F32, {3, 6});
    EXPECT_TRUE(fails_with(ne_linear_int8(c, x.get(), w.get(), w_scales.get(), bias.get(), y_wrong.get()), NE_STATUS_SHAPE_MISMATCH,
                           {"'y'", "expected shape [3, 5], got [3, 6]"}));
    Tensor w_scales_foreign = make_tensor(other_.get(), NE_DTYPE_F32, {5});
    EXPECT_TRUE(fails_with(ne_linear_int8(c, x.get(), w.get(), w_scales_foreign.get(), bias.get(), y.get()),
                           NE_STATUS_CONTEXT_MISMATCH, {"'w_scales'"}));
    const int64_t K = NE_INT8_GEMM_MAX_K + 1;
    Tensor x_long = make_tensor(ctx(), NE_DTYPE_F32, {3, K});
    Tensor w_long = make_tensor(ctx(), NE_DTYPE_I8, {5, K});
    EXPECT_TRUE(fails_with(ne_linear_int8(c, x_long.get(), w_long.get(), w_scales.get(), bias.get(), y.get()), NE_STATUS_OVERFLOW,
                           {"K = 65537"}));
    // y written over x
    Tensor shared = make_tensor(ctx(), NE_DTYPE_F32, {40});
    Tensor x_in = make_view(shared.get(), 0, {3, 8}, {8, 1});
    Tensor y_over = make_view(shared.get(), 20, {3, 5}, {5, 1});
    Tensor y_clear = make_view(shared.get(), 24, {1, 5}, {5, 1});
    EXPECT_TRUE(fails_with(ne_linear_int8(c, x_in.get(), w.get(), w_scales.get(), bias.get(), y_over.get()), NE_STATUS_INVALID_ARGUMENT,
                           {"'y' overlaps argument 'x'"}));
    Tensor x_row = make_view(shared.get(), 0, {1, 8}, {8, 1});
    NE_EXPECT_OK(ne_linear_int8(c, x_row.get(), w.get(), w_scales.get(), bias.get(), y_clear.get()));

    EXPECT_EQ(read<float>(y.get()), std::vector<float>(15, 9.0f));
}

}  // namespace
