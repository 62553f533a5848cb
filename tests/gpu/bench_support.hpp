// What both GPU benchmark programs (gpu_bench.cpp, gpu_bench_losses.cpp) share: exiting on a
// failed call, tensors with random contents, the CUDA context, the timing loop and the result
// lines that tests/gpu/compare.py and torch_bench_losses.py read.
//
// NE_BENCH_SMOKE=1: every case once at small sizes (`scaled`), untimed in effect: how CI runs the
// programs on the SIMT emulator (tests/emulator), so that a broken benchmark shows before it
// costs time on a GPU. Its numbers mean nothing.
#pragma once

#include "nativeengine.h"

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace bench {

inline bool smoke() {
    static const bool enabled = std::getenv("NE_BENCH_SMOKE") != nullptr;
    return enabled;
}

// A benchmark dimension: `full`, or `small` in a smoke run.
inline int64_t scaled(int64_t full, int64_t small) { return smoke() ? small : full; }

// NE_BENCH_ONLY=<text>: only the cases whose names contain it (run.sh's profile stage runs one
// case under ncu); every case when unset.
inline bool selected(const std::string& name) {
    const char* only = std::getenv("NE_BENCH_ONLY");
    return only == nullptr || name.find(only) != std::string::npos;
}

inline void check(ne_status status, const char* what) {
    if (status != NE_STATUS_OK) {
        std::fprintf(stderr, "%s failed: %s: %s\n", what, ne_status_string(status), ne_last_error());
        std::exit(1);
    }
}

inline ne_tensor* tensor(ne_context* context, ne_dtype dtype, std::vector<int64_t> shape) {
    ne_tensor* t = nullptr;
    check(ne_tensor_create(context, dtype, static_cast<int32_t>(shape.size()), shape.data(), &t), "ne_tensor_create");
    return t;
}

// f32 values uniform in [-scale, scale).
inline ne_tensor* random_tensor(ne_context* context, std::vector<int64_t> shape, uint64_t seed, float scale = 1.0f) {
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

// A context on CUDA device 0; the caller destroys it.
inline ne_context* cuda_context() {
    ne_context_options options{};
    options.struct_size = sizeof options;
    options.backend = NE_BACKEND_CUDA;
    ne_context* context = nullptr;
    check(ne_context_create(&options, &context), "ne_context_create");
    return context;
}

// A few warm-up steps, then enough timed steps to fill about half a second, the context
// synchronized before the clock starts and after it stops: the mean milliseconds per step (a
// smoke run: one step, and 1).
inline double time_ms(ne_context* context, const std::function<void()>& step) {
    if (smoke()) {
        step();
        check(ne_context_synchronize(context), "ne_context_synchronize");
        return 1.0;
    }
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

// How many sets of tensors a memory-bound case rotates over so that, between two uses of a set,
// the calls on the others move at least twice the device's L2 cache (`call_bytes` each): its
// data then comes from memory, as in a model whose other layers ran in between. A smoke run
// rotates over 2.
inline int rotation_sets(const ne_context_info& info, double call_bytes) {
    if (smoke()) return 2;
    return 1 + static_cast<int>(std::ceil(2.0 * static_cast<double>(info.l2_cache_bytes) / call_bytes));
}

// One call per step, its status checked.
inline double time_ms(ne_context* context, const std::function<ne_status()>& call, const char* name) {
    return time_ms(context, [&] { check(call(), name); });
}

inline void report(const char* name, double ms, double rate, const char* unit) {
    std::printf("RESULT %s %.6f %.3f %s\n", name, ms, rate, unit);
    std::fflush(stdout);
}

}  // namespace bench
