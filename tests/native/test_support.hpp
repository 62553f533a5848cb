// Helpers shared by the GoogleTest suites: RAII handles over the C ABI, host transfers, seeded
// random data, the backend configurations every kernel test runs on, element and error assertions.
#pragma once

#include "nativeengine.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#define NE_ASSERT_OK(expr) ASSERT_EQ((expr), NE_STATUS_OK) << ne_last_error()
#define NE_EXPECT_OK(expr) EXPECT_EQ((expr), NE_STATUS_OK) << ne_last_error()

namespace ne_test {

struct ContextDeleter {
    void operator()(ne_context* context) const { ne_context_destroy(context); }
};
struct TensorDeleter {
    void operator()(ne_tensor* tensor) const { ne_tensor_destroy(tensor); }
};
using Context = std::unique_ptr<ne_context, ContextDeleter>;
using Tensor = std::unique_ptr<ne_tensor, TensorDeleter>;

// Throws (which GoogleTest reports as a failure) when a setup call fails.
inline void check(ne_status status, const char* what) {
    if (status != NE_STATUS_OK) {
        throw std::runtime_error(std::string(what) + " failed: " + ne_status_string(status) + ": " + ne_last_error());
    }
}

// Where a kernel test runs: one backend, SIMD level and thread count.
struct BackendConfig {
    ne_backend backend;
    ne_simd_level simd_level;
    int num_threads;
    std::string name;
};

inline ne_simd_level best_simd_level() {
    ne_system_info info{};
    info.struct_size = sizeof info;
    check(ne_get_system_info(&info), "ne_get_system_info");
    return info.best_simd_level;
}

inline ne_system_info system_info() {
    ne_system_info info{};
    info.struct_size = sizeof info;
    check(ne_get_system_info(&info), "ne_get_system_info");
    return info;
}

// Every CPU configuration this machine can run: the scalar reference, and each SIMD level on
// one thread and on three (an odd count, so that work splits unevenly).
inline std::vector<BackendConfig> cpu_backend_configurations() {
    std::vector<BackendConfig> configs{{NE_BACKEND_CPU, NE_SIMD_LEVEL_SCALAR, 1, "cpu_scalar"}};
    const ne_simd_level best = best_simd_level();
    if (best >= NE_SIMD_LEVEL_AVX2) {
        configs.push_back({NE_BACKEND_CPU, NE_SIMD_LEVEL_AVX2, 1, "cpu_avx2_1thread"});
        configs.push_back({NE_BACKEND_CPU, NE_SIMD_LEVEL_AVX2, 3, "cpu_avx2_3threads"});
    }
    if (best >= NE_SIMD_LEVEL_AVX512) {
        configs.push_back({NE_BACKEND_CPU, NE_SIMD_LEVEL_AVX512, 1, "cpu_avx512_1thread"});
        configs.push_back({NE_BACKEND_CPU, NE_SIMD_LEVEL_AVX512, 3, "cpu_avx512_3threads"});
    }
    return configs;
}

// Every configuration of cpu_backend_configurations(), and CUDA device 0 when this library has
// the CUDA backend and a device is present (libnativeengine_cuda on a GPU machine): the suites
// of the ops that CUDA implements run each of them on the device against the same references.
inline std::vector<BackendConfig> backend_configurations() {
    std::vector<BackendConfig> configs = cpu_backend_configurations();
    const ne_system_info info = system_info();
    if (info.cuda_compiled != 0 && info.cuda_device_count > 0) {
        configs.push_back({NE_BACKEND_CUDA, NE_SIMD_LEVEL_AUTO, 0, "cuda0"});
    }
    return configs;
}

inline std::string config_name(const ::testing::TestParamInfo<BackendConfig>& info) { return info.param.name; }

inline Context make_context(const BackendConfig& config) {
    ne_context_options options{};
    options.struct_size = sizeof options;
    options.backend = config.backend;
    options.num_threads = config.num_threads;
    options.simd_level = config.simd_level;
    ne_context* context = nullptr;
    check(ne_context_create(&options, &context), "ne_context_create");
    return Context(context);
}

inline Context make_cpu_context(int num_threads = 1, ne_simd_level level = NE_SIMD_LEVEL_AUTO) {
    return make_context({NE_BACKEND_CPU, level, num_threads, "cpu"});
}

inline Tensor make_tensor(ne_context* context, ne_dtype dtype, std::vector<int64_t> shape) {
    ne_tensor* tensor = nullptr;
    check(ne_tensor_create(context, dtype, static_cast<int32_t>(shape.size()), shape.data(), &tensor),
          "ne_tensor_create");
    return Tensor(tensor);
}

template <class T>
void write(ne_tensor* tensor, const std::vector<T>& values) {
    check(ne_tensor_write(tensor, values.data(), values.size() * sizeof(T)), "ne_tensor_write");
}

template <class T>
Tensor make_tensor(ne_context* context, ne_dtype dtype, std::vector<int64_t> shape, const std::vector<T>& values) {
    Tensor tensor = make_tensor(context, dtype, std::move(shape));
    write(tensor.get(), values);
    return tensor;
}

// Reads a tensor of any layout: strided views are first copied into a contiguous tensor.
template <class T>
std::vector<T> read(const ne_tensor* tensor) {
    ne_tensor_info info{};
    info.struct_size = sizeof info;
    check(ne_tensor_get_info(tensor, &info), "ne_tensor_get_info");
    std::vector<T> values(static_cast<size_t>(info.element_count));
    if (info.is_contiguous) {
        check(ne_tensor_read(tensor, values.data(), values.size() * sizeof(T)), "ne_tensor_read");
        return values;
    }
    throw std::runtime_error("read: copy strided views into a contiguous tensor first");
}

inline std::vector<float> random_floats(size_t count, uint64_t seed, float low = -1.0f, float high = 1.0f) {
    std::mt19937_64 generator(seed);
    std::uniform_real_distribution<float> distribution(low, high);
    std::vector<float> values(count);
    for (float& value : values) value = distribution(generator);
    return values;
}

// |actual - expected| <= tolerance * (1 + |expected|) for every element. An infinite expectation
// (the log-sum-exp of a fully masked row) must be met exactly; NaN never matches.
inline ::testing::AssertionResult all_near(const std::vector<float>& actual, const std::vector<double>& expected,
                                           double tolerance) {
    if (actual.size() != expected.size()) {
        return ::testing::AssertionFailure() << "size " << actual.size() << ", expected " << expected.size();
    }
    size_t failures = 0, first = 0;
    double worst = 0.0;
    for (size_t i = 0; i < actual.size(); ++i) {
        const double error = std::abs(actual[i] - expected[i]);
        const bool ok = std::isfinite(expected[i]) ? error <= tolerance * (1.0 + std::abs(expected[i]))
                                                   : static_cast<double>(actual[i]) == expected[i];
        if (!ok && failures++ == 0) first = i;
        if (std::isfinite(expected[i])) worst = std::max(worst, error / (1.0 + std::abs(expected[i])));
    }
    if (failures == 0) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << failures << " of " << actual.size() << " elements off (worst scaled error "
                                         << worst << "); first at " << first << ": " << actual[first] << ", expected "
                                         << expected[first];
}

inline ::testing::AssertionResult all_near(const std::vector<float>& actual, const std::vector<float>& expected,
                                           double tolerance) {
    return all_near(actual, std::vector<double>(expected.begin(), expected.end()), tolerance);
}

// The same bits in every element.
inline ::testing::AssertionResult bitwise_equal(const std::vector<float>& actual, const std::vector<float>& expected) {
    if (actual.size() != expected.size()) {
        return ::testing::AssertionFailure() << "size " << actual.size() << ", expected " << expected.size();
    }
    for (size_t i = 0; i < actual.size(); ++i) {
        if (std::memcmp(&actual[i], &expected[i], sizeof(float)) != 0) {
            return ::testing::AssertionFailure() << "element " << i << ": " << actual[i] << ", expected " << expected[i];
        }
    }
    return ::testing::AssertionSuccess();
}

// Status is `expected` and ne_last_error() contains every fragment.
inline ::testing::AssertionResult fails_with(ne_status actual, ne_status expected,
                                             std::initializer_list<const char*> fragments) {
    const std::string message = ne_last_error();
    if (actual != expected) {
        return ::testing::AssertionFailure() << "status " << ne_status_string(actual) << ", expected "
                                             << ne_status_string(expected) << " (message: " << message << ")";
    }
    for (const char* fragment : fragments) {
        if (message.find(fragment) == std::string::npos) {
            return ::testing::AssertionFailure() << "message \"" << message << "\" lacks \"" << fragment << "\"";
        }
    }
    return ::testing::AssertionSuccess();
}

// Whether the context runs on a device backend (CUDA).
inline bool on_device(ne_context* context) {
    ne_context_info info{};
    info.struct_size = sizeof info;
    check(ne_context_get_info(context, &info), "ne_context_get_info");
    return info.backend != NE_BACKEND_CPU;
}

// A call refused for the values of its data (ids out of range, non-finite inputs): on the CPU
// the call fails; on a device the call is queued and the context's next wait fails instead
// (see ne_context_synchronize), its message naming the call.
inline ::testing::AssertionResult refused_for_data(ne_context* context, ne_status call_status, ne_status expected,
                                                   std::initializer_list<const char*> fragments) {
    if (!on_device(context)) return fails_with(call_status, expected, fragments);
    if (call_status != NE_STATUS_OK) {
        return ::testing::AssertionFailure() << "status " << ne_status_string(call_status)
                                             << " from the call, expected NE_STATUS_OK (the device checks its data later; "
                                             << "message: " << ne_last_error() << ")";
    }
    return fails_with(ne_context_synchronize(context), expected, fragments);
}

}  // namespace ne_test
