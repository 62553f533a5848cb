// The memory-bandwidth ceiling that bandwidth-bound kernels are compared with: memcpy of the
// same bytes, on one thread and on all of them (split like the kernels split their rows).
#include "bench_support.hpp"

#include <cstring>
#include <thread>

namespace {

void copy_parallel(char* destination, const char* source, size_t bytes, int threads) {
    if (threads <= 1) {
        std::memcpy(destination, source, bytes);
        return;
    }
    std::vector<std::thread> workers;
    const size_t chunk = (bytes / static_cast<size_t>(threads) + 63) / 64 * 64;
    for (int t = 1; t < threads; ++t) {
        const size_t begin = std::min(bytes, chunk * static_cast<size_t>(t));
        const size_t end = std::min(bytes, begin + chunk);
        workers.emplace_back([=] { std::memcpy(destination + begin, source + begin, end - begin); });
    }
    std::memcpy(destination, source, std::min(bytes, chunk));
    for (auto& worker : workers) worker.join();
}

// Arguments: rows, channels, threads (0 = all). Bytes counted: read + write.
void BM_memcpy(benchmark::State& state) {
    const size_t bytes = static_cast<size_t>(state.range(0) * state.range(1)) * sizeof(float);
    const int threads = state.range(2) == 0 ? static_cast<int>(std::thread::hardware_concurrency()) : static_cast<int>(state.range(2));
    std::vector<char> source(bytes, 1), destination(bytes, 0);
    for (auto _ : state) {
        copy_parallel(destination.data(), source.data(), bytes, threads);
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(2 * bytes));
}

}  // namespace

BENCHMARK(BM_memcpy)->ArgNames({"N", "C", "threads"})->Args({4096, 1024, 1})->Args({4096, 1024, 0})->UseRealTime();
