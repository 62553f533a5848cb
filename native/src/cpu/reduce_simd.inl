// Reduction and softmax row kernels shared by the AVX2 and AVX-512 builds. Included inside
// namespace ne::cpu::avx2 / ne::cpu::avx512 (in an anonymous namespace there) after
// small_ops_vec.inl. Each follows its scalar reference in reduce.cpp; the sums keep several
// accumulators, combined in a fixed order, and exp is vectorized, so the bits differ from the
// reference's. This file includes nothing.

// Four accumulators of kWidth / 2 doubles, two float vectors a step: the adds of one
// accumulator do not wait on each other, and the loop keeps up with memory.
template <bool kSquares>
double sum_in_double(const float* x, int64_t count) {
    using D = Vec::D;
    D acc[4] = {Vec::dzero(), Vec::dzero(), Vec::dzero(), Vec::dzero()};
    const auto accumulate = [](D& into, D value) { into = Vec::dadd(into, kSquares ? Vec::dmul(value, value) : value); };
    int64_t i = 0;
    for (; i + 2 * kWidth <= count; i += 2 * kWidth) {
        const V first = Vec::load(x + i), second = Vec::load(x + i + kWidth);
        accumulate(acc[0], Vec::widen_low(first));
        accumulate(acc[1], Vec::widen_high(first));
        accumulate(acc[2], Vec::widen_low(second));
        accumulate(acc[3], Vec::widen_high(second));
    }
    for_each_vector(count - i, [&](int64_t j, auto lanes) {
        const V v = lanes.load(x + i + j);
        accumulate(acc[0], Vec::widen_low(v));
        accumulate(acc[1], Vec::widen_high(v));
    });
    return Vec::dsum_lanes(Vec::dadd(Vec::dadd(acc[0], acc[1]), Vec::dadd(acc[2], acc[3])));
}

double sum(const float* x, int64_t count) { return sum_in_double<false>(x, count); }
double sum_squares(const float* x, int64_t count) { return sum_in_double<true>(x, count); }

void softmax(const float* x, float* out, int64_t count) {
    const V minus_infinity = Vec::broadcast(-__builtin_inff());
    V max = minus_infinity;
    for_each_vector(count, [&](int64_t i, auto lanes) { max = Vec::max(max, lanes.fill_outside(lanes.load(x + i), minus_infinity)); });
    const float row_max = Vec::max_lanes(max);
    if (row_max == -__builtin_inff()) {
        for_each_vector(count, [&](int64_t i, auto lanes) { lanes.store(out + i, Vec::zero()); });
        return;
    }

    // out may be x: each element is read before it is written.
    const V shift = Vec::broadcast(row_max);
    V total = Vec::zero();
    for_each_vector(count, [&](int64_t i, auto lanes) {
        const V e = lanes.fill_outside(Vec::exp(Vec::sub(lanes.load(x + i), shift)), Vec::zero());
        lanes.store(out + i, e);
        total = Vec::add(total, e);
    });
    const V scale = Vec::broadcast(1.0f / Vec::sum_lanes(total));
    for_each_vector(count, [&](int64_t i, auto lanes) { lanes.store(out + i, Vec::mul(lanes.load(out + i), scale)); });
}
