// The softmax row kernels for AVX2 + FMA (this file is compiled with -mavx2 -mfma by its name),
// used by both the full and the sampled cross-entropy. Only these headers may be included: an
// inline function of any other header, compiled here with AVX instructions, could be the copy
// the linker keeps for the baseline code as well.
//
// Each loop keeps two vector accumulators, so that consecutive vectors do not wait on one add
// (or max) chain, and combines them and their lanes in a fixed order.
#include "cross_entropy.hpp"

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace ne::cpu::avx2 {

#include "vec_exp.inl"

namespace {

constexpr int64_t kWidth = 8;

// All ones in the first `count` lanes, 0 < count < kWidth.
__m256i tail_mask(int64_t count) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(count)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

float sum_lanes(__m256 v) {
    __m128 sum = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    sum = _mm_add_ps(sum, _mm_movehl_ps(sum, sum));
    sum = _mm_add_ss(sum, _mm_movehdup_ps(sum));
    return _mm_cvtss_f32(sum);
}

float max_lanes(__m256 v) {
    __m128 max = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    max = _mm_max_ps(max, _mm_movehl_ps(max, max));
    max = _mm_max_ss(max, _mm_movehdup_ps(max));
    return _mm_cvtss_f32(max);
}

__m256 load_biased(const float* z, const float* bias) {
    const __m256 v = _mm256_loadu_ps(z);
    return bias ? _mm256_add_ps(v, _mm256_loadu_ps(bias)) : v;
}

__m256 load_biased(const float* z, const float* bias, __m256i mask) {
    const __m256 v = _mm256_maskload_ps(z, mask);
    return bias ? _mm256_add_ps(v, _mm256_maskload_ps(bias, mask)) : v;
}

}  // namespace

namespace softmax_rows {

float add_bias_and_max(float* z, const float* bias, int64_t count) {
    const __m256 lowest = _mm256_set1_ps(-__builtin_inff());
    __m256 max0 = lowest, max1 = lowest;
    int64_t i = 0;
    for (; i + 2 * kWidth <= count; i += 2 * kWidth) {
        const __m256 v0 = load_biased(z + i, bias ? bias + i : nullptr);
        const __m256 v1 = load_biased(z + i + kWidth, bias ? bias + i + kWidth : nullptr);
        _mm256_storeu_ps(z + i, v0);
        _mm256_storeu_ps(z + i + kWidth, v1);
        max0 = _mm256_max_ps(max0, v0);
        max1 = _mm256_max_ps(max1, v1);
    }
    for (; i + kWidth <= count; i += kWidth) {
        const __m256 v = load_biased(z + i, bias ? bias + i : nullptr);
        _mm256_storeu_ps(z + i, v);
        max0 = _mm256_max_ps(max0, v);
    }
    if (i < count) {
        const __m256i mask = tail_mask(count - i);
        const __m256 v = load_biased(z + i, bias ? bias + i : nullptr, mask);
        _mm256_maskstore_ps(z + i, mask, v);
        max1 = _mm256_max_ps(max1, _mm256_blendv_ps(lowest, v, _mm256_castsi256_ps(mask)));
    }
    return max_lanes(_mm256_max_ps(max0, max1));
}

float sum_exp(const float* z, int64_t count, float shift) {
    const __m256 offset = _mm256_set1_ps(shift);
    __m256 sum0 = _mm256_setzero_ps(), sum1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 2 * kWidth <= count; i += 2 * kWidth) {
        sum0 = _mm256_add_ps(sum0, exp_ps(_mm256_sub_ps(_mm256_loadu_ps(z + i), offset)));
        sum1 = _mm256_add_ps(sum1, exp_ps(_mm256_sub_ps(_mm256_loadu_ps(z + i + kWidth), offset)));
    }
    for (; i + kWidth <= count; i += kWidth) {
        sum0 = _mm256_add_ps(sum0, exp_ps(_mm256_sub_ps(_mm256_loadu_ps(z + i), offset)));
    }
    if (i < count) {
        const __m256i mask = tail_mask(count - i);
        const __m256 e = exp_ps(_mm256_sub_ps(_mm256_maskload_ps(z + i, mask), offset));
        sum1 = _mm256_add_ps(sum1, _mm256_and_ps(e, _mm256_castsi256_ps(mask)));
    }
    return sum_lanes(_mm256_add_ps(sum0, sum1));
}

void scaled_softmax(float* z, const float* bias, int64_t count, float shift, float scale) {
    const __m256 offset = _mm256_set1_ps(shift);
    const __m256 factor = _mm256_set1_ps(scale);
    int64_t i = 0;
    for (; i + kWidth <= count; i += kWidth) {
        const __m256 e = exp_ps(_mm256_sub_ps(load_biased(z + i, bias ? bias + i : nullptr), offset));
        _mm256_storeu_ps(z + i, _mm256_mul_ps(e, factor));
    }
    if (i < count) {
        const __m256i mask = tail_mask(count - i);
        const __m256 e = exp_ps(_mm256_sub_ps(load_biased(z + i, bias ? bias + i : nullptr, mask), offset));
        _mm256_maskstore_ps(z + i, mask, _mm256_mul_ps(e, factor));
    }
}

float dot(const float* a, const float* b, int64_t count) {
    __m256 sum0 = _mm256_setzero_ps(), sum1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 2 * kWidth <= count; i += 2 * kWidth) {
        sum0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), sum0);
        sum1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + kWidth), _mm256_loadu_ps(b + i + kWidth), sum1);
    }
    for (; i + kWidth <= count; i += kWidth) {
        sum0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), sum0);
    }
    if (i < count) {
        const __m256i mask = tail_mask(count - i);
        sum1 = _mm256_fmadd_ps(_mm256_maskload_ps(a + i, mask), _mm256_maskload_ps(b + i, mask), sum1);
    }
    return sum_lanes(_mm256_add_ps(sum0, sum1));
}

}  // namespace softmax_rows
}  // namespace ne::cpu::avx2
