// The reduction and softmax kernels for AVX2 + FMA (this file is compiled with -mavx2 -mfma by
// its name). Only these headers may be included: an inline function of any other header,
// compiled here with AVX instructions, could be the copy the linker keeps for the baseline code
// as well.
#include "reduce.hpp"

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace ne::cpu::avx2 {

// Internal linkage: the other kernel families define their own Vec and helpers in this namespace.
namespace {

#include "vec_exp.inl"
#include "small_ops_vec.inl"
#include "reduce_simd.inl"

}  // namespace

constinit const ReduceKernels reduce_kernels{sum, sum_squares, softmax};

}  // namespace ne::cpu::avx2
