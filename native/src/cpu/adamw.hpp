// The fused AdamW step on the CPU: the constants of one step and the per-ISA kernels that
// adamw.cpp dispatches to.
//
// The SIMD translation units include this header, so it must stay free of anything but plain
// declarations (no standard-library templates or inline functions).
#pragma once

#include <cstdint>

namespace ne::cpu {

// The f32 constants of one step, computed once per call (see adamw.cpp).
struct AdamwConstants {
    float learning_rate;
    float beta1;
    float beta2;
    float one_minus_beta1;           // 1.0f - beta1, in f32
    float one_minus_beta2;           // 1.0f - beta2, in f32
    float inverse_bias_correction1;  // 1 / (1 - beta1^step), in double, rounded to f32
    float inverse_bias_correction2;  // 1 / (1 - beta2^step), in double, rounded to f32
    float epsilon;
    float weight_decay;
    float gradient_scale;            // grad_scale * clip, in f32
};

// Updates param, m and v at count consecutive elements; grad is read only.
using AdamwKernel = void (*)(const AdamwConstants& constants, float* param, const float* grad, float* m, float* v,
                             int64_t count);

namespace avx2 {
void adamw_step(const AdamwConstants& constants, float* param, const float* grad, float* m, float* v, int64_t count);
}  // namespace avx2

namespace avx512 {
void adamw_step(const AdamwConstants& constants, float* param, const float* grad, float* m, float* v, int64_t count);
}  // namespace avx512

}  // namespace ne::cpu
