// One training step of a softmax output layer: the full chunked cross-entropy against the
// sampled softmax, at V = 100000 classes, D = 512, N = 4096 rows, S = 1024 samples, on all
// threads. How to read it:
// - BM_full_cross_entropy_step: ne_cross_entropy_forward + ne_cross_entropy_backward (dhidden,
//   dweight, dbias). It runs three GEMMs of 2 N V D flops each (GFLOPS counts them), seconds per
//   step: a single iteration. scratch_MiB is the working memory the step allocated (the
//   context's peak bytes beyond its tensors), logits_MiB what the N x V logits alone would take.
// - BM_sampled_softmax_step: ne_sample_log_uniform (unique, a new seed per step) +
//   ne_sampled_softmax_forward (correction, accidental hits removed) + backward. The goal is a
//   step at least 10x faster than the full one. With accumulate = 0 (the 5th argument) the
//   backward also zeroes the rows of the [V, D] dweight that no target or sample touches, a
//   memset of V D floats; accumulate = 1 leaves them alone, as when gradients are summed.
// Arguments: V, D, N, S (sampled) or chunk_size (full; 0 = default), accumulate. NE_MAX_SIMD=avx2
// caps the SIMD level; =scalar runs the one-thread reference, far too slow for the full step here.
#include "bench_support.hpp"

#include <algorithm>
#include <cmath>

namespace {

using namespace ne_bench;

constexpr double kMiB = 1024.0 * 1024.0;

ne_memory_stats memory_stats(ne_context* context) {
    ne_memory_stats stats{};
    stats.struct_size = sizeof stats;
    check(ne_context_get_memory_stats(context, &stats), "ne_context_get_memory_stats");
    return stats;
}

// The most memory the kernels held at once since `before`, beyond the tensors live then.
int64_t scratch_peak_since(ne_context* context, const ne_memory_stats& before) {
    return memory_stats(context).peak_bytes - before.live_bytes;
}

// The tensors both losses read and write.
struct OutputLayer {
    OutputLayer(int64_t classes, int64_t hidden_size, int64_t rows)
        : V(classes), D(hidden_size), N(rows), context(make_context()),
          hidden(make_tensor(context.get(), NE_DTYPE_F32, {N, D}, random_floats(static_cast<size_t>(N * D), 1))),
          weight(make_tensor(context.get(), NE_DTYPE_F32, {V, D}, random_floats(static_cast<size_t>(V * D), 2))),
          bias(make_tensor(context.get(), NE_DTYPE_F32, {V}, random_floats(static_cast<size_t>(V), 3))),
          targets(make_tensor(context.get(), NE_DTYPE_I32, {N}, zipf_targets())),
          loss(make_tensor(context.get(), NE_DTYPE_F32, {N})),
          dloss(make_tensor(context.get(), NE_DTYPE_F32, {N}, std::vector<float>(static_cast<size_t>(N), 1.0f / static_cast<float>(N)))),
          dhidden(make_tensor(context.get(), NE_DTYPE_F32, {N, D})),
          dweight(make_tensor(context.get(), NE_DTYPE_F32, {V, D})),
          dbias(make_tensor(context.get(), NE_DTYPE_F32, {V})) {}

    // Targets drawn as words of a text are, roughly log-uniformly (Zipf).
    std::vector<int32_t> zipf_targets() const {
        std::mt19937_64 generator(4);
        std::uniform_real_distribution<double> uniform(0.0, 1.0);
        std::vector<int32_t> values(static_cast<size_t>(N));
        for (int32_t& value : values) {
            const double c = std::floor(std::exp(uniform(generator) * std::log(static_cast<double>(V) + 1.0))) - 1.0;
            value = static_cast<int32_t>(std::min(c, static_cast<double>(V - 1)));
        }
        return values;
    }

    int64_t V, D, N;
    Context context;
    Tensor hidden, weight, bias, targets, loss, dloss, dhidden, dweight, dbias;
};

// Arguments: V, D, N, chunk_size (0 = default), accumulate.
void BM_full_cross_entropy_step(benchmark::State& state) {
    OutputLayer layer(state.range(0), state.range(1), state.range(2));
    ne_context* context = layer.context.get();
    Tensor lse = make_tensor(context, NE_DTYPE_F32, {layer.N});
    const ne_cross_entropy_params params{sizeof(ne_cross_entropy_params), state.range(3), static_cast<int32_t>(state.range(4)), 0};
    const ne_memory_stats before = memory_stats(context);
    for (auto _ : state) {
        check(ne_cross_entropy_forward(context, &params, layer.hidden.get(), layer.weight.get(), layer.bias.get(),
                                       layer.targets.get(), layer.loss.get(), lse.get()),
              "ne_cross_entropy_forward");
        check(ne_cross_entropy_backward(context, &params, layer.hidden.get(), layer.weight.get(), layer.bias.get(),
                                        layer.targets.get(), lse.get(), layer.dloss.get(), layer.dhidden.get(),
                                        layer.dweight.get(), layer.dbias.get()),
              "ne_cross_entropy_backward");
    }
    const double flops = 6.0 * static_cast<double>(layer.N) * static_cast<double>(layer.V) * static_cast<double>(layer.D);
    state.counters["GFLOPS"] = benchmark::Counter(flops * 1e-9 * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
    state.counters["scratch_MiB"] = static_cast<double>(scratch_peak_since(context, before)) / kMiB;
    state.counters["logits_MiB"] = static_cast<double>(layer.N * layer.V * 4) / kMiB;
}

// Arguments: V, D, N, S, accumulate.
void BM_sampled_softmax_step(benchmark::State& state) {
    OutputLayer layer(state.range(0), state.range(1), state.range(2));
    ne_context* context = layer.context.get();
    const int64_t N = layer.N, S = state.range(3);
    Tensor samples = make_tensor(context, NE_DTYPE_I32, {S});
    Tensor sample_counts = make_tensor(context, NE_DTYPE_F32, {S}), target_counts = make_tensor(context, NE_DTYPE_F32, {N});
    Tensor probs = make_tensor(context, NE_DTYPE_F32, {N, S + 1});
    const ne_sampled_softmax_params params{sizeof(ne_sampled_softmax_params), 1, 1, static_cast<int32_t>(state.range(4))};
    const ne_memory_stats before = memory_stats(context);
    uint64_t seed = 0;
    for (auto _ : state) {
        const ne_sampler_params sampler{sizeof(ne_sampler_params), layer.V, ++seed, 1};
        check(ne_sample_log_uniform(context, &sampler, layer.targets.get(), samples.get(), sample_counts.get(), target_counts.get()),
              "ne_sample_log_uniform");
        check(ne_sampled_softmax_forward(context, &params, layer.hidden.get(), layer.weight.get(), layer.bias.get(),
                                         layer.targets.get(), samples.get(), sample_counts.get(), target_counts.get(),
                                         layer.loss.get(), probs.get()),
              "ne_sampled_softmax_forward");
        check(ne_sampled_softmax_backward(context, &params, layer.hidden.get(), layer.weight.get(), layer.targets.get(),
                                          samples.get(), probs.get(), layer.dloss.get(), layer.dhidden.get(),
                                          layer.dweight.get(), layer.dbias.get()),
              "ne_sampled_softmax_backward");
    }
    state.counters["scratch_MiB"] = static_cast<double>(scratch_peak_since(context, before)) / kMiB;
}

}  // namespace

BENCHMARK(BM_full_cross_entropy_step)
    ->ArgNames({"V", "D", "N", "chunk", "accumulate"})
    ->Args({100000, 512, 4096, 0, 0})
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

BENCHMARK(BM_sampled_softmax_step)
    ->ArgNames({"V", "D", "N", "S", "accumulate"})
    ->Args({100000, 512, 4096, 1024, 0})
    ->Args({100000, 512, 4096, 1024, 1})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
