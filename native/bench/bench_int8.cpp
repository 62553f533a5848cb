// Compare each BM_gemm_int8 GOPS with the BM_sgemm_openblas GFLOPS below it: same shape and threads, both count 2*M*N*K.
//
// Int8 GEMM (f32 output with the fused dequantization), the fp32 OpenBLAS baseline on the same
// layout, the quantized linear layer (per-row quantization of x included), and per-row
// quantization throughput. The int8 goal is 2x fp32 on VNNI CPUs; with AVX2 only, exact int8
// (vpmaddwd + vpaddd) peaks near 1.2x fp32 FMA on Zen 3 (see int8_avx2.cpp).
//
// The GEMMs run on 1 thread, timed by that thread's CPU time (steady on a shared machine), and on
// all hardware threads (threads:0), timed by the wall clock.
#include "bench_support.hpp"

#include <thread>

#if defined(NE_BENCH_HAVE_OPENBLAS)
#  include <cblas.h>
#endif

namespace {

int thread_count(int64_t argument) {
    return argument == 0 ? static_cast<int>(std::thread::hardware_concurrency()) : static_cast<int>(argument);
}

std::vector<int8_t> random_int8(size_t count, uint64_t seed) {
    std::mt19937_64 generator(seed);
    std::uniform_int_distribution<int> distribution(-128, 127);
    std::vector<int8_t> values(count);
    for (int8_t& value : values) value = static_cast<int8_t>(distribution(generator));
    return values;
}

void set_operations_per_second(benchmark::State& state, const char* name, int64_t M, int64_t N, int64_t K) {
    const double operations = 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
    state.counters[name] = benchmark::Counter(operations * 1e-9 * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

// Arguments: M, N, K, threads (0 = all).
void BM_gemm_int8(benchmark::State& state) {
    const int64_t M = state.range(0), N = state.range(1), K = state.range(2);
    ne_bench::Context context = ne_bench::make_context(thread_count(state.range(3)));
    ne_bench::Tensor a = ne_bench::make_tensor(context.get(), NE_DTYPE_I8, {M, K}, random_int8(static_cast<size_t>(M * K), 1));
    ne_bench::Tensor b = ne_bench::make_tensor(context.get(), NE_DTYPE_I8, {N, K}, random_int8(static_cast<size_t>(N * K), 2));
    ne_bench::Tensor a_scales = ne_bench::make_tensor(context.get(), NE_DTYPE_F32, {M}, std::vector<float>(static_cast<size_t>(M), 0.01f));
    ne_bench::Tensor b_scales = ne_bench::make_tensor(context.get(), NE_DTYPE_F32, {N}, std::vector<float>(static_cast<size_t>(N), 0.01f));
    ne_bench::Tensor bias = ne_bench::make_tensor(context.get(), NE_DTYPE_F32, {N}, ne_bench::random_floats(static_cast<size_t>(N), 3));
    ne_bench::Tensor c = ne_bench::make_tensor(context.get(), NE_DTYPE_F32, {M, N});
    for (auto _ : state) {
        ne_bench::check(ne_gemm_int8(context.get(), a.get(), b.get(), a_scales.get(), b_scales.get(), bias.get(), c.get()),
                        "ne_gemm_int8");
    }
    set_operations_per_second(state, "GOPS", M, N, K);
}

#if defined(NE_BENCH_HAVE_OPENBLAS)
// Arguments: M, N, K, threads (0 = all). C[M,N] = A[M,K] * B[N,K]^T, the layout of the int8 GEMM.
void BM_sgemm_openblas(benchmark::State& state) {
    const int64_t M = state.range(0), N = state.range(1), K = state.range(2);
    openblas_set_num_threads(thread_count(state.range(3)));
    const std::vector<float> a = ne_bench::random_floats(static_cast<size_t>(M * K), 1);
    const std::vector<float> b = ne_bench::random_floats(static_cast<size_t>(N * K), 2);
    std::vector<float> c(static_cast<size_t>(M * N));
    for (auto _ : state) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(M), static_cast<int>(N), static_cast<int>(K), 1.0f,
                    a.data(), static_cast<int>(K), b.data(), static_cast<int>(K), 0.0f, c.data(), static_cast<int>(N));
        benchmark::ClobberMemory();
    }
    set_operations_per_second(state, "GFLOPS", M, N, K);
}
#endif

// Arguments: M, N, K. x [M,K] f32 quantized per row, then the int8 GEMM with w [N,K].
void BM_linear_int8(benchmark::State& state) {
    const int64_t M = state.range(0), N = state.range(1), K = state.range(2);
    ne_bench::Context context = ne_bench::make_context();
    ne_bench::Tensor x = ne_bench::make_tensor(context.get(), NE_DTYPE_F32, {M, K}, ne_bench::random_floats(static_cast<size_t>(M * K), 1));
    ne_bench::Tensor w = ne_bench::make_tensor(context.get(), NE_DTYPE_I8, {N, K}, random_int8(static_cast<size_t>(N * K), 2));
    ne_bench::Tensor w_scales = ne_bench::make_tensor(context.get(), NE_DTYPE_F32, {N}, std::vector<float>(static_cast<size_t>(N), 0.01f));
    ne_bench::Tensor y = ne_bench::make_tensor(context.get(), NE_DTYPE_F32, {M, N});
    for (auto _ : state) {
        ne_bench::check(ne_linear_int8(context.get(), x.get(), w.get(), w_scales.get(), nullptr, y.get()), "ne_linear_int8");
    }
    set_operations_per_second(state, "GOPS", M, N, K);
}

// Arguments: rows, columns. Bytes counted: x read once, q and the scales written.
void BM_quantize_int8_rows(benchmark::State& state) {
    const int64_t R = state.range(0), C = state.range(1);
    ne_bench::Context context = ne_bench::make_context();
    ne_bench::Tensor x = ne_bench::make_tensor(context.get(), NE_DTYPE_F32, {R, C}, ne_bench::random_floats(static_cast<size_t>(R * C), 1));
    ne_bench::Tensor q = ne_bench::make_tensor(context.get(), NE_DTYPE_I8, {R, C});
    ne_bench::Tensor scales = ne_bench::make_tensor(context.get(), NE_DTYPE_F32, {R});
    for (auto _ : state) {
        ne_bench::check(ne_quantize_int8(context.get(), NE_QUANT_AXIS_PER_ROW, x.get(), q.get(), scales.get()), "ne_quantize_int8");
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * (R * C * 5 + R * 4));
}

// Each int8 case is registered next to its fp32 baseline, so that they run back to back.
const bool gemm_benchmarks_registered = [] {
    const int64_t shapes[][3] = {{512, 512, 512}, {1024, 1024, 1024}, {2048, 2048, 2048},
                                 {4096, 1024, 1024}};  // transformer-like: 4096 tokens through a 1024 x 1024 projection
    for (int64_t threads : {1, 0}) {
        for (const auto& shape : shapes) {
            const auto configure = [&](benchmark::internal::Benchmark* benchmark) {
                benchmark->ArgNames({"M", "N", "K", "threads"})->Args({shape[0], shape[1], shape[2], threads});
                benchmark->Unit(benchmark::kMillisecond);
                if (threads != 1) benchmark->UseRealTime();
            };
            configure(benchmark::RegisterBenchmark("BM_gemm_int8", BM_gemm_int8));
#if defined(NE_BENCH_HAVE_OPENBLAS)
            configure(benchmark::RegisterBenchmark("BM_sgemm_openblas", BM_sgemm_openblas));
#endif
        }
    }
    return true;
}();

}  // namespace

BENCHMARK(BM_linear_int8)->ArgNames({"M", "N", "K"})->Args({4096, 1024, 1024})->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_quantize_int8_rows)->ArgNames({"R", "C"})->Args({4096, 1024})->Args({64, 4096})->UseRealTime();
