// Fused residual-add + LayerNorm / RMSNorm, forward and backward: every backend configuration
// against a double-precision oracle, against the scalar reference and against finite
// differences; aliasing, determinism of the parameter gradients, and argument checks.
//
// Tolerances, as |actual - expected| <= tolerance * (1 + |expected|):
// - forward (y, sum, mean, rstd): 1e-5. The kernels accumulate in float; the corrected two-pass
//   variance keeps inputs on a large offset (1e4) as accurate as centred ones.
// - backward (dx, dgamma, dbeta): 1e-4. dx subtracts row means of similar size and dgamma,
//   dbeta sum up to thousands of rows in float.
// - kernels against the scalar reference: the same bounds.
// - finite differences: see FiniteDifferences below.
#include "test_support.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

using namespace ne_test;

namespace {

enum class Norm { layer, rms };

const char* norm_name(Norm norm) { return norm == Norm::layer ? "layernorm" : "rmsnorm"; }

constexpr float kEpsilon = 1e-5f;
constexpr double kForwardTolerance = 1e-5;
constexpr double kBackwardTolerance = 1e-4;
constexpr float kSentinel = -777.0f;

ne_norm_params norm_params(float epsilon = kEpsilon, int32_t accumulate = 0) {
    return ne_norm_params{sizeof(ne_norm_params), epsilon, accumulate};
}

// ---- Host data and the double-precision oracle -------------------------------------------

// Host inputs of one case; [N,C] arrays are row-major without padding.
struct Inputs {
    int64_t N;
    int64_t C;
    std::vector<float> x, residual, gamma, beta, dy, ds;
};

// offset shifts x, to test rows that sit on a large common value with a small spread.
Inputs make_inputs(int64_t N, int64_t C, uint64_t seed, float offset = 0.0f) {
    const size_t count = static_cast<size_t>(N * C);
    Inputs in{N, C, random_floats(count, seed), random_floats(count, seed + 1), random_floats(static_cast<size_t>(C), seed + 2, -1.5f, 1.5f),
              random_floats(static_cast<size_t>(C), seed + 3), random_floats(count, seed + 4), random_floats(count, seed + 5)};
    for (float& value : in.x) value += offset;
    return in;
}

std::vector<float> to_float(const std::vector<double>& values) { return std::vector<float>(values.begin(), values.end()); }

struct ForwardOracle {
    std::vector<double> s, y, mean, rstd;
};

// s is an f32 tensor by contract (it is what sum receives), so the oracle rounds x + residual to
// float as the kernels must, and computes everything after that in double.
ForwardOracle forward_oracle(Norm norm, const Inputs& in, bool with_residual, bool with_beta) {
    const size_t N = static_cast<size_t>(in.N), C = static_cast<size_t>(in.C);
    ForwardOracle out{std::vector<double>(N * C), std::vector<double>(N * C), std::vector<double>(N), std::vector<double>(N)};
    for (size_t n = 0; n < N; ++n) {
        double* s = &out.s[n * C];
        for (size_t c = 0; c < C; ++c) {
            s[c] = with_residual ? static_cast<float>(in.x[n * C + c] + in.residual[n * C + c]) : in.x[n * C + c];
        }
        double mean = 0.0;
        if (norm == Norm::layer) {
            for (size_t c = 0; c < C; ++c) mean += s[c];
            mean /= static_cast<double>(C);
        }
        double variance = 0.0;  // RMSNorm: the mean square
        for (size_t c = 0; c < C; ++c) variance += (s[c] - mean) * (s[c] - mean);
        variance /= static_cast<double>(C);
        const double rstd = 1.0 / std::sqrt(variance + static_cast<double>(kEpsilon));
        for (size_t c = 0; c < C; ++c) {
            out.y[n * C + c] = (s[c] - mean) * rstd * in.gamma[c] + (with_beta ? in.beta[c] : 0.0);
        }
        out.mean[n] = mean;
        out.rstd[n] = rstd;
    }
    return out;
}

// The statistics the backward pass receives: the oracle's, rounded to float.
struct SavedForward {
    std::vector<float> s, mean, rstd;
};

SavedForward saved_forward(Norm norm, const Inputs& in) {
    const ForwardOracle forward = forward_oracle(norm, in, true, true);
    return {to_float(forward.s), to_float(forward.mean), to_float(forward.rstd)};
}

struct BackwardOracle {
    std::vector<double> dx, dgamma, dbeta;
};

BackwardOracle backward_oracle(Norm norm, const Inputs& in, const SavedForward& saved, bool with_ds) {
    const size_t N = static_cast<size_t>(in.N), C = static_cast<size_t>(in.C);
    BackwardOracle out{std::vector<double>(N * C), std::vector<double>(C, 0.0), std::vector<double>(C, 0.0)};
    std::vector<double> xhat(C), dnorm(C);
    for (size_t n = 0; n < N; ++n) {
        const double mean = norm == Norm::layer ? saved.mean[n] : 0.0;
        const double rstd = saved.rstd[n];
        double dnorm_mean = 0.0, dnorm_xhat_mean = 0.0;
        for (size_t c = 0; c < C; ++c) {
            xhat[c] = (saved.s[n * C + c] - mean) * rstd;
            dnorm[c] = static_cast<double>(in.dy[n * C + c]) * in.gamma[c];
            dnorm_mean += dnorm[c];
            dnorm_xhat_mean += dnorm[c] * xhat[c];
        }
        dnorm_mean = norm == Norm::layer ? dnorm_mean / static_cast<double>(C) : 0.0;
        dnorm_xhat_mean /= static_cast<double>(C);
        for (size_t c = 0; c < C; ++c) {
            out.dx[n * C + c] = rstd * (dnorm[c] - dnorm_mean - xhat[c] * dnorm_xhat_mean) + (with_ds ? in.ds[n * C + c] : 0.0);
            out.dgamma[c] += in.dy[n * C + c] * xhat[c];
            out.dbeta[c] += in.dy[n * C + c];
        }
    }
    return out;
}

// ---- Tensors ------------------------------------------------------------------------------

// An [N,C] f32 tensor, either contiguous or (pad > 0) a view with rows padded to C + pad whose
// padding is filled with kSentinel, so that writes outside the rows show.
class RowTensor {
public:
    RowTensor(ne_context* context, int64_t N, int64_t C, int64_t pad = 0) : N_(N), C_(C), pad_(pad) {
        base_ = make_tensor(context, NE_DTYPE_F32, {N, C + pad});
        if (pad > 0) {
            check(ne_tensor_fill(base_.get(), kSentinel), "ne_tensor_fill");
            const int64_t shape[] = {N, C};
            const int64_t strides[] = {C + pad, 1};
            ne_tensor* view = nullptr;
            check(ne_tensor_view(base_.get(), pad, 2, shape, strides, &view), "ne_tensor_view");
            view_.reset(view);
        }
    }

    ne_tensor* get() const { return view_ ? view_.get() : base_.get(); }

    void write(const std::vector<float>& rows) {
        std::vector<float> all = read_base();
        for (int64_t n = 0; n < N_; ++n) {
            std::copy_n(rows.begin() + n * C_, C_, all.begin() + position(n));
        }
        ne_test::write(base_.get(), all);
    }

    std::vector<float> read() const {
        const std::vector<float> all = read_base();
        std::vector<float> rows(static_cast<size_t>(N_ * C_));
        for (int64_t n = 0; n < N_; ++n) std::copy_n(all.begin() + position(n), C_, rows.begin() + n * C_);
        return rows;
    }

    bool padding_untouched() const {
        const std::vector<float> all = read_base();
        for (int64_t i = 0; i < static_cast<int64_t>(all.size()); ++i) {
            const int64_t column = (i - pad_) % (C_ + pad_);
            const bool in_rows = i >= pad_ && column < C_;
            if (!in_rows && all[static_cast<size_t>(i)] != kSentinel) return false;
        }
        return true;
    }

private:
    int64_t position(int64_t n) const { return pad_ + n * (C_ + pad_); }
    std::vector<float> read_base() const { return ne_test::read<float>(base_.get()); }

    int64_t N_, C_, pad_;
    Tensor base_, view_;
};

Tensor vector_tensor(ne_context* context, const std::vector<float>& values) {
    return make_tensor(context, NE_DTYPE_F32, {static_cast<int64_t>(values.size())}, values);
}

// ---- Running the kernels ------------------------------------------------------------------

struct ForwardOptions {
    bool residual = true;
    bool beta = true;
    bool sum = true;
    bool stats = true;  // mean and rstd (rstd only, for RMSNorm)
    int64_t pad = 0;    // row padding of every [N,C] tensor
};

struct ForwardOutputs {
    std::vector<float> y, sum, mean, rstd;
};

ForwardOutputs run_forward(ne_context* context, Norm norm, const Inputs& in, const ForwardOptions& options,
                           float epsilon = kEpsilon) {
    RowTensor x(context, in.N, in.C, options.pad), residual(context, in.N, in.C, options.pad);
    RowTensor y(context, in.N, in.C, options.pad), sum(context, in.N, in.C, options.pad);
    x.write(in.x);
    residual.write(in.residual);
    Tensor gamma = vector_tensor(context, in.gamma), beta = vector_tensor(context, in.beta);
    Tensor mean = make_tensor(context, NE_DTYPE_F32, {in.N}), rstd = make_tensor(context, NE_DTYPE_F32, {in.N});
    const ne_norm_params params = norm_params(epsilon);
    ne_tensor* residual_arg = options.residual ? residual.get() : nullptr;
    ne_tensor* sum_arg = options.sum ? sum.get() : nullptr;
    ne_tensor* rstd_arg = options.stats ? rstd.get() : nullptr;
    if (norm == Norm::layer) {
        check(ne_layernorm_forward(context, &params, x.get(), residual_arg, gamma.get(), options.beta ? beta.get() : nullptr,
                                   y.get(), sum_arg, options.stats ? mean.get() : nullptr, rstd_arg),
              "ne_layernorm_forward");
    } else {
        check(ne_rmsnorm_forward(context, &params, x.get(), residual_arg, gamma.get(), y.get(), sum_arg, rstd_arg),
              "ne_rmsnorm_forward");
    }
    EXPECT_TRUE(y.padding_untouched());
    EXPECT_TRUE(sum.padding_untouched());
    return {y.read(), options.sum ? sum.read() : std::vector<float>{}, options.stats ? read<float>(mean.get()) : std::vector<float>{},
            options.stats ? read<float>(rstd.get()) : std::vector<float>{}};
}

struct BackwardOptions {
    bool ds = true;
    bool parameter_gradients = true;  // dgamma (and dbeta for LayerNorm)
    int64_t pad = 0;
    int32_t accumulate = 0;
    std::vector<float> dgamma_before, dbeta_before;  // initial contents when accumulating
};

struct BackwardOutputs {
    std::vector<float> dx, dgamma, dbeta;
};

BackwardOutputs run_backward(ne_context* context, Norm norm, const Inputs& in, const SavedForward& saved,
                             const BackwardOptions& options) {
    RowTensor dy(context, in.N, in.C, options.pad), ds(context, in.N, in.C, options.pad);
    RowTensor s(context, in.N, in.C, options.pad), dx(context, in.N, in.C, options.pad);
    dy.write(in.dy);
    ds.write(in.ds);
    s.write(saved.s);
    Tensor gamma = vector_tensor(context, in.gamma);
    Tensor mean = vector_tensor(context, saved.mean), rstd = vector_tensor(context, saved.rstd);
    Tensor dgamma = make_tensor(context, NE_DTYPE_F32, {in.C}), dbeta = make_tensor(context, NE_DTYPE_F32, {in.C});
    if (!options.dgamma_before.empty()) write(dgamma.get(), options.dgamma_before);
    if (!options.dbeta_before.empty()) write(dbeta.get(), options.dbeta_before);
    const ne_norm_params params = norm_params(kEpsilon, options.accumulate);
    ne_tensor* ds_arg = options.ds ? ds.get() : nullptr;
    ne_tensor* dgamma_arg = options.parameter_gradients ? dgamma.get() : nullptr;
    if (norm == Norm::layer) {
        check(ne_layernorm_backward(context, &params, dy.get(), ds_arg, s.get(), gamma.get(), mean.get(), rstd.get(),
                                    dx.get(), dgamma_arg, options.parameter_gradients ? dbeta.get() : nullptr),
              "ne_layernorm_backward");
    } else {
        check(ne_rmsnorm_backward(context, &params, dy.get(), ds_arg, s.get(), gamma.get(), rstd.get(), dx.get(), dgamma_arg),
              "ne_rmsnorm_backward");
    }
    EXPECT_TRUE(dx.padding_untouched());
    return {dx.read(), read<float>(dgamma.get()), read<float>(dbeta.get())};
}

// ---- Shapes ---------------------------------------------------------------------------------

struct Shape {
    int64_t N, C;
};

// Edges of the vector loops (C below, at and around multiples of 8, 16 and 4 vectors of either),
// a single row, a single channel, enough rows to be split into chunks and among threads (9000
// rows is more than 256 chunks of 32 rows, so chunks grow longer), and rows longer than a
// device keeps in registers (C > 4096: in shared memory up to 8192, re-read from memory beyond).
const Shape kShapes[] = {{1, 1},    {1, 3},     {5, 1},    {4, 7},    {3, 16},   {3, 17},
                         {4, 31},   {2, 33},    {7, 100},  {2, 128},  {3, 1023}, {2, 1025},
                         {67, 64},  {1100, 45}, {2500, 67}, {9000, 9}, {2, 5000}, {2, 9001}};

std::string describe(Norm norm, const Shape& shape) {
    return std::string(norm_name(norm)) + " N=" + std::to_string(shape.N) + " C=" + std::to_string(shape.C);
}

class NormKernels : public ::testing::TestWithParam<BackendConfig> {
protected:
    Context context = make_context(GetParam());
};

// ---- Forward --------------------------------------------------------------------------------

TEST_P(NormKernels, ForwardMatchesOracle) {
    const ForwardOptions variants[] = {
        {false, false, false, false, 0},  // y = norm(x) only
        {true, true, true, true, 0},      // every optional argument
        {true, false, true, true, 3},     // padded rows, no beta
        {false, true, false, true, 1},
    };
    uint64_t seed = 100;
    for (Norm norm : {Norm::layer, Norm::rms}) {
        for (const Shape& shape : kShapes) {
            for (const ForwardOptions& options : variants) {
                SCOPED_TRACE(describe(norm, shape) + " residual=" + std::to_string(options.residual) +
                             " beta=" + std::to_string(options.beta) + " pad=" + std::to_string(options.pad));
                const Inputs in = make_inputs(shape.N, shape.C, ++seed);
                const ForwardOutputs out = run_forward(context.get(), norm, in, options);
                const ForwardOracle expected = forward_oracle(norm, in, options.residual, options.beta && norm == Norm::layer);
                EXPECT_TRUE(all_near(out.y, expected.y, kForwardTolerance));
                if (options.sum) {
                    EXPECT_TRUE(all_near(out.sum, expected.s, 0.0));
                }
                if (options.stats) {
                    if (norm == Norm::layer) {
                        EXPECT_TRUE(all_near(out.mean, expected.mean, kForwardTolerance));
                    }
                    EXPECT_TRUE(all_near(out.rstd, expected.rstd, kForwardTolerance));
                }
            }
        }
    }
}

// Rows on a large offset with a small spread: E[s^2] - E[s]^2 in float loses every digit here
// (1e8 against a variance of 1/3), and a mean taken in one float pass is off by far more than
// the tolerance.
TEST_P(NormKernels, ForwardIsAccurateOnLargeOffsets) {
    for (Norm norm : {Norm::layer, Norm::rms}) {
        for (const Shape& shape : {Shape{3, 7}, Shape{4, 100}, Shape{5, 1025}, Shape{64, 4096}}) {
            for (float offset : {1e4f, -3e4f}) {
                SCOPED_TRACE(describe(norm, shape) + " offset=" + std::to_string(offset));
                const Inputs in = make_inputs(shape.N, shape.C, 7, offset);
                const ForwardOutputs out = run_forward(context.get(), norm, in, ForwardOptions{});
                const ForwardOracle expected = forward_oracle(norm, in, true, norm == Norm::layer);
                EXPECT_TRUE(all_near(out.y, expected.y, kForwardTolerance));
                if (norm == Norm::layer) {
                    EXPECT_TRUE(all_near(out.mean, expected.mean, kForwardTolerance));
                }
                EXPECT_TRUE(all_near(out.rstd, expected.rstd, kForwardTolerance));
            }
        }
    }
}

TEST_P(NormKernels, ForwardCollapsesLeadingDimensionsIntoRows) {
    const int64_t C = 37;
    const Inputs in = make_inputs(6, C, 3);
    Tensor x = make_tensor(context.get(), NE_DTYPE_F32, {2, 3, C}, in.x);
    Tensor gamma = vector_tensor(context.get(), in.gamma), beta = vector_tensor(context.get(), in.beta);
    Tensor y = make_tensor(context.get(), NE_DTYPE_F32, {6, C});
    Tensor mean = make_tensor(context.get(), NE_DTYPE_F32, {6}), rstd = make_tensor(context.get(), NE_DTYPE_F32, {6});
    const ne_norm_params params = norm_params();
    NE_ASSERT_OK(ne_layernorm_forward(context.get(), &params, x.get(), nullptr, gamma.get(), beta.get(), y.get(), nullptr,
                                      mean.get(), rstd.get()));
    const ForwardOracle expected = forward_oracle(Norm::layer, in, false, true);
    EXPECT_TRUE(all_near(read<float>(y.get()), expected.y, kForwardTolerance));
    EXPECT_TRUE(all_near(read<float>(rstd.get()), expected.rstd, kForwardTolerance));
}

// ---- Backward -------------------------------------------------------------------------------

TEST_P(NormKernels, BackwardMatchesOracle) {
    const BackwardOptions variants[] = {
        {false, true, 0, 0, {}, {}},   // dx, dgamma, dbeta
        {true, true, 0, 0, {}, {}},    // with ds
        {true, false, 2, 0, {}, {}},   // padded rows, dx only
        {false, true, 5, 0, {}, {}},
    };
    uint64_t seed = 900;
    for (Norm norm : {Norm::layer, Norm::rms}) {
        for (const Shape& shape : kShapes) {
            for (const BackwardOptions& options : variants) {
                SCOPED_TRACE(describe(norm, shape) + " ds=" + std::to_string(options.ds) + " pad=" + std::to_string(options.pad));
                const Inputs in = make_inputs(shape.N, shape.C, ++seed);
                const SavedForward saved = saved_forward(norm, in);
                const BackwardOutputs out = run_backward(context.get(), norm, in, saved, options);
                const BackwardOracle expected = backward_oracle(norm, in, saved, options.ds);
                EXPECT_TRUE(all_near(out.dx, expected.dx, kBackwardTolerance));
                if (options.parameter_gradients) {
                    EXPECT_TRUE(all_near(out.dgamma, expected.dgamma, kBackwardTolerance));
                    if (norm == Norm::layer) {
                        EXPECT_TRUE(all_near(out.dbeta, expected.dbeta, kBackwardTolerance));
                    }
                } else {
                    EXPECT_EQ(out.dgamma, std::vector<float>(static_cast<size_t>(shape.C), 0.0f));
                }
                if (norm == Norm::rms || !options.parameter_gradients) {
                    EXPECT_EQ(out.dbeta, std::vector<float>(static_cast<size_t>(shape.C), 0.0f));
                }
            }
        }
    }
}

TEST_P(NormKernels, BackwardIsAccurateOnLargeOffsets) {
    for (Norm norm : {Norm::layer, Norm::rms}) {
        for (const Shape& shape : {Shape{3, 7}, Shape{40, 1025}}) {
            SCOPED_TRACE(describe(norm, shape));
            const Inputs in = make_inputs(shape.N, shape.C, 11, 1e4f);
            const SavedForward saved = saved_forward(norm, in);
            const BackwardOutputs out = run_backward(context.get(), norm, in, saved, BackwardOptions{});
            const BackwardOracle expected = backward_oracle(norm, in, saved, true);
            EXPECT_TRUE(all_near(out.dx, expected.dx, kBackwardTolerance));
            EXPECT_TRUE(all_near(out.dgamma, expected.dgamma, kBackwardTolerance));
            if (norm == Norm::layer) {
                EXPECT_TRUE(all_near(out.dbeta, expected.dbeta, kBackwardTolerance));
            }
        }
    }
}

// accumulate = 1 adds to dgamma and dbeta exactly the values accumulate = 0 writes.
TEST_P(NormKernels, BackwardAccumulatesExactly) {
    for (Norm norm : {Norm::layer, Norm::rms}) {
        SCOPED_TRACE(norm_name(norm));
        const Inputs in = make_inputs(300, 70, 21);
        const SavedForward saved = saved_forward(norm, in);
        const BackwardOutputs fresh = run_backward(context.get(), norm, in, saved, BackwardOptions{});
        BackwardOptions accumulate;
        accumulate.accumulate = 1;
        accumulate.dgamma_before = random_floats(70, 22);
        accumulate.dbeta_before = random_floats(70, 23);
        const BackwardOutputs added = run_backward(context.get(), norm, in, saved, accumulate);
        std::vector<float> dgamma_expected(70), dbeta_expected(70);
        for (size_t c = 0; c < 70; ++c) {
            dgamma_expected[c] = accumulate.dgamma_before[c] + fresh.dgamma[c];
            dbeta_expected[c] = accumulate.dbeta_before[c] + (norm == Norm::layer ? fresh.dbeta[c] : 0.0f);
        }
        EXPECT_TRUE(bitwise_equal(added.dgamma, dgamma_expected));
        EXPECT_TRUE(bitwise_equal(added.dbeta, norm == Norm::layer ? dbeta_expected : accumulate.dbeta_before));
        EXPECT_TRUE(bitwise_equal(added.dx, fresh.dx));
    }
}

// ---- Aliasing -------------------------------------------------------------------------------

// y may be x, sum may be x or residual: the results are those of separate tensors, bit for bit.
TEST_P(NormKernels, ForwardInPlaceMatchesOutOfPlace) {
    const Inputs in = make_inputs(37, 100, 31);
    Tensor gamma = vector_tensor(context.get(), in.gamma), beta = vector_tensor(context.get(), in.beta);
    const ne_norm_params params = norm_params();
    for (Norm norm : {Norm::layer, Norm::rms}) {
        SCOPED_TRACE(norm_name(norm));
        const ForwardOutputs separate = run_forward(context.get(), norm, in, ForwardOptions{});
        const auto forward = [&](ne_tensor* x, ne_tensor* residual, ne_tensor* y, ne_tensor* sum) {
            if (norm == Norm::layer) {
                return ne_layernorm_forward(context.get(), &params, x, residual, gamma.get(), beta.get(), y, sum, nullptr, nullptr);
            }
            return ne_rmsnorm_forward(context.get(), &params, x, residual, gamma.get(), y, sum, nullptr);
        };
        {  // y = x, sum = residual
            Tensor x = make_tensor(context.get(), NE_DTYPE_F32, {37, 100}, in.x);
            Tensor residual = make_tensor(context.get(), NE_DTYPE_F32, {37, 100}, in.residual);
            NE_ASSERT_OK(forward(x.get(), residual.get(), x.get(), residual.get()));
            EXPECT_TRUE(bitwise_equal(read<float>(x.get()), separate.y));
            EXPECT_TRUE(bitwise_equal(read<float>(residual.get()), separate.sum));
        }
        {  // sum = x
            Tensor x = make_tensor(context.get(), NE_DTYPE_F32, {37, 100}, in.x);
            Tensor residual = make_tensor(context.get(), NE_DTYPE_F32, {37, 100}, in.residual);
            Tensor y = make_tensor(context.get(), NE_DTYPE_F32, {37, 100});
            NE_ASSERT_OK(forward(x.get(), residual.get(), y.get(), x.get()));
            EXPECT_TRUE(bitwise_equal(read<float>(y.get()), separate.y));
            EXPECT_TRUE(bitwise_equal(read<float>(x.get()), separate.sum));
        }
        {  // y = x without a residual
            const ForwardOutputs plain = run_forward(context.get(), norm, in, ForwardOptions{false, true, false, false, 0});
            Tensor x = make_tensor(context.get(), NE_DTYPE_F32, {37, 100}, in.x);
            NE_ASSERT_OK(forward(x.get(), nullptr, x.get(), nullptr));
            EXPECT_TRUE(bitwise_equal(read<float>(x.get()), plain.y));
        }
    }
}

TEST_P(NormKernels, BackwardInPlaceMatchesOutOfPlace) {
    const Inputs in = make_inputs(45, 77, 41);
    const ne_norm_params params = norm_params();
    for (Norm norm : {Norm::layer, Norm::rms}) {
        SCOPED_TRACE(norm_name(norm));
        const SavedForward saved = saved_forward(norm, in);
        const BackwardOutputs separate = run_backward(context.get(), norm, in, saved, BackwardOptions{});
        Tensor s = make_tensor(context.get(), NE_DTYPE_F32, {45, 77}, saved.s);
        Tensor gamma = vector_tensor(context.get(), in.gamma);
        Tensor mean = vector_tensor(context.get(), saved.mean), rstd = vector_tensor(context.get(), saved.rstd);
        Tensor dgamma = make_tensor(context.get(), NE_DTYPE_F32, {77}), dbeta = make_tensor(context.get(), NE_DTYPE_F32, {77});
        const auto backward = [&](ne_tensor* dy, ne_tensor* ds, ne_tensor* dx) {
            if (norm == Norm::layer) {
                return ne_layernorm_backward(context.get(), &params, dy, ds, s.get(), gamma.get(), mean.get(), rstd.get(), dx,
                                             dgamma.get(), dbeta.get());
            }
            return ne_rmsnorm_backward(context.get(), &params, dy, ds, s.get(), gamma.get(), rstd.get(), dx, dgamma.get());
        };
        for (bool into_dy : {true, false}) {
            SCOPED_TRACE(into_dy ? "dx = dy" : "dx = ds");
            Tensor dy = make_tensor(context.get(), NE_DTYPE_F32, {45, 77}, in.dy);
            Tensor ds = make_tensor(context.get(), NE_DTYPE_F32, {45, 77}, in.ds);
            NE_ASSERT_OK(backward(dy.get(), ds.get(), into_dy ? dy.get() : ds.get()));
            EXPECT_TRUE(bitwise_equal(read<float>(into_dy ? dy.get() : ds.get()), separate.dx));
            EXPECT_TRUE(bitwise_equal(read<float>(dgamma.get()), separate.dgamma));
        }
    }
}

// ---- Kernels against the scalar reference ---------------------------------------------------

TEST_P(NormKernels, AgreesWithScalarReference) {
    Context reference = make_cpu_context(1, NE_SIMD_LEVEL_SCALAR);
    for (Norm norm : {Norm::layer, Norm::rms}) {
        for (const Shape& shape : {Shape{1, 3}, Shape{9, 250}, Shape{130, 1031}}) {
            SCOPED_TRACE(describe(norm, shape));
            const Inputs in = make_inputs(shape.N, shape.C, 51);
            const ForwardOutputs got = run_forward(context.get(), norm, in, ForwardOptions{});
            const ForwardOutputs want = run_forward(reference.get(), norm, in, ForwardOptions{});
            EXPECT_TRUE(all_near(got.y, want.y, kForwardTolerance));
            EXPECT_TRUE(bitwise_equal(got.sum, want.sum));
            if (norm == Norm::layer) {
                EXPECT_TRUE(all_near(got.mean, want.mean, kForwardTolerance));
            }
            EXPECT_TRUE(all_near(got.rstd, want.rstd, kForwardTolerance));

            const SavedForward saved = saved_forward(norm, in);
            const BackwardOutputs got_backward = run_backward(context.get(), norm, in, saved, BackwardOptions{});
            const BackwardOutputs want_backward = run_backward(reference.get(), norm, in, saved, BackwardOptions{});
            EXPECT_TRUE(all_near(got_backward.dx, want_backward.dx, kBackwardTolerance));
            EXPECT_TRUE(all_near(got_backward.dgamma, want_backward.dgamma, kBackwardTolerance));
            EXPECT_TRUE(all_near(got_backward.dbeta, want_backward.dbeta, kBackwardTolerance));
        }
    }
}

// ---- Finite differences ---------------------------------------------------------------------

// The loss L = sum(w * y) + sum(v * s) makes dy = w and ds = v (s also feeds the next residual).
// Its gradients with respect to x, residual, gamma and beta are taken by central differences of
// the forward kernel (in float, L summed in double) and compared with the backward kernel.
// h = 1e-2 on inputs of magnitude 1 balances the truncation error h^2/6 * L''' against the
// float noise of L divided by 2h; together they stay below 4e-5 * (1 + |gradient|) on these
// shapes, and the tolerance is 3e-4 * (1 + |gradient|).
class FiniteDifferences {
public:
    FiniteDifferences(ne_context* context, Norm norm, int64_t N, int64_t C)
        : context_(context), norm_(norm), N_(N), C_(C), in_(make_inputs(N, C, 61)),
          w_(random_floats(static_cast<size_t>(N * C), 62)), v_(random_floats(static_cast<size_t>(N * C), 63)),
          x_(make_tensor(context, NE_DTYPE_F32, {N, C})), residual_(make_tensor(context, NE_DTYPE_F32, {N, C})),
          gamma_(make_tensor(context, NE_DTYPE_F32, {C})), beta_(make_tensor(context, NE_DTYPE_F32, {C})),
          y_(make_tensor(context, NE_DTYPE_F32, {N, C})), sum_(make_tensor(context, NE_DTYPE_F32, {N, C})),
          mean_(make_tensor(context, NE_DTYPE_F32, {N})), rstd_(make_tensor(context, NE_DTYPE_F32, {N})) {}

    static constexpr float kStep = 1e-2f;
    static constexpr double kTolerance = 3e-4;

    void check_gradients() {
        load();
        forward();
        Tensor dy = make_tensor(context_, NE_DTYPE_F32, {N_, C_}, w_), ds = make_tensor(context_, NE_DTYPE_F32, {N_, C_}, v_);
        Tensor dx = make_tensor(context_, NE_DTYPE_F32, {N_, C_});
        Tensor dgamma = make_tensor(context_, NE_DTYPE_F32, {C_}), dbeta = make_tensor(context_, NE_DTYPE_F32, {C_});
        const ne_norm_params params = norm_params();
        if (norm_ == Norm::layer) {
            NE_ASSERT_OK(ne_layernorm_backward(context_, &params, dy.get(), ds.get(), sum_.get(), gamma_.get(), mean_.get(),
                                               rstd_.get(), dx.get(), dgamma.get(), dbeta.get()));
        } else {
            NE_ASSERT_OK(ne_rmsnorm_backward(context_, &params, dy.get(), ds.get(), sum_.get(), gamma_.get(), rstd_.get(),
                                             dx.get(), dgamma.get()));
        }
        const std::vector<float> dx_values = read<float>(dx.get());
        EXPECT_TRUE(all_near(dx_values, numerical_gradient(in_.x), kTolerance)) << "dx";
        EXPECT_TRUE(all_near(dx_values, numerical_gradient(in_.residual), kTolerance)) << "dresidual";
        EXPECT_TRUE(all_near(read<float>(dgamma.get()), numerical_gradient(in_.gamma), kTolerance)) << "dgamma";
        if (norm_ == Norm::layer) {
            EXPECT_TRUE(all_near(read<float>(dbeta.get()), numerical_gradient(in_.beta), kTolerance)) << "dbeta";
        }
    }

private:
    void load() {
        write(x_.get(), in_.x);
        write(residual_.get(), in_.residual);
        write(gamma_.get(), in_.gamma);
        write(beta_.get(), in_.beta);
    }

    void forward() {
        const ne_norm_params params = norm_params();
        if (norm_ == Norm::layer) {
            check(ne_layernorm_forward(context_, &params, x_.get(), residual_.get(), gamma_.get(), beta_.get(), y_.get(),
                                       sum_.get(), mean_.get(), rstd_.get()),
                  "ne_layernorm_forward");
        } else {
            check(ne_rmsnorm_forward(context_, &params, x_.get(), residual_.get(), gamma_.get(), y_.get(), sum_.get(),
                                     rstd_.get()),
                  "ne_rmsnorm_forward");
        }
    }

    double loss() {
        load();
        forward();
        const std::vector<float> y = read<float>(y_.get()), s = read<float>(sum_.get());
        double total = 0.0;
        for (size_t i = 0; i < y.size(); ++i) total += static_cast<double>(w_[i]) * y[i] + static_cast<double>(v_[i]) * s[i];
        return total;
    }

    // dL/d(values[i]) for each i; values is one of the inputs in in_, perturbed in place.
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
    Norm norm_;
    int64_t N_, C_;
    Inputs in_;
    std::vector<float> w_, v_;
    Tensor x_, residual_, gamma_, beta_, y_, sum_, mean_, rstd_;
};

TEST_P(NormKernels, LayerNormGradientsMatchFiniteDifferences) {
    for (const Shape& shape : {Shape{3, 5}, Shape{2, 19}}) {
        SCOPED_TRACE(describe(Norm::layer, shape));
        FiniteDifferences(context.get(), Norm::layer, shape.N, shape.C).check_gradients();
    }
}

TEST_P(NormKernels, RmsNormGradientsMatchFiniteDifferences) {
    for (const Shape& shape : {Shape{3, 5}, Shape{2, 19}}) {
        SCOPED_TRACE(describe(Norm::rms, shape));
        FiniteDifferences(context.get(), Norm::rms, shape.N, shape.C).check_gradients();
    }
}

INSTANTIATE_TEST_SUITE_P(Cpu, NormKernels, ::testing::ValuesIn(backend_configurations()), config_name);

// ---- Determinism ----------------------------------------------------------------------------

// dgamma and dbeta are reduced per fixed chunk of rows in a fixed order: their bits, like every
// other output's, do not depend on the thread count. The shape is large enough to be split
// among three threads, and N is not a multiple of the chunk.
TEST(NormDeterminism, ResultsDoNotDependOnThreadCount) {
    const ne_simd_level best = best_simd_level();
    if (best < NE_SIMD_LEVEL_AVX2) GTEST_SKIP() << "only the single-threaded scalar reference runs here";
    const Inputs in = make_inputs(2051, 259, 71);
    for (ne_simd_level level = NE_SIMD_LEVEL_AVX2; level <= best; level = static_cast<ne_simd_level>(level + 1)) {
        Context one = make_cpu_context(1, level), three = make_cpu_context(3, level);
        for (Norm norm : {Norm::layer, Norm::rms}) {
            SCOPED_TRACE(std::string(norm_name(norm)) + " level " + std::to_string(level));
            const ForwardOutputs forward_one = run_forward(one.get(), norm, in, ForwardOptions{});
            const ForwardOutputs forward_three = run_forward(three.get(), norm, in, ForwardOptions{});
            EXPECT_TRUE(bitwise_equal(forward_one.y, forward_three.y));
            EXPECT_TRUE(bitwise_equal(forward_one.rstd, forward_three.rstd));
            const SavedForward saved = saved_forward(norm, in);
            const BackwardOutputs backward_one = run_backward(one.get(), norm, in, saved, BackwardOptions{});
            const BackwardOutputs backward_three = run_backward(three.get(), norm, in, saved, BackwardOptions{});
            EXPECT_TRUE(bitwise_equal(backward_one.dgamma, backward_three.dgamma));
            EXPECT_TRUE(bitwise_equal(backward_one.dbeta, backward_three.dbeta));
            EXPECT_TRUE(bitwise_equal(backward_one.dx, backward_three.dx));
        }
    }
}

// ---- Argument checks ------------------------------------------------------------------------

// Valid arguments for all four functions, N = 4 rows of C = 8 channels. Outputs start filled
// with kSentinel, and every refused call must leave them so.
class NormArguments : public ::testing::Test {
protected:
    static constexpr int64_t N = 4, C = 8;

    Tensor rows(ne_context* owner = nullptr, ne_dtype dtype = NE_DTYPE_F32) {
        return make_tensor(owner ? owner : context.get(), dtype, {N, C});
    }
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

    // Status and message as expected, and no output written.
    void expect_refused(ne_status status, ne_status expected, std::initializer_list<const char*> fragments) {
        EXPECT_TRUE(fails_with(status, expected, fragments));
        for (const Tensor* tensor : {&y, &sum, &mean, &rstd, &dx, &dgamma, &dbeta}) {
            const std::vector<float> values = read<float>(tensor->get());
            EXPECT_EQ(std::count(values.begin(), values.end(), kSentinel), static_cast<std::ptrdiff_t>(values.size()))
                << "an output was written by a refused call (" << ne_last_error() << ")";
        }
    }

    Context context = make_cpu_context();
    Context other_context = make_cpu_context();
    ne_norm_params params = norm_params();
    Tensor x = make_tensor(context.get(), NE_DTYPE_F32, {N, C}, random_floats(N * C, 1));
    Tensor residual = make_tensor(context.get(), NE_DTYPE_F32, {N, C}, random_floats(N * C, 2));
    Tensor gamma = make_tensor(context.get(), NE_DTYPE_F32, {C}, random_floats(C, 3));
    Tensor beta = make_tensor(context.get(), NE_DTYPE_F32, {C}, random_floats(C, 4));
    Tensor y = output({N, C}), sum = output({N, C}), mean = output({N}), rstd = output({N});
    Tensor dy = make_tensor(context.get(), NE_DTYPE_F32, {N, C}, random_floats(N * C, 5));
    Tensor ds = make_tensor(context.get(), NE_DTYPE_F32, {N, C}, random_floats(N * C, 6));
    Tensor s = make_tensor(context.get(), NE_DTYPE_F32, {N, C}, random_floats(N * C, 7));
    Tensor saved_mean = make_tensor(context.get(), NE_DTYPE_F32, {N}, random_floats(N, 8));
    Tensor saved_rstd = make_tensor(context.get(), NE_DTYPE_F32, {N}, random_floats(N, 9, 0.5f, 2.0f));
    Tensor dx = output({N, C}), dgamma = output({C}), dbeta = output({C});
};

TEST_F(NormArguments, LayerNormForwardRefusesBadArguments) {
    const auto call = [&](const ne_norm_params* p, const ne_tensor* x_, const ne_tensor* residual_, const ne_tensor* gamma_,
                          const ne_tensor* beta_, ne_tensor* y_, ne_tensor* sum_, ne_tensor* mean_, ne_tensor* rstd_,
                          ne_context* c = nullptr) {
        return ne_layernorm_forward(c ? c : context.get(), p, x_, residual_, gamma_, beta_, y_, sum_, mean_, rstd_);
    };
    ne_tensor *X = x.get(), *R = residual.get(), *G = gamma.get(), *B = beta.get(), *Y = y.get(), *S = sum.get(),
              *M = mean.get(), *V = rstd.get();

    expect_refused(ne_layernorm_forward(nullptr, &params, X, R, G, B, Y, S, M, V), NE_STATUS_NULL_POINTER,
                   {"ne_layernorm_forward", "'context'"});
    expect_refused(call(nullptr, X, R, G, B, Y, S, M, V), NE_STATUS_NULL_POINTER, {"'params'"});
    ne_norm_params bad = params;
    bad.struct_size = 4;
    expect_refused(call(&bad, X, R, G, B, Y, S, M, V), NE_STATUS_VERSION_MISMATCH, {"'params'", "struct_size is 4"});
    bad.struct_size = sizeof(ne_norm_params) + 4;
    expect_refused(call(&bad, X, R, G, B, Y, S, M, V), NE_STATUS_VERSION_MISMATCH, {"'params'", "struct_size is"});
    for (float epsilon : {0.0f, -1e-5f, std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
        bad = norm_params(epsilon);
        expect_refused(call(&bad, X, R, G, B, Y, S, M, V), NE_STATUS_INVALID_ARGUMENT, {"epsilon", "finite value > 0"});
    }

    expect_refused(call(&params, nullptr, R, G, B, Y, S, M, V), NE_STATUS_NULL_POINTER, {"'x'"});
    expect_refused(call(&params, X, R, nullptr, B, Y, S, M, V), NE_STATUS_NULL_POINTER, {"'gamma'"});
    expect_refused(call(&params, X, R, G, B, nullptr, S, M, V), NE_STATUS_NULL_POINTER, {"'y'"});
    expect_refused(call(&params, X, R, G, B, Y, S, M, nullptr), NE_STATUS_INVALID_ARGUMENT, {"'mean'", "'rstd'", "both or neither"});
    expect_refused(call(&params, X, R, G, B, Y, S, nullptr, V), NE_STATUS_INVALID_ARGUMENT, {"'mean'", "'rstd'", "both or neither"});

    Tensor x_f16 = rows(nullptr, NE_DTYPE_F16);
    expect_refused(call(&params, x_f16.get(), R, G, B, Y, S, M, V), NE_STATUS_DTYPE_MISMATCH, {"'x'", "expected dtype f32", "got f16"});
    Tensor beta_i32 = make_tensor(context.get(), NE_DTYPE_I32, {C});
    expect_refused(call(&params, X, R, G, beta_i32.get(), Y, S, M, V), NE_STATUS_DTYPE_MISMATCH, {"'beta'", "f32", "got i32"});

    Tensor wide = make_tensor(context.get(), NE_DTYPE_F32, {N, C + 1});
    expect_refused(call(&params, X, wide.get(), G, B, Y, S, M, V), NE_STATUS_SHAPE_MISMATCH, {"'residual'", "[4, 8]", "got shape [4, 9]"});
    Tensor tall = output({N + 1, C});
    expect_refused(call(&params, X, R, G, B, tall.get(), S, M, V), NE_STATUS_SHAPE_MISMATCH, {"'y'", "[4, 8]", "got shape [5, 8]"});
    Tensor gamma_long = make_tensor(context.get(), NE_DTYPE_F32, {C + 1});
    expect_refused(call(&params, X, R, gamma_long.get(), B, Y, S, M, V), NE_STATUS_SHAPE_MISMATCH, {"'gamma'", "expected shape [8]", "got [9]"});
    Tensor mean_2d = output({N, 1});
    expect_refused(call(&params, X, R, G, B, Y, S, mean_2d.get(), V), NE_STATUS_SHAPE_MISMATCH, {"'mean'", "expected shape [4]", "got [4, 1]"});
    Tensor rstd_long = output({N + 1});
    expect_refused(call(&params, X, R, G, B, Y, S, M, rstd_long.get()), NE_STATUS_SHAPE_MISMATCH, {"'rstd'", "[4]", "got [5]"});
    ne_tensor* scalar = nullptr;
    NE_ASSERT_OK(ne_tensor_create(context.get(), NE_DTYPE_F32, 0, nullptr, &scalar));
    Tensor scalar_tensor(scalar);
    expect_refused(call(&params, scalar, R, G, B, Y, S, M, V), NE_STATUS_SHAPE_MISMATCH, {"'x'", "rank >= 1"});

    Tensor foreign = rows(other_context.get());
    expect_refused(call(&params, X, foreign.get(), G, B, Y, S, M, V), NE_STATUS_CONTEXT_MISMATCH, {"'residual'", "another context"});
    expect_refused(call(&params, X, R, G, B, Y, S, M, V, other_context.get()), NE_STATUS_CONTEXT_MISMATCH, {"'x'"});

    expect_refused(call(&params, X, R, G, B, R, S, M, V), NE_STATUS_INVALID_ARGUMENT, {"'y' overlaps argument 'residual'"});
    expect_refused(call(&params, X, R, G, B, Y, Y, M, V), NE_STATUS_INVALID_ARGUMENT, {"'y' overlaps argument 'sum'"});
    expect_refused(call(&params, X, R, G, B, X, X, M, V), NE_STATUS_INVALID_ARGUMENT, {"'y' overlaps argument 'sum'"});
    expect_refused(call(&params, X, R, G, B, Y, S, M, M), NE_STATUS_INVALID_ARGUMENT, {"'mean' overlaps argument 'rstd'"});
    // x as rows 0..3 and y as rows 1..4 of one allocation: overlapping, not the same view.
    Tensor shared = make_tensor(context.get(), NE_DTYPE_F32, {N + 1, C});
    Tensor x_rows = view(shared, 0, {N, C}), y_rows = view(shared, C, {N, C});
    expect_refused(call(&params, x_rows.get(), R, G, B, y_rows.get(), S, M, V), NE_STATUS_INVALID_ARGUMENT, {"'y' overlaps argument 'x'"});
    Tensor sum_rows = view(shared, C, {N, C});
    expect_refused(call(&params, x_rows.get(), R, G, B, Y, sum_rows.get(), M, V), NE_STATUS_INVALID_ARGUMENT, {"'sum' overlaps argument 'x'"});
    Tensor gamma_in_sum = view(sum, 0, {C});
    expect_refused(call(&params, X, R, gamma_in_sum.get(), B, Y, S, M, V), NE_STATUS_INVALID_ARGUMENT, {"'sum' overlaps argument 'gamma'"});
    Tensor mean_in_x = view(x, 2, {N});
    expect_refused(call(&params, X, R, G, B, Y, S, mean_in_x.get(), V), NE_STATUS_INVALID_ARGUMENT, {"'mean' overlaps argument 'x'"});

    // Strided last dimension: unsupported.
    const int64_t shape[] = {N, C / 2}, strides[] = {C, 2};
    ne_tensor* raw = nullptr;
    NE_ASSERT_OK(ne_tensor_view(x.get(), 0, 2, shape, strides, &raw));
    Tensor strided(raw);
    expect_refused(call(&params, strided.get(), nullptr, G, nullptr, Y, nullptr, nullptr, nullptr), NE_STATUS_UNSUPPORTED,
                   {"'x'", "stride 1"});

    NE_EXPECT_OK(call(&params, X, R, G, B, Y, S, M, V));
}

TEST_F(NormArguments, RmsNormForwardRefusesBadArguments) {
    ne_tensor *X = x.get(), *R = residual.get(), *G = gamma.get(), *Y = y.get(), *S = sum.get(), *V = rstd.get();
    ne_context* ctx = context.get();
    expect_refused(ne_rmsnorm_forward(nullptr, &params, X, R, G, Y, S, V), NE_STATUS_NULL_POINTER, {"ne_rmsnorm_forward", "'context'"});
    expect_refused(ne_rmsnorm_forward(ctx, nullptr, X, R, G, Y, S, V), NE_STATUS_NULL_POINTER, {"'params'"});
    ne_norm_params bad = params;
    bad.struct_size = 0;
    expect_refused(ne_rmsnorm_forward(ctx, &bad, X, R, G, Y, S, V), NE_STATUS_VERSION_MISMATCH, {"struct_size is 0"});
    bad = norm_params(-1.0f);
    expect_refused(ne_rmsnorm_forward(ctx, &bad, X, R, G, Y, S, V), NE_STATUS_INVALID_ARGUMENT, {"epsilon is -1"});
    bad = norm_params(std::numeric_limits<float>::quiet_NaN());
    expect_refused(ne_rmsnorm_forward(ctx, &bad, X, R, G, Y, S, V), NE_STATUS_INVALID_ARGUMENT, {"epsilon"});
    expect_refused(ne_rmsnorm_forward(ctx, &params, nullptr, R, G, Y, S, V), NE_STATUS_NULL_POINTER, {"'x'"});
    expect_refused(ne_rmsnorm_forward(ctx, &params, X, R, nullptr, Y, S, V), NE_STATUS_NULL_POINTER, {"'gamma'"});
    expect_refused(ne_rmsnorm_forward(ctx, &params, X, R, G, nullptr, S, V), NE_STATUS_NULL_POINTER, {"'y'"});
    Tensor gamma_bf16 = make_tensor(ctx, NE_DTYPE_BF16, {C});
    expect_refused(ne_rmsnorm_forward(ctx, &params, X, R, gamma_bf16.get(), Y, S, V), NE_STATUS_DTYPE_MISMATCH, {"'gamma'", "f32", "bf16"});
    Tensor sum_narrow = output({N, C - 1});
    expect_refused(ne_rmsnorm_forward(ctx, &params, X, R, G, Y, sum_narrow.get(), V), NE_STATUS_SHAPE_MISMATCH, {"'sum'", "[4, 8]", "[4, 7]"});
    Tensor rstd_short = output({N - 1});
    expect_refused(ne_rmsnorm_forward(ctx, &params, X, R, G, Y, S, rstd_short.get()), NE_STATUS_SHAPE_MISMATCH, {"'rstd'", "[4]", "[3]"});
    Tensor foreign_gamma = make_tensor(other_context.get(), NE_DTYPE_F32, {C});
    expect_refused(ne_rmsnorm_forward(ctx, &params, X, R, foreign_gamma.get(), Y, S, V), NE_STATUS_CONTEXT_MISMATCH, {"'gamma'"});
    expect_refused(ne_rmsnorm_forward(ctx, &params, X, R, G, R, nullptr, V), NE_STATUS_INVALID_ARGUMENT, {"'y' overlaps argument 'residual'"});
    Tensor rstd_in_y = view(y, 1, {N});
    expect_refused(ne_rmsnorm_forward(ctx, &params, X, R, G, Y, S, rstd_in_y.get()), NE_STATUS_INVALID_ARGUMENT, {"'y' overlaps argument 'rstd'"});
    NE_EXPECT_OK(ne_rmsnorm_forward(ctx, &params, X, R, G, Y, S, V));
}

TEST_F(NormArguments, LayerNormBackwardRefusesBadArguments) {
    ne_tensor *DY = dy.get(), *DS = ds.get(), *S = s.get(), *G = gamma.get(), *M = saved_mean.get(), *V = saved_rstd.get(),
              *DX = dx.get(), *DG = dgamma.get(), *DB = dbeta.get();
    ne_context* ctx = context.get();
    expect_refused(ne_layernorm_backward(nullptr, &params, DY, DS, S, G, M, V, DX, DG, DB), NE_STATUS_NULL_POINTER,
                   {"ne_layernorm_backward", "'context'"});
    expect_refused(ne_layernorm_backward(ctx, nullptr, DY, DS, S, G, M, V, DX, DG, DB), NE_STATUS_NULL_POINTER, {"'params'"});
    ne_norm_params bad = params;
    bad.struct_size = 11;
    expect_refused(ne_layernorm_backward(ctx, &bad, DY, DS, S, G, M, V, DX, DG, DB), NE_STATUS_VERSION_MISMATCH, {"struct_size is 11"});
    bad = norm_params(0.0f);
    expect_refused(ne_layernorm_backward(ctx, &bad, DY, DS, S, G, M, V, DX, DG, DB), NE_STATUS_INVALID_ARGUMENT, {"epsilon is 0"});
    bad = norm_params(kEpsilon, 2);
    expect_refused(ne_layernorm_backward(ctx, &bad, DY, DS, S, G, M, V, DX, DG, DB), NE_STATUS_INVALID_ARGUMENT,
                   {"accumulate is 2", "0 or 1"});

    expect_refused(ne_layernorm_backward(ctx, &params, nullptr, DS, S, G, M, V, DX, DG, DB), NE_STATUS_NULL_POINTER, {"'dy'"});
    expect_refused(ne_layernorm_backward(ctx, &params, DY, DS, nullptr, G, M, V, DX, DG, DB), NE_STATUS_NULL_POINTER, {"'s'"});
    expect_refused(ne_layernorm_backward(ctx, &params, DY, DS, S, G, nullptr, V, DX, DG, DB), NE_STATUS_NULL_POINTER, {"'mean'"});
    expect_refused(ne_layernorm_backward(ctx, &params, DY, DS, S, G, M, nullptr, DX, DG, DB), NE_STATUS_NULL_POINTER, {"'rstd'"});
    expect_refused(ne_layernorm_backward(ctx, &params, DY, DS, S, G, M, V, nullptr, DG, DB), NE_STATUS_NULL_POINTER, {"'dx'"});

    Tensor dy_i8 = rows(nullptr, NE_DTYPE_I8);
    expect_refused(ne_layernorm_backward(ctx, &params, dy_i8.get(), DS, S, G, M, V, DX, DG, DB), NE_STATUS_DTYPE_MISMATCH,
                   {"'dy'", "expected dtype f32", "got i8"});
    Tensor ds_wide = make_tensor(ctx, NE_DTYPE_F32, {N, C + 1});
    expect_refused(ne_layernorm_backward(ctx, &params, DY, ds_wide.get(), S, G, M, V, DX, DG, DB), NE_STATUS_SHAPE_MISMATCH,
                   {"'ds'", "[4, 8]", "[4, 9]"});
    Tensor dgamma_short = output({C - 1});
    expect_refused(ne_layernorm_backward(ctx, &params, DY, DS, S, G, M, V, DX, dgamma_short.get(), DB), NE_STATUS_SHAPE_MISMATCH,
                   {"'dgamma'", "expected shape [8]", "got [7]"});
    Tensor mean_long = make_tensor(ctx, NE_DTYPE_F32, {N + 2});
    expect_refused(ne_layernorm_backward(ctx, &params, DY, DS, S, G, mean_long.get(), V, DX, DG, DB), NE_STATUS_SHAPE_MISMATCH,
                   {"'mean'", "[4]", "[6]"});
    Tensor foreign_dbeta = make_tensor(other_context.get(), NE_DTYPE_F32, {C});
    expect_refused(ne_layernorm_backward(ctx, &params, DY, DS, S, G, M, V, DX, DG, foreign_dbeta.get()), NE_STATUS_CONTEXT_MISMATCH,
                   {"'dbeta'"});

    expect_refused(ne_layernorm_backward(ctx, &params, DY, DS, S, G, M, V, S, DG, DB), NE_STATUS_INVALID_ARGUMENT, {"'dx' overlaps argument 's'"});
    expect_refused(ne_layernorm_backward(ctx, &params, DY, DS, S, G, M, V, DX, DG, DG), NE_STATUS_INVALID_ARGUMENT,
                   {"'dgamma' overlaps argument 'dbeta'"});
    expect_refused(ne_layernorm_backward(ctx, &params, DY, DS, S, G, M, V, DX, G, DB), NE_STATUS_INVALID_ARGUMENT,
                   {"'dgamma' overlaps argument 'gamma'"});
    Tensor shared = make_tensor(ctx, NE_DTYPE_F32, {N + 1, C});
    Tensor dy_rows = view(shared, 0, {N, C}), dx_rows = view(shared, C, {N, C});
    expect_refused(ne_layernorm_backward(ctx, &params, dy_rows.get(), DS, S, G, M, V, dx_rows.get(), DG, DB),
                   NE_STATUS_INVALID_ARGUMENT, {"'dx' overlaps argument 'dy'"});
    Tensor dbeta_in_dx = view(dx, 3, {C});
    expect_refused(ne_layernorm_backward(ctx, &params, DY, DS, S, G, M, V, DX, DG, dbeta_in_dx.get()), NE_STATUS_INVALID_ARGUMENT,
                   {"'dx' overlaps argument 'dbeta'"});
    NE_EXPECT_OK(ne_layernorm_backward(ctx, &params, DY, DS, S, G, M, V, DX, DG, DB));
}

TEST_F(NormArguments, RmsNormBackwardRefusesBadArguments) {
    ne_tensor *DY = dy.get(), *DS = ds.get(), *S = s.get(), *G = gamma.get(), *V = saved_rstd.get(), *DX = dx.get(),
              *DG = dgamma.get();
    ne_context* ctx = context.get();
    expect_refused(ne_rmsnorm_backward(nullptr, &params, DY, DS, S, G, V, DX, DG), NE_STATUS_NULL_POINTER,
                   {"ne_rmsnorm_backward", "'context'"});
    expect_refused(ne_rmsnorm_backward(ctx, nullptr, DY, DS, S, G, V, DX, DG), NE_STATUS_NULL_POINTER, {"'params'"});
    ne_norm_params bad = params;
    bad.struct_size = sizeof(ne_norm_params) + 1;
    expect_refused(ne_rmsnorm_backward(ctx, &bad, DY, DS, S, G, V, DX, DG), NE_STATUS_VERSION_MISMATCH, {"struct_size"});
    bad = norm_params(std::numeric_limits<float>::infinity());
    expect_refused(ne_rmsnorm_backward(ctx, &bad, DY, DS, S, G, V, DX, DG), NE_STATUS_INVALID_ARGUMENT, {"epsilon"});
    bad = norm_params(kEpsilon, -1);
    expect_refused(ne_rmsnorm_backward(ctx, &bad, DY, DS, S, G, V, DX, DG), NE_STATUS_INVALID_ARGUMENT, {"accumulate is -1"});
    expect_refused(ne_rmsnorm_backward(ctx, &params, DY, DS, S, nullptr, V, DX, DG), NE_STATUS_NULL_POINTER, {"'gamma'"});
    expect_refused(ne_rmsnorm_backward(ctx, &params, DY, DS, S, G, nullptr, DX, DG), NE_STATUS_NULL_POINTER, {"'rstd'"});
    Tensor s_f16 = rows(nullptr, NE_DTYPE_F16);
    expect_refused(ne_rmsnorm_backward(ctx, &params, DY, DS, s_f16.get(), G, V, DX, DG), NE_STATUS_DTYPE_MISMATCH, {"'s'", "f32", "f16"});
    Tensor dx_tall = output({N + 1, C});
    expect_refused(ne_rmsnorm_backward(ctx, &params, DY, DS, S, G, V, dx_tall.get(), DG), NE_STATUS_SHAPE_MISMATCH, {"'dx'", "[4, 8]", "[5, 8]"});
    Tensor rstd_2d = make_tensor(ctx, NE_DTYPE_F32, {1, N});
    expect_refused(ne_rmsnorm_backward(ctx, &params, DY, DS, S, G, rstd_2d.get(), DX, DG), NE_STATUS_SHAPE_MISMATCH, {"'rstd'", "[4]", "[1, 4]"});
    Tensor foreign_ds = rows(other_context.get());
    expect_refused(ne_rmsnorm_backward(ctx, &params, DY, foreign_ds.get(), S, G, V, DX, DG), NE_STATUS_CONTEXT_MISMATCH, {"'ds'"});
    Tensor dgamma_in_s = view(s, 5, {C});
    expect_refused(ne_rmsnorm_backward(ctx, &params, DY, DS, S, G, V, DX, dgamma_in_s.get()), NE_STATUS_INVALID_ARGUMENT,
                   {"'dgamma' overlaps argument 's'"});
    Tensor shared = make_tensor(ctx, NE_DTYPE_F32, {N + 1, C});
    Tensor ds_rows = view(shared, 0, {N, C}), dx_rows = view(shared, 1, {N, C});
    expect_refused(ne_rmsnorm_backward(ctx, &params, DY, ds_rows.get(), S, G, V, dx_rows.get(), DG), NE_STATUS_INVALID_ARGUMENT,
                   {"'dx' overlaps argument 'ds'"});
    NE_EXPECT_OK(ne_rmsnorm_backward(ctx, &params, DY, DS, S, G, V, DX, DG));
}

}  // namespace
