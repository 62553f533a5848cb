// Fused residual-add + LayerNorm / RMSNorm on the CPU: the arguments the kernels see after
// validation, and the per-ISA row kernels. Shape letters as in llm.c: N rows, C channels.
//
// The SIMD translation units include this header, so it must stay free of anything but plain
// declarations (no standard-library templates or inline functions: see layernorm_avx2.cpp).
#pragma once

#include <cstdint>

namespace ne::cpu {

// Row strides are in elements; channels are contiguous.
struct NormForwardArgs {
    int64_t N;
    int64_t C;
    const float* x;
    int64_t x_stride;
    const float* residual;  // nullptr: s = x
    int64_t residual_stride;
    const float* gamma;     // [C]
    const float* beta;      // [C], or nullptr for no shift; always nullptr for RMSNorm
    float* y;               // may be x (same rows)
    int64_t y_stride;
    float* sum;             // receives s; nullptr: not stored; may be x or residual (same rows)
    int64_t sum_stride;
    float* mean;            // [N] or nullptr; always nullptr for RMSNorm
    float* rstd;            // [N] or nullptr (LayerNorm: set exactly when mean is)
    float epsilon;
};

struct NormBackwardArgs {
    int64_t N;
    int64_t C;
    const float* dy;
    int64_t dy_stride;
    const float* ds;        // gradient reaching s from its other uses; nullptr: none
    int64_t ds_stride;
    const float* s;         // the normalized input of the forward pass
    int64_t s_stride;
    const float* gamma;     // [C]
    const float* mean;      // [N]; nullptr for RMSNorm
    const float* rstd;      // [N]
    float* dx;              // may be dy or ds (same rows)
    int64_t dx_stride;
};

// Each kernel handles rows [row_begin, row_end). The backward kernels overwrite the partial
// sums over those rows, dgamma_partial[C] = sum dy * xhat and dbeta_partial[C] = sum dy, or
// skip them when the pointer is nullptr; the caller reduces the partials in a fixed order.
namespace avx2 {
void layernorm_forward(const NormForwardArgs& args, int64_t row_begin, int64_t row_end);
void rmsnorm_forward(const NormForwardArgs& args, int64_t row_begin, int64_t row_end);
void layernorm_backward(const NormBackwardArgs& args, int64_t row_begin, int64_t row_end, float* dgamma_partial,
                        float* dbeta_partial);
void rmsnorm_backward(const NormBackwardArgs& args, int64_t row_begin, int64_t row_end, float* dgamma_partial);
}  // namespace avx2

namespace avx512 {
void layernorm_forward(const NormForwardArgs& args, int64_t row_begin, int64_t row_end);
void rmsnorm_forward(const NormForwardArgs& args, int64_t row_begin, int64_t row_end);
void layernorm_backward(const NormBackwardArgs& args, int64_t row_begin, int64_t row_end, float* dgamma_partial,
                        float* dbeta_partial);
void rmsnorm_backward(const NormBackwardArgs& args, int64_t row_begin, int64_t row_end, float* dgamma_partial);
}  // namespace avx512

}  // namespace ne::cpu
