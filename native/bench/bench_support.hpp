// Helpers for the benchmarks: a context and tensors that abort the benchmark run on failure.
#pragma once

#include "nativeengine.h"

#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <vector>

namespace ne_bench {

inline void check(ne_status status, const char* what) {
    if (status != NE_STATUS_OK) {
        std::fprintf(stderr, "%s failed: %s: %s\n", what, ne_status_string(status), ne_last_error());
        std::exit(1);
    }
}

struct ContextDeleter {
    void operator()(ne_context* context) const { ne_context_destroy(context); }
};
struct TensorDeleter {
    void operator()(ne_tensor* tensor) const { ne_tensor_destroy(tensor); }
};
using Context = std::unique_ptr<ne_context, ContextDeleter>;
using Tensor = std::unique_ptr<ne_tensor, TensorDeleter>;

// A CPU context on all hardware threads at the best SIMD level, unless NE_MAX_SIMD caps it.
inline Context make_context(int num_threads = 0) {
    ne_context_options options{};
    options.struct_size = sizeof options;
    options.backend = NE_BACKEND_CPU;
    options.num_threads = num_threads;
    ne_context* context = nullptr;
    check(ne_context_create(&options, &context), "ne_context_create");
    return Context(context);
}

inline Tensor make_tensor(ne_context* context, ne_dtype dtype, std::vector<int64_t> shape) {
    ne_tensor* tensor = nullptr;
    check(ne_tensor_create(context, dtype, static_cast<int32_t>(shape.size()), shape.data(), &tensor), "ne_tensor_create");
    return Tensor(tensor);
}

template <class T>
Tensor make_tensor(ne_context* context, ne_dtype dtype, std::vector<int64_t> shape, const std::vector<T>& values) {
    Tensor tensor = make_tensor(context, dtype, std::move(shape));
    check(ne_tensor_write(tensor.get(), values.data(), values.size() * sizeof(T)), "ne_tensor_write");
    return tensor;
}

inline std::vector<float> random_floats(size_t count, uint64_t seed) {
    std::mt19937_64 generator(seed);
    std::uniform_real_distribution<float> distribution(-1.0f, 1.0f);
    std::vector<float> values(count);
    for (float& value : values) value = distribution(generator);
    return values;
}

}  // namespace ne_bench
