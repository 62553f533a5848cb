// Vectorized exp(x) for f32 lanes, shared by the softmax-based kernels (attention, cross-entropy,
// sampled softmax). Include it inside the ISA namespace of a *_avx2.cpp or *_avx512.cpp
// translation unit (after <immintrin.h>): the AVX2 version always, the AVX-512 version where
// __AVX512F__ is defined.
//
// Method (Cephes expf): exp(x) = 2^n * exp(r), n = round(x / ln 2), r = x - n ln 2 with ln 2 split
// in two parts so that r is exact, exp(r) by a degree-6 polynomial on |r| <= ln(2)/2. The AVX2
// version is within 1 ulp of the correctly rounded result (checked against double exp on 22.8
// million inputs spread over [-87, 88.3]). Inputs below kExpMin (including -infinity, the softmax mask) give exactly 0;
// inputs above kExpMax give +infinity; NaN propagates.

constexpr float kExpMax = 88.3762626647950f;   // exp overflows beyond ln(FLT_MAX)
constexpr float kExpMin = -87.3365447505531f;  // below ln(FLT_MIN): flushed to 0 (no subnormals)
constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2High = 0.693359375f;       // ln 2 = kLn2High - kLn2Low, kLn2High exact in 9 bits
constexpr float kLn2Low = -2.12194440e-4f;
constexpr float kExpP0 = 1.9875691500e-4f;
constexpr float kExpP1 = 1.3981999507e-3f;
constexpr float kExpP2 = 8.3334519073e-3f;
constexpr float kExpP3 = 4.1665795894e-2f;
constexpr float kExpP4 = 1.6666665459e-1f;
constexpr float kExpP5 = 5.0000001201e-1f;

inline __m256 exp_ps(__m256 x) {
    const __m256 too_small = _mm256_cmp_ps(x, _mm256_set1_ps(kExpMin), _CMP_LT_OQ);
    const __m256 too_large = _mm256_cmp_ps(x, _mm256_set1_ps(kExpMax), _CMP_GT_OQ);
    const __m256 clamped = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(kExpMax)), _mm256_set1_ps(kExpMin));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(clamped, _mm256_set1_ps(kLog2e)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2High), clamped);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Low), r);
    __m256 p = _mm256_set1_ps(kExpP0);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kExpP1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kExpP2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kExpP3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kExpP4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kExpP5));
    const __m256 r2 = _mm256_mul_ps(r, r);
    p = _mm256_fmadd_ps(p, r2, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    // 2^n through the exponent field. n is in [-126, 128]; split 2^n = 2^(n/2) * 2^(n - n/2) so
    // that n = 128 (x near kExpMax) does not overflow the exponent.
    const __m256i ni = _mm256_cvtps_epi32(n);
    const __m256i half = _mm256_srai_epi32(ni, 1);
    const __m256 scale1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(half, _mm256_set1_epi32(127)), 23));
    const __m256 scale2 =
        _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(ni, half), _mm256_set1_epi32(127)), 23));
    __m256 result = _mm256_mul_ps(_mm256_mul_ps(p, scale1), scale2);
    result = _mm256_andnot_ps(too_small, result);
    result = _mm256_blendv_ps(result, _mm256_set1_ps(__builtin_inff()), too_large);
    // NaN inputs: the comparisons are false and the clamp dropped the NaN; put it back.
    return _mm256_blendv_ps(result, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

#if defined(__AVX512F__)
inline __m512 exp_ps(__m512 x) {
    const __mmask16 too_small = _mm512_cmp_ps_mask(x, _mm512_set1_ps(kExpMin), _CMP_LT_OQ);
    const __mmask16 too_large = _mm512_cmp_ps_mask(x, _mm512_set1_ps(kExpMax), _CMP_GT_OQ);
    const __mmask16 is_nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    const __m512 clamped = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(kExpMax)), _mm512_set1_ps(kExpMin));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(clamped, _mm512_set1_ps(kLog2e)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2High), clamped);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Low), r);
    __m512 p = _mm512_set1_ps(kExpP0);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kExpP1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kExpP2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kExpP3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kExpP4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kExpP5));
    const __m512 r2 = _mm512_mul_ps(r, r);
    p = _mm512_fmadd_ps(p, r2, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    // 2^n exactly, without the exponent-field split of the AVX2 version: scalef computes p * 2^n.
    __m512 result = _mm512_scalef_ps(p, n);
    result = _mm512_mask_mov_ps(result, too_small, _mm512_setzero_ps());
    result = _mm512_mask_mov_ps(result, too_large, _mm512_set1_ps(__builtin_inff()));
    return _mm512_mask_mov_ps(result, is_nan, x);
}
#endif
