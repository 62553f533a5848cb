// ne_gemm on every backend configuration, against a double-precision reference written here.
//
// Tolerance: each element may differ from the exact alpha * op(A) op(B) + beta * C by
//   1e-5 * (|alpha| * sum_k |a_mk b_kn| + |beta c_mn|)
// (plus 1e-30 so that exact zeros compare): far above the error of a float sum in any order for
// the K used here (a few units of 2^-24 times sqrt(K) on these random inputs), far below any
// wrong or missing term.
#include "test_support.hpp"

#include <cmath>
#include <limits>

using namespace ne_test;

namespace {

Tensor make_view(const ne_tensor* base, int64_t offset, std::vector<int64_t> shape, std::vector<int64_t> strides) {
    ne_tensor* view = nullptr;
    check(ne_tensor_view(base, offset, static_cast<int32_t>(shape.size()), shape.data(), strides.data(), &view), "ne_tensor_view");
    return Tensor(view);
}

std::vector<uint32_t> bits_of(const std::vector<float>& values) {
    std::vector<uint32_t> bits(values.size());
    std::memcpy(bits.data(), values.data(), values.size() * sizeof(float));
    return bits;
}

// A batch of matrices: a contiguous base tensor [batch dims..., rows, row_stride] viewed as
// [batch dims..., rows, cols]; row_stride > cols makes the rows strided. `values` holds the base.
struct Operand {
    Tensor base;
    Tensor view;
    int64_t batch;
    int64_t rows;
    int64_t cols;
    int64_t row_stride;
    std::vector<float> values;

    float at(int64_t index, int64_t r, int64_t c) const {
        return values[static_cast<size_t>((index * rows + r) * row_stride + c)];
    }
};

Operand make_operand(ne_context* context, const std::vector<int64_t>& batch_dims, int64_t rows, int64_t cols, int64_t row_stride,
                     std::vector<float> values) {
    int64_t batch = 1;
    for (int64_t dim : batch_dims) batch *= dim;
    std::vector<int64_t> base_shape = batch_dims;
    base_shape.insert(base_shape.end(), {rows, row_stride});
    std::vector<int64_t> view_shape = batch_dims;
    view_shape.insert(view_shape.end(), {rows, cols});
    std::vector<int64_t> strides(view_shape.size());
    int64_t stride = 1;
    for (size_t i = base_shape.size(); i-- > 0;) {
        strides[i] = stride;
        stride *= base_shape[i];
    }
    Operand operand{make_tensor(context, NE_DTYPE_F32, base_shape, values), nullptr, batch, rows, cols, row_stride, std::move(values)};
    operand.view = make_view(operand.base.get(), 0, view_shape, strides);
    return operand;
}

Operand random_operand(ne_context* context, const std::vector<int64_t>& batch_dims, int64_t rows, int64_t cols, uint64_t seed,
                       int64_t padding = 0) {
    int64_t batch = 1;
    for (int64_t dim : batch_dims) batch *= dim;
    return make_operand(context, batch_dims, rows, cols, cols + padding,
                        random_floats(static_cast<size_t>(batch * rows * (cols + padding)), seed));
}

Operand filled_operand(ne_context* context, const std::vector<int64_t>& batch_dims, int64_t rows, int64_t cols, float value) {
    int64_t batch = 1;
    for (int64_t dim : batch_dims) batch *= dim;
    return make_operand(context, batch_dims, rows, cols, cols, std::vector<float>(static_cast<size_t>(batch * rows * cols), value));
}

ne_gemm_params gemm_params(bool transpose_a, bool transpose_b, float alpha, float beta) {
    ne_gemm_params params{};
    params.struct_size = sizeof params;
    params.transpose_a = transpose_a ? 1 : 0;
    params.transpose_b = transpose_b ? 1 : 0;
    params.alpha = alpha;
    params.beta = beta;
    return params;
}

std::string describe(const ne_gemm_params& p, int64_t M, int64_t N, int64_t K) {
    return "M=" + std::to_string(M) + " N=" + std::to_string(N) + " K=" + std::to_string(K) + " transpose_a=" +
           std::to_string(p.transpose_a) + " transpose_b=" + std::to_string(p.transpose_b) + " alpha=" + std::to_string(p.alpha) +
           " beta=" + std::to_string(p.beta);
}

// c_after (c's base after the call) against alpha * op(A_i) op(B_i) + beta * C_i in double, for
// every product i (A or B with one matrix is shared); elements of the base outside the view
// must keep their bits.
::testing::AssertionResult matches_reference(const ne_gemm_params& p, const Operand& a, const Operand& b, const Operand& c,
                                             const std::vector<float>& c_after, double relative_tolerance = 1e-5) {
    const int64_t M = c.rows, N = c.cols, K = p.transpose_a ? a.rows : a.cols;
    for (int64_t i = 0; i < c.batch; ++i) {
        const int64_t ia = a.batch == 1 ? 0 : i, ib = b.batch == 1 ? 0 : i;
        for (int64_t m = 0; m < M; ++m) {
            for (int64_t n = 0; n < N; ++n) {
                double sum = 0.0, magnitude = 0.0;
                for (int64_t k = 0; k < K; ++k) {
                    const double a_mk = p.transpose_a ? a.at(ia, k, m) : a.at(ia, m, k);
                    const double b_kn = p.transpose_b ? b.at(ib, n, k) : b.at(ib, k, n);
                    sum += a_mk * b_kn;
                    magnitude += std::fabs(a_mk * b_kn);
                }
                const double previous = p.beta == 0.0f ? 0.0 : static_cast<double>(p.beta) * c.at(i, m, n);
                const double expected = static_cast<double>(p.alpha) * sum + previous;
                const double tolerance = relative_tolerance * (std::fabs(p.alpha) * magnitude + std::fabs(previous)) + 1e-30;
                const float actual = c_after[static_cast<size_t>((i * c.rows + m) * c.row_stride + n)];
                if (!(std::fabs(actual - expected) <= tolerance)) {
                    return ::testing::AssertionFailure() << describe(p, M, N, K) << ": product " << i << " [" << m << ", " << n
                                                         << "] is " << actual << ", expected " << expected << " +- " << tolerance;
                }
            }
            for (int64_t n = N; n < c.row_stride; ++n) {
                const size_t offset = static_cast<size_t>((i * c.rows + m) * c.row_stride + n);
                if (bits_of({c_after[offset]}) != bits_of({c.values[offset]})) {
                    return ::testing::AssertionFailure() << describe(p, M, N, K) << ": padding of row " << m << " was written";
                }
            }
        }
    }
    return ::testing::AssertionSuccess();
}

// The sizes of one product: op(A) [M,K], op(B) [K,N], C [M,N].
struct Problem {
    int64_t M, N, K;
};

class GemmTest : public ::testing::TestWithParam<BackendConfig> {
protected:
    void SetUp() override { context_ = make_context(GetParam()); }
    ne_context* ctx() const { return context_.get(); }

    Operand operand_a(const Problem& s, bool transpose, const std::vector<int64_t>& batch_dims, uint64_t seed, int64_t padding = 0) {
        return transpose ? random_operand(ctx(), batch_dims, s.K, s.M, seed, padding)
                         : random_operand(ctx(), batch_dims, s.M, s.K, seed, padding);
    }
    Operand operand_b(const Problem& s, bool transpose, const std::vector<int64_t>& batch_dims, uint64_t seed, int64_t padding = 0) {
        return transpose ? random_operand(ctx(), batch_dims, s.N, s.K, seed, padding)
                         : random_operand(ctx(), batch_dims, s.K, s.N, seed, padding);
    }

    // Runs ne_gemm and checks C against the reference.
    ::testing::AssertionResult gemm_matches(const ne_gemm_params& params, const Operand& a, const Operand& b, const Operand& c) {
        const ne_status status = ne_gemm(ctx(), &params, a.view.get(), b.view.get(), c.view.get());
        if (status != NE_STATUS_OK) return ::testing::AssertionFailure() << ne_status_string(status) << ": " << ne_last_error();
        return matches_reference(params, a, b, c, read<float>(c.base.get()));
    }

    Context context_;
};

// Sizes around every register tile (AVX2 6x16, AVX-512 12x32) and cache block (K slices: AVX2 384,
// AVX-512 256; row blocks: 120, 240; column blocks: 2048), primes, and single rows and columns.
std::vector<Problem> problem_shapes() {
    return {{1, 1, 1},      {1, 1, 7},     {2, 3, 5},      {5, 7, 3},      {6, 16, 8},     {7, 17, 9},     {5, 15, 31},
            {13, 31, 17},   {12, 32, 4},   {11, 33, 2},    {37, 41, 43},   {1, 67, 129},   {1, 300, 1000}, {67, 1, 129},
            {300, 1, 1000}, {1, 1, 300},   {9, 100, 255},  {9, 100, 256},  {9, 100, 257},  {9, 40, 383},   {9, 40, 384},
            {9, 40, 385},   {40, 50, 769}, {121, 20, 30},  {241, 33, 10},  {3, 2100, 20},  {130, 70, 600}, {150, 300, 1030}};
}

// ------------------------------------------------------------------------------------------
// Results
// ------------------------------------------------------------------------------------------

TEST_P(GemmTest, EveryTransposeAndShapeMatchesTheDoubleReference) {
    uint64_t seed = 1;
    for (const Problem& s : problem_shapes()) {
        for (const bool transpose_a : {false, true}) {
            for (const bool transpose_b : {false, true}) {
                const bool overwrite = seed % 2 == 0;
                const Operand a = operand_a(s, transpose_a, {}, seed++);
                const Operand b = operand_b(s, transpose_b, {}, seed++);
                const Operand c = overwrite ? filled_operand(ctx(), {}, s.M, s.N, std::numeric_limits<float>::quiet_NaN())
                                            : random_operand(ctx(), {}, s.M, s.N, seed++);
                ASSERT_TRUE(gemm_matches(gemm_params(transpose_a, transpose_b, 0.75f, overwrite ? 0.0f : -0.5f), a, b, c));
            }
        }
    }
}

// allow_tf32: the CPU multiplies in f32 all the same (the same bits); a device rounds the operands
// to TF32 (a 10-bit mantissa: relative error 2^-11 each), within 2e-3 of the products' magnitude.
TEST_P(GemmTest, Tf32ProductsOnDevices) {
    for (const Problem& s : {Problem{1, 1, 1}, Problem{37, 41, 43}, Problem{130, 70, 600}}) {
        const Operand a = operand_a(s, false, {}, 21);
        const Operand b = operand_b(s, true, {}, 22);
        const Operand c = random_operand(ctx(), {}, s.M, s.N, 23);
        ne_gemm_params params = gemm_params(false, true, 1.0f, 0.5f);
        params.allow_tf32 = 1;
        NE_ASSERT_OK(ne_gemm(ctx(), &params, a.view.get(), b.view.get(), c.view.get()));
        const std::vector<float> rounded = read<float>(c.base.get());
        if (on_device(ctx())) {
            EXPECT_TRUE(matches_reference(params, a, b, c, rounded, 2e-3));
            continue;
        }
        write(c.base.get(), c.values);
        params.allow_tf32 = 0;
        NE_ASSERT_OK(ne_gemm(ctx(), &params, a.view.get(), b.view.get(), c.view.get()));
        EXPECT_TRUE(bitwise_equal(rounded, read<float>(c.base.get())));
    }
}

TEST_P(GemmTest, BetaZeroNeverReadsC) {
    for (const Problem& s : {Problem{1, 37, 50}, Problem{37, 1, 50}, Problem{13, 37, 300}, Problem{64, 64, 64}}) {
        for (const float fill : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
            const Operand a = operand_a(s, false, {}, 11);
            const Operand b = operand_b(s, true, {}, 12);
            const Operand c = filled_operand(ctx(), {}, s.M, s.N, fill);
            ASSERT_TRUE(gemm_matches(gemm_params(false, true, 1.0f, 0.0f), a, b, c));
            for (const float value : read<float>(c.base.get())) ASSERT_TRUE(std::isfinite(value));
        }
    }
}

TEST_P(GemmTest, BetaOneAccumulatesIntoC) {
    for (const Problem& s : {Problem{1, 37, 50}, Problem{37, 1, 50}, Problem{13, 37, 300}, Problem{70, 90, 700}}) {
        const Operand a = operand_a(s, true, {}, 21);
        const Operand b = operand_b(s, false, {}, 22);
        const Operand c = random_operand(ctx(), {}, s.M, s.N, 23);
        ASSERT_TRUE(gemm_matches(gemm_params(true, false, 1.0f, 1.0f), a, b, c));
    }
}

TEST_P(GemmTest, AlphaAndBetaScale) {
    const Problem s{29, 45, 270};
    const Operand a = operand_a(s, false, {}, 31);
    const Operand b = operand_b(s, false, {}, 32);
    for (const auto& [alpha, beta] : {std::pair{-2.0f, 0.5f}, std::pair{0.125f, -3.0f}, std::pair{3.0f, 0.0f}}) {
        const Operand c = random_operand(ctx(), {}, s.M, s.N, 33);
        ASSERT_TRUE(gemm_matches(gemm_params(false, false, alpha, beta), a, b, c));
    }

    // alpha = 0: C = beta * C exactly, whatever A and B; with beta = 0 too, C = 0 even over NaN.
    const Operand kept = random_operand(ctx(), {}, s.M, s.N, 34);
    ne_gemm_params params = gemm_params(false, false, 0.0f, 1.0f);
    NE_ASSERT_OK(ne_gemm(ctx(), &params, a.view.get(), b.view.get(), kept.view.get()));
    EXPECT_EQ(bits_of(read<float>(kept.base.get())), bits_of(kept.values));
    const Operand zeroed = filled_operand(ctx(), {}, s.M, s.N, std::numeric_limits<float>::quiet_NaN());
    params.beta = 0.0f;
    NE_ASSERT_OK(ne_gemm(ctx(), &params, a.view.get(), b.view.get(), zeroed.view.get()));
    for (const float value : read<float>(zeroed.base.get())) ASSERT_EQ(value, 0.0f);
}

TEST_P(GemmTest, ReadsAndWritesRowStridedViews) {
    uint64_t seed = 41;
    for (const Problem& s : {Problem{13, 37, 45}, Problem{1, 37, 45}, Problem{13, 1, 45}, Problem{20, 40, 300}}) {
        for (const bool transpose_a : {false, true}) {
            for (const bool transpose_b : {false, true}) {
                const Operand a = operand_a(s, transpose_a, {}, seed++, 3);
                const Operand b = operand_b(s, transpose_b, {}, seed++, 5);
                const Operand c = random_operand(ctx(), {}, s.M, s.N, seed++, 7);
                ASSERT_TRUE(gemm_matches(gemm_params(transpose_a, transpose_b, 1.5f, 0.25f), a, b, c));
            }
        }
    }
}

TEST_P(GemmTest, BatchesShareARank2OperandAcrossProducts) {
    struct Sharing {
        std::vector<int64_t> a_batch;
        bool transpose_a;
        std::vector<int64_t> b_batch;
    };
    // both batched; A shared (rank 2); B shared (rank 2); A shared as [1, M, K]
    const Sharing sharings[] = {{{5}, false, {5}}, {{}, false, {5}}, {{5}, true, {}}, {{1}, false, {5}}};
    uint64_t seed = 51;
    for (const Problem& s : {Problem{9, 21, 33}, Problem{1, 40, 70}, Problem{40, 1, 70}}) {
        for (const bool transpose_b : {false, true}) {
            for (const Sharing& sharing : sharings) {
                const Operand a = operand_a(s, sharing.transpose_a, sharing.a_batch, seed++);
                const Operand b = operand_b(s, transpose_b, sharing.b_batch, seed++);
                const Operand c = random_operand(ctx(), {5}, s.M, s.N, seed++);
                ASSERT_TRUE(gemm_matches(gemm_params(sharing.transpose_a, transpose_b, 1.0f, 0.5f), a, b, c));
            }
        }
    }
}

TEST_P(GemmTest, LeadingDimensionsCollapseIntoOneBatch) {
    const Problem s{7, 19, 23};
    const Operand a = operand_a(s, false, {2, 3}, 61);
    const Operand b = operand_b(s, true, {6}, 62);
    const Operand c = random_operand(ctx(), {3, 2}, s.M, s.N, 63);
    ASSERT_TRUE(gemm_matches(gemm_params(false, true, 1.0f, 0.0f), a, b, c));
}

TEST_P(GemmTest, ManySmallProductsInOneCall) {
    const Problem s{64, 64, 64};
    const Operand a = operand_a(s, false, {64}, 71);
    const Operand b = operand_b(s, false, {64}, 72);
    const Operand c = random_operand(ctx(), {64}, s.M, s.N, 73);
    ASSERT_TRUE(gemm_matches(gemm_params(false, false, 1.0f, 0.0f), a, b, c));
}

// Attention-style heads: C [heads, M, N] as a view of a [M, heads, N] tensor, so its batch stride
// (N) is smaller than its row stride (heads * N).
TEST_P(GemmTest, WritesABatchInterleavedWithItsRows) {
    const int64_t heads = 4, M = 9, N = 10, K = 11;
    const Operand a = random_operand(ctx(), {heads}, M, K, 81);
    const Operand b = random_operand(ctx(), {}, K, N, 82);
    Tensor c_base = make_tensor(ctx(), NE_DTYPE_F32, {M, heads, N});
    Tensor c = make_view(c_base.get(), 0, {heads, M, N}, {N, heads * N, 1});
    const ne_gemm_params params = gemm_params(false, false, 1.0f, 0.0f);
    NE_ASSERT_OK(ne_gemm(ctx(), &params, a.view.get(), b.view.get(), c.get()));
    const std::vector<float> result = read<float>(c_base.get());
    for (int64_t h = 0; h < heads; ++h) {
        for (int64_t m = 0; m < M; ++m) {
            for (int64_t n = 0; n < N; ++n) {
                double expected = 0.0;
                for (int64_t k = 0; k < K; ++k) expected += static_cast<double>(a.at(h, m, k)) * b.at(0, k, n);
                ASSERT_NEAR(result[static_cast<size_t>((m * heads + h) * N + n)], expected, 1e-5 * K) << h << " " << m << " " << n;
            }
        }
    }
}

TEST_P(GemmTest, ScratchMemoryIsCountedAndReleased) {
    const Problem s{100, 120, 300};
    const Operand a = operand_a(s, false, {}, 91);
    const Operand b = operand_b(s, true, {}, 92);
    const Operand c = filled_operand(ctx(), {}, s.M, s.N, 0.0f);
    ne_memory_stats before{}, after{};
    before.struct_size = after.struct_size = sizeof(ne_memory_stats);
    NE_ASSERT_OK(ne_context_get_memory_stats(ctx(), &before));
    const ne_gemm_params params = gemm_params(false, true, 1.0f, 0.0f);
    NE_ASSERT_OK(ne_gemm(ctx(), &params, a.view.get(), b.view.get(), c.view.get()));
    NE_ASSERT_OK(ne_context_get_memory_stats(ctx(), &after));
    EXPECT_EQ(after.live_bytes, before.live_bytes);
    EXPECT_EQ(after.live_allocations, before.live_allocations);
    if (GetParam().backend == NE_BACKEND_CPU && GetParam().simd_level != NE_SIMD_LEVEL_SCALAR) {
        // the packed panels: at least one block of A and one of B
        EXPECT_GE(after.peak_bytes - before.live_bytes, static_cast<int64_t>(sizeof(float)) * (s.M + s.N) * s.K / 2);
    }
}

// bf16 and f16 operands: devices multiply them (f32 accumulation) into c of their dtype or f32;
// the CPU refuses them. The inputs are multiples of 1/8 in [-1, 1], exact in both formats, and
// every partial sum is a multiple of 1/64 below 2^12, so an f32 c is exact; a 16-bit c is that
// value rounded to nearest: within half an ulp, up to 2^-8 (bf16) or 2^-11 (f16) relative.
TEST_P(GemmTest, HalfPrecisionOperandsOnDevices) {
    const Problem s{37, 29, 70};
    for (const ne_dtype dtype : {NE_DTYPE_BF16, NE_DTYPE_F16}) {
        SCOPED_TRACE(dtype == NE_DTYPE_BF16 ? "bf16" : "f16");
        // Small integers times powers of two are exact in both 16-bit formats.
        std::vector<uint16_t> a_bits(static_cast<size_t>(s.M * s.K)), b_bits(static_cast<size_t>(s.N * s.K));
        std::vector<double> a_values(a_bits.size()), b_values(b_bits.size());
        std::mt19937_64 generator(dtype);
        std::uniform_int_distribution<int> small(-8, 8);
        const auto encode = [dtype](int value) {
            // value / 8 in the 16-bit format: bf16 is the upper half of the f32 bits; f16 is built by hand.
            const float f = static_cast<float>(value) / 8.0f;
            uint32_t bits;
            std::memcpy(&bits, &f, sizeof bits);
            if (dtype == NE_DTYPE_BF16) return static_cast<uint16_t>(bits >> 16);
            if (value == 0) return uint16_t{0};
            const uint32_t sign = (bits >> 16) & 0x8000u;
            const int exponent = static_cast<int>((bits >> 23) & 0xffu) - 127 + 15;
            return static_cast<uint16_t>(sign | (static_cast<uint32_t>(exponent) << 10) | ((bits & 0x7fffffu) >> 13));
        };
        for (size_t i = 0; i < a_bits.size(); ++i) {
            const int v = small(generator);
            a_bits[i] = encode(v);
            a_values[i] = v / 8.0;
        }
        for (size_t i = 0; i < b_bits.size(); ++i) {
            const int v = small(generator);
            b_bits[i] = encode(v);
            b_values[i] = v / 8.0;
        }
        Tensor a = make_tensor(ctx(), dtype, {s.M, s.K}, a_bits);
        Tensor b = make_tensor(ctx(), dtype, {s.N, s.K}, b_bits);
        Tensor c = make_tensor(ctx(), NE_DTYPE_F32, {s.M, s.N});
        const ne_gemm_params params = gemm_params(false, true, 1.0f, 0.0f);
        const ne_status status = ne_gemm(ctx(), &params, a.get(), b.get(), c.get());
        if (GetParam().backend == NE_BACKEND_CPU) {
            EXPECT_TRUE(fails_with(status, NE_STATUS_DTYPE_MISMATCH, {"ne_gemm", "'a'", "f32"}));
            continue;
        }
        ASSERT_EQ(status, NE_STATUS_OK) << ne_last_error();
        const std::vector<float> product = read<float>(c.get());
        for (int64_t m = 0; m < s.M; ++m) {
            for (int64_t n = 0; n < s.N; ++n) {
                double expected = 0.0;
                for (int64_t k = 0; k < s.K; ++k) expected += a_values[static_cast<size_t>(m * s.K + k)] * b_values[static_cast<size_t>(n * s.K + k)];
                // Every partial sum is a multiple of 1/64 below 2^12: exact in f32.
                ASSERT_EQ(product[static_cast<size_t>(m * s.N + n)], expected) << "at [" << m << ", " << n << "]";
            }
        }
        Tensor c16 = make_tensor(ctx(), dtype, {s.M, s.N});
        NE_ASSERT_OK(ne_gemm(ctx(), &params, a.get(), b.get(), c16.get()));
        const std::vector<uint16_t> rounded = read<uint16_t>(c16.get());
        const auto decode = [dtype](uint16_t bits) {
            if (dtype == NE_DTYPE_BF16) {
                const uint32_t wide = uint32_t{bits} << 16;
                float f;
                std::memcpy(&f, &wide, sizeof f);
                return static_cast<double>(f);
            }
            const double magnitude = (bits & 0x7fffu) == 0 ? 0.0 : std::ldexp(1.0 + (bits & 0x3ffu) / 1024.0, ((bits >> 10) & 0x1f) - 15);
            return (bits & 0x8000u) ? -magnitude : magnitude;
        };
        // Half an ulp at the value's binade: 2^(e - 8) for bf16 (8 significant bits), 2^(e - 11)
        // for f16 (11), where 2^e <= |value| < 2^(e + 1); a tie rounds to even.
        const int significant_bits = dtype == NE_DTYPE_BF16 ? 8 : 11;
        for (size_t i = 0; i < rounded.size(); ++i) {
            const double half_ulp = product[i] == 0.0f ? 0.0 : std::ldexp(1.0, std::ilogb(product[i]) - significant_bits);
            ASSERT_LE(std::abs(decode(rounded[i]) - product[i]), half_ulp) << "element " << i << ": " << product[i];
        }
        Tensor wrong = make_tensor(ctx(), dtype == NE_DTYPE_BF16 ? NE_DTYPE_F16 : NE_DTYPE_BF16, {s.N, s.K});
        EXPECT_TRUE(fails_with(ne_gemm(ctx(), &params, a.get(), wrong.get(), c.get()), NE_STATUS_DTYPE_MISMATCH, {"'b'"}));
    }
}

// ------------------------------------------------------------------------------------------
// Determinism
// ------------------------------------------------------------------------------------------

TEST(GemmDeterminism, BitsDoNotDependOnTheThreadCount) {
    struct Case {
        std::vector<int64_t> batch;
        Problem s;
        bool transpose_a, transpose_b;
    };
    const Case cases[] = {
        {{}, {70, 90, 700}, false, false},  {{}, {130, 200, 300}, false, true}, {{}, {61, 45, 530}, true, true},
        {{}, {1, 700, 300}, false, false},  {{}, {1, 700, 300}, true, true},    {{}, {700, 1, 300}, false, false},
        {{8}, {30, 40, 50}, true, false},   {{3}, {1, 500, 64}, false, true},
    };
    for (const ne_simd_level level : {NE_SIMD_LEVEL_AVX2, NE_SIMD_LEVEL_AVX512}) {
        if (best_simd_level() < level) continue;
        std::vector<std::vector<uint32_t>> results[2];
        for (const int threads : {1, 3}) {
            Context context = make_cpu_context(threads, level);
            uint64_t seed = 101;
            for (const Case& test : cases) {
                const Problem& s = test.s;
                const Operand a = test.transpose_a ? random_operand(context.get(), test.batch, s.K, s.M, seed++)
                                                   : random_operand(context.get(), test.batch, s.M, s.K, seed++);
                const Operand b = test.transpose_b ? random_operand(context.get(), test.batch, s.N, s.K, seed++)
                                                   : random_operand(context.get(), test.batch, s.K, s.N, seed++);
                const Operand c = random_operand(context.get(), test.batch, s.M, s.N, seed++);
                const ne_gemm_params params = gemm_params(test.transpose_a, test.transpose_b, 0.5f, 0.25f);
                NE_ASSERT_OK(ne_gemm(context.get(), &params, a.view.get(), b.view.get(), c.view.get()));
                results[threads == 1 ? 0 : 1].push_back(bits_of(read<float>(c.base.get())));
            }
        }
        for (size_t i = 0; i < results[0].size(); ++i) EXPECT_EQ(results[0][i], results[1][i]) << "level " << level << ", case " << i;
    }
}

// ------------------------------------------------------------------------------------------
// Validation: every refused call leaves C as it was
// ------------------------------------------------------------------------------------------

class GemmArgumentsTest : public GemmTest {
protected:
    void SetUp() override {
        GemmTest::SetUp();
        a_ = random_operand(ctx(), {}, 4, 6, 1);
        b_ = random_operand(ctx(), {}, 6, 5, 2);
        c_ = random_operand(ctx(), {}, 4, 5, 3);
    }

    ::testing::AssertionResult refused(const ne_gemm_params* params, const ne_tensor* a, const ne_tensor* b, ne_tensor* c,
                                       ne_status expected, std::initializer_list<const char*> fragments, ne_context* context = nullptr) {
        const ne_status status = ne_gemm(context == nullptr ? ctx() : context, params, a, b, c);
        ::testing::AssertionResult result = fails_with(status, expected, fragments);
        if (!result) return result;
        if (bits_of(read<float>(c_.base.get())) != bits_of(c_.values)) return ::testing::AssertionFailure() << "c was modified";
        return ::testing::AssertionSuccess();
    }

    Operand a_, b_, c_;
    ne_gemm_params params_ = gemm_params(false, false, 1.0f, 0.0f);
};

TEST_P(GemmArgumentsTest, NullArgumentsAreRefused) {
    EXPECT_TRUE(fails_with(ne_gemm(nullptr, &params_, a_.view.get(), b_.view.get(), c_.view.get()), NE_STATUS_NULL_POINTER,
                           {"ne_gemm", "'context'"}));
    EXPECT_TRUE(refused(nullptr, a_.view.get(), b_.view.get(), c_.view.get(), NE_STATUS_NULL_POINTER, {"'params'"}));
    EXPECT_TRUE(refused(&params_, nullptr, b_.view.get(), c_.view.get(), NE_STATUS_NULL_POINTER, {"'a'"}));
    EXPECT_TRUE(refused(&params_, a_.view.get(), nullptr, c_.view.get(), NE_STATUS_NULL_POINTER, {"'b'"}));
    EXPECT_TRUE(fails_with(ne_gemm(ctx(), &params_, a_.view.get(), b_.view.get(), nullptr), NE_STATUS_NULL_POINTER, {"'c'"}));
}

TEST_P(GemmArgumentsTest, ParamsAreChecked) {
    ne_gemm_params params = params_;
    params.struct_size = sizeof params - 4;
    EXPECT_TRUE(refused(&params, a_.view.get(), b_.view.get(), c_.view.get(), NE_STATUS_VERSION_MISMATCH, {"struct_size"}));
    params.struct_size = sizeof params + 4;
    EXPECT_TRUE(refused(&params, a_.view.get(), b_.view.get(), c_.view.get(), NE_STATUS_VERSION_MISMATCH, {"struct_size"}));
    for (const float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity()}) {
        params = params_;
        params.alpha = bad;
        EXPECT_TRUE(refused(&params, a_.view.get(), b_.view.get(), c_.view.get(), NE_STATUS_INVALID_ARGUMENT, {"alpha", "finite"}));
        params = params_;
        params.beta = bad;
        EXPECT_TRUE(refused(&params, a_.view.get(), b_.view.get(), c_.view.get(), NE_STATUS_INVALID_ARGUMENT, {"beta", "finite"}));
    }
    params = params_;
    params.transpose_b = 2;
    EXPECT_TRUE(refused(&params, a_.view.get(), b_.view.get(), c_.view.get(), NE_STATUS_INVALID_ARGUMENT, {"transpose_b", "0 or 1"}));
    params = params_;
    params.allow_tf32 = -1;
    EXPECT_TRUE(refused(&params, a_.view.get(), b_.view.get(), c_.view.get(), NE_STATUS_INVALID_ARGUMENT, {"allow_tf32", "0 or 1"}));
}

TEST_P(GemmArgumentsTest, DtypeRankAndContextAreChecked) {
    Tensor wrong_dtype = make_tensor(ctx(), NE_DTYPE_I32, {6, 5});
    EXPECT_TRUE(refused(&params_, a_.view.get(), wrong_dtype.get(), c_.view.get(), NE_STATUS_DTYPE_MISMATCH, {"'b'", "f32", "i32"}));
    Tensor vector = make_tensor(ctx(), NE_DTYPE_F32, {6});
    EXPECT_TRUE(refused(&params_, vector.get(), b_.view.get(), c_.view.get(), NE_STATUS_SHAPE_MISMATCH, {"'a'", "rank >= 2", "[6]"}));
    Context other = make_context(GetParam());
    Tensor foreign = make_tensor(other.get(), NE_DTYPE_F32, {4, 6});
    EXPECT_TRUE(refused(&params_, foreign.get(), b_.view.get(), c_.view.get(), NE_STATUS_CONTEXT_MISMATCH, {"'a'", "another context"}));
}

TEST_P(GemmArgumentsTest, ShapesAreChecked) {
    // op(a) [4, 6] times op(b) [5, 6]: the inner dimensions disagree unless b is transposed
    Tensor b_t = make_tensor(ctx(), NE_DTYPE_F32, {5, 6});
    EXPECT_TRUE(refused(&params_, a_.view.get(), b_t.get(), c_.view.get(), NE_STATUS_SHAPE_MISMATCH,
                        {"inner dimensions", "[4, 6]", "[5, 6]", "transpose_b = 0"}));
    ne_gemm_params transposed = params_;
    transposed.transpose_a = 1;
    EXPECT_TRUE(refused(&transposed, a_.view.get(), b_.view.get(), c_.view.get(), NE_STATUS_SHAPE_MISMATCH,
                        {"inner dimensions", "op(a) is [6, 4]", "op(b) is [6, 5]"}));
    Tensor c_wrong = make_tensor(ctx(), NE_DTYPE_F32, {4, 7});
    EXPECT_TRUE(fails_with(ne_gemm(ctx(), &params_, a_.view.get(), b_.view.get(), c_wrong.get()), NE_STATUS_SHAPE_MISMATCH,
                           {"'c'", "[4, 5]", "[4, 7]"}));

    const Operand c3 = random_operand(ctx(), {3}, 4, 5, 4);
    const Operand a2 = random_operand(ctx(), {2}, 4, 6, 5);
    const ne_status status = ne_gemm(ctx(), &params_, a2.view.get(), b_.view.get(), c3.view.get());
    EXPECT_TRUE(fails_with(status, NE_STATUS_SHAPE_MISMATCH, {"'a'", "2 matrices", "[2, 4, 6]", "batch of 3", "[3, 4, 5]"}));
    EXPECT_EQ(bits_of(read<float>(c3.base.get())), bits_of(c3.values));
}

TEST_P(GemmArgumentsTest, LayoutsAreChecked) {
    // a [2, 3, 4, 6] viewed inside [2, 4, 4, 6]: the two leading dimensions do not collapse
    Tensor base = make_tensor(ctx(), NE_DTYPE_F32, {2, 4, 4, 6});
    Tensor split = make_view(base.get(), 0, {2, 3, 4, 6}, {96, 24, 6, 1});
    const Operand c6 = random_operand(ctx(), {6}, 4, 5, 6);
    EXPECT_TRUE(fails_with(ne_gemm(ctx(), &params_, split.get(), b_.view.get(), c6.view.get()), NE_STATUS_UNSUPPORTED,
                           {"'a'", "[2, 3, 4, 6]", "do not collapse"}));
    EXPECT_EQ(bits_of(read<float>(c6.base.get())), bits_of(c6.values));

    Tensor columns = make_view(a_.base.get(), 0, {4, 6}, {1, 4});
    EXPECT_TRUE(refused(&params_, columns.get(), b_.view.get(), c_.view.get(), NE_STATUS_UNSUPPORTED, {"'a'", "contiguous"}));

    // every product of a batch writing the same matrix
    Tensor repeated = make_view(c_.base.get(), 0, {3, 4, 5}, {0, 5, 1});
    EXPECT_TRUE(refused(&params_, a_.view.get(), b_.view.get(), repeated.get(), NE_STATUS_UNSUPPORTED, {"'c'", "overlap"}));
    Tensor rows_overlap = make_view(c_.base.get(), 0, {4, 5}, {2, 1});
    EXPECT_TRUE(refused(&params_, a_.view.get(), b_.view.get(), rows_overlap.get(), NE_STATUS_UNSUPPORTED, {"'c'", "overlap"}));
}

TEST_P(GemmArgumentsTest, OutputMustNotOverlapInputs) {
    Tensor shared = make_tensor(ctx(), NE_DTYPE_F32, {100}, random_floats(100, 7));
    Tensor a = make_view(shared.get(), 0, {4, 6}, {6, 1});
    Tensor c_over_a = make_view(shared.get(), 20, {4, 5}, {5, 1});
    Tensor b = make_view(shared.get(), 50, {6, 5}, {5, 1});
    Tensor c_over_b = make_view(shared.get(), 75, {4, 5}, {5, 1});
    const std::vector<float> before = read<float>(shared.get());
    EXPECT_TRUE(fails_with(ne_gemm(ctx(), &params_, a.get(), b_.view.get(), c_over_a.get()), NE_STATUS_INVALID_ARGUMENT,
                           {"'c' overlaps argument 'a'"}));
    EXPECT_TRUE(fails_with(ne_gemm(ctx(), &params_, a_.view.get(), b.get(), c_over_b.get()), NE_STATUS_INVALID_ARGUMENT,
                           {"'c' overlaps argument 'b'"}));
    EXPECT_EQ(bits_of(read<float>(shared.get())), bits_of(before));
}

INSTANTIATE_TEST_SUITE_P(Backends, GemmTest, ::testing::ValuesIn(backend_configurations()), config_name);
INSTANTIATE_TEST_SUITE_P(Backends, GemmArgumentsTest, ::testing::ValuesIn(backend_configurations()), config_name);

}  // namespace
