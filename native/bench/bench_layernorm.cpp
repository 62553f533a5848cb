// The norm kernels against the memory-bandwidth ceiling: BM_memcpy (bench_memory.cpp) with the
// same N, C and threads. Bytes counted are the bytes a kernel must move at least:
// - forward: reads x (+ residual), writes y (+ sum), mean and rstd (rstd only for RMSNorm);
// - backward: reads dy, s (+ ds) and the saved statistics, writes dx (dgamma and dbeta are C
//   floats each, negligible).
// Arguments: N rows, C channels, threads (0 = all), fused (1: with residual and sum forward,
// with ds backward). Run with NE_MAX_SIMD=avx2 or =scalar to compare the SIMD levels.
#include "bench_support.hpp"

namespace {

using namespace ne_bench;

enum class Norm { layer, rms };

struct NormBench {
    NormBench(Norm norm_kind, const benchmark::State& state)
        : norm(norm_kind), N(state.range(0)), C(state.range(1)), fused(state.range(3) != 0),
          context(make_context(static_cast<int>(state.range(2)))) {
        const size_t count = static_cast<size_t>(N * C);
        x = make_tensor(context.get(), NE_DTYPE_F32, {N, C}, random_floats(count, 1));
        residual = make_tensor(context.get(), NE_DTYPE_F32, {N, C}, random_floats(count, 2));
        gamma = make_tensor(context.get(), NE_DTYPE_F32, {C}, random_floats(static_cast<size_t>(C), 3));
        beta = make_tensor(context.get(), NE_DTYPE_F32, {C}, random_floats(static_cast<size_t>(C), 4));
        y = make_tensor(context.get(), NE_DTYPE_F32, {N, C});
        sum = make_tensor(context.get(), NE_DTYPE_F32, {N, C});
        mean = make_tensor(context.get(), NE_DTYPE_F32, {N});
        rstd = make_tensor(context.get(), NE_DTYPE_F32, {N});
        dy = make_tensor(context.get(), NE_DTYPE_F32, {N, C}, random_floats(count, 5));
        ds = make_tensor(context.get(), NE_DTYPE_F32, {N, C}, random_floats(count, 6));
        dx = make_tensor(context.get(), NE_DTYPE_F32, {N, C});
        dgamma = make_tensor(context.get(), NE_DTYPE_F32, {C});
        dbeta = make_tensor(context.get(), NE_DTYPE_F32, {C});
        forward();  // the statistics and s the backward pass reads
    }

    void forward() {
        ne_tensor* residual_arg = fused ? residual.get() : nullptr;
        ne_tensor* sum_arg = fused ? sum.get() : nullptr;
        if (norm == Norm::layer) {
            check(ne_layernorm_forward(context.get(), &params, x.get(), residual_arg, gamma.get(), beta.get(), y.get(), sum_arg,
                                       mean.get(), rstd.get()),
                  "ne_layernorm_forward");
        } else {
            check(ne_rmsnorm_forward(context.get(), &params, x.get(), residual_arg, gamma.get(), y.get(), sum_arg, rstd.get()),
                  "ne_rmsnorm_forward");
        }
    }

    void backward() {
        ne_tensor* ds_arg = fused ? ds.get() : nullptr;
        ne_tensor* s = fused ? sum.get() : x.get();
        if (norm == Norm::layer) {
            check(ne_layernorm_backward(context.get(), &params, dy.get(), ds_arg, s, gamma.get(), mean.get(), rstd.get(),
                                        dx.get(), dgamma.get(), dbeta.get()),
                  "ne_layernorm_backward");
        } else {
            check(ne_rmsnorm_backward(context.get(), &params, dy.get(), ds_arg, s, gamma.get(), rstd.get(), dx.get(),
                                      dgamma.get()),
                  "ne_rmsnorm_backward");
        }
    }

    int64_t statistics_count() const { return norm == Norm::layer ? 2 : 1; }

    int64_t forward_bytes() const {
        const int64_t matrices = fused ? 4 : 2;
        return static_cast<int64_t>(sizeof(float)) * (matrices * N * C + statistics_count() * N);
    }

    int64_t backward_bytes() const {
        const int64_t matrices = fused ? 4 : 3;
        return static_cast<int64_t>(sizeof(float)) * (matrices * N * C + statistics_count() * N);
    }

    Norm norm;
    int64_t N, C;
    bool fused;
    Context context;
    ne_norm_params params{sizeof(ne_norm_params), 1e-5f, 0};
    Tensor x, residual, gamma, beta, y, sum, mean, rstd, dy, ds, dx, dgamma, dbeta;
};

void run_forward(benchmark::State& state, Norm norm) {
    NormBench bench(norm, state);
    for (auto _ : state) bench.forward();
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * bench.forward_bytes());
}

void run_backward(benchmark::State& state, Norm norm) {
    NormBench bench(norm, state);
    for (auto _ : state) bench.backward();
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * bench.backward_bytes());
}

void BM_layernorm_forward(benchmark::State& state) { run_forward(state, Norm::layer); }
void BM_layernorm_backward(benchmark::State& state) { run_backward(state, Norm::layer); }
void BM_rmsnorm_forward(benchmark::State& state) { run_forward(state, Norm::rms); }
void BM_rmsnorm_backward(benchmark::State& state) { run_backward(state, Norm::rms); }

void norm_arguments(benchmark::internal::Benchmark* bench) {
    bench->ArgNames({"N", "C", "threads", "fused"});
    for (int64_t threads : {1, 0}) {
        for (int64_t fused : {0, 1}) bench->Args({4096, 1024, threads, fused});
    }
    // A small input, where waking threads costs about as much as it saves.
    for (int64_t threads : {1, 0}) bench->Args({64, 768, threads, 1});
    bench->UseRealTime();
}

}  // namespace

BENCHMARK(BM_layernorm_forward)->Apply(norm_arguments);
BENCHMARK(BM_layernorm_backward)->Apply(norm_arguments);
BENCHMARK(BM_rmsnorm_forward)->Apply(norm_arguments);
BENCHMARK(BM_rmsnorm_backward)->Apply(norm_arguments);
