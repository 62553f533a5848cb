// Times NativeEngine's CUDA kernels through the public C ABI, for tests/gpu/run.sh, which sets
// them beside PyTorch's (torch_bench.py prints the same names). Each case runs a few warm-up
// calls, then enough timed calls to fill about half a second, with the context synchronized
// before the clock starts and after it stops; the time is the mean per call.
//
// Output, one line per case: RESULT <name> <milliseconds> <rate> <unit>
#include "nativeengine.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace {

void check(ne_status status, const char* what) {
    if (status != NE_STATUS_OK) {
        std::fprintf(stderr, "%s failed: %s: %s\n", what, ne_status_string(status), ne_last_error());
        std::exit(1);
    }
}

ne_tensor* tensor(ne_context* context, ne_dtype dtype, std::vector<int64_t> shape) {
    ne_tensor* t = nullptr;
    check(ne_tensor_create(context, dtype, static_cast<int32_t>(shape.size()), shape.data(), &t), "ne_tensor_create");
    return t;
}

ne_tensor* random_tensor(ne_context* context, std::vector<int64_t> shape, uint64_t seed) {
    ne_tensor* t = tensor(context, NE_DTYPE_F32, shape);
    int64_t count = 1;
    for (const int64_t d : shape) count *= d;
    std::vector<float> values(static_cast<size_t>(count));
    std::mt19937_64 generator(seed);
    std::uniform_real_distribution<float> distribution(-1.0f, 1.0f);
    for (float& v : values) v = distribution(generator);
    check(ne_tensor_write(t, values.data(), values.size() * sizeof(float)), "ne_tensor_write");
    return t;
}

double time_ms(ne_context* context, const std::function<ne_status()>& call, const char* name) {
    for (int i = 0; i < 3; ++i) check(call(), name);
    check(ne_context_synchronize(context), "ne_context_synchronize");
    using clock = std::chrono::steady_clock;
    int iterations = 1;
    while (true) {
        const auto start = clock::now();
        for (int i = 0; i < iterations; ++i) check(call(), name);
        check(ne_context_synchronize(context), "ne_context_synchronize");
        const double seconds = std::chrono::duration<double>(clock::now() - start).count();
        if (seconds > 0.5 || iterations >= (1 << 16)) return seconds * 1e3 / iterations;
        iterations *= seconds < 0.05 ? 10 : 2;
    }
}

void report(const char* name, double ms, double rate, const char* unit) {
    std::printf("RESULT %s %.6f %.3f %s\n", name, ms, rate, unit);
    std::fflush(stdout);
}

}  // namespace

int main() {
    ne_context_options options{};
    options.struct_size = sizeof options;
    options.backend = NE_BACKEND_CUDA;
    ne_context* context = nullptr;
    check(ne_context_create(&options, &context), "ne_context_create");
    ne_context_info info{};
    info.struct_size = sizeof info;
    check(ne_context_get_info(context, &info), "ne_context_get_info");
    std::printf("DEVICE %s\n", info.device_name);

    {  // Fused residual + LayerNorm at [4096, 1024].
        const int64_t N = 4096, C = 1024;
        ne_tensor* x = random_tensor(context, {N, C}, 1);
        ne_tensor* residual = random_tensor(context, {N, C}, 2);
        ne_tensor* gamma = random_tensor(context, {C}, 3);
        ne_tensor* beta = random_tensor(context, {C}, 4);
        ne_tensor* y = tensor(context, NE_DTYPE_F32, {N, C});
        ne_tensor* sum = tensor(context, NE_DTYPE_F32, {N, C});
        ne_tensor* mean = tensor(context, NE_DTYPE_F32, {N});
        ne_tensor* rstd = tensor(context, NE_DTYPE_F32, {N});
        ne_tensor* dy = random_tensor(context, {N, C}, 5);
        ne_tensor* dx = tensor(context, NE_DTYPE_F32, {N, C});
        ne_tensor* dgamma = tensor(context, NE_DTYPE_F32, {C});
        ne_tensor* dbeta = tensor(context, NE_DTYPE_F32, {C});
        const ne_norm_params params{sizeof(ne_norm_params), 1e-5f, 0};
        const double bytes = static_cast<double>(N * C) * sizeof(float);
        double ms = time_ms(context, [&] { return ne_layernorm_forward(context, &params, x, nullptr, gamma, beta, y, nullptr, mean, rstd); },
                            "ne_layernorm_forward");
        report("layernorm_forward_4096x1024", ms, 2 * bytes / (ms * 1e-3) / 1e12, "TB/s");
        ms = time_ms(context, [&] { return ne_layernorm_forward(context, &params, x, residual, gamma, beta, y, sum, mean, rstd); },
                     "ne_layernorm_forward (residual)");
        report("layernorm_residual_forward_4096x1024", ms, 4 * bytes / (ms * 1e-3) / 1e12, "TB/s");
        ms = time_ms(context, [&] { return ne_layernorm_backward(context, &params, dy, nullptr, sum, gamma, mean, rstd, dx, dgamma, dbeta); },
                     "ne_layernorm_backward");
        report("layernorm_backward_4096x1024", ms, 3 * bytes / (ms * 1e-3) / 1e12, "TB/s");
        for (ne_tensor* t : {x, residual, gamma, beta, y, sum, mean, rstd, dy, dx, dgamma, dbeta}) ne_tensor_destroy(t);
    }

    {  // GEMMs at 4096^3: int8 (int32 output, and f32 with the dequantizing epilogue), f32 and bf16.
        const int64_t n = 4096;
        const double operations = 2.0 * static_cast<double>(n) * n * n;
        ne_tensor* a = tensor(context, NE_DTYPE_I8, {n, n});
        ne_tensor* b = tensor(context, NE_DTYPE_I8, {n, n});
        check(ne_tensor_fill(a, 3.0), "ne_tensor_fill");
        check(ne_tensor_fill(b, -2.0), "ne_tensor_fill");
        ne_tensor* acc = tensor(context, NE_DTYPE_I32, {n, n});
        ne_tensor* c = tensor(context, NE_DTYPE_F32, {n, n});
        ne_tensor* scales = random_tensor(context, {n}, 6);
        double ms = time_ms(context, [&] { return ne_gemm_int8(context, a, b, nullptr, nullptr, nullptr, acc); }, "ne_gemm_int8 (i32)");
        report("gemm_int8_i32_4096", ms, operations / (ms * 1e-3) / 1e12, "TOPS");
        ms = time_ms(context, [&] { return ne_gemm_int8(context, a, b, scales, scales, scales, c); }, "ne_gemm_int8 (f32)");
        report("gemm_int8_f32_4096", ms, operations / (ms * 1e-3) / 1e12, "TOPS");
        ne_tensor* fa = random_tensor(context, {n, n}, 7);
        ne_tensor* fb = random_tensor(context, {n, n}, 8);
        const ne_gemm_params params{sizeof(ne_gemm_params), 0, 1, 1.0f, 0.0f};
        ms = time_ms(context, [&] { return ne_gemm(context, &params, fa, fb, c); }, "ne_gemm (f32)");
        report("gemm_f32_4096", ms, operations / (ms * 1e-3) / 1e12, "TFLOP/s");
        ne_tensor* ha = tensor(context, NE_DTYPE_BF16, {n, n});
        ne_tensor* hb = tensor(context, NE_DTYPE_BF16, {n, n});
        ne_tensor* hc = tensor(context, NE_DTYPE_BF16, {n, n});
        check(ne_tensor_fill(ha, 0.5), "ne_tensor_fill");
        check(ne_tensor_fill(hb, -0.25), "ne_tensor_fill");
        ms = time_ms(context, [&] { return ne_gemm(context, &params, ha, hb, hc); }, "ne_gemm (bf16)");
        report("gemm_bf16_4096", ms, operations / (ms * 1e-3) / 1e12, "TFLOP/s");
        for (ne_tensor* t : {a, b, acc, c, scales, fa, fb, ha, hb, hc}) ne_tensor_destroy(t);
    }

    check(ne_context_destroy(context), "ne_context_destroy");
    return 0;
}
