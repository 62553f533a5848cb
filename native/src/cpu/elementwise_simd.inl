// Element-wise row kernels shared by the AVX2 and AVX-512 builds. Included inside namespace
// ne::cpu::avx2 / ne::cpu::avx512 (in an anonymous namespace there) after small_ops_vec.inl and
// the ISA's DropoutHash:
//   DropoutHash::keep_lanes(seed, first_index, threshold)  the mask of the lanes whose elements
//                                                          first_index + lane are kept
// Each mirrors its scalar reference in elementwise.cpp: add, axpby and dropout operation for
// operation, giving its bits; GELU with the vectorized exp and fused multiply-adds, within a few
// ulps of it. This file includes nothing.

void add(const float* a, const float* b, float* out, int64_t count) {
    for_each_vector(count, [&](int64_t i, auto lanes) { lanes.store(out + i, Vec::add(lanes.load(a + i), lanes.load(b + i))); });
}

void axpby(float alpha, const float* x, float beta, float* y, int64_t count) {
    const V alpha_v = Vec::broadcast(alpha), beta_v = Vec::broadcast(beta);
    if (beta == 0.0f) {
        for_each_vector(count, [&](int64_t i, auto lanes) { lanes.store(y + i, Vec::mul(alpha_v, lanes.load(x + i))); });
    } else {
        for_each_vector(count, [&](int64_t i, auto lanes) {
            lanes.store(y + i, Vec::fmadd(alpha_v, lanes.load(x + i), Vec::mul(beta_v, lanes.load(y + i))));
        });
    }
}

// With t = exp(-2|u|) in (0, 1] and q = 1 / (1 + t): s = sigmoid(2u) = 0.5 (1 + tanh(u)) is q
// for u >= 0 and t q below (u has x's sign), and s (1 - s) = t q^2. Neither overflows nor
// cancels for any x, unlike 1 - 2 / (exp(2u) + 1) near tanh = -1 (y for x < 0).
struct GeluTerms {
    V x2;    // x^2
    V s;     // sigmoid(2u)
    V ds;    // s (1 - s)
};

inline GeluTerms gelu_terms(V x) {
    const V one = Vec::broadcast(1.0f);
    const V x2 = Vec::mul(x, x);
    const V u = Vec::mul(Vec::mul(Vec::broadcast(kGeluScale), x), Vec::fmadd(Vec::broadcast(kGeluCubic), x2, one));
    const V t = Vec::exp(Vec::mul(Vec::broadcast(-2.0f), Vec::abs(u)));
    const V q = Vec::div(one, Vec::add(one, t));
    const V tq = Vec::mul(t, q);
    return {x2, Vec::select(Vec::greater_equal(x, Vec::zero()), q, tq), Vec::mul(tq, q)};
}

void gelu_forward(const float* x, float* y, int64_t count) {
    for_each_vector(count, [&](int64_t i, auto lanes) {
        const V xv = lanes.load(x + i);
        lanes.store(y + i, Vec::mul(xv, gelu_terms(xv).s));
    });
}

// GELU'(x) = s + 2 x s (1 - s) du/dx, du/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2).
void gelu_backward(const float* x, const float* dy, float* dx, int64_t count) {
    const V one = Vec::broadcast(1.0f);
    const V two_scale = Vec::broadcast(2.0f * kGeluScale);
    const V three_cubic = Vec::broadcast(3.0f * kGeluCubic);
    for_each_vector(count, [&](int64_t i, auto lanes) {
        const V xv = lanes.load(x + i);
        const GeluTerms g = gelu_terms(xv);
        const V du = Vec::mul(two_scale, Vec::fmadd(three_cubic, g.x2, one));
        const V gradient = Vec::fmadd(Vec::mul(xv, g.ds), du, g.s);
        lanes.store(dx + i, Vec::mul(lanes.load(dy + i), gradient));
    });
}

void dropout(const DropoutMask& mask, uint64_t first_index, const float* x, float* out, int64_t count) {
    const V scale = Vec::broadcast(mask.scale);
    const uint64_t seed = mask.seed;
    const uint32_t threshold = mask.threshold;
    for_each_vector(count, [&](int64_t i, auto lanes) {
        const Mask keep = DropoutHash::keep_lanes(seed, first_index + static_cast<uint64_t>(i), threshold);
        lanes.store(out + i, Vec::select(keep, Vec::mul(lanes.load(x + i), scale), Vec::zero()));
    });
}
