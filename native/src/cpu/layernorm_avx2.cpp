// The norm kernels for AVX2 + FMA (this file is compiled with -mavx2 -mfma by its name). Only
// these headers may be included: an inline function of any other header, compiled here with AVX
// instructions, could be the copy the linker keeps for the baseline code as well.
#include "layernorm.hpp"

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace ne::cpu::avx2 {

struct Vec {
    using V = __m256;
    static constexpr int64_t kWidth = 8;

    static V zero() { return _mm256_setzero_ps(); }
    static V broadcast(float value) { return _mm256_set1_ps(value); }
    static V add(V a, V b) { return _mm256_add_ps(a, b); }
    static V sub(V a, V b) { return _mm256_sub_ps(a, b); }
    static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
    static V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
    static V fnmadd(V a, V b, V c) { return _mm256_fnmadd_ps(a, b, c); }
    static V load(const float* p) { return _mm256_loadu_ps(p); }
    static void store(float* p, V v) { _mm256_storeu_ps(p, v); }

    struct Tail {
        __m256i mask;  // all ones in the lanes that take part
    };
    static Tail tail(int64_t count) {
        const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        return {_mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(count)), lane)};
    }
    static V load(const float* p, Tail t) { return _mm256_maskload_ps(p, t.mask); }
    static void store(float* p, V v, Tail t) { _mm256_maskstore_ps(p, t.mask, v); }
    static V keep(V v, Tail t) { return _mm256_and_ps(v, _mm256_castsi256_ps(t.mask)); }

    static float sum_lanes(V v) {
        __m128 sum = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        sum = _mm_add_ps(sum, _mm_movehl_ps(sum, sum));
        sum = _mm_add_ss(sum, _mm_movehdup_ps(sum));
        return _mm_cvtss_f32(sum);
    }
};

#include "layernorm_simd.inl"

}  // namespace ne::cpu::avx2
