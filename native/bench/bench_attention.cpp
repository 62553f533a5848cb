// Flash attention against an unfused attention on OpenBLAS: B = 1, H = 8, D = 64, Tq = Tk = T
// from 256 to 16384, causal and not, forward and backward, all hardware threads for both (the
// context's threads; openblas_set_num_threads for OpenBLAS).
//
// How to read it: each BM_attention_<pass>_flash line is followed by the BM_attention_<pass>_unfused
// line of the same T and causal. Time is per call, in ms. Counters:
//   GFLOPS     nominal FLOPs of exact attention per second, the same count for both lines (forward
//              4 T^2 H D, backward 10 T^2 H D, halved under causal), so their ratio is the speed
//              ratio (flash recomputes more than that in its backward pass, the unfused masks
//              after computing full GEMMs: neither gets credit).
//   peak_GB    flash: the peak_bytes of a fresh context (the tensors and the kernel's workspace);
//              unfused: the bytes of its buffers (the same tensors, plus one [T, T] score matrix
//              forward and two backward).
//   gemm_ms, softmax_ms (unfused): where its time goes; the softmax and the elementwise dS are
//              plain loops (std::exp) split across the same threads.
// The unfused version runs one head at a time so that T = 16384 fits (1 GiB per score matrix);
// a case whose buffers would exceed 4 GiB is skipped with a message (none at these sizes).
//
//   ./build/attn/native/bench/nativeengine_bench --benchmark_filter=attention
#include "bench_support.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <thread>

#if defined(NE_BENCH_HAVE_OPENBLAS)
#  include <cblas.h>
#endif

namespace {

using namespace ne_bench;

constexpr int64_t kHeads = 8;
constexpr int64_t kHeadDim = 64;

int hardware_threads() { return static_cast<int>(std::max(1u, std::thread::hardware_concurrency())); }

double nominal_flops(int64_t T, bool causal, bool backward) {
    const double full = (backward ? 10.0 : 4.0) * static_cast<double>(T) * static_cast<double>(T) * kHeads * kHeadDim;
    return causal ? full / 2.0 : full;
}

void report(benchmark::State& state, int64_t T, bool causal, bool backward, double peak_bytes) {
    state.counters["GFLOPS"] = benchmark::Counter(nominal_flops(T, causal, backward) * 1e-9 * static_cast<double>(state.iterations()),
                                                  benchmark::Counter::kIsRate);
    state.counters["peak_GB"] = peak_bytes * 1e-9;
}

// ---- Flash -----------------------------------------------------------------------------------

struct Flash {
    explicit Flash(int64_t T_, bool causal, bool backward) : T(T_), context(make_context()) {
        params.causal = causal ? 1 : 0;
        const size_t count = static_cast<size_t>(T * kHeads * kHeadDim);
        const std::vector<int64_t> shape{1, T, kHeads, kHeadDim};
        q = make_tensor(context.get(), NE_DTYPE_F32, shape, random_floats(count, 1));
        k = make_tensor(context.get(), NE_DTYPE_F32, shape, random_floats(count, 2));
        v = make_tensor(context.get(), NE_DTYPE_F32, shape, random_floats(count, 3));
        out = make_tensor(context.get(), NE_DTYPE_F32, shape);
        lse = make_tensor(context.get(), NE_DTYPE_F32, {1, kHeads, T});
        if (backward) {
            dout = make_tensor(context.get(), NE_DTYPE_F32, shape, random_floats(count, 4));
            dq = make_tensor(context.get(), NE_DTYPE_F32, shape);
            dk = make_tensor(context.get(), NE_DTYPE_F32, shape);
            dv = make_tensor(context.get(), NE_DTYPE_F32, shape);
            forward();
        }
    }

    void forward() {
        check(ne_attention_forward(context.get(), &params, q.get(), k.get(), v.get(), nullptr, out.get(), lse.get()),
              "ne_attention_forward");
    }

    void backward() {
        check(ne_attention_backward(context.get(), &params, q.get(), k.get(), v.get(), nullptr, out.get(), lse.get(),
                                    dout.get(), dq.get(), dk.get(), dv.get()),
              "ne_attention_backward");
    }

    double peak_bytes() const {
        ne_memory_stats stats{};
        stats.struct_size = sizeof stats;
        check(ne_context_get_memory_stats(context.get(), &stats), "ne_context_get_memory_stats");
        return static_cast<double>(stats.peak_bytes);
    }

    int64_t T;
    Context context;
    ne_attention_params params{sizeof(ne_attention_params), 0.0f, 0, 0};
    Tensor q, k, v, out, lse, dout, dq, dk, dv;
};

// Arguments: T, causal.
void BM_attention_forward_flash(benchmark::State& state) {
    Flash flash(state.range(0), state.range(1) != 0, false);
    for (auto _ : state) flash.forward();
    report(state, flash.T, flash.params.causal != 0, false, flash.peak_bytes());
}

void BM_attention_backward_flash(benchmark::State& state) {
    Flash flash(state.range(0), state.range(1) != 0, true);
    for (auto _ : state) flash.backward();
    report(state, flash.T, flash.params.causal != 0, true, flash.peak_bytes());
}

// ---- Unfused on OpenBLAS ---------------------------------------------------------------------

#if defined(NE_BENCH_HAVE_OPENBLAS)

// body(begin, end) on `threads` contiguous shares of [0, n), the caller taking the first.
template <class Body>
void parallel_rows(int threads, int64_t n, const Body& body) {
    std::vector<std::thread> workers;
    for (int t = 1; t < threads; ++t) workers.emplace_back([&, t] { body(n * t / threads, n * (t + 1) / threads); });
    body(0, n / threads);
    for (std::thread& worker : workers) worker.join();
}

class Stopwatch {
public:
    double lap() {
        const auto now = std::chrono::steady_clock::now();
        const double seconds = std::chrono::duration<double>(now - last_).count();
        last_ = now;
        return seconds;
    }

private:
    std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
};

// Tensors as [T, H, D] arrays (B = 1); head h is the columns [h D, (h + 1) D) of a [T, H D] matrix.
struct Unfused {
    Unfused(int64_t T_, bool causal_, bool backward)
        : T(T_), causal(causal_), threads(hardware_threads()), scale(static_cast<float>(1.0 / std::sqrt(double{kHeadDim}))) {
        const size_t count = static_cast<size_t>(T * kHeads * kHeadDim);
        q = random_floats(count, 1);
        k = random_floats(count, 2);
        v = random_floats(count, 3);
        out.assign(count, 0.0f);
        lse.assign(static_cast<size_t>(kHeads * T), 0.0f);
        probs.assign(static_cast<size_t>(T * T), 0.0f);
        openblas_set_num_threads(threads);
        if (backward) {
            dout = random_floats(count, 4);
            dq.assign(count, 0.0f);
            dk.assign(count, 0.0f);
            dv.assign(count, 0.0f);
            dprobs.assign(static_cast<size_t>(T * T), 0.0f);
            forward();  // out and lse
        }
    }

    static bool fits(int64_t T, bool backward) {
        const double matrices = backward ? 2.0 : 1.0;
        return matrices * static_cast<double>(T) * static_cast<double>(T) * sizeof(float) <= 4.0 * (1 << 30);
    }

    double buffer_bytes() const {
        size_t floats = 0;
        for (const std::vector<float>* buffer : {&q, &k, &v, &out, &lse, &probs, &dout, &dq, &dk, &dv, &dprobs}) {
            floats += buffer->size();
        }
        return static_cast<double>(floats * sizeof(float));
    }

    int ld() const { return static_cast<int>(kHeads * kHeadDim); }
    int rows() const { return static_cast<int>(T); }

    // probs = scale Q_h K_h^T for head h.
    void scores(int64_t h) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows(), rows(), kHeadDim, scale, q.data() + h * kHeadDim, ld(),
                    k.data() + h * kHeadDim, ld(), 0.0f, probs.data(), rows());
    }

    // Keys [0, limit) of row i.
    int64_t limit(int64_t i) const { return causal ? i + 1 : T; }

    void forward() {
        Stopwatch clock;
        for (int64_t h = 0; h < kHeads; ++h) {
            scores(h);
            gemm_seconds += clock.lap();
            parallel_rows(threads, T, [&](int64_t begin, int64_t end) {
                for (int64_t i = begin; i < end; ++i) {
                    float* row = probs.data() + i * T;
                    const int64_t n = limit(i);
                    const float max = *std::max_element(row, row + n);
                    float sum = 0.0f;
                    for (int64_t j = 0; j < n; ++j) sum += row[j] = std::exp(row[j] - max);
                    const float inverse = 1.0f / sum;
                    for (int64_t j = 0; j < n; ++j) row[j] *= inverse;
                    std::fill(row + n, row + T, 0.0f);
                    lse[static_cast<size_t>(h * T + i)] = max + std::log(sum);
                }
            });
            softmax_seconds += clock.lap();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows(), kHeadDim, rows(), 1.0f, probs.data(), rows(),
                        v.data() + h * kHeadDim, ld(), 0.0f, out.data() + h * kHeadDim, ld());
            gemm_seconds += clock.lap();
        }
    }

    void backward() {
        Stopwatch clock;
        for (int64_t h = 0; h < kHeads; ++h) {
            scores(h);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows(), rows(), kHeadDim, 1.0f, dout.data() + h * kHeadDim,
                        ld(), v.data() + h * kHeadDim, ld(), 0.0f, dprobs.data(), rows());
            gemm_seconds += clock.lap();
            // P = exp(S - lse), dS = P (dP - rowsum(dO O)).
            parallel_rows(threads, T, [&](int64_t begin, int64_t end) {
                for (int64_t i = begin; i < end; ++i) {
                    const float* o = out.data() + (i * kHeads + h) * kHeadDim;
                    const float* d_o = dout.data() + (i * kHeads + h) * kHeadDim;
                    float row_delta = 0.0f;
                    for (int64_t d = 0; d < kHeadDim; ++d) row_delta += o[d] * d_o[d];
                    float* p = probs.data() + i * T;
                    float* dp = dprobs.data() + i * T;
                    const float row_lse = lse[static_cast<size_t>(h * T + i)];
                    const int64_t n = limit(i);
                    for (int64_t j = 0; j < n; ++j) {
                        p[j] = std::exp(p[j] - row_lse);
                        dp[j] = p[j] * (dp[j] - row_delta);
                    }
                    std::fill(p + n, p + T, 0.0f);
                    std::fill(dp + n, dp + T, 0.0f);
                }
            });
            softmax_seconds += clock.lap();
            // dV = P^T dO, dQ = scale dS K, dK = scale dS^T Q.
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, rows(), kHeadDim, rows(), 1.0f, probs.data(), rows(),
                        dout.data() + h * kHeadDim, ld(), 0.0f, dv.data() + h * kHeadDim, ld());
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows(), kHeadDim, rows(), scale, dprobs.data(), rows(),
                        k.data() + h * kHeadDim, ld(), 0.0f, dq.data() + h * kHeadDim, ld());
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, rows(), kHeadDim, rows(), scale, dprobs.data(), rows(),
                        q.data() + h * kHeadDim, ld(), 0.0f, dk.data() + h * kHeadDim, ld());
            gemm_seconds += clock.lap();
        }
    }

    int64_t T;
    bool causal;
    int threads;
    float scale;
    std::vector<float> q, k, v, out, lse, probs, dout, dq, dk, dv, dprobs;
    double gemm_seconds = 0.0, softmax_seconds = 0.0;
};

void report_split(benchmark::State& state, const Unfused& unfused) {
    const double iterations = static_cast<double>(state.iterations());
    state.counters["gemm_ms"] = unfused.gemm_seconds * 1e3 / iterations;
    state.counters["softmax_ms"] = unfused.softmax_seconds * 1e3 / iterations;
}

void run_unfused(benchmark::State& state, bool backward) {
    const int64_t T = state.range(0);
    const bool causal = state.range(1) != 0;
    if (!Unfused::fits(T, backward)) {
        state.SkipWithError("unfused buffers would exceed 4 GiB");
        return;
    }
    Unfused unfused(T, causal, backward);
    unfused.gemm_seconds = unfused.softmax_seconds = 0.0;  // the backward's setup ran a forward pass
    for (auto _ : state) {
        if (backward) unfused.backward();
        else unfused.forward();
        benchmark::ClobberMemory();
    }
    report(state, T, causal, backward, unfused.buffer_bytes());
    report_split(state, unfused);
}

void BM_attention_forward_unfused(benchmark::State& state) { run_unfused(state, false); }
void BM_attention_backward_unfused(benchmark::State& state) { run_unfused(state, true); }

#endif

// Flash and unfused registered side by side per case. Large T run a fixed, small number of
// iterations to keep the whole run within minutes.
struct Pass {
    const char* flash_name;
    void (*flash)(benchmark::State&);
    const char* unfused_name;
    void (*unfused)(benchmark::State&);  // null without OpenBLAS
};

#if defined(NE_BENCH_HAVE_OPENBLAS)
const Pass kPasses[] = {
    {"BM_attention_forward_flash", BM_attention_forward_flash, "BM_attention_forward_unfused", BM_attention_forward_unfused},
    {"BM_attention_backward_flash", BM_attention_backward_flash, "BM_attention_backward_unfused", BM_attention_backward_unfused},
};
#else
const Pass kPasses[] = {
    {"BM_attention_forward_flash", BM_attention_forward_flash, nullptr, nullptr},
    {"BM_attention_backward_flash", BM_attention_backward_flash, nullptr, nullptr},
};
#endif

const bool attention_benchmarks_registered = [] {
    for (const Pass& pass : kPasses) {
        for (const int64_t T : {256, 512, 1024, 2048, 4096, 8192, 16384}) {
            for (const int64_t causal : {0, 1}) {
                const auto configure = [&](benchmark::internal::Benchmark* benchmark) {
                    benchmark->ArgNames({"T", "causal"})->Args({T, causal})->Unit(benchmark::kMillisecond)->UseRealTime();
                    if (T >= 8192) benchmark->Iterations(1);
                    else if (T >= 2048) benchmark->Iterations(3);
                };
                configure(benchmark::RegisterBenchmark(pass.flash_name, pass.flash));
                if (pass.unfused) configure(benchmark::RegisterBenchmark(pass.unfused_name, pass.unfused));
            }
        }
    }
    return true;
}();

}  // namespace
