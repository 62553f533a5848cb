// The validated arguments of the softmax losses (cross_entropy.cpp, sampled_softmax.cpp), as
// their CPU kernels and a device backend's (Device, "softmax losses") receive them: plain structs
// of pointers (host or device addresses, by the context), sizes and row strides in elements.
//
// nvcc compiles translation units that include this header with C++17: plain declarations only.
#pragma once

#include <cstdint>

namespace ne::cpu {

// ---- Full cross-entropy over an output projection (cross_entropy.cpp) -----------------------

// Inputs of both passes.
struct CrossEntropyArgs {
    int64_t N, D, V;
    const float* hidden;  // [N, D]
    int64_t hidden_stride;
    const float* weight;  // [V, D]
    int64_t weight_stride;
    const float* bias;       // [V] or nullptr
    const int32_t* targets;  // [N]; negative: ignored row
    int64_t chunk;           // classes per chunk, 1..V
    bool tf32;               // a device may use TF32 products (ne_cross_entropy_params.allow_tf32)
};

struct CrossEntropyForwardArgs {
    CrossEntropyArgs in;
    float* loss;  // [N]
    float* lse;   // [N] or nullptr
};

struct CrossEntropyBackwardArgs {
    CrossEntropyArgs in;
    const float* lse;    // [N]
    const float* dloss;  // [N]
    float* dhidden;      // [N, D]
    int64_t dhidden_stride;
    float* dweight;  // [V, D] or nullptr
    int64_t dweight_stride;
    float* dbias;  // [V] or nullptr
    bool accumulate;
};

// ---- Sampled softmax (sampled_softmax.cpp) ----------------------------------------------------

// Inputs of both passes. The forward pass alone reads bias and the expected counts.
struct SampledArgs {
    int64_t N, D, V, S;
    const float* hidden;  // [N, D]
    int64_t hidden_stride;
    const float* weight;  // [V, D]
    int64_t weight_stride;
    const float* bias;           // [V] or nullptr
    const int32_t* targets;      // [N]; negative: ignored row
    const int32_t* samples;      // [S]
    const float* sample_counts;  // [S]; nullptr without the correction
    const float* target_counts;  // [N]; nullptr without the correction
    bool remove_accidental_hits;
};

struct SampledForwardArgs {
    SampledArgs in;
    float* loss;   // [N]
    float* probs;  // [N, S + 1] or nullptr
    int64_t probs_stride;
};

struct SampledBackwardArgs {
    SampledArgs in;
    const float* probs;  // [N, S + 1]
    int64_t probs_stride;
    const float* dloss;  // [N]
    float* dhidden;      // [N, D]
    int64_t dhidden_stride;
    float* dweight;  // [V, D] or nullptr
    int64_t dweight_stride;
    float* dbias;  // [V] or nullptr
    bool accumulate;
};

// ---- Log-uniform sampler (sampled_softmax.cpp; the draws and counts: cpu/log_uniform.hpp) ----

struct SamplerArgs {
    int64_t V, S, N;
    uint64_t seed;
    bool unique;
    double log_range;        // log(V + 1), computed once on the host (std::log) for every backend
    int32_t* samples;        // [S]
    float* sample_counts;    // [S]
    const int32_t* targets;  // [N], or nullptr with N = 0
    float* target_counts;    // [N] when targets is set
};

}  // namespace ne::cpu
