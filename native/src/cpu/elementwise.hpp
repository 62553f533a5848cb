// Element-wise kernels on the CPU (add, axpby, GELU, dropout): the per-ISA row kernels that
// elementwise.cpp dispatches to. Each kernel works on `count` consecutive floats of one row.
//
// The SIMD translation units include this header, so it must stay free of anything but plain
// declarations and constants (no standard-library templates or inline functions).
#pragma once

#include "nativeengine.h"

#include <cstdint>

namespace ne::cpu {

// GELU, tanh approximation: y = 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3).
constexpr float kGeluScale = 0.7978845608028654f;  // sqrt(2/pi)
constexpr float kGeluCubic = 0.044715f;

// The dropout mask (see elementwise.cpp): element i of a tensor is kept when the high 32 bits
// of SplitMix64's output number i + 1 for the seed are >= threshold. The constants are those of
// SplitMix64 (Steele, Lea and Flood, 2014).
constexpr uint64_t kSplitMixGamma = 0x9e3779b97f4a7c15ull;
constexpr uint64_t kSplitMixMultiplier1 = 0xbf58476d1ce4e5b9ull;
constexpr uint64_t kSplitMixMultiplier2 = 0x94d049bb133111ebull;

struct DropoutMask {
    uint64_t seed;
    uint32_t threshold;  // floor(probability * 2^32): a 32-bit hash below it drops the element
    float scale;         // 1 / (1 - probability), in f32
};

struct ElementwiseKernels {
    // out = a + b; out may be a or b.
    void (*add)(const float* a, const float* b, float* out, int64_t count);
    // y = fma(alpha, x, beta * y), or y = alpha * x without reading y when beta == 0; y may be x.
    void (*axpby)(float alpha, const float* x, float beta, float* y, int64_t count);
    // y = GELU(x); y may be x.
    void (*gelu_forward)(const float* x, float* y, int64_t count);
    // dx = dy * GELU'(x); dx may be x or dy.
    void (*gelu_backward)(const float* x, const float* dy, float* dx, int64_t count);
    // out = keep ? x * scale : 0 for the elements first_index .. first_index + count - 1 of the
    // tensor (flat row-major indices); out may be x.
    void (*dropout)(const DropoutMask& mask, uint64_t first_index, const float* x, float* out, int64_t count);
};

namespace avx2 {
extern const ElementwiseKernels elementwise_kernels;
}  // namespace avx2

namespace avx512 {
extern const ElementwiseKernels elementwise_kernels;
}  // namespace avx512

// The kernels of a context's SIMD level (the scalar reference for NE_SIMD_LEVEL_SCALAR).
const ElementwiseKernels& elementwise_kernels_for(ne_simd_level level);

}  // namespace ne::cpu
