// How to read: each BM_sgemm row is followed by BM_sgemm_openblas_baseline on the same shape,
// transpose and thread count; compare their GFLOPS (both count 2*M*N*K). Rows with threads:1 are
// timed by that thread's CPU time (steady on a shared machine), rows with threads:0 (all hardware
// threads) by the wall clock. Without OpenBLAS (NE_BENCH_HAVE_OPENBLAS unset) only ours run.
//
// C[M,N] = A[M,K] * op(B), beta = 0; transpose_b:1 stores B as [N,K], as a linear layer's weight
// (y = x W^T). Shapes: cubes, two transformer projections (4096 tokens), and one decoding step
// (M = 1, a matrix-vector product).
#include "bench_support.hpp"

#include <thread>

#if defined(NE_BENCH_HAVE_OPENBLAS)
#  include <cblas.h>
#endif

namespace {

int all_threads_if_zero(int64_t argument) {
    return argument == 0 ? static_cast<int>(std::thread::hardware_concurrency()) : static_cast<int>(argument);
}

void set_flops(benchmark::State& state, int64_t M, int64_t N, int64_t K) {
    const double flops = 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
    state.counters["GFLOPS"] = benchmark::Counter(flops * 1e-9 * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

// Arguments: M, N, K, transpose_b, threads (0 = all).
void BM_sgemm(benchmark::State& state) {
    const int64_t M = state.range(0), N = state.range(1), K = state.range(2);
    const bool transpose_b = state.range(3) != 0;
    ne_bench::Context context = ne_bench::make_context(all_threads_if_zero(state.range(4)));
    const std::vector<int64_t> b_shape = transpose_b ? std::vector<int64_t>{N, K} : std::vector<int64_t>{K, N};
    ne_bench::Tensor a = ne_bench::make_tensor(context.get(), NE_DTYPE_F32, {M, K}, ne_bench::random_floats(static_cast<size_t>(M * K), 1));
    ne_bench::Tensor b = ne_bench::make_tensor(context.get(), NE_DTYPE_F32, b_shape, ne_bench::random_floats(static_cast<size_t>(N * K), 2));
    ne_bench::Tensor c = ne_bench::make_tensor(context.get(), NE_DTYPE_F32, {M, N});
    ne_gemm_params params{};
    params.struct_size = sizeof params;
    params.transpose_b = transpose_b ? 1 : 0;
    params.alpha = 1.0f;
    params.beta = 0.0f;
    for (auto _ : state) ne_bench::check(ne_gemm(context.get(), &params, a.get(), b.get(), c.get()), "ne_gemm");
    set_flops(state, M, N, K);
}

#if defined(NE_BENCH_HAVE_OPENBLAS)
// Arguments: as BM_sgemm.
void BM_sgemm_openblas_baseline(benchmark::State& state) {
    const int64_t M = state.range(0), N = state.range(1), K = state.range(2);
    const bool transpose_b = state.range(3) != 0;
    openblas_set_num_threads(all_threads_if_zero(state.range(4)));
    const std::vector<float> a = ne_bench::random_floats(static_cast<size_t>(M * K), 1);
    const std::vector<float> b = ne_bench::random_floats(static_cast<size_t>(N * K), 2);
    std::vector<float> c(static_cast<size_t>(M * N));
    for (auto _ : state) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, transpose_b ? CblasTrans : CblasNoTrans, static_cast<int>(M), static_cast<int>(N),
                    static_cast<int>(K), 1.0f, a.data(), static_cast<int>(K), b.data(), static_cast<int>(transpose_b ? K : N), 0.0f,
                    c.data(), static_cast<int>(N));
        benchmark::ClobberMemory();
    }
    set_flops(state, M, N, K);
}
#endif

// Each case is registered next to its baseline, so that they run back to back.
const bool sgemm_benchmarks_registered = [] {
    const int64_t shapes[][4] = {{512, 512, 512, 0},    {1024, 1024, 1024, 0}, {2048, 2048, 2048, 0},
                                 {4096, 1024, 1024, 1}, {4096, 4096, 1024, 1}, {1, 4096, 1024, 1}};
    for (const int64_t threads : {1, 0}) {
        for (const auto& shape : shapes) {
            const auto configure = [&](benchmark::internal::Benchmark* benchmark) {
                benchmark->ArgNames({"M", "N", "K", "transpose_b", "threads"})->Args({shape[0], shape[1], shape[2], shape[3], threads});
                benchmark->Unit(benchmark::kMillisecond);
                if (threads != 1) benchmark->UseRealTime();
            };
            configure(benchmark::RegisterBenchmark("BM_sgemm", BM_sgemm));
#if defined(NE_BENCH_HAVE_OPENBLAS)
            configure(benchmark::RegisterBenchmark("BM_sgemm_openblas_baseline", BM_sgemm_openblas_baseline));
#endif
        }
    }
    return true;
}();

}  // namespace
