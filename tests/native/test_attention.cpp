// Flash attention, forward and backward: every backend configuration (CUDA device 0 too, where
// the CUDA library runs on a GPU; its 16-bit paths are in test_attention_cuda.cpp) against a double-precision
// oracle that materializes each row's full softmax, and against central finite differences of
// the kernel's own forward pass; fully masked rows, strided views of a fused QKV buffer,
// determinism across thread counts, the memory bound (no [Tq, Tk] buffer), and argument checks.
//
// Tolerances, as |actual - expected| <= tolerance * (1 + |expected|):
// - forward (out, lse): 2e-6. Scores are float dot products of up to 256 terms and the online
//   softmax rescales float sums; the vectorized exp is within 1 ulp (AVX2), CUDA's expf within 2.
// - backward (dq, dk, dv), the oracle's out and lse rounded to float as inputs: 1e-5. dk and dv
//   sum over every query of a group (up to 300 terms here) in float.
// - finite differences: see GradientsMatchFiniteDifferences.
// Masked results are exact: rows that see no key have out 0, lse -infinity and dq 0, and keys
// past a sequence's length get dk = dv = 0.
#include "test_support.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <sstream>

using namespace ne_test;

namespace {

constexpr double kForwardTolerance = 2e-6;
constexpr double kBackwardTolerance = 1e-5;
constexpr float kSentinel = -777.0f;
constexpr double kMinusInfinity = -std::numeric_limits<double>::infinity();

ne_attention_params attention_params(bool causal = false, float scale = 0.0f, bool allow_atomics = false) {
    return ne_attention_params{sizeof(ne_attention_params), scale, causal ? 1 : 0, allow_atomics ? 1 : 0};
}

// ---- Problems, host data and the double-precision oracle -------------------------------------

struct Problem {
    Problem(int64_t B_, int64_t Tq_, int64_t Tk_, int64_t H_, int64_t Hkv_, int64_t D_, bool causal_ = false,
            std::vector<int32_t> key_lengths_ = {}, float scale_ = 0.0f)
        : B(B_), Tq(Tq_), Tk(Tk_), H(H_), Hkv(Hkv_), D(D_), causal(causal_), key_lengths(std::move(key_lengths_)),
          scale(scale_) {}

    int64_t B, Tq, Tk, H, Hkv, D;
    bool causal;
    std::vector<int32_t> key_lengths;  // empty: NULL, Tk everywhere
    float scale;                       // 0: 1/sqrt(D)

    int64_t length(int64_t b) const { return key_lengths.empty() ? Tk : key_lengths[static_cast<size_t>(b)]; }
    int64_t visible(int64_t b, int64_t i) const {
        return causal ? std::clamp<int64_t>(i + length(b) - Tq + 1, 0, length(b)) : length(b);
    }
    double resolved_scale() const { return scale != 0.0f ? scale : 1.0 / std::sqrt(static_cast<double>(D)); }
    size_t q_count() const { return static_cast<size_t>(B * Tq * H * D); }
    size_t kv_count() const { return static_cast<size_t>(B * Tk * Hkv * D); }
    size_t lse_count() const { return static_cast<size_t>(B * H * Tq); }
    // Index of element (b, t, head, d) of a contiguous [B, T, heads, D] array.
    size_t at(int64_t b, int64_t t, int64_t T, int64_t head, int64_t heads, int64_t d) const {
        return static_cast<size_t>(((b * T + t) * heads + head) * D + d);
    }

    std::string describe() const {
        std::ostringstream s;
        s << "B=" << B << " Tq=" << Tq << " Tk=" << Tk << " H=" << H << " Hkv=" << Hkv << " D=" << D
          << (causal ? " causal" : "") << " scale=" << scale << " key_lengths={";
        for (int32_t length : key_lengths) s << length << ",";
        s << "}";
        return s.str();
    }
};

// Every option: Tq == Tk, decoding (Tq = 1), Tq < Tk and Tq > Tk under causal masking, key
// lengths of 0 and Tk, grouped- and multi-query heads, T = 1, T past whole blocks of 64, every D
// (the CUDA tiles: 64, 128 and 256 columns, 16 to 64 rows), and long key/value caches for 1 to 3
// queries (CUDA's split-key decode path).
std::vector<Problem> problems() {
    return {
        {2, 37, 37, 4, 4, 16},
        {1, 70, 70, 2, 2, 8, true},
        {2, 1, 37, 8, 2, 64, true, {37, 20}},
        {2, 1, 37, 4, 4, 64, false, {0, 37}},
        {1, 5, 37, 2, 2, 17, true},
        {2, 40, 12, 2, 1, 3, true, {12, 7}},
        {3, 20, 30, 2, 2, 1, false, {0, 30, 13}},
        {3, 20, 30, 2, 1, 1, true, {0, 30, 13}},
        {2, 65, 65, 8, 2, 100, true, {65, 50}},
        {1, 33, 33, 4, 1, 128},
        {1, 19, 19, 2, 2, 256, true},
        {1, 1, 1, 1, 1, 8},
        {1, 150, 150, 2, 1, 32, true, {140}},
        {1, 50, 50, 2, 2, 64, false, {}, 0.3f},
        {1, 70, 90, 2, 2, 200, true},
        {2, 1, 1000, 8, 2, 64, true, {1000, 517}},
        {1, 3, 700, 4, 1, 128, false, {}},
        {2, 2, 300, 2, 2, 130, true, {300, 1}},
    };
}

struct HostInputs {
    std::vector<float> q, k, v, dout;
};

HostInputs make_inputs(const Problem& p, uint64_t seed) {
    return {random_floats(p.q_count(), seed), random_floats(p.kv_count(), seed + 1), random_floats(p.kv_count(), seed + 2),
            random_floats(p.q_count(), seed + 3)};
}

struct Oracle {
    std::vector<double> out, lse, dq, dk, dv;
};

// The full softmax of each row in double, then dS = P * (dP - rowsum(P * dP)).
Oracle oracle(const Problem& p, const HostInputs& in) {
    Oracle o{std::vector<double>(p.q_count(), 0.0), std::vector<double>(p.lse_count(), kMinusInfinity),
             std::vector<double>(p.q_count(), 0.0), std::vector<double>(p.kv_count(), 0.0),
             std::vector<double>(p.kv_count(), 0.0)};
    const double scale = p.resolved_scale();
    std::vector<double> prob(static_cast<size_t>(p.Tk)), dprob(static_cast<size_t>(p.Tk));
    for (int64_t b = 0; b < p.B; ++b) {
        for (int64_t h = 0; h < p.H; ++h) {
            const int64_t kv = h / (p.H / p.Hkv);
            for (int64_t i = 0; i < p.Tq; ++i) {
                const int64_t n = p.visible(b, i);
                if (n == 0) continue;
                const auto q = [&](int64_t d) { return static_cast<double>(in.q[p.at(b, i, p.Tq, h, p.H, d)]); };
                const auto dout = [&](int64_t d) { return static_cast<double>(in.dout[p.at(b, i, p.Tq, h, p.H, d)]); };
                const auto key = [&](int64_t j, int64_t d) { return p.at(b, j, p.Tk, kv, p.Hkv, d); };
                double max = kMinusInfinity;
                for (int64_t j = 0; j < n; ++j) {
                    double s = 0.0;
                    for (int64_t d = 0; d < p.D; ++d) s += q(d) * in.k[key(j, d)];
                    prob[j] = scale * s;
                    max = std::max(max, prob[j]);
                }
                double sum = 0.0;
                for (int64_t j = 0; j < n; ++j) sum += std::exp(prob[j] - max);
                for (int64_t j = 0; j < n; ++j) prob[j] = std::exp(prob[j] - max) / sum;
                o.lse[static_cast<size_t>((b * p.H + h) * p.Tq + i)] = max + std::log(sum);
                double delta = 0.0;
                for (int64_t j = 0; j < n; ++j) {
                    dprob[j] = 0.0;
                    for (int64_t d = 0; d < p.D; ++d) {
                        o.out[p.at(b, i, p.Tq, h, p.H, d)] += prob[j] * in.v[key(j, d)];
                        dprob[j] += dout(d) * in.v[key(j, d)];
                    }
                    delta += prob[j] * dprob[j];
                }
                for (int64_t j = 0; j < n; ++j) {
                    const double ds = prob[j] * (dprob[j] - delta);
                    for (int64_t d = 0; d < p.D; ++d) {
                        o.dq[p.at(b, i, p.Tq, h, p.H, d)] += scale * ds * in.k[key(j, d)];
                        o.dk[key(j, d)] += scale * ds * q(d);
                        o.dv[key(j, d)] += prob[j] * dout(d);
                    }
                }
            }
        }
    }
    return o;
}

std::vector<float> to_float(const std::vector<double>& values) { return std::vector<float>(values.begin(), values.end()); }

// ---- Tensors ---------------------------------------------------------------------------------

// The tensors of one problem in a context, contiguous.
struct Tensors {
    Tensors(ne_context* context, const Problem& p, const HostInputs& in) {
        q = make_tensor(context, NE_DTYPE_F32, {p.B, p.Tq, p.H, p.D}, in.q);
        k = make_tensor(context, NE_DTYPE_F32, {p.B, p.Tk, p.Hkv, p.D}, in.k);
        v = make_tensor(context, NE_DTYPE_F32, {p.B, p.Tk, p.Hkv, p.D}, in.v);
        dout = make_tensor(context, NE_DTYPE_F32, {p.B, p.Tq, p.H, p.D}, in.dout);
        if (!p.key_lengths.empty()) key_lengths = make_tensor(context, NE_DTYPE_I32, {p.B}, p.key_lengths);
        out = make_tensor(context, NE_DTYPE_F32, {p.B, p.Tq, p.H, p.D});
        lse = make_tensor(context, NE_DTYPE_F32, {p.B, p.H, p.Tq});
        dq = make_tensor(context, NE_DTYPE_F32, {p.B, p.Tq, p.H, p.D});
        dk = make_tensor(context, NE_DTYPE_F32, {p.B, p.Tk, p.Hkv, p.D});
        dv = make_tensor(context, NE_DTYPE_F32, {p.B, p.Tk, p.Hkv, p.D});
        for (ne_tensor* output : {out.get(), lse.get(), dq.get(), dk.get(), dv.get()}) {
            check(ne_tensor_fill(output, kSentinel), "ne_tensor_fill");
        }
    }

    ne_status forward(ne_context* context, const ne_attention_params& params) {
        return ne_attention_forward(context, &params, q.get(), k.get(), v.get(), key_lengths.get(), out.get(), lse.get());
    }

    ne_status backward(ne_context* context, const ne_attention_params& params) {
        return ne_attention_backward(context, &params, q.get(), k.get(), v.get(), key_lengths.get(), out.get(), lse.get(),
                                     dout.get(), dq.get(), dk.get(), dv.get());
    }

    Tensor q, k, v, dout, key_lengths, out, lse, dq, dk, dv;
};

class AttentionKernels : public ::testing::TestWithParam<BackendConfig> {
protected:
    Context context = make_context(GetParam());
};

// ---- Forward and backward against the oracle -------------------------------------------------

TEST_P(AttentionKernels, ForwardMatchesOracle) {
    uint64_t seed = 100;
    for (const Problem& p : problems()) {
        SCOPED_TRACE(p.describe());
        const HostInputs in = make_inputs(p, seed += 10);
        const Oracle expected = oracle(p, in);
        Tensors t(context.get(), p, in);
        NE_ASSERT_OK(t.forward(context.get(), attention_params(p.causal, p.scale)));
        EXPECT_TRUE(all_near(read<float>(t.out.get()), expected.out, kForwardTolerance)) << "out";
        EXPECT_TRUE(all_near(read<float>(t.lse.get()), expected.lse, kForwardTolerance)) << "lse";
    }
}

TEST_P(AttentionKernels, ForwardWithoutLseWritesTheSameOutput) {
    const Problem p{2, 70, 70, 4, 2, 24, true, {70, 33}};
    const HostInputs in = make_inputs(p, 7);
    Tensors t(context.get(), p, in);
    const ne_attention_params params = attention_params(true);
    NE_ASSERT_OK(t.forward(context.get(), params));
    const std::vector<float> with_lse = read<float>(t.out.get());
    check(ne_tensor_fill(t.out.get(), kSentinel), "ne_tensor_fill");
    NE_ASSERT_OK(ne_attention_forward(context.get(), &params, t.q.get(), t.k.get(), t.v.get(), t.key_lengths.get(),
                                      t.out.get(), nullptr));
    EXPECT_TRUE(bitwise_equal(read<float>(t.out.get()), with_lse));
}

// Deterministic, and with atomic adds into dq allowed (a device's one-pass backward).
TEST_P(AttentionKernels, BackwardMatchesOracle) {
    uint64_t seed = 200;
    for (const Problem& p : problems()) {
        SCOPED_TRACE(p.describe());
        const HostInputs in = make_inputs(p, seed += 10);
        const Oracle expected = oracle(p, in);
        Tensors t(context.get(), p, in);
        write(t.out.get(), to_float(expected.out));
        write(t.lse.get(), to_float(expected.lse));
        for (const bool allow_atomics : {false, true}) {
            SCOPED_TRACE(allow_atomics ? "allow_atomics" : "deterministic");
            for (ne_tensor* gradient : {t.dq.get(), t.dk.get(), t.dv.get()}) {
                write(gradient, std::vector<float>(read<float>(gradient).size(), 1e30f));  // each run writes every element
            }
            NE_ASSERT_OK(t.backward(context.get(), attention_params(p.causal, p.scale, allow_atomics)));
            EXPECT_TRUE(all_near(read<float>(t.dq.get()), expected.dq, kBackwardTolerance)) << "dq";
            EXPECT_TRUE(all_near(read<float>(t.dk.get()), expected.dk, kBackwardTolerance)) << "dk";
            EXPECT_TRUE(all_near(read<float>(t.dv.get()), expected.dv, kBackwardTolerance)) << "dv";
        }
    }
}

// Queries before the first key (Tq > Tk, causal) and sequences of length 0 see no key: out 0,
// lse -infinity, dq 0, and keys past a sequence's length get no gradient. Their dout rows are
// NaN here, so that any use of them would show.
TEST_P(AttentionKernels, FullyMaskedRowsAreExactlyZero) {
    const Problem p{3, 12, 5, 4, 2, 19, true, {5, 0, 3}};
    HostInputs in = make_inputs(p, 11);
    for (int64_t b = 0; b < p.B; ++b) {
        for (int64_t i = 0; i < p.Tq; ++i) {
            if (p.visible(b, i) > 0) continue;
            for (int64_t h = 0; h < p.H; ++h) {
                for (int64_t d = 0; d < p.D; ++d) in.dout[p.at(b, i, p.Tq, h, p.H, d)] = std::numeric_limits<float>::quiet_NaN();
            }
        }
    }
    Tensors t(context.get(), p, in);
    const ne_attention_params params = attention_params(true);
    NE_ASSERT_OK(t.forward(context.get(), params));
    NE_ASSERT_OK(t.backward(context.get(), params));
    const std::vector<float> out = read<float>(t.out.get()), lse = read<float>(t.lse.get()), dq = read<float>(t.dq.get());
    const std::vector<float> dk = read<float>(t.dk.get()), dv = read<float>(t.dv.get());

    int64_t masked_rows = 0;
    for (int64_t b = 0; b < p.B; ++b) {
        for (int64_t h = 0; h < p.H; ++h) {
            for (int64_t i = 0; i < p.Tq; ++i) {
                const bool masked = p.visible(b, i) == 0;
                masked_rows += masked;
                const float row_lse = lse[static_cast<size_t>((b * p.H + h) * p.Tq + i)];
                EXPECT_EQ(masked, row_lse == -std::numeric_limits<float>::infinity()) << b << " " << h << " " << i;
                EXPECT_EQ(masked, !std::isfinite(row_lse));
                for (int64_t d = 0; d < p.D; ++d) {
                    const size_t e = p.at(b, i, p.Tq, h, p.H, d);
                    ASSERT_TRUE(std::isfinite(out[e]) && std::isfinite(dq[e]));
                    if (masked) {
                        EXPECT_EQ(out[e], 0.0f);
                        EXPECT_EQ(dq[e], 0.0f);
                    }
                }
            }
        }
        for (int64_t j = 0; j < p.Tk; ++j) {
            for (int64_t kv = 0; kv < p.Hkv; ++kv) {
                for (int64_t d = 0; d < p.D; ++d) {
                    const size_t e = p.at(b, j, p.Tk, kv, p.Hkv, d);
                    ASSERT_TRUE(std::isfinite(dk[e]) && std::isfinite(dv[e]));
                    if (j >= p.length(b)) {
                        EXPECT_EQ(dk[e], 0.0f);
                        EXPECT_EQ(dv[e], 0.0f);
                    }
                }
            }
        }
    }
    // (12 - 5) + 12 + (12 - 3) queries per head see nothing.
    EXPECT_EQ(masked_rows, 28 * p.H);
}

// Keys at and after a sequence's length are padding (an unwritten cache slot, say): NaN in k and
// v there must not reach out, lse or a gradient, on the tiled paths (a key block that ends past
// the length) and on the decode path.
TEST_P(AttentionKernels, PaddingKeysAreNeverRead) {
    uint64_t seed = 500;
    for (const Problem& p : {Problem{2, 70, 90, 2, 1, 24, true, {90, 40}}, Problem{2, 6, 70, 2, 2, 16, false, {70, 33}},
                             Problem{2, 1, 200, 4, 2, 64, true, {200, 77}}}) {
        SCOPED_TRACE(p.describe());
        HostInputs in = make_inputs(p, seed += 10);
        for (int64_t b = 0; b < p.B; ++b) {
            for (int64_t j = p.length(b); j < p.Tk; ++j) {
                for (int64_t kv = 0; kv < p.Hkv; ++kv) {
                    for (int64_t d = 0; d < p.D; ++d) {
                        in.k[p.at(b, j, p.Tk, kv, p.Hkv, d)] = std::numeric_limits<float>::quiet_NaN();
                        in.v[p.at(b, j, p.Tk, kv, p.Hkv, d)] = std::numeric_limits<float>::quiet_NaN();
                    }
                }
            }
        }
        const Oracle expected = oracle(p, in);
        Tensors t(context.get(), p, in);
        const ne_attention_params params = attention_params(p.causal);
        NE_ASSERT_OK(t.forward(context.get(), params));
        EXPECT_TRUE(all_near(read<float>(t.out.get()), expected.out, kForwardTolerance)) << "out";
        EXPECT_TRUE(all_near(read<float>(t.lse.get()), expected.lse, kForwardTolerance)) << "lse";
        write(t.out.get(), to_float(expected.out));
        write(t.lse.get(), to_float(expected.lse));
        NE_ASSERT_OK(t.backward(context.get(), params));
        EXPECT_TRUE(all_near(read<float>(t.dq.get()), expected.dq, kBackwardTolerance)) << "dq";
        EXPECT_TRUE(all_near(read<float>(t.dk.get()), expected.dk, kBackwardTolerance)) << "dk";
        EXPECT_TRUE(all_near(read<float>(t.dv.get()), expected.dv, kBackwardTolerance)) << "dv";
    }
}

// ---- Strided views ---------------------------------------------------------------------------

// A [B, T, heads, D] view into a buffer of rows padded to D + pad, the padding holding kSentinel.
struct PaddedHeads {
    PaddedHeads(ne_context* context, int64_t B, int64_t T, int64_t heads, int64_t D, int64_t pad)
        : shape{B, T, heads, D}, row(D + pad) {
        base = make_tensor(context, NE_DTYPE_F32, {B, T, heads, row});
        check(ne_tensor_fill(base.get(), kSentinel), "ne_tensor_fill");
        const int64_t strides[] = {T * heads * row, heads * row, row, 1};
        ne_tensor* created = nullptr;
        check(ne_tensor_view(base.get(), 0, 4, shape, strides, &created), "ne_tensor_view");
        view.reset(created);
    }

    std::vector<float> read_rows(bool* padding_untouched) const {
        const std::vector<float> all = read<float>(base.get());
        std::vector<float> rows;
        *padding_untouched = true;
        for (size_t i = 0; i < all.size(); ++i) {
            if (static_cast<int64_t>(i) % row < shape[3]) rows.push_back(all[i]);
            else *padding_untouched = *padding_untouched && all[i] == kSentinel;
        }
        return rows;
    }

    int64_t shape[4];
    int64_t row;
    Tensor base, view;
};

// q, k and v as views of one fused [B, T, 3, H, D] projection, the outputs as views with padded
// rows: no copy is needed, and nothing outside the views is written.
TEST_P(AttentionKernels, StridedViewsOfFusedQkv) {
    for (const bool causal : {false, true}) {
        const Problem p{2, 67, 67, 4, 4, 20, causal, {67, 41}};
        SCOPED_TRACE(p.describe());
        const HostInputs in = make_inputs(p, causal ? 31 : 37);
        const Oracle expected = oracle(p, in);

        const int64_t T = p.Tq, H = p.H, D = p.D;
        std::vector<float> fused(static_cast<size_t>(p.B * T * 3 * H * D));
        for (int64_t b = 0; b < p.B; ++b) {
            for (int64_t t = 0; t < T; ++t) {
                for (int64_t h = 0; h < H; ++h) {
                    for (int64_t d = 0; d < D; ++d) {
                        const size_t fused_at = static_cast<size_t>((((b * T + t) * 3) * H + h) * D + d);
                        fused[fused_at] = in.q[p.at(b, t, T, h, H, d)];
                        fused[fused_at + static_cast<size_t>(H * D)] = in.k[p.at(b, t, T, h, H, d)];
                        fused[fused_at + static_cast<size_t>(2 * H * D)] = in.v[p.at(b, t, T, h, H, d)];
                    }
                }
            }
        }
        Tensor qkv = make_tensor(context.get(), NE_DTYPE_F32, {p.B, T, 3, H, D}, fused);
        const int64_t shape[] = {p.B, T, H, D};
        const int64_t strides[] = {T * 3 * H * D, 3 * H * D, D, 1};
        ne_tensor *q = nullptr, *k = nullptr, *v = nullptr;
        check(ne_tensor_view(qkv.get(), 0, 4, shape, strides, &q), "ne_tensor_view");
        check(ne_tensor_view(qkv.get(), H * D, 4, shape, strides, &k), "ne_tensor_view");
        check(ne_tensor_view(qkv.get(), 2 * H * D, 4, shape, strides, &v), "ne_tensor_view");
        const Tensor q_view(q), k_view(k), v_view(v);
        Tensor key_lengths = make_tensor(context.get(), NE_DTYPE_I32, {p.B}, p.key_lengths);

        PaddedHeads out(context.get(), p.B, T, H, D, 3), dout(context.get(), p.B, T, H, D, 5);
        PaddedHeads dq(context.get(), p.B, T, H, D, 1), dk(context.get(), p.B, T, H, D, 2), dv(context.get(), p.B, T, H, D, 7);
        Tensor lse = make_tensor(context.get(), NE_DTYPE_F32, {p.B, H, T});
        std::vector<float> dout_rows = read<float>(dout.base.get());
        for (size_t i = 0, r = 0; i < dout_rows.size(); ++i) {
            if (static_cast<int64_t>(i) % dout.row < D) dout_rows[i] = in.dout[r++];
        }
        write(dout.base.get(), dout_rows);

        const ne_attention_params params = attention_params(causal);
        NE_ASSERT_OK(ne_attention_forward(context.get(), &params, q, k, v, key_lengths.get(), out.view.get(), lse.get()));
        NE_ASSERT_OK(ne_attention_backward(context.get(), &params, q, k, v, key_lengths.get(), out.view.get(), lse.get(),
                                           dout.view.get(), dq.view.get(), dk.view.get(), dv.view.get()));
        const struct {
            const PaddedHeads& tensor;
            const std::vector<double>& expected;
            double tolerance;
            const char* name;
        } results[] = {{out, expected.out, kForwardTolerance, "out"},
                       {dq, expected.dq, kBackwardTolerance, "dq"},
                       {dk, expected.dk, kBackwardTolerance, "dk"},
                       {dv, expected.dv, kBackwardTolerance, "dv"}};
        for (const auto& result : results) {
            bool padding_untouched = false;
            EXPECT_TRUE(all_near(result.tensor.read_rows(&padding_untouched), result.expected, result.tolerance)) << result.name;
            EXPECT_TRUE(padding_untouched) << result.name;
        }
        EXPECT_TRUE(all_near(read<float>(lse.get()), expected.lse, kForwardTolerance));
    }
}

// ---- Finite differences ----------------------------------------------------------------------

// The backward pass against central differences of the kernel's own forward pass, on
// loss = sum(out * w): dout = w. Steps of 1e-2 on inputs in [-1, 1]: the truncation error
// (h^2 / 6 times a third derivative of order 1) and the float rounding of the loss (about 1e-7
// over a step of 2e-2) both stay near 1e-5; the tolerance is 2e-4 * (1 + |gradient|).
TEST_P(AttentionKernels, GradientsMatchFiniteDifferences) {
    const Problem p{2, 5, 6, 2, 1, 4, true, {6, 4}};
    const HostInputs in = make_inputs(p, 41);
    const std::vector<float>& w = in.dout;
    Tensors t(context.get(), p, in);
    const ne_attention_params params = attention_params(true);
    NE_ASSERT_OK(t.forward(context.get(), params));
    NE_ASSERT_OK(t.backward(context.get(), params));
    const std::vector<float> dq = read<float>(t.dq.get()), dk = read<float>(t.dk.get()), dv = read<float>(t.dv.get());

    const auto loss = [&]() {
        check(t.forward(context.get(), params), "ne_attention_forward");
        const std::vector<float> out = read<float>(t.out.get());
        double sum = 0.0;
        for (size_t i = 0; i < out.size(); ++i) sum += static_cast<double>(out[i]) * w[i];
        return sum;
    };
    const struct {
        ne_tensor* tensor;
        std::vector<float> values;
        const std::vector<float>& gradient;
        const char* name;
    } inputs[] = {{t.q.get(), in.q, dq, "q"}, {t.k.get(), in.k, dk, "k"}, {t.v.get(), in.v, dv, "v"}};
    constexpr float kStep = 1e-2f;
    for (auto input : inputs) {
        for (size_t e = 0; e < input.values.size(); ++e) {
            const float x = input.values[e];
            const float plus = x + kStep, minus = x - kStep;
            input.values[e] = plus;
            write(input.tensor, input.values);
            const double loss_plus = loss();
            input.values[e] = minus;
            write(input.tensor, input.values);
            const double loss_minus = loss();
            input.values[e] = x;
            write(input.tensor, input.values);
            const double numeric = (loss_plus - loss_minus) / (static_cast<double>(plus) - minus);
            const double analytic = input.gradient[e];
            EXPECT_NEAR(analytic, numeric, 2e-4 * (1.0 + std::abs(analytic))) << input.name << "[" << e << "]";
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Cpu, AttentionKernels, ::testing::ValuesIn(backend_configurations()), config_name);

// ---- Determinism -----------------------------------------------------------------------------

// Each output element is owned by one task and accumulated in a fixed order: the same bits for
// 1, 2 and 3 threads and on every run, at each SIMD level.
TEST(AttentionDeterminism, SameBitsForEveryThreadCount) {
    const Problem p{2, 150, 150, 4, 2, 40, true, {150, 99}};
    const HostInputs in = make_inputs(p, 51);
    const ne_attention_params params = attention_params(true);
    for (const BackendConfig& config : cpu_backend_configurations()) {
        if (config.simd_level == NE_SIMD_LEVEL_SCALAR || config.num_threads != 1) continue;
        SCOPED_TRACE(config.name);
        std::vector<std::vector<float>> first;
        for (const int threads : {1, 2, 3, 3}) {
            Context context = make_context({config.backend, config.simd_level, threads, config.name});
            Tensors t(context.get(), p, in);
            NE_ASSERT_OK(t.forward(context.get(), params));
            NE_ASSERT_OK(t.backward(context.get(), params));
            std::vector<std::vector<float>> results;
            for (const ne_tensor* output : {t.out.get(), t.lse.get(), t.dq.get(), t.dk.get(), t.dv.get()}) {
                results.push_back(read<float>(output));
            }
            if (first.empty()) first = results;
            for (size_t r = 0; r < results.size(); ++r) {
                EXPECT_TRUE(bitwise_equal(results[r], first[r])) << threads << " threads, output " << r;
            }
        }
    }
}

// ---- Memory ----------------------------------------------------------------------------------

// Tq = Tk = 4096: a [Tq, Tk] f32 buffer would be 64 MiB. Beyond the tensors themselves, forward
// and backward may use memory linear in T (delta: 4 bytes per query) plus a fixed workspace per
// thread (about 145 KiB at D = 64): at most 128 bytes per query here, 1/128 of the scores.
TEST(AttentionMemory, NoBufferOfTqByTk) {
    const Problem p{1, 4096, 4096, 1, 1, 64, true};
    const HostInputs in = make_inputs(p, 61);
    Context context = make_cpu_context(3);
    Tensors t(context.get(), p, in);
    ne_memory_stats before{};
    before.struct_size = sizeof before;
    NE_ASSERT_OK(ne_context_get_memory_stats(context.get(), &before));
    const ne_attention_params params = attention_params(true);
    NE_ASSERT_OK(t.forward(context.get(), params));
    NE_ASSERT_OK(t.backward(context.get(), params));
    ne_memory_stats after{};
    after.struct_size = sizeof after;
    NE_ASSERT_OK(ne_context_get_memory_stats(context.get(), &after));

    const int64_t score_matrix_bytes = p.Tq * p.Tk * static_cast<int64_t>(sizeof(float));
    const int64_t linear_bound = 128 * p.Tq;
    EXPECT_EQ(after.live_bytes, before.live_bytes);
    EXPECT_LE(after.peak_bytes - before.live_bytes, linear_bound)
        << "peak " << after.peak_bytes << " bytes with " << before.live_bytes << " in tensors";
    EXPECT_EQ(linear_bound * 128, score_matrix_bytes);
}

// ---- Arguments -------------------------------------------------------------------------------

class AttentionArguments : public ::testing::Test {
protected:
    static constexpr int64_t B = 2, Tq = 5, Tk = 6, H = 4, Hkv = 2, D = 8;
    const Problem p{B, Tq, Tk, H, Hkv, D, true, {6, 3}};
    Context context = make_cpu_context(1);
    Tensors t{context.get(), p, make_inputs(p, 71)};
    ne_attention_params params = attention_params(true);

    Tensor f32(std::vector<int64_t> shape) { return make_tensor(context.get(), NE_DTYPE_F32, std::move(shape)); }

    Tensor view(const ne_tensor* base, int64_t offset, std::vector<int64_t> shape, std::vector<int64_t> strides) {
        ne_tensor* created = nullptr;
        check(ne_tensor_view(base, offset, static_cast<int32_t>(shape.size()), shape.data(), strides.data(), &created),
              "ne_tensor_view");
        return Tensor(created);
    }

    struct Forward {
        ne_context* context;
        const ne_attention_params* params;
        const ne_tensor *q, *k, *v, *key_lengths;
        ne_tensor *out, *lse;
        ne_status run() const { return ne_attention_forward(context, params, q, k, v, key_lengths, out, lse); }
    };

    struct Backward {
        ne_context* context;
        const ne_attention_params* params;
        const ne_tensor *q, *k, *v, *key_lengths, *out, *lse, *dout;
        ne_tensor *dq, *dk, *dv;
        ne_status run() const {
            return ne_attention_backward(context, params, q, k, v, key_lengths, out, lse, dout, dq, dk, dv);
        }
    };

    Forward forward() {
        return {context.get(), &params, t.q.get(), t.k.get(), t.v.get(), t.key_lengths.get(), t.out.get(), t.lse.get()};
    }

    Backward backward() {
        return {context.get(), &params,   t.q.get(),  t.k.get(),  t.v.get(),  t.key_lengths.get(),
                t.out.get(),   t.lse.get(), t.dout.get(), t.dq.get(), t.dk.get(), t.dv.get()};
    }

    // A failing call leaves every output as it was: still the sentinel.
    void TearDown() override {
        for (const ne_tensor* output : {t.out.get(), t.lse.get(), t.dq.get(), t.dk.get(), t.dv.get()}) {
            const std::vector<float> values = read<float>(output);
            EXPECT_TRUE(std::all_of(values.begin(), values.end(), [](float value) { return value == kSentinel; }));
        }
    }
};

TEST_F(AttentionArguments, NullPointers) {
    Forward f = forward();
    f.context = nullptr;
    EXPECT_TRUE(fails_with(f.run(), NE_STATUS_NULL_POINTER, {"ne_attention_forward", "'context'"}));
    f = forward();
    f.params = nullptr;
    EXPECT_TRUE(fails_with(f.run(), NE_STATUS_NULL_POINTER, {"'params'"}));
    for (const auto& [input, name] : {std::pair{&Forward::q, "'q'"}, {&Forward::k, "'k'"}, {&Forward::v, "'v'"}}) {
        f = forward();
        f.*input = nullptr;
        EXPECT_TRUE(fails_with(f.run(), NE_STATUS_NULL_POINTER, {name}));
    }
    f = forward();
    f.out = nullptr;
    EXPECT_TRUE(fails_with(f.run(), NE_STATUS_NULL_POINTER, {"'out'"}));

    Backward b = backward();
    b.context = nullptr;
    EXPECT_TRUE(fails_with(b.run(), NE_STATUS_NULL_POINTER, {"ne_attention_backward", "'context'"}));
    b = backward();
    b.params = nullptr;
    EXPECT_TRUE(fails_with(b.run(), NE_STATUS_NULL_POINTER, {"'params'"}));
    for (const auto& [input, name] : {std::pair{&Backward::q, "'q'"}, {&Backward::k, "'k'"}, {&Backward::v, "'v'"},
                                      {&Backward::out, "'out'"}, {&Backward::lse, "'lse'"}, {&Backward::dout, "'dout'"}}) {
        b = backward();
        b.*input = nullptr;
        EXPECT_TRUE(fails_with(b.run(), NE_STATUS_NULL_POINTER, {name}));
    }
    for (const auto& [output, name] : {std::pair{&Backward::dq, "'dq'"}, {&Backward::dk, "'dk'"}, {&Backward::dv, "'dv'"}}) {
        b = backward();
        b.*output = nullptr;
        EXPECT_TRUE(fails_with(b.run(), NE_STATUS_NULL_POINTER, {name}));
    }
}

TEST_F(AttentionArguments, Params) {
    // The first version of the struct ended before allow_atomics.
    constexpr auto first_version = static_cast<uint32_t>(offsetof(ne_attention_params, allow_atomics));
    for (const uint32_t size : {uint32_t{0}, first_version - 4, uint32_t{sizeof(ne_attention_params) + 4}}) {
        params = attention_params(true);
        params.struct_size = size;
        EXPECT_TRUE(fails_with(forward().run(), NE_STATUS_VERSION_MISMATCH, {"'params'", "struct_size"}));
        EXPECT_TRUE(fails_with(backward().run(), NE_STATUS_VERSION_MISMATCH, {"'params'", "struct_size"}));
    }
    params = attention_params(true);
    params.struct_size = first_version;
    params.allow_atomics = 7;  // beyond the caller's struct: never read
    NE_EXPECT_OK(backward().run());
    for (ne_tensor* gradient : {t.dq.get(), t.dk.get(), t.dv.get()}) {
        write(gradient, std::vector<float>(read<float>(gradient).size(), kSentinel));  // for TearDown's check
    }
    params = attention_params(true, 0.0f, true);
    params.allow_atomics = 2;
    EXPECT_TRUE(fails_with(backward().run(), NE_STATUS_INVALID_ARGUMENT, {"'params'", "allow_atomics", "expected 0 or 1"}));
    for (const float scale : {-1.0f, std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
        params = attention_params(true, scale);
        EXPECT_TRUE(fails_with(forward().run(), NE_STATUS_INVALID_ARGUMENT, {"'params'", "scale"}));
        EXPECT_TRUE(fails_with(backward().run(), NE_STATUS_INVALID_ARGUMENT, {"'params'", "scale"}));
    }
    params = attention_params(true);
    params.causal = 2;
    EXPECT_TRUE(fails_with(forward().run(), NE_STATUS_INVALID_ARGUMENT, {"'params'", "causal"}));
    EXPECT_TRUE(fails_with(backward().run(), NE_STATUS_INVALID_ARGUMENT, {"'params'", "causal"}));
}

TEST_F(AttentionArguments, Dtypes) {
    const Tensor q_i32 = make_tensor(context.get(), NE_DTYPE_I32, {B, Tq, H, D});
    const Tensor lengths_f32 = f32({B});
    Forward f = forward();
    f.q = q_i32.get();
    EXPECT_TRUE(fails_with(f.run(), NE_STATUS_DTYPE_MISMATCH, {"'q'", "f32", "i32"}));
    f = forward();
    f.key_lengths = lengths_f32.get();
    EXPECT_TRUE(fails_with(f.run(), NE_STATUS_DTYPE_MISMATCH, {"'key_lengths'", "i32"}));
    Backward b = backward();
    b.dout = q_i32.get();
    EXPECT_TRUE(fails_with(b.run(), NE_STATUS_DTYPE_MISMATCH, {"'dout'"}));
}

TEST_F(AttentionArguments, SixteenBitElementsAreForDevices) {
    const Tensor q_bf16 = make_tensor(context.get(), NE_DTYPE_BF16, {B, Tq, H, D});
    Forward f = forward();
    f.q = q_bf16.get();
    EXPECT_TRUE(fails_with(f.run(), NE_STATUS_DTYPE_MISMATCH, {"'q'", "expected dtype f32", "bf16"}));
}

TEST_F(AttentionArguments, Shapes) {
    const Tensor rank3 = f32({B, Tq, H * D});
    Forward f = forward();
    f.q = rank3.get();
    EXPECT_TRUE(fails_with(f.run(), NE_STATUS_SHAPE_MISMATCH, {"'q'", "expected rank 4 ([B, Tq, H, D])", "[2, 5, 32]"}));

    const Tensor k_wrong_d = f32({B, Tk, Hkv, D + 1});
    f = forward();
    f.k = k_wrong_d.get();
    EXPECT_TRUE(fails_with(f.run(), NE_STATUS_SHAPE_MISMATCH,
                           {"'k'", "expected shape [2, 6, 2, 8] ([B, Tk, Hkv, D])", "got [2, 6, 2, 9]"}));

    const Tensor v_wrong_t = f32({B, Tk + 1, Hkv, D});
    f = forward();
    f.v = v_wrong_t.get();
    EXPECT_TRUE(fails_with(f.run(), NE_STATUS_SHAPE_MISMATCH, {"'v'", "[2, 6, 2, 8] ([B, Tk, Hkv, D])"}));

    const Tensor out_wrong = f32({B, Tq, H, D + 1});
    f = forward();
    f.out = out_wrong.get();
    EXPECT_TRUE(fails_with(f.run(), NE_STATUS_SHAPE_MISMATCH, {"'out'", "[2, 5, 4, 8] ([B, Tq, H, D])"}));

    const Tensor lse_wrong = f32({B, Tq, H});
    f = forward();
    f.lse = lse_wrong.get();
    EXPECT_TRUE(fails_with(f.run(), NE_STATUS_SHAPE_MISMATCH, {"'lse'", "[2, 4, 5] ([B, H, Tq])", "got [2, 5, 4]"}));

    const Tensor lengths_wrong = make_tensor(context.get(), NE_DTYPE_I32, {B + 1});
    f = forward();
    f.key_lengths = lengths_wrong.get();
    EXPECT_TRUE(fails_with(f.run(), NE_STATUS_SHAPE_MISMATCH, {"'key_lengths'", "[2] ([B])"}));

    Backward b = backward();
    const Tensor dk_wrong = f32({B, Tk, H, D});
    b.dk = dk_wrong.get();
    EXPECT_TRUE(fails_with(b.run(), NE_STATUS_SHAPE_MISMATCH, {"'dk'", "[2, 6, 2, 8] ([B, Tk, Hkv, D])"}));
    b = backward();
    b.lse = lse_wrong.get();
    EXPECT_TRUE(fails_with(b.run(), NE_STATUS_SHAPE_MISMATCH, {"'lse'"}));
}

TEST_F(AttentionArguments, HeadsAndHeadDimension) {
    const Tensor k3 = f32({B, Tk, 3, D}), v3 = f32({B, Tk, 3, D});
    Forward f = forward();
    f.k = k3.get();
    f.v = v3.get();
    EXPECT_TRUE(fails_with(f.run(), NE_STATUS_SHAPE_MISMATCH, {"H = 4", "not a multiple of Hkv = 3"}));

    // D = 0 cannot reach the kernels: no tensor has an empty dimension.
    ne_tensor* empty = nullptr;
    const int64_t shape0[] = {B, Tq, H, 0};
    EXPECT_TRUE(fails_with(ne_tensor_create(context.get(), NE_DTYPE_F32, 4, shape0, &empty), NE_STATUS_INVALID_ARGUMENT,
                           {"positive"}));

    const Tensor q257 = f32({B, Tq, H, 257}), k257 = f32({B, Tk, Hkv, 257}), v257 = f32({B, Tk, Hkv, 257});
    const Tensor out257 = f32({B, Tq, H, 257});
    f = forward();
    f.q = q257.get();
    f.k = k257.get();
    f.v = v257.get();
    f.out = out257.get();
    EXPECT_TRUE(fails_with(f.run(), NE_STATUS_SHAPE_MISMATCH, {"'q'", "D is 257", "1 to 256"}));
    Backward b = backward();
    b.q = q257.get();
    EXPECT_TRUE(fails_with(b.run(), NE_STATUS_SHAPE_MISMATCH, {"'q'", "D is 257"}));
}

TEST_F(AttentionArguments, Layouts) {
    const Tensor wide = f32({B, Tq, H, 2 * D});
    const Tensor strided_q = view(wide.get(), 0, {B, Tq, H, D}, {Tq * H * 2 * D, H * 2 * D, 2 * D, 2});
    Forward f = forward();
    f.q = strided_q.get();
    EXPECT_TRUE(fails_with(f.run(), NE_STATUS_UNSUPPORTED, {"'q'", "last dimension (D) to be contiguous", "stride 2"}));

    const Tensor lse_base = f32({B, Tq, H});
    const Tensor lse_transposed = view(lse_base.get(), 0, {B, H, Tq}, {Tq * H, 1, H});
    f = forward();
    f.lse = lse_transposed.get();
    EXPECT_TRUE(fails_with(f.run(), NE_STATUS_UNSUPPORTED, {"'lse'", "contiguous"}));

    const Tensor one_row = f32({B, Tq, 1, D});
    const Tensor broadcast_out = view(one_row.get(), 0, {B, Tq, H, D}, {Tq * D, D, 0, 1});
    f = forward();
    f.out = broadcast_out.get();
    EXPECT_TRUE(fails_with(f.run(), NE_STATUS_UNSUPPORTED, {"'out'", "share memory"}));
    Backward b = backward();
    b.dq = broadcast_out.get();
    EXPECT_TRUE(fails_with(b.run(), NE_STATUS_UNSUPPORTED, {"'dq'", "share memory"}));
}

TEST_F(AttentionArguments, KeyLengthsOutOfRange) {
    for (const int32_t bad : {-1, static_cast<int32_t>(Tk + 1)}) {
        const Tensor lengths = make_tensor(context.get(), NE_DTYPE_I32, {B}, std::vector<int32_t>{3, bad});
        Forward f = forward();
        f.key_lengths = lengths.get();
        const std::string element = "element 1 is " + std::to_string(bad);
        EXPECT_TRUE(fails_with(f.run(), NE_STATUS_INVALID_ARGUMENT, {"'key_lengths'", element.c_str(), "[0, 6]"}));
        Backward b = backward();
        b.key_lengths = lengths.get();
        EXPECT_TRUE(fails_with(b.run(), NE_STATUS_INVALID_ARGUMENT, {"'key_lengths'", element.c_str()}));
    }
}

TEST_F(AttentionArguments, TensorOfAnotherContext) {
    Context other = make_cpu_context(1);
    const Tensor foreign_k = make_tensor(other.get(), NE_DTYPE_F32, {B, Tk, Hkv, D});
    Forward f = forward();
    f.k = foreign_k.get();
    EXPECT_TRUE(fails_with(f.run(), NE_STATUS_CONTEXT_MISMATCH, {"'k'", "another context"}));
    const Tensor foreign_dv = make_tensor(other.get(), NE_DTYPE_F32, {B, Tk, Hkv, D});
    Backward b = backward();
    b.dv = foreign_dv.get();
    EXPECT_TRUE(fails_with(b.run(), NE_STATUS_CONTEXT_MISMATCH, {"'dv'", "another context"}));
}

TEST_F(AttentionArguments, OverlappingOutputs) {
    // out written over q.
    const std::vector<float> q_before = read<float>(t.q.get());
    Forward f = forward();
    f.out = t.q.get();
    EXPECT_TRUE(fails_with(f.run(), NE_STATUS_INVALID_ARGUMENT, {"'out' overlaps argument 'q'"}));
    EXPECT_TRUE(bitwise_equal(read<float>(t.q.get()), q_before));

    // lse inside out's memory.
    const Tensor shared = f32({B * Tq * H * D});
    const Tensor out_view = view(shared.get(), 0, {B, Tq, H, D}, {Tq * H * D, H * D, D, 1});
    const Tensor lse_view = view(shared.get(), 8, {B, H, Tq}, {H * Tq, Tq, 1});
    f = forward();
    f.out = out_view.get();
    f.lse = lse_view.get();
    EXPECT_TRUE(fails_with(f.run(), NE_STATUS_INVALID_ARGUMENT, {"'lse' overlaps argument 'out'"}));

    // dk and dv in one buffer, and dq over dout.
    const Tensor kv = f32({B, Tk, Hkv, D + 1});
    const Tensor dk_view = view(kv.get(), 0, {B, Tk, Hkv, D}, {Tk * Hkv * (D + 1), Hkv * (D + 1), D + 1, 1});
    const Tensor dv_view = view(kv.get(), 1, {B, Tk, Hkv, D}, {Tk * Hkv * (D + 1), Hkv * (D + 1), D + 1, 1});
    Backward b = backward();
    b.dk = dk_view.get();
    b.dv = dv_view.get();
    EXPECT_TRUE(fails_with(b.run(), NE_STATUS_INVALID_ARGUMENT, {"'dk' overlaps argument 'dv'"}));
    b = backward();
    b.dq = t.dout.get();
    EXPECT_TRUE(fails_with(b.run(), NE_STATUS_INVALID_ARGUMENT, {"'dq' overlaps argument 'dout'"}));
    b = backward();
    b.dv = t.dk.get();
    EXPECT_TRUE(fails_with(b.run(), NE_STATUS_INVALID_ARGUMENT, {"'dk' overlaps argument 'dv'"}));
}

// ---- CUDA: bf16 and f16 elements, determinism, dtypes ------------------------------------------
//
// Inputs are multiples of 1/64 in [-1, 1], exact in both 16-bit formats, so that the oracle sees
// the values the device reads; the rounding comes from the kernels alone: p and ds rounded to 16
// bits before their tensor-core products (f32 accumulation), each output rounded once, and the
// backward's delta taken from the rounded out. Tolerances as above:
// - bf16 (8 significant bits): out 2e-2, dq/dk/dv 5e-2;
// - f16 (11 significant bits): out 4e-3, dq/dk/dv 1e-2;
// - lse (f32, from exact products of 16-bit inputs): 1e-4 for both.

bool has_cuda_device() {
    const ne_system_info info = system_info();
    return info.cuda_compiled != 0 && info.cuda_device_count > 0;
}

Context cuda_context() { return make_context({NE_BACKEND_CUDA, NE_SIMD_LEVEL_AUTO, 0, "cuda0"}); }

std::vector<float> sixty_fourths(size_t count, uint64_t seed) {
    std::mt19937_64 generator(seed);
    std::uniform_int_distribution<int> steps(-64, 64);
    std::vector<float> values(count);
    for (float& value : values) value = static_cast<float>(steps(generator)) / 64.0f;
    return values;
}

// Encodes a value exactly representable in the format (sixty_fourths' values are).
uint16_t encode16(ne_dtype dtype, float value) {
    uint32_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    if (dtype == NE_DTYPE_BF16) return static_cast<uint16_t>(bits >> 16);
    if ((bits & 0x7fffffffu) == 0) return static_cast<uint16_t>((bits >> 16) & 0x8000u);
    const uint32_t sign = (bits >> 16) & 0x8000u;
    const int exponent = static_cast<int>((bits >> 23) & 0xffu) - 127 + 15;
    return static_cast<uint16_t>(sign | (static_cast<uint32_t>(exponent) << 10) | ((bits & 0x7fffffu) >> 13));
}

float decode16(ne_dtype dtype, uint16_t bits) {
    if (dtype == NE_DTYPE_BF16) {
        const uint32_t wide = uint32_t{bits} << 16;
        float value;
        std::memcpy(&value, &wide, sizeof value);
        return value;
    }
    const int exponent = (bits >> 10) & 0x1f;
    const double mantissa = (bits & 0x3ffu) / 1024.0;
    double magnitude = exponent == 0 ? std::ldexp(mantissa, -14) : std::ldexp(1.0 + mantissa, exponent - 15);
    if (exponent == 0x1f) magnitude = (bits & 0x3ffu) ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
    return static_cast<float>((bits & 0x8000u) ? -magnitude : magnitude);
}

Tensor make_tensor16(ne_context* context, ne_dtype dtype, std::vector<int64_t> shape, const std::vector<float>& values) {
    std::vector<uint16_t> bits(values.size());
    for (size_t i = 0; i < values.size(); ++i) bits[i] = encode16(dtype, values[i]);
    return make_tensor(context, dtype, std::move(shape), bits);
}

std::vector<float> read16(ne_dtype dtype, const ne_tensor* tensor) {
    const std::vector<uint16_t> bits = read<uint16_t>(tensor);
    std::vector<float> values(bits.size());
    for (size_t i = 0; i < bits.size(); ++i) values[i] = decode16(dtype, bits[i]);
    return values;
}

// The tensors of one problem with q, k, v, out and the gradients of `dtype`, lse f32.
struct Tensors16 {
    Tensors16(ne_context* context, ne_dtype dtype, const Problem& p, const HostInputs& in) {
        q = make_tensor16(context, dtype, {p.B, p.Tq, p.H, p.D}, in.q);
        k = make_tensor16(context, dtype, {p.B, p.Tk, p.Hkv, p.D}, in.k);
        v = make_tensor16(context, dtype, {p.B, p.Tk, p.Hkv, p.D}, in.v);
        dout = make_tensor16(context, dtype, {p.B, p.Tq, p.H, p.D}, in.dout);
        if (!p.key_lengths.empty()) key_lengths = make_tensor(context, NE_DTYPE_I32, {p.B}, p.key_lengths);
        out = make_tensor(context, dtype, {p.B, p.Tq, p.H, p.D});
        lse = make_tensor(context, NE_DTYPE_F32, {p.B, p.H, p.Tq});
        dq = make_tensor(context, dtype, {p.B, p.Tq, p.H, p.D});
        dk = make_tensor(context, dtype, {p.B, p.Tk, p.Hkv, p.D});
        dv = make_tensor(context, dtype, {p.B, p.Tk, p.Hkv, p.D});
    }

    ne_status forward(ne_context* context, const ne_attention_params& params) {
        return ne_attention_forward(context, &params, q.get(), k.get(), v.get(), key_lengths.get(), out.get(), lse.get());
    }

    ne_status backward(ne_context* context, const ne_attention_params& params) {
        return ne_attention_backward(context, &params, q.get(), k.get(), v.get(), key_lengths.get(), out.get(), lse.get(),
                                     dout.get(), dq.get(), dk.get(), dv.get());
    }

    Tensor q, k, v, dout, key_lengths, out, lse, dq, dk, dv;
};

HostInputs sixty_fourth_inputs(const Problem& p, uint64_t seed) {
    return {sixty_fourths(p.q_count(), seed), sixty_fourths(p.kv_count(), seed + 1), sixty_fourths(p.kv_count(), seed + 2),
            sixty_fourths(p.q_count(), seed + 3)};
}

class AttentionHalfPrecision : public ::testing::TestWithParam<ne_dtype> {
protected:
    void SetUp() override {
        if (!has_cuda_device()) GTEST_SKIP() << "no CUDA device";
        context = cuda_context();
    }

    Context context;
};

// Every problem of the f32 suite, the tuned head dimensions over several blocks of queries, and a
// head dimension above 128 that is no whole number of 16-byte pieces (tiles load element-wise).
TEST_P(AttentionHalfPrecision, ForwardAndBackwardMatchOracle) {
    const ne_dtype dtype = GetParam();
    const bool bf16 = dtype == NE_DTYPE_BF16;
    const double out_tolerance = bf16 ? 2e-2 : 4e-3, gradient_tolerance = bf16 ? 5e-2 : 1e-2, lse_tolerance = 1e-4;
    std::vector<Problem> cases = problems();
    cases.push_back({2, 130, 130, 4, 2, 64, true, {130, 77}});
    cases.push_back({1, 140, 140, 2, 2, 128, true});
    cases.push_back({1, 100, 160, 2, 1, 128, false, {150}});
    cases.push_back({1, 40, 40, 2, 2, 250, true});
    uint64_t seed = 300;
    for (const Problem& p : cases) {
        SCOPED_TRACE(p.describe());
        const HostInputs in = sixty_fourth_inputs(p, seed += 10);
        const Oracle expected = oracle(p, in);
        Tensors16 t(context.get(), dtype, p, in);
        NE_ASSERT_OK(t.forward(context.get(), attention_params(p.causal, p.scale)));
        EXPECT_TRUE(all_near(read16(dtype, t.out.get()), expected.out, out_tolerance)) << "out";
        EXPECT_TRUE(all_near(read<float>(t.lse.get()), expected.lse, lse_tolerance)) << "lse";
        for (const bool allow_atomics : {false, true}) {
            SCOPED_TRACE(allow_atomics ? "allow_atomics" : "deterministic");
            NE_ASSERT_OK(t.backward(context.get(), attention_params(p.causal, p.scale, allow_atomics)));
            EXPECT_TRUE(all_near(read16(dtype, t.dq.get()), expected.dq, gradient_tolerance)) << "dq";
            EXPECT_TRUE(all_near(read16(dtype, t.dk.get()), expected.dk, gradient_tolerance)) << "dk";
            EXPECT_TRUE(all_near(read16(dtype, t.dv.get()), expected.dv, gradient_tolerance)) << "dv";
        }
    }
}

// Mixed element types are refused by name; lse stays f32.
TEST_P(AttentionHalfPrecision, ElementTypesMustAgree) {
    const ne_dtype dtype = GetParam();
    const ne_dtype other = dtype == NE_DTYPE_BF16 ? NE_DTYPE_F16 : NE_DTYPE_BF16;
    const Problem p{1, 5, 6, 2, 1, 8, true};
    Tensors16 t(context.get(), dtype, p, sixty_fourth_inputs(p, 81));
    const ne_attention_params params = attention_params(true);
    const Tensor k_f32 = make_tensor(context.get(), NE_DTYPE_F32, {p.B, p.Tk, p.Hkv, p.D});
    EXPECT_TRUE(fails_with(ne_attention_forward(context.get(), &params, t.q.get(), k_f32.get(), t.v.get(), nullptr,
                                                t.out.get(), t.lse.get()),
                           NE_STATUS_DTYPE_MISMATCH, {"'k'", "f32"}));
    const Tensor out_other = make_tensor(context.get(), other, {p.B, p.Tq, p.H, p.D});
    EXPECT_TRUE(fails_with(ne_attention_forward(context.get(), &params, t.q.get(), t.k.get(), t.v.get(), nullptr,
                                                out_other.get(), t.lse.get()),
                           NE_STATUS_DTYPE_MISMATCH, {"'out'"}));
    const Tensor lse16 = make_tensor(context.get(), dtype, {p.B, p.H, p.Tq});
    EXPECT_TRUE(fails_with(ne_attention_forward(context.get(), &params, t.q.get(), t.k.get(), t.v.get(), nullptr,
                                                t.out.get(), lse16.get()),
                           NE_STATUS_DTYPE_MISMATCH, {"'lse'", "expected dtype f32"}));
    const Tensor dq_other = make_tensor(context.get(), other, {p.B, p.Tq, p.H, p.D});
    EXPECT_TRUE(fails_with(ne_attention_backward(context.get(), &params, t.q.get(), t.k.get(), t.v.get(), nullptr,
                                                 t.out.get(), t.lse.get(), t.dout.get(), dq_other.get(), t.dk.get(),
                                                 t.dv.get()),
                           NE_STATUS_DTYPE_MISMATCH, {"'dq'"}));
}

INSTANTIATE_TEST_SUITE_P(Cuda, AttentionHalfPrecision, ::testing::Values(NE_DTYPE_BF16, NE_DTYPE_F16),
                         [](const ::testing::TestParamInfo<ne_dtype>& param) {
                             return std::string(param.param == NE_DTYPE_BF16 ? "bf16" : "f16");
                         });

// With allow_atomics only dq's summation order is left to the device: the keys pass sums dk and
// dv in the same order either way, so they keep the deterministic backward's bits, and dq agrees
// with its deterministic sum to rounding (one 16-bit rounding of sums that differ in the last f32
// bits). Also the short pass that run.sh puts under racecheck for the atomic keys pass.
TEST(AttentionCudaDeterminism, AtomicDqKeepsTheBitsOfDkAndDv) {
    if (!has_cuda_device()) GTEST_SKIP() << "no CUDA device";
    Context context = cuda_context();
    const Problem p{2, 150, 150, 4, 2, 96, true, {150, 99}};
    const HostInputs in = sixty_fourth_inputs(p, 93);
    for (const ne_dtype dtype : {NE_DTYPE_F32, NE_DTYPE_BF16, NE_DTYPE_F16}) {
        SCOPED_TRACE(static_cast<int>(dtype));
        // dq, dk and dv, 16-bit values widened to f32 (exactly).
        const auto gradients = [&](bool allow_atomics) {
            std::vector<std::vector<float>> result;
            if (dtype == NE_DTYPE_F32) {
                Tensors t(context.get(), p, in);
                EXPECT_EQ(t.forward(context.get(), attention_params(p.causal)), NE_STATUS_OK);
                EXPECT_EQ(t.backward(context.get(), attention_params(p.causal, 0.0f, allow_atomics)), NE_STATUS_OK);
                for (const ne_tensor* g : {t.dq.get(), t.dk.get(), t.dv.get()}) result.push_back(read<float>(g));
            } else {
                Tensors16 t(context.get(), dtype, p, in);
                EXPECT_EQ(t.forward(context.get(), attention_params(p.causal)), NE_STATUS_OK);
                EXPECT_EQ(t.backward(context.get(), attention_params(p.causal, 0.0f, allow_atomics)), NE_STATUS_OK);
                for (const ne_tensor* g : {t.dq.get(), t.dk.get(), t.dv.get()}) result.push_back(read16(dtype, g));
            }
            return result;
        };
        const std::vector<std::vector<float>> deterministic = gradients(false), atomic = gradients(true);
        ASSERT_EQ(atomic.size(), 3u);
        const double dq_tolerance = dtype == NE_DTYPE_BF16 ? 1e-2 : (dtype == NE_DTYPE_F16 ? 2e-3 : 1e-5);
        EXPECT_TRUE(all_near(atomic[0], deterministic[0], dq_tolerance)) << "dq";
        EXPECT_TRUE(bitwise_equal(atomic[1], deterministic[1])) << "dk";
        EXPECT_TRUE(bitwise_equal(atomic[2], deterministic[2])) << "dv";
    }
}

// No atomics on the device: two runs give the same bits, for every element type, on the tiled
// and the decode paths, with grouped heads, key lengths and causal masking.
TEST(AttentionCudaDeterminism, SameBitsOnEveryRun) {
    if (!has_cuda_device()) GTEST_SKIP() << "no CUDA device";
    Context context = cuda_context();
    const ne_attention_params params = attention_params(true);
    for (const Problem& p : {Problem{2, 150, 150, 4, 2, 96, true, {150, 99}}, Problem{2, 1, 900, 4, 1, 64, true, {900, 300}}}) {
        SCOPED_TRACE(p.describe());
        const HostInputs in = sixty_fourth_inputs(p, 91);
        for (const ne_dtype dtype : {NE_DTYPE_F32, NE_DTYPE_BF16, NE_DTYPE_F16}) {
            SCOPED_TRACE(static_cast<int>(dtype));
            std::vector<std::vector<uint16_t>> first16;
            std::vector<std::vector<float>> first32;
            for (int run = 0; run < 2; ++run) {
                std::vector<std::vector<uint16_t>> results16;
                std::vector<std::vector<float>> results32;
                if (dtype == NE_DTYPE_F32) {
                    Tensors t(context.get(), p, in);
                    NE_ASSERT_OK(t.forward(context.get(), params));
                    NE_ASSERT_OK(t.backward(context.get(), params));
                    for (const ne_tensor* output : {t.out.get(), t.lse.get(), t.dq.get(), t.dk.get(), t.dv.get()}) {
                        results32.push_back(read<float>(output));
                    }
                } else {
                    Tensors16 t(context.get(), dtype, p, in);
                    NE_ASSERT_OK(t.forward(context.get(), params));
                    NE_ASSERT_OK(t.backward(context.get(), params));
                    results32.push_back(read<float>(t.lse.get()));
                    for (const ne_tensor* output : {t.out.get(), t.dq.get(), t.dk.get(), t.dv.get()}) {
                        results16.push_back(read<uint16_t>(output));
                    }
                }
                if (run == 0) {
                    first16 = results16;
                    first32 = results32;
                    continue;
                }
                EXPECT_EQ(results16, first16);
                for (size_t r = 0; r < results32.size(); ++r) EXPECT_TRUE(bitwise_equal(results32[r], first32[r])) << r;
            }
        }
    }
}

}  // namespace
