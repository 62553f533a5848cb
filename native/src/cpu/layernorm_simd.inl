// Row kernels of the norms, shared by the AVX2 and AVX-512 builds. Included inside namespace
// ne::cpu::avx2 / ne::cpu::avx512 right after that namespace's Vec, the vector traits:
//   V, kWidth                      the vector type and its float lanes
//   zero, broadcast, add, sub, mul, fmadd(a, b, c) = a * b + c, fnmadd(a, b, c) = c - a * b
//   load(p), store(p, v)           full vectors, unaligned
//   Tail, tail(count)              the first count lanes, 0 < count < kWidth
//   load(p, t), store(p, v, t)     touch only the lanes of t (load zeroes the others)
//   keep(v, t)                     v with the lanes outside t zeroed
//   sum_lanes(v)                   horizontal sum, in a fixed order
// Everything here is named by the ISA namespace it is included in, so that the linker never
// mixes code compiled for different instruction sets. This file includes nothing itself.
//
// The loops read the fields of the args through local copies: the intrinsic vector types may
// alias anything, so after every vector store the compiler would reload them from `a`.

using V = Vec::V;
constexpr int64_t kWidth = Vec::kWidth;

struct FullLanes {
    V load(const float* p) const { return Vec::load(p); }
    void store(float* p, V v) const { Vec::store(p, v); }
    V keep(V v) const { return v; }
};

struct TailLanes {
    Vec::Tail tail;
    V load(const float* p) const { return Vec::load(p, tail); }
    void store(float* p, V v) const { Vec::store(p, v, tail); }
    V keep(V v) const { return Vec::keep(v, tail); }
};

// Calls body(i, lanes, slot) for each vector of a row of C floats, i being its first channel.
// Four consecutive vectors get slots 0..3 so that reductions keep four independent accumulators
// instead of waiting on the latency of a single add chain.
template <class Body>
inline void for_each_vector(int64_t C, Body&& body) {
    int64_t i = 0;
    for (; i + 4 * kWidth <= C; i += 4 * kWidth) {
        body(i, FullLanes{}, 0);
        body(i + kWidth, FullLanes{}, 1);
        body(i + 2 * kWidth, FullLanes{}, 2);
        body(i + 3 * kWidth, FullLanes{}, 3);
    }
    for (; i + kWidth <= C; i += kWidth) body(i, FullLanes{}, 0);
    if (i < C) body(i, TailLanes{Vec::tail(C - i)}, 1);
}

// A float sum over a row, kept in four vector accumulators (one per slot) and combined in a
// fixed order, so that a row's result never depends on anything but the row.
struct RowSum {
    V part[4] = {Vec::zero(), Vec::zero(), Vec::zero(), Vec::zero()};

    void add(int slot, V v) { part[slot] = Vec::add(part[slot], v); }
    void add_product(int slot, V a, V b) { part[slot] = Vec::fmadd(a, b, part[slot]); }
    float total() const { return Vec::sum_lanes(Vec::add(Vec::add(part[0], part[1]), Vec::add(part[2], part[3]))); }
};

// The passes after the first one work on a row in cache and load nothing new from memory, so
// they ask for the next row meanwhile, one prefetch per 64-byte line.
struct NextRow {
    static constexpr int64_t kLineFloats = 16;
    const float* row;  // nullptr when there is none

    NextRow(const float* rows, int64_t stride, int64_t n, int64_t N)
        : row(rows != nullptr && n + 1 < N ? rows + (n + 1) * stride : nullptr) {}

    void prefetch(int64_t i) const {
        if (row && i % kLineFloats == 0) _mm_prefetch(reinterpret_cast<const char*>(row + i), _MM_HINT_T0);
    }
};

inline float inverse_sqrt(float value) { return 1.0f / _mm_cvtss_f32(_mm_sqrt_ss(_mm_set_ss(value))); }

// Pass 1 of both forward kernels: s = x + residual, stored to sum when requested and staged in
// y (which only x may alias) so that the later passes read a single stream. Calls
// reduce(slot, s) for each vector, whose lanes outside the row are zero. Returns s's row.
template <class Reduce>
inline const float* forward_sum_pass(const NormForwardArgs& a, int64_t n, Reduce&& reduce) {
    const float* x = a.x + n * a.x_stride;
    const float* residual = a.residual ? a.residual + n * a.residual_stride : nullptr;
    float* y = a.y + n * a.y_stride;
    float* sum = a.sum ? a.sum + n * a.sum_stride : nullptr;
    for_each_vector(a.C, [&](int64_t i, auto lanes, int slot) {
        V s = lanes.load(x + i);
        if (residual) {
            s = Vec::add(s, lanes.load(residual + i));
            lanes.store(y + i, s);
        }
        if (sum) lanes.store(sum + i, s);
        reduce(slot, s);
    });
    return residual ? y : x;
}

inline void layernorm_forward_row(const NormForwardArgs& a, int64_t n) {
    const float C = static_cast<float>(a.C);
    RowSum s_sum;
    const float* s = forward_sum_pass(a, n, [&](int slot, V v) { s_sum.add(slot, v); });
    const float estimate = s_sum.total() / C;

    // Corrected two-pass variance, as in the reference: d = s - estimate is exact when the row
    // sits on a large offset, and mean(d) corrects the rounding error of the estimate.
    RowSum d_sum, d_square_sum;
    const V estimate_v = Vec::broadcast(estimate);
    const NextRow next_x(a.x, a.x_stride, n, a.N), next_residual(a.residual, a.residual_stride, n, a.N);
    for_each_vector(a.C, [&](int64_t i, auto lanes, int slot) {
        next_x.prefetch(i);
        next_residual.prefetch(i);
        const V d = lanes.keep(Vec::sub(lanes.load(s + i), estimate_v));
        d_sum.add(slot, d);
        d_square_sum.add_product(slot, d, d);
    });
    const float correction = d_sum.total() / C;
    const float variance = d_square_sum.total() / C - correction * correction;
    const float rstd = inverse_sqrt((variance > 0.0f ? variance : 0.0f) + a.epsilon);

    const V correction_v = Vec::broadcast(correction);
    const V rstd_v = Vec::broadcast(rstd);
    const float* gamma = a.gamma;
    const float* beta = a.beta;
    float* y = a.y + n * a.y_stride;
    for_each_vector(a.C, [&](int64_t i, auto lanes, int) {
        const V d = Vec::sub(Vec::sub(lanes.load(s + i), estimate_v), correction_v);
        const V normalized = Vec::mul(d, rstd_v);
        const V gamma_v = lanes.load(gamma + i);
        lanes.store(y + i, beta ? Vec::fmadd(normalized, gamma_v, lanes.load(beta + i)) : Vec::mul(normalized, gamma_v));
    });
    if (a.mean) {
        a.mean[n] = estimate + correction;
        a.rstd[n] = rstd;
    }
}

inline void rmsnorm_forward_row(const NormForwardArgs& a, int64_t n) {
    RowSum square_sum;
    const float* s = forward_sum_pass(a, n, [&](int slot, V v) { square_sum.add_product(slot, v, v); });
    const float rstd = inverse_sqrt(square_sum.total() / static_cast<float>(a.C) + a.epsilon);

    const V rstd_v = Vec::broadcast(rstd);
    const float* gamma = a.gamma;
    float* y = a.y + n * a.y_stride;
    const NextRow next_x(a.x, a.x_stride, n, a.N), next_residual(a.residual, a.residual_stride, n, a.N);
    for_each_vector(a.C, [&](int64_t i, auto lanes, int) {
        next_x.prefetch(i);
        next_residual.prefetch(i);
        lanes.store(y + i, Vec::mul(Vec::mul(lanes.load(s + i), rstd_v), lanes.load(gamma + i)));
    });
    if (a.rstd) a.rstd[n] = rstd;
}

// dx = rstd * (dnorm - mean(dnorm) - xhat * mean(dnorm * xhat)) + ds, with dnorm = dy * gamma
// and xhat = (s - mean) * rstd; RMSNorm has neither the mean of s nor mean(dnorm).
template <bool kLayerNorm>
inline void backward_row(const NormBackwardArgs& a, int64_t n, float* dgamma_partial, float* dbeta_partial) {
    const float* dy = a.dy + n * a.dy_stride;
    const float* ds = a.ds ? a.ds + n * a.ds_stride : nullptr;
    const float* s = a.s + n * a.s_stride;
    const float* gamma = a.gamma;
    float* dx = a.dx + n * a.dx_stride;
    const V mean = Vec::broadcast(kLayerNorm ? a.mean[n] : 0.0f);
    const V rstd = Vec::broadcast(a.rstd[n]);
    const auto xhat_at = [&](const auto& lanes, int64_t i) { return Vec::mul(Vec::sub(lanes.load(s + i), mean), rstd); };

    // dnorm is zero outside the row (dy loads as zero there), so both sums need no masking.
    RowSum dnorm_sum, dnorm_xhat_sum;
    for_each_vector(a.C, [&](int64_t i, auto lanes, int slot) {
        const V dnorm = Vec::mul(lanes.load(dy + i), lanes.load(gamma + i));
        if constexpr (kLayerNorm) dnorm_sum.add(slot, dnorm);
        dnorm_xhat_sum.add_product(slot, dnorm, xhat_at(lanes, i));
    });
    const float C = static_cast<float>(a.C);
    const V dnorm_mean = Vec::broadcast(kLayerNorm ? dnorm_sum.total() / C : 0.0f);
    const V dnorm_xhat_mean = Vec::broadcast(dnorm_xhat_sum.total() / C);

    // Every element of dy and ds is read before dx's element is written: dx may be dy or ds.
    const NextRow next_dy(a.dy, a.dy_stride, n, a.N), next_ds(a.ds, a.ds_stride, n, a.N), next_s(a.s, a.s_stride, n, a.N);
    for_each_vector(a.C, [&](int64_t i, auto lanes, int) {
        next_dy.prefetch(i);
        next_ds.prefetch(i);
        next_s.prefetch(i);
        const V dy_v = lanes.load(dy + i);
        const V xhat = xhat_at(lanes, i);
        const V dnorm = Vec::mul(dy_v, lanes.load(gamma + i));
        V dx_v = Vec::mul(Vec::fnmadd(xhat, dnorm_xhat_mean, Vec::sub(dnorm, dnorm_mean)), rstd);
        if (ds) dx_v = Vec::add(dx_v, lanes.load(ds + i));
        lanes.store(dx + i, dx_v);
        if (dgamma_partial) lanes.store(dgamma_partial + i, Vec::fmadd(dy_v, xhat, lanes.load(dgamma_partial + i)));
        if (dbeta_partial) lanes.store(dbeta_partial + i, Vec::add(lanes.load(dbeta_partial + i), dy_v));
    });
}

inline void clear(float* partial, int64_t C) {
    if (partial) std::memset(partial, 0, static_cast<size_t>(C) * sizeof(float));
}

// The passes are lambdas handed to for_each_vector and run at full speed only once all of it is
// inlined into one loop per pass, with the accumulators in registers. GCC's heuristics stop
// inlining as the bodies grow, so the entry points ask for everything they call to be inlined.
#if defined(__GNUC__)
#define NE_NORM_INLINE_ALL [[gnu::flatten]]
#else
#define NE_NORM_INLINE_ALL
#endif

NE_NORM_INLINE_ALL void layernorm_forward(const NormForwardArgs& args, int64_t row_begin, int64_t row_end) {
    for (int64_t n = row_begin; n < row_end; ++n) layernorm_forward_row(args, n);
}

NE_NORM_INLINE_ALL void rmsnorm_forward(const NormForwardArgs& args, int64_t row_begin, int64_t row_end) {
    for (int64_t n = row_begin; n < row_end; ++n) rmsnorm_forward_row(args, n);
}

NE_NORM_INLINE_ALL void layernorm_backward(const NormBackwardArgs& args, int64_t row_begin, int64_t row_end,
                                           float* dgamma_partial, float* dbeta_partial) {
    clear(dgamma_partial, args.C);
    clear(dbeta_partial, args.C);
    for (int64_t n = row_begin; n < row_end; ++n) backward_row<true>(args, n, dgamma_partial, dbeta_partial);
}

NE_NORM_INLINE_ALL void rmsnorm_backward(const NormBackwardArgs& args, int64_t row_begin, int64_t row_end,
                                         float* dgamma_partial) {
    clear(dgamma_partial, args.C);
    for (int64_t n = row_begin; n < row_end; ++n) backward_row<false>(args, n, dgamma_partial, nullptr);
}

#undef NE_NORM_INLINE_ALL
