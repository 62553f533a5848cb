// Vector traits of the small-op kernels (elementwise, reduce, adamw) for the instruction set of
// the translation unit that includes it: AVX-512 where __AVX512F__ is defined, else AVX2 + FMA.
// Include it inside the ISA namespace, in an anonymous namespace there (the other kernel
// families define their own Vec), after <immintrin.h> and vec_exp.inl. It includes nothing.
//
//   V, Mask, kWidth                 the float vector, a lane mask, the float lanes
//   zero, broadcast, add, sub, mul, div, sqrt, max, abs, exp
//   fmadd(a, b, c)                  a * b + c with one rounding
//   greater_equal(a, b)             the lanes where a >= b
//   select(m, a, b)                 m ? a : b per lane
//   load(p), store(p, v)            full vectors, unaligned
//   first_lanes(count)              lanes [0, count), 0 < count < kWidth
//   load(p, m), store(p, v, m)      only the lanes of m (load gives 0 in the others)
//   sum_lanes(v), max_lanes(v)      horizontal sum and maximum, in a fixed order
//   D, widen_low(v), widen_high(v)  double vectors of kWidth / 2 lanes; v's lower and upper halves
//   dzero, dadd, dmul, dsum_lanes   the same for doubles

#if defined(__AVX512F__)

struct Vec {
    using V = __m512;
    using Mask = __mmask16;  // one bit per lane
    using D = __m512d;
    static constexpr int64_t kWidth = 16;

    static V zero() { return _mm512_setzero_ps(); }
    static V broadcast(float value) { return _mm512_set1_ps(value); }
    static V add(V a, V b) { return _mm512_add_ps(a, b); }
    static V sub(V a, V b) { return _mm512_sub_ps(a, b); }
    static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
    static V div(V a, V b) { return _mm512_div_ps(a, b); }
    static V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
    static V sqrt(V v) { return _mm512_sqrt_ps(v); }
    static V max(V a, V b) { return _mm512_max_ps(a, b); }
    static V abs(V v) { return _mm512_abs_ps(v); }
    static V exp(V v) { return exp_ps(v); }
    static Mask greater_equal(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_GE_OQ); }
    static V select(Mask m, V a, V b) { return _mm512_mask_blend_ps(m, b, a); }

    static V load(const float* p) { return _mm512_loadu_ps(p); }
    static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
    static Mask first_lanes(int64_t count) { return static_cast<Mask>((1u << count) - 1u); }
    static V load(const float* p, Mask m) { return _mm512_maskz_loadu_ps(m, p); }
    static void store(float* p, V v, Mask m) { _mm512_mask_storeu_ps(p, m, v); }

    // The halves are taken with the zero-masking extracts: GCC 12 warns (-Wuninitialized) inside
    // _mm512_castps512_ps256 and the unmasked extracts, which start from an undefined vector.
    static __m256 low_half(V v) { return _mm512_maskz_extractf32x8_ps(0xff, v, 0); }
    static __m256 high_half(V v) { return _mm512_maskz_extractf32x8_ps(0xff, v, 1); }

    static float sum_lanes(V v) {
        const __m256 half = _mm256_add_ps(low_half(v), high_half(v));
        __m128 sum = _mm_add_ps(_mm256_castps256_ps128(half), _mm256_extractf128_ps(half, 1));
        sum = _mm_add_ps(sum, _mm_movehl_ps(sum, sum));
        sum = _mm_add_ss(sum, _mm_movehdup_ps(sum));
        return _mm_cvtss_f32(sum);
    }
    static float max_lanes(V v) {
        const __m256 half = _mm256_max_ps(low_half(v), high_half(v));
        __m128 max = _mm_max_ps(_mm256_castps256_ps128(half), _mm256_extractf128_ps(half, 1));
        max = _mm_max_ps(max, _mm_movehl_ps(max, max));
        max = _mm_max_ss(max, _mm_movehdup_ps(max));
        return _mm_cvtss_f32(max);
    }

    static D dzero() { return _mm512_setzero_pd(); }
    static D dadd(D a, D b) { return _mm512_add_pd(a, b); }
    static D dmul(D a, D b) { return _mm512_mul_pd(a, b); }
    static D widen_low(V v) { return _mm512_cvtps_pd(low_half(v)); }
    static D widen_high(V v) { return _mm512_cvtps_pd(high_half(v)); }
    static double dsum_lanes(D v) {
        const __m256d half = _mm256_add_pd(_mm512_maskz_extractf64x4_pd(0xf, v, 0), _mm512_maskz_extractf64x4_pd(0xf, v, 1));
        const __m128d sum = _mm_add_pd(_mm256_castpd256_pd128(half), _mm256_extractf128_pd(half, 1));
        return _mm_cvtsd_f64(_mm_add_sd(sum, _mm_unpackhi_pd(sum, sum)));
    }
};

#else

struct Vec {
    using V = __m256;
    using Mask = __m256;  // all ones in the lanes that take part
    using D = __m256d;
    static constexpr int64_t kWidth = 8;

    static V zero() { return _mm256_setzero_ps(); }
    static V broadcast(float value) { return _mm256_set1_ps(value); }
    static V add(V a, V b) { return _mm256_add_ps(a, b); }
    static V sub(V a, V b) { return _mm256_sub_ps(a, b); }
    static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
    static V div(V a, V b) { return _mm256_div_ps(a, b); }
    static V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
    static V sqrt(V v) { return _mm256_sqrt_ps(v); }
    static V max(V a, V b) { return _mm256_max_ps(a, b); }
    static V abs(V v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }
    static V exp(V v) { return exp_ps(v); }
    static Mask greater_equal(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_GE_OQ); }
    static V select(Mask m, V a, V b) { return _mm256_blendv_ps(b, a, m); }

    static V load(const float* p) { return _mm256_loadu_ps(p); }
    static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
    static Mask first_lanes(int64_t count) {
        const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        return _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(count)), lane));
    }
    static V load(const float* p, Mask m) { return _mm256_maskload_ps(p, _mm256_castps_si256(m)); }
    static void store(float* p, V v, Mask m) { _mm256_maskstore_ps(p, _mm256_castps_si256(m), v); }

    static float sum_lanes(V v) {
        __m128 sum = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        sum = _mm_add_ps(sum, _mm_movehl_ps(sum, sum));
        sum = _mm_add_ss(sum, _mm_movehdup_ps(sum));
        return _mm_cvtss_f32(sum);
    }
    static float max_lanes(V v) {
        __m128 max = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        max = _mm_max_ps(max, _mm_movehl_ps(max, max));
        max = _mm_max_ss(max, _mm_movehdup_ps(max));
        return _mm_cvtss_f32(max);
    }

    static D dzero() { return _mm256_setzero_pd(); }
    static D dadd(D a, D b) { return _mm256_add_pd(a, b); }
    static D dmul(D a, D b) { return _mm256_mul_pd(a, b); }
    static D widen_low(V v) { return _mm256_cvtps_pd(_mm256_castps256_ps128(v)); }
    static D widen_high(V v) { return _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)); }
    static double dsum_lanes(D v) {
        const __m128d sum = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
        return _mm_cvtsd_f64(_mm_add_sd(sum, _mm_unpackhi_pd(sum, sum)));
    }
};

#endif

using V = Vec::V;
using Mask = Vec::Mask;
constexpr int64_t kWidth = Vec::kWidth;

// The lanes of one vector that a loop step covers: all of them, or the first few at the end of
// a row. A tail runs the very same vector code as a full vector, so that an element's result
// never depends on where a range of work began.
struct AllLanes {
    V load(const float* p) const { return Vec::load(p); }
    void store(float* p, V v) const { Vec::store(p, v); }
    V fill_outside(V v, V) const { return v; }  // v in the covered lanes, the filler elsewhere
};

struct FirstLanes {
    Mask mask;
    V load(const float* p) const { return Vec::load(p, mask); }
    void store(float* p, V v) const { Vec::store(p, v, mask); }
    V fill_outside(V v, V filler) const { return Vec::select(mask, v, filler); }
};

// Calls body(i, lanes) for each vector of a row of `count` floats, i being its first element.
template <class Body>
inline void for_each_vector(int64_t count, Body&& body) {
    int64_t i = 0;
    for (; i + kWidth <= count; i += kWidth) body(i, AllLanes{});
    if (i < count) body(i, FirstLanes{Vec::first_lanes(count - i)});
}
