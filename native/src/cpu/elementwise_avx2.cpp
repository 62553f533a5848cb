// The element-wise kernels for AVX2 + FMA (this file is compiled with -mavx2 -mfma by its name).
// Only these headers may be included: an inline function of any other header, compiled here
// with AVX instructions, could be the copy the linker keeps for the baseline code as well.
#include "elementwise.hpp"

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace ne::cpu::avx2 {

// Internal linkage: the other kernel families define their own Vec and helpers in this namespace.
namespace {

#include "vec_exp.inl"
#include "small_ops_vec.inl"

// The dropout hash of elementwise.cpp on 8 lanes: two vectors of four 64-bit states. AVX2 has
// no 64-bit multiply; it is put together from 32 x 32 -> 64-bit products.
struct DropoutHash {
    static __m256i multiply(__m256i a, uint64_t constant) {
        const __m256i low = _mm256_set1_epi64x(static_cast<long long>(constant & 0xffffffffu));
        const __m256i high = _mm256_set1_epi64x(static_cast<long long>(constant >> 32));
        const __m256i cross = _mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(a, 32), low), _mm256_mul_epu32(a, high));
        return _mm256_add_epi64(_mm256_mul_epu32(a, low), _mm256_slli_epi64(cross, 32));
    }

    static __m256i mix(__m256i z) {
        z = multiply(_mm256_xor_si256(z, _mm256_srli_epi64(z, 30)), kSplitMixMultiplier1);
        z = multiply(_mm256_xor_si256(z, _mm256_srli_epi64(z, 27)), kSplitMixMultiplier2);
        return _mm256_xor_si256(z, _mm256_srli_epi64(z, 31));
    }

    static long long gamma_times(uint64_t k) { return static_cast<long long>(k * kSplitMixGamma); }

    static Mask keep_lanes(uint64_t seed, uint64_t first_index, uint32_t threshold) {
        const __m256i base = _mm256_set1_epi64x(static_cast<long long>(seed + (first_index + 1) * kSplitMixGamma));
        const __m256i low = mix(_mm256_add_epi64(base, _mm256_setr_epi64x(0, gamma_times(1), gamma_times(2), gamma_times(3))));
        const __m256i high =
            mix(_mm256_add_epi64(base, _mm256_setr_epi64x(gamma_times(4), gamma_times(5), gamma_times(6), gamma_times(7))));
        // The upper 32 bits of each state, in element order: the shuffle gives lanes 0 1 4 5 | 2 3 6 7.
        const __m256 upper = _mm256_shuffle_ps(_mm256_castsi256_ps(low), _mm256_castsi256_ps(high), _MM_SHUFFLE(3, 1, 3, 1));
        const __m256i hash = _mm256_permute4x64_epi64(_mm256_castps_si256(upper), _MM_SHUFFLE(3, 1, 2, 0));
        // hash >= threshold, unsigned: max(hash, threshold) == hash.
        const __m256i bound = _mm256_set1_epi32(static_cast<int>(threshold));
        return _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_max_epu32(hash, bound), hash));
    }
};

#include "elementwise_simd.inl"

}  // namespace

constinit const ElementwiseKernels elementwise_kernels{add, axpby, gelu_forward, gelu_backward, dropout};

}  // namespace ne::cpu::avx2
