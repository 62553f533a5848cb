// The AdamW step for AVX2 + FMA (this file is compiled with -mavx2 -mfma by its name). Only
// these headers may be included: an inline function of any other header, compiled here with
// AVX instructions, could be the copy the linker keeps for the baseline code as well.
#include "adamw.hpp"

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace ne::cpu::avx2 {

// Internal linkage: the other kernel families define their own Vec and helpers in this namespace.
namespace {

#include "vec_exp.inl"
#include "small_ops_vec.inl"
#include "adamw_simd.inl"

}  // namespace

void adamw_step(const AdamwConstants& constants, float* param, const float* grad, float* m, float* v, int64_t count) {
    adamw_step_vectors(constants, param, grad, m, v, count);
}

}  // namespace ne::cpu::avx2
