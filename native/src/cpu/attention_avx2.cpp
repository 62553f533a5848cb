// The flash attention kernels for AVX2 + FMA (this file is compiled with -mavx2 -mfma by its
// name). Only these headers may be included: an inline function of any other header, compiled
// here with AVX instructions, could be the copy the linker keeps for the baseline code as well.
#include "attention.hpp"

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace ne::cpu::avx2 {

// Internal linkage: the other kernel families define their own Vec and helpers in this namespace.
namespace {

#include "vec_exp.inl"

struct Vec {
    using V = __m256;
    using Mask = __m256;  // all ones in the lanes that take part
    static constexpr int64_t kWidth = 8;

    static V zero() { return _mm256_setzero_ps(); }
    static V broadcast(float value) { return _mm256_set1_ps(value); }
    static V add(V a, V b) { return _mm256_add_ps(a, b); }
    static V sub(V a, V b) { return _mm256_sub_ps(a, b); }
    static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
    static V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
    static V max(V a, V b) { return _mm256_max_ps(a, b); }
    static V exp(V x) { return exp_ps(x); }
    static V load(const float* p) { return _mm256_loadu_ps(p); }
    static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
    static V load(const float* p, Mask m) { return _mm256_maskload_ps(p, _mm256_castps_si256(m)); }
    static void store(float* p, V v, Mask m) { _mm256_maskstore_ps(p, _mm256_castps_si256(m), v); }

    static Mask first_lanes(int64_t count) {
        const int lanes = count < 0 ? 0 : count > kWidth ? static_cast<int>(kWidth) : static_cast<int>(count);
        const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        return _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(lanes), lane));
    }
    static Mask greater(const int32_t* counts, int64_t value) {
        const __m256i loaded = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(counts));
        return _mm256_castsi256_ps(_mm256_cmpgt_epi32(loaded, _mm256_set1_epi32(static_cast<int>(value))));
    }
    static Mask equal(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_EQ_OQ); }
    static V select(Mask m, V a, V b) { return _mm256_blendv_ps(b, a, m); }

    static float sum_lanes(V v) {
        __m128 sum = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
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

}  // namespace ne::cpu::avx2
