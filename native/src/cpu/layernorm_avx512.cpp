// The norm kernels for AVX-512 (this file is compiled with the AVX-512 F/BW/DQ/VL/VNNI flags by
// its name). Only these headers may be included: an inline function of any other header,
// compiled here with AVX-512 instructions, could be the copy the linker keeps for the baseline
// code as well.
#include "layernorm.hpp"

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace ne::cpu::avx512 {

struct Vec {
    using V = __m512;
    static constexpr int64_t kWidth = 16;

    static V zero() { return _mm512_setzero_ps(); }
    static V broadcast(float value) { return _mm512_set1_ps(value); }
    static V add(V a, V b) { return _mm512_add_ps(a, b); }
    static V sub(V a, V b) { return _mm512_sub_ps(a, b); }
    static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
    static V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
    static V fnmadd(V a, V b, V c) { return _mm512_fnmadd_ps(a, b, c); }
    static V load(const float* p) { return _mm512_loadu_ps(p); }
    static void store(float* p, V v) { _mm512_storeu_ps(p, v); }

    struct Tail {
        __mmask16 mask;  // one bit per lane that takes part
    };
    static Tail tail(int64_t count) { return {static_cast<__mmask16>((1u << count) - 1u)}; }
    static V load(const float* p, Tail t) { return _mm512_maskz_loadu_ps(t.mask, p); }
    static void store(float* p, V v, Tail t) { _mm512_mask_storeu_ps(p, t.mask, v); }
    static V keep(V v, Tail t) { return _mm512_maskz_mov_ps(t.mask, v); }

    // The halves are taken with the zero-masking extract: GCC 12 warns (-Wuninitialized) inside
    // _mm512_castps512_ps256 and the unmasked extracts, which start from an undefined vector.
    static float sum_lanes(V v) {
        const __m256 half = _mm256_add_ps(_mm512_maskz_extractf32x8_ps(0xff, v, 0), _mm512_maskz_extractf32x8_ps(0xff, v, 1));
        __m128 sum = _mm_add_ps(_mm256_castps256_ps128(half), _mm256_extractf128_ps(half, 1));
        sum = _mm_add_ps(sum, _mm_movehl_ps(sum, sum));
        sum = _mm_add_ss(sum, _mm_movehdup_ps(sum));
        return _mm_cvtss_f32(sum);
    }
};

#include "layernorm_simd.inl"

}  // namespace ne::cpu::avx512
