// The element-wise kernels for AVX-512 (this file is compiled with the AVX-512 F/BW/DQ/VL/VNNI
// flags by its name). Only these headers may be included: an inline function of any other
// header, compiled here with AVX-512 instructions, could be the copy the linker keeps for the
// baseline code as well.

#include "elementwise.hpp"

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace ne::cpu::avx512 {

// Internal linkage: the other kernel families define their own Vec and helpers in this namespace.
namespace {

#include "vec_exp.inl"
#include "small_ops_vec.inl"

// The dropout hash of elementwise.cpp on 16 lanes: two vectors of eight 64-bit states.
struct DropoutHash {
    static __m512i mix(__m512i z) {
        z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 30)),
                               _mm512_set1_epi64(static_cast<long long>(kSplitMixMultiplier1)));
        z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 27)),
                               _mm512_set1_epi64(static_cast<long long>(kSplitMixMultiplier2)));
        return _mm512_xor_si512(z, _mm512_srli_epi64(z, 31));
    }

    static long long gamma_times(uint64_t k) { return static_cast<long long>(k * kSplitMixGamma); }

    // The upper 32 bits of the eight states, in order.
    static __m256i upper_halves(__m512i z) { return _mm512_cvtepi64_epi32(_mm512_srli_epi64(z, 32)); }

    static Mask keep_lanes(uint64_t seed, uint64_t first_index, uint32_t threshold) {
        const __m512i base = _mm512_set1_epi64(static_cast<long long>(seed + (first_index + 1) * kSplitMixGamma));
        const __m512i low = mix(_mm512_add_epi64(base, _mm512_setr_epi64(0, gamma_times(1), gamma_times(2), gamma_times(3),
                                                                          gamma_times(4), gamma_times(5), gamma_times(6),
                                                                          gamma_times(7))));
        const __m512i high = mix(_mm512_add_epi64(base, _mm512_setr_epi64(gamma_times(8), gamma_times(9), gamma_times(10),
                                                                           gamma_times(11), gamma_times(12), gamma_times(13),
                                                                           gamma_times(14), gamma_times(15))));
        const __m512i hash = _mm512_inserti64x4(_mm512_zextsi256_si512(upper_halves(low)), upper_halves(high), 1);
        return _mm512_cmpge_epu32_mask(hash, _mm512_set1_epi32(static_cast<int>(threshold)));
    }
};

#include "elementwise_simd.inl"

}  // namespace

constinit const ElementwiseKernels elementwise_kernels{add, axpby, gelu_forward, gelu_backward, dropout};

}  // namespace ne::cpu::avx512
