// The AdamW step for AVX-512 (this file is compiled with the AVX-512 F/BW/DQ/VL/VNNI flags by
// its name). Only these headers may be included: an inline function of any other header,
// compiled here with AVX-512 instructions, could be the copy the linker keeps for the baseline
// code as well.

#include "adamw.hpp"

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace ne::cpu::avx512 {

// Internal linkage: the other kernel families define their own Vec and helpers in this namespace.
namespace {

#include "vec_exp.inl"
#include "small_ops_vec.inl"
#include "adamw_simd.inl"

}  // namespace

void adamw_step(const AdamwConstants& constants, float* param, const float* grad, float* m, float* v, int64_t count) {
    adamw_step_vectors(constants, param, grad, m, v, count);
}

}  // namespace ne::cpu::avx512
