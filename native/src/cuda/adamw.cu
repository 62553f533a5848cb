// The fused AdamW step on CUDA: one kernel over the parameter's elements, then the launcher.
// The clip factor is computed on the device from grad_norm_squared (no host round trip), with
// the f32 operations of cpu/adamw.cpp; the update is the CPU reference's, operation for
// operation (explicit fmaf, IEEE division and square root), so the bits match the CPU's.
#include "common.cuh"

namespace ne::cuda {
namespace {

__global__ void adamw_kernel(AdamwLaunch l) {
    cpu::AdamwConstants k = l.constants;
    if (l.grad_norm_squared != nullptr) {
        const float ratio = l.max_grad_norm / (fabsf(k.gradient_scale) * sqrtf(*l.grad_norm_squared));
        k.gradient_scale = k.gradient_scale * (ratio < 1.0f ? ratio : 1.0f);
    }
    const int64_t count = l.rows * l.cols;
    for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += int64_t{gridDim.x} * blockDim.x) {
        // Back-to-back operands arrive as one row: no 64-bit division (see elementwise.cu).
        const int64_t r = l.rows == 1 ? 0 : i / l.cols, c = l.rows == 1 ? i : i % l.cols;
        float* param = l.param.data + r * l.param.row_stride + c;
        float* m = l.m.data + r * l.m.row_stride + c;
        float* v = l.v.data + r * l.v.row_stride + c;
        const float g = l.grad.data[r * l.grad.row_stride + c] * k.gradient_scale;
        *m = fmaf(k.beta1, *m, k.one_minus_beta1 * g);
        *v = fmaf(k.beta2, *v, k.one_minus_beta2 * (g * g));
        const float m_hat = *m * k.inverse_bias_correction1;
        const float denominator = sqrtf(*v * k.inverse_bias_correction2) + k.epsilon;
        const float update = fmaf(k.weight_decay, *param, m_hat / denominator);
        *param = fmaf(-k.learning_rate, update, *param);
    }
}

constexpr int kThreads = 256;

}  // namespace

void launch_adamw(const Queue& queue, const AdamwLaunch& launch) {
    adamw_kernel<<<grid_for(queue, launch.rows * launch.cols, kThreads), kThreads, 0, queue.stream>>>(launch);
    check_launch("adamw_kernel");
}

}  // namespace ne::cuda
