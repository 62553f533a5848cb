// Times NativeEngine's CUDA softmax losses through the public C ABI at V = 100000, D = 512,
// N = 4096 (f32), for tests/gpu/run.sh, which sets them beside PyTorch's full cross_entropy
// (torch_bench_losses.py):
// - sampled_softmax_step: S = 1024 unique log-uniform samples with the targets' expected counts,
//   forward (loss and probs, correction and accidental-hit removal on) and backward (dhidden,
//   dweight, dbias);
// - fused_ce_step: the full softmax cross-entropy fused with the output projection, forward
//   (loss, lse) and backward (dhidden, dweight, dbias), default chunk.
// Timing as gpu_bench.cpp: warm-up calls, then enough calls to fill about half a second, the
// context synchronized before the clock starts and after it stops; the mean per step.
//
// Output: RESULT <name> <milliseconds> <rate> <unit> per case, and
// MEMORY <name> <bytes> <input bytes>: the context's peak bytes over the inputs' (hidden, weight,
// bias, targets) during the case: outputs, saved tensors and scratch memory of the step.
#include "nativeengine.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <vector>

namespace {

constexpr int64_t kN = 4096, kD = 512, kV = 100000, kS = 1024;

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

ne_tensor* random_tensor(ne_context* context, std::vector<int64_t> shape, uint64_t seed, float scale) {
    ne_tensor* t = tensor(context, NE_DTYPE_F32, shape);
    int64_t count = 1;
    for (const int64_t d : shape) count *= d;
    std::vector<float> values(static_cast<size_t>(count));
    std::mt19937_64 generator(seed);
    std::uniform_real_distribution<float> distribution(-scale, scale);
    for (float& v : values) v = distribution(generator);
    check(ne_tensor_write(t, values.data(), values.size() * sizeof(float)), "ne_tensor_write");
    return t;
}

double time_ms(ne_context* context, const std::function<void()>& step) {
    for (int i = 0; i < 3; ++i) step();
    check(ne_context_synchronize(context), "ne_context_synchronize");
    using clock = std::chrono::steady_clock;
    int iterations = 1;
    while (true) {
        const auto start = clock::now();
        for (int i = 0; i < iterations; ++i) step();
        check(ne_context_synchronize(context), "ne_context_synchronize");
        const double seconds = std::chrono::duration<double>(clock::now() - start).count();
        if (seconds > 0.5 || iterations >= (1 << 16)) return seconds * 1e3 / iterations;
        iterations *= seconds < 0.05 ? 10 : 2;
    }
}

ne_memory_stats memory(ne_context* context) {
    ne_memory_stats stats{};
    stats.struct_size = sizeof stats;
    check(ne_context_get_memory_stats(context, &stats), "ne_context_get_memory_stats");
    return stats;
}

// A fresh context per case, so that its peak bytes are the case's.
ne_context* cuda_context() {
    ne_context_options options{};
    options.struct_size = sizeof options;
    options.backend = NE_BACKEND_CUDA;
    ne_context* context = nullptr;
    check(ne_context_create(&options, &context), "ne_context_create");
    return context;
}

struct Inputs {
    ne_tensor *hidden, *weight, *bias, *targets;
    int64_t bytes;
};

// Activations of about unit size and a weight of the scale of an initialized output layer.
Inputs make_inputs(ne_context* context) {
    Inputs in{random_tensor(context, {kN, kD}, 1, 1.0f), random_tensor(context, {kV, kD}, 2, 0.05f),
              random_tensor(context, {kV}, 3, 0.05f), tensor(context, NE_DTYPE_I32, {kN}), 0};
    std::vector<int32_t> targets(static_cast<size_t>(kN));
    std::mt19937_64 generator(4);
    std::uniform_int_distribution<int32_t> classes(0, static_cast<int32_t>(kV - 1));
    for (int32_t& t : targets) t = classes(generator);
    check(ne_tensor_write(in.targets, targets.data(), targets.size() * sizeof(int32_t)), "ne_tensor_write");
    in.bytes = memory(context).live_bytes;
    return in;
}

void report(const char* name, double ms, double rate, const char* unit) {
    std::printf("RESULT %s %.6f %.3f %s\n", name, ms, rate, unit);
    std::fflush(stdout);
}

void report_memory(const char* name, ne_context* context, const Inputs& in) {
    std::printf("MEMORY %s %lld %lld\n", name, static_cast<long long>(memory(context).peak_bytes - in.bytes),
                static_cast<long long>(in.bytes));
    std::fflush(stdout);
}

void sampled_softmax_step() {
    ne_context* context = cuda_context();
    const Inputs in = make_inputs(context);
    ne_tensor* samples = tensor(context, NE_DTYPE_I32, {kS});
    ne_tensor* sample_counts = tensor(context, NE_DTYPE_F32, {kS});
    ne_tensor* target_counts = tensor(context, NE_DTYPE_F32, {kN});
    ne_tensor* loss = tensor(context, NE_DTYPE_F32, {kN});
    ne_tensor* probs = tensor(context, NE_DTYPE_F32, {kN, kS + 1});
    ne_tensor* dloss = tensor(context, NE_DTYPE_F32, {kN});
    check(ne_tensor_fill(dloss, 1.0 / static_cast<double>(kN)), "ne_tensor_fill");
    ne_tensor* dhidden = tensor(context, NE_DTYPE_F32, {kN, kD});
    ne_tensor* dweight = tensor(context, NE_DTYPE_F32, {kV, kD});
    ne_tensor* dbias = tensor(context, NE_DTYPE_F32, {kV});
    const ne_sampled_softmax_params params{sizeof(ne_sampled_softmax_params), 1, 1, 0};
    uint64_t seed = 1;
    const double ms = time_ms(context, [&] {
        const ne_sampler_params sampler{sizeof(ne_sampler_params), kV, seed++, 1};
        check(ne_sample_log_uniform(context, &sampler, in.targets, samples, sample_counts, target_counts), "ne_sample_log_uniform");
        check(ne_sampled_softmax_forward(context, &params, in.hidden, in.weight, in.bias, in.targets, samples, sample_counts,
                                         target_counts, loss, probs),
              "ne_sampled_softmax_forward");
        check(ne_sampled_softmax_backward(context, &params, in.hidden, in.weight, in.targets, samples, probs, dloss, dhidden,
                                          dweight, dbias),
              "ne_sampled_softmax_backward");
    });
    // Forward and backward GEMMs over the S sampled classes: 2 N S D flops each, three of them.
    report("sampled_softmax_step", ms, 6.0 * kN * kS * kD / (ms * 1e-3) / 1e12, "TFLOP/s");
    report_memory("sampled_softmax_step", context, in);
    for (ne_tensor* t : {in.hidden, in.weight, in.bias, in.targets, samples, sample_counts, target_counts, loss, probs, dloss,
                         dhidden, dweight, dbias}) {
        ne_tensor_destroy(t);
    }
    check(ne_context_destroy(context), "ne_context_destroy");
}

// f32 products, or TF32 ones (allow_tf32) beside PyTorch's f32 with TF32 matmuls allowed.
void fused_ce_step(bool tf32) {
    ne_context* context = cuda_context();
    const Inputs in = make_inputs(context);
    ne_tensor* loss = tensor(context, NE_DTYPE_F32, {kN});
    ne_tensor* lse = tensor(context, NE_DTYPE_F32, {kN});
    ne_tensor* dloss = tensor(context, NE_DTYPE_F32, {kN});
    check(ne_tensor_fill(dloss, 1.0 / static_cast<double>(kN)), "ne_tensor_fill");
    ne_tensor* dhidden = tensor(context, NE_DTYPE_F32, {kN, kD});
    ne_tensor* dweight = tensor(context, NE_DTYPE_F32, {kV, kD});
    ne_tensor* dbias = tensor(context, NE_DTYPE_F32, {kV});
    const ne_cross_entropy_params params{sizeof(ne_cross_entropy_params), 0, 0, tf32 ? 1 : 0};
    const char* name = tf32 ? "fused_ce_step_tf32" : "fused_ce_step";
    const double ms = time_ms(context, [&] {
        check(ne_cross_entropy_forward(context, &params, in.hidden, in.weight, in.bias, in.targets, loss, lse),
              "ne_cross_entropy_forward");
        check(ne_cross_entropy_backward(context, &params, in.hidden, in.weight, in.bias, in.targets, lse, dloss, dhidden, dweight,
                                        dbias),
              "ne_cross_entropy_backward");
    });
    // Logits in the forward pass, again in the backward pass, then dhidden and dweight: 8 N V D.
    report(name, ms, 8.0 * kN * kV * kD / (ms * 1e-3) / 1e12, "TFLOP/s");
    report_memory(name, context, in);
    for (ne_tensor* t : {in.hidden, in.weight, in.bias, in.targets, loss, lse, dloss, dhidden, dweight, dbias}) ne_tensor_destroy(t);
    check(ne_context_destroy(context), "ne_context_destroy");
}

}  // namespace

int main() {
    ne_context* probe = cuda_context();
    ne_context_info info{};
    info.struct_size = sizeof info;
    check(ne_context_get_info(probe, &info), "ne_context_get_info");
    std::printf("DEVICE %s\n", info.device_name);
    check(ne_context_destroy(probe), "ne_context_destroy");
    sampled_softmax_step();
    fused_ce_step(false);
    fused_ce_step(true);
    return 0;
}
