// Reductions and softmax on the CPU (ne_sum_rows, ne_reduce_sum, ne_softmax_forward): the
// per-ISA row kernels that reduce.cpp dispatches to. ne_sum_rows adds rows with the element-wise
// add of elementwise.hpp.
//
// The SIMD translation units include this header, so it must stay free of anything but plain
// declarations (no standard-library templates or inline functions).
#pragma once

#include "nativeengine.h"

#include <cstdint>

namespace ne::cpu {

struct ReduceKernels {
    // Sum of x[0 .. count), accumulated in double.
    double (*sum)(const float* x, int64_t count);
    // Sum of the squares of x[0 .. count), each square and the sum in double.
    double (*sum_squares)(const float* x, int64_t count);
    // out = softmax(x) over one row of count floats; a row of -infinity gives 0. out may be x.
    void (*softmax)(const float* x, float* out, int64_t count);
};

namespace avx2 {
extern const ReduceKernels reduce_kernels;
}  // namespace avx2

namespace avx512 {
extern const ReduceKernels reduce_kernels;
}  // namespace avx512

}  // namespace ne::cpu
