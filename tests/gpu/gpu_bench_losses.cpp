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
#include "bench_support.hpp"

#include <cstdio>
#include <random>
#include <vector>

namespace {

using namespace bench;

const int64_t kN = scaled(4096, 48), kD = scaled(512, 32), kV = scaled(100000, 2000), kS = scaled(1024, 64);

ne_memory_stats memory(ne_context* context) {
    ne_memory_stats stats{};
    stats.struct_size = sizeof stats;
    check(ne_context_get_memory_stats(context, &stats), "ne_context_get_memory_stats");
    return stats;
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

void report_memory(const char* name, ne_context* context, const Inputs& in) {
    std::printf("MEMORY %s %lld %lld\n", name, static_cast<long long>(memory(context).peak_bytes - in.bytes),
                static_cast<long long>(in.bytes));
    std::fflush(stdout);
}

// Each case makes a context of its own, so that the context's peak bytes are the case's.
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
