// The flash attention kernels for AVX-512 (this file is compiled with the AVX-512
// F/BW/DQ/VL/VNNI flags by its name). Only these headers may be included: an inline function
// of any other header, compiled here with AVX-512 instructions, could be the copy the linker
// keeps for the baseline code as well.

#include "attention.hpp"

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace ne::cpu::avx512 {

// Internal linkage: the other kernel families define their own Vec and helpers in this namespace.
namespace {

#include "vec_exp.inl"

struct Vec {
    using V = __m512;
    using Mask = __mmask16;  // one bit per lane that takes part
    static constexpr int64_t kWidth = 16;

    static V zero() { return _mm512_setzero_ps(); }
    static V broadcast(float value) { return _mm512_set1_ps(value); }
    static V add(V a, V b) { return _mm512_add_ps(a, b); }
    static V sub(V a, V b) { return _mm512_sub_ps(a, b); }
    static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
    static V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
    static V max(V a, V b) { return _mm512_max_ps(a, b); }
    static V exp(V x) { return exp_ps(x); }
    static V load(const float* p) { return _mm512_loadu_ps(p); }
    static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
    static V load(const float* p, Mask m) { return _mm512_maskz_loadu_ps(m, p); }
    static void store(float* p, V v, Mask m) { _mm512_mask_storeu_ps(p, m, v); }

    static Mask first_lanes(int64_t count) {
        if (count <= 0) return 0;
        if (count >= kWidth) return static_cast<Mask>(0xffff);
        return static_cast<Mask>((1u << count) - 1u);
    }
    static Mask greater(const int32_t* counts, int64_t value) {
        return _mm512_cmpgt_epi32_mask(_mm512_loadu_si512(counts), _mm512_set1_epi32(static_cast<int>(value)));
    }
    static Mask equal(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ); }
    static V select(Mask m, V a, V b) { return _mm512_mask_blend_ps(m, b, a); }

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

#include "attention_simd.inl"

}  // namespace

constinit const AttentionKernels attention_kernels{
    forward_workspace_bytes, backward_workspace_bytes, forward_rows, backward_delta, backward_keys, backward_rows,
    backward_head,
};

}  // namespace ne::cpu::avx512
