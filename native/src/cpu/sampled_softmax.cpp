// Log-uniform candidate sampling and the sampled softmax cross-entropy on the CPU; the contract
// is in nativeengine.h.
//
// Reads top-down: the sampler (one implementation for every SIMD level: unique sampling is
// sequential by nature, and S draws cost nothing next to the loss; a device draws the same
// classes with its own kernels from the shared code of cpu/log_uniform.hpp), the scalar
// reference of the loss (what NE_SIMD_LEVEL_SCALAR runs, on one thread), validation, the kernels
// that gather the sampled rows of weight and run GEMMs on the context's threads, and the exported
// functions, which hand device contexts to their Device (cuda/sampled_softmax.cu) after
// validation.
//
// Shape letters: N rows, D hidden size, V classes, S samples. Row n scores S + 1 classes: its
// target in column 0 and the samples in columns 1..S, the layout of probs [N, S + 1].
//
// What the header leaves open:
// - Tensors as for the full cross-entropy (cross_entropy.cpp): hidden, weight, probs, dhidden
//   and dweight are 2-D with contiguous rows; the others are contiguous 1-D tensors.
// - An ignored row (negative target) has loss 0, probs 0 and a zero dhidden row, and adds
//   nothing to dweight or dbias; its dloss and its target expected count are never read.
// - With the correction, the expected counts the loss reads (those of the samples, and of the
//   targets of rows that are not ignored) must be finite and > 0: their logs are subtracted.
// - Sampling with S close to V is allowed but slow for large V: unique sampling draws until it
//   has found S distinct classes, and the rarest classes are drawn about once in V log V tries.
#include "cpu/cross_entropy.hpp"
#include "cpu/softmax_losses.hpp"

#include "core/validate.hpp"
#include "cpu/gemm.hpp"
#include "cpu/log_uniform.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iterator>
#include <limits>

namespace ne::cpu {
namespace {

constexpr float kInfinity = std::numeric_limits<float>::infinity();

// ==========================================================================================
// The log-uniform sampler
// ==========================================================================================
//
// The draws are specified exactly, and every backend computes them with the same code
// (cpu/log_uniform.hpp), so that they are the same bit for bit:
// - Random bits: SplitMix64 (Steele, Lea and Flood, 2014). The state starts at the seed; each
//   output adds 0x9e3779b97f4a7c15 to the state, then mixes a copy of it:
//     z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;  z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
//     output = z ^ (z >> 31)   (all modulo 2^64).
// - A uniform double u in [0, 1) from each output: (output >> 11) * 2^-53.
// - A class from each u, in IEEE double:
//     c = floor(exp(u * log(V + 1))) - 1, clamped to [0, V - 1],
//   so that P(c) = log((c + 2) / (c + 1)) / log(V + 1). log(V + 1) is the C library's, computed
//   once on the host; exp is log_uniform_exp (cpu/log_uniform.hpp), within about an ulp of the
//   exact value and the same bits on every backend, which makes the draws reproducible bit for
//   bit. (The C library's exp would give the neighbouring class in rare cases, where exp(x)
//   lands within an ulp of an integer.)
// - Independent sampling: sample s is draw s. Unique sampling: draws continue until S distinct
//   classes are found; the samples are the distinct classes in the order of their first draw,
//   and tries counts every draw (repeats included).

void sample_log_uniform(ne_context& context, const SamplerArgs& a) {
    using log_uniform::expected_count;
    using log_uniform::log_uniform_class;
    int64_t tries = 0;
    if (a.unique) {
        // One bit per class: set once the class has been drawn.
        Scratch drawn_memory(context, (a.V + 63) / 64 * static_cast<int64_t>(sizeof(uint64_t)));
        uint64_t* drawn = drawn_memory.as<uint64_t>();
        std::fill_n(drawn, (a.V + 63) / 64, uint64_t{0});
        for (int64_t found = 0; found < a.S; ++tries) {
            const int64_t c = log_uniform_class(a.seed, static_cast<uint64_t>(tries), a.log_range, a.V);
            const uint64_t bit = uint64_t{1} << (c % 64);
            if ((drawn[c / 64] & bit) == 0) {
                drawn[c / 64] |= bit;
                a.samples[found++] = static_cast<int32_t>(c);
            }
        }
    } else {
        for (int64_t s = 0; s < a.S; ++s) {
            a.samples[s] = static_cast<int32_t>(log_uniform_class(a.seed, static_cast<uint64_t>(s), a.log_range, a.V));
        }
        tries = a.S;
    }
    for (int64_t s = 0; s < a.S; ++s) {
        a.sample_counts[s] = static_cast<float>(expected_count(a.samples[s], a.log_range, a.unique, a.S, tries));
    }
    for (int64_t n = 0; n < a.N; ++n) {
        const int32_t target = a.targets[n];
        a.target_counts[n] = target < 0 ? 1.0f : static_cast<float>(expected_count(target, a.log_range, a.unique, a.S, tries));
    }
}

// ==========================================================================================
// The sampled softmax: scalar reference
// ==========================================================================================

// The class that column j of row n scores: the target for j = 0, sample j - 1 after it.
int64_t column_class(const SampledArgs& a, int64_t n, int64_t j) { return j == 0 ? a.targets[n] : a.samples[j - 1]; }

void sampled_forward_reference(ne_context& context, const SampledForwardArgs& a) {
    const SampledArgs& in = a.in;
    const int64_t width = in.S + 1;
    Scratch row(context, width * static_cast<int64_t>(sizeof(float)));
    float* z = row.as<float>();
    for (int64_t n = 0; n < in.N; ++n) {
        const int64_t target = in.targets[n];
        float* probs = a.probs ? a.probs + n * a.probs_stride : nullptr;
        if (target < 0) {
            a.loss[n] = 0.0f;
            if (probs) std::fill_n(probs, width, 0.0f);
            continue;
        }
        // z = hidden_n . weight_c + bias_c - log(expected count of c); -inf removes a hit
        const float* h = in.hidden + n * in.hidden_stride;
        for (int64_t j = 0; j < width; ++j) {
            const int64_t c = column_class(in, n, j);
            if (j > 0 && in.remove_accidental_hits && c == target) {
                z[j] = -kInfinity;
                continue;
            }
            const float* w = in.weight + c * in.weight_stride;
            float logit = 0.0f;
            for (int64_t d = 0; d < in.D; ++d) logit += h[d] * w[d];
            if (in.bias) logit += in.bias[c];
            if (in.sample_counts) logit -= std::log(j == 0 ? in.target_counts[n] : in.sample_counts[j - 1]);
            z[j] = logit;
        }
        float max = -kInfinity;
        for (int64_t j = 0; j < width; ++j) max = std::max(max, z[j]);
        float sum = 0.0f;
        for (int64_t j = 0; j < width; ++j) sum += std::exp(z[j] - max);
        const float lse = max + std::log(sum);
        a.loss[n] = lse - z[0];
        if (probs) {
            for (int64_t j = 0; j < width; ++j) probs[j] = std::exp(z[j] - lse);
        }
    }
}

// dloss_n/dz_j = probs[n, j] - [j == 0], and z_j is linear in hidden_n, weight_c and bias_c for
// the class c of column j. Removed hits have probability 0 and get no gradient.
void sampled_backward_reference(const SampledBackwardArgs& a) {
    const SampledArgs& in = a.in;
    const int64_t D = in.D;
    if (!a.accumulate) {
        for (int64_t c = 0; c < in.V; ++c) {
            if (a.dweight) std::fill_n(a.dweight + c * a.dweight_stride, D, 0.0f);
            if (a.dbias) a.dbias[c] = 0.0f;
        }
    }
    for (int64_t n = 0; n < in.N; ++n) {
        const float* h = in.hidden + n * in.hidden_stride;
        float* dh = a.dhidden + n * a.dhidden_stride;
        std::fill_n(dh, D, 0.0f);
        if (in.targets[n] < 0) continue;
        const float* probs = a.probs + n * a.probs_stride;
        for (int64_t j = 0; j < in.S + 1; ++j) {
            const int64_t c = column_class(in, n, j);
            const float dz = a.dloss[n] * (j == 0 ? probs[j] - 1.0f : probs[j]);
            const float* w = in.weight + c * in.weight_stride;
            for (int64_t d = 0; d < D; ++d) dh[d] += dz * w[d];
            if (a.dweight) {
                float* dw = a.dweight + c * a.dweight_stride;
                for (int64_t d = 0; d < D; ++d) dw[d] += dz * h[d];
            }
            if (a.dbias) a.dbias[c] += dz;
        }
    }
}

// ==========================================================================================
// Validation
// ==========================================================================================

ne_sampler_params sampler_params_arg(const ne_sampler_params* params) {
    const ne_sampler_params defaults{sizeof(ne_sampler_params), 0, 0, 0};
    const ne_sampler_params p = params_arg(params, "params", sizeof(ne_sampler_params), defaults);
    // Classes are written as i32: V - 1 must fit.
    constexpr int64_t kMaxClasses = int64_t{std::numeric_limits<int32_t>::max()} + 1;
    if (p.num_classes < 1 || p.num_classes > kMaxClasses) {
        fail(NE_STATUS_INVALID_ARGUMENT, "argument 'params': num_classes is ", p.num_classes, "; expected 1 to ",
             kMaxClasses);
    }
    if (p.unique != 0 && p.unique != 1) {
        fail(NE_STATUS_INVALID_ARGUMENT, "argument 'params': unique is ", p.unique, "; expected 0 or 1");
    }
    return p;
}

// A contiguous tensor of shape [length] (a negative length accepts any) and dtype of `context`;
// returns the length.
int64_t vector_output_arg(const ne_tensor& tensor, const ne_context& context, ne_dtype dtype, int64_t length,
                          const char* name) {
    expect_context(tensor, context, name);
    expect_dtype(tensor, dtype, name);
    if (tensor.rank != 1) {
        fail(NE_STATUS_SHAPE_MISMATCH, "argument '", name, "': expected a 1-D tensor",
             length < 0 ? str("") : str(" of shape ", shape_string({length})), ", got shape ", shape_string(tensor));
    }
    if (length >= 0) expect_shape(tensor, {length}, name);
    expect_contiguous(tensor, name);
    return tensor.shape[0];
}

SamplerArgs sampler_args(const ne_context& context, const ne_sampler_params& params, const ne_tensor* targets_arg,
                         const ne_tensor* samples_arg, const ne_tensor* sample_counts_arg,
                         const ne_tensor* target_counts_arg) {
    const ne_tensor* targets = optional_tensor_arg(targets_arg, "targets");
    const ne_tensor& samples = tensor_arg(samples_arg, "samples");
    const ne_tensor& sample_counts = tensor_arg(sample_counts_arg, "sample_expected_counts");
    const ne_tensor* target_counts = optional_tensor_arg(target_counts_arg, "target_expected_counts");
    if ((targets == nullptr) != (target_counts == nullptr)) {
        fail(NE_STATUS_INVALID_ARGUMENT, "arguments 'targets' and 'target_expected_counts': expected both or neither, got only '",
             targets ? "targets" : "target_expected_counts", "'");
    }
    const int64_t V = params.num_classes;
    const int64_t S = vector_output_arg(samples, context, NE_DTYPE_I32, -1, "samples");
    if (params.unique == 1 && S > V) {
        fail(NE_STATUS_INVALID_ARGUMENT, "argument 'samples': ", S, " distinct samples (params.unique = 1) exceed the ", V,
             " classes; expected S <= num_classes");
    }
    vector_output_arg(sample_counts, context, NE_DTYPE_F32, S, "sample_expected_counts");
    const int64_t N = targets ? class_ids_arg(*targets, context, -1, V, true, "targets") : 0;
    if (target_counts) vector_output_arg(*target_counts, context, NE_DTYPE_F32, N, "target_expected_counts");
    const NamedTensor outputs[] = {
        {&samples, "samples"}, {&sample_counts, "sample_expected_counts"}, {target_counts, "target_expected_counts"}};
    const NamedTensor inputs[] = {{targets, "targets"}};
    expect_separate(outputs, std::size(outputs), inputs, std::size(inputs));
    return {V,
            S,
            N,
            params.seed,
            params.unique == 1,
            std::log(static_cast<double>(V) + 1.0),
            data_of<int32_t>(samples),
            data_of<float>(sample_counts),
            targets ? data_of<int32_t>(*targets) : nullptr,
            target_counts ? data_of<float>(*target_counts) : nullptr};
}

void expect_flag(int32_t value, const char* field) {
    if (value != 0 && value != 1) {
        fail(NE_STATUS_INVALID_ARGUMENT, "argument 'params': ", field, " is ", value, "; expected 0 or 1");
    }
}

ne_sampled_softmax_params sampled_params_arg(const ne_sampled_softmax_params* params, bool backward) {
    const ne_sampled_softmax_params defaults{sizeof(ne_sampled_softmax_params), 0, 0, 0};
    const ne_sampled_softmax_params p = params_arg(params, "params", sizeof(ne_sampled_softmax_params), defaults);
    if (backward) {
        expect_flag(p.accumulate, "accumulate");
    } else {
        expect_flag(p.subtract_log_expected_count, "subtract_log_expected_count");
        expect_flag(p.remove_accidental_hits, "remove_accidental_hits");
    }
    return p;
}

// Expected counts whose logs the correction subtracts; rows with a negative target are skipped.
void expect_positive_counts(const ne_context& context, const float* counts, int64_t length, const int32_t* targets,
                            const char* name) {
    auto describe = [name](int64_t index, uint32_t bits) {
        float value = 0.0f;
        std::memcpy(&value, &bits, sizeof value);
        return str("argument '", name, "': ", flat_position(index), " is ", value,
                   "; expected a finite expected count > 0 (params.subtract_log_expected_count = 1 subtracts its log)");
    };
    if (context.device) {
        context.device->check_floats({counts, length, 1, 1, targets, true}, describe);
        return;
    }
    for (int64_t i = 0; i < length; ++i) {
        if (targets && targets[i] < 0) continue;
        if (!(counts[i] > 0.0f) || !std::isfinite(counts[i])) {
            uint32_t bits = 0;
            std::memcpy(&bits, &counts[i], sizeof bits);
            fail(NE_STATUS_INVALID_ARGUMENT, describe(i, bits));
        }
    }
}

// hidden, weight, targets and samples; the callers check the rest.
SampledArgs sampled_args(const ne_context& context, const ne_tensor& hidden, const ne_tensor& weight,
                         const ne_tensor& targets, const ne_tensor& samples) {
    const Matrix h = f32_matrix_arg(hidden, context, -1, -1, "hidden");
    const Matrix w = f32_matrix_arg(weight, context, -1, h.cols, "weight");
    class_ids_arg(targets, context, h.rows, w.rows, true, "targets");
    const int64_t S = class_ids_arg(samples, context, -1, w.rows, false, "samples");
    SampledArgs args{};
    args.N = h.rows;
    args.D = h.cols;
    args.V = w.rows;
    args.S = S;
    args.hidden = data_of<float>(hidden);
    args.hidden_stride = h.row_stride;
    args.weight = data_of<float>(weight);
    args.weight_stride = w.row_stride;
    args.targets = data_of<int32_t>(targets);
    args.samples = data_of<int32_t>(samples);
    return args;
}

SampledForwardArgs sampled_forward_args(const ne_context& context, const ne_sampled_softmax_params& params,
                                        const ne_tensor* hidden_arg, const ne_tensor* weight_arg, const ne_tensor* bias_arg,
                                        const ne_tensor* targets_arg, const ne_tensor* samples_arg,
                                        const ne_tensor* sample_counts_arg, const ne_tensor* target_counts_arg,
                                        const ne_tensor* loss_arg, const ne_tensor* probs_arg) {
    const ne_tensor& hidden = tensor_arg(hidden_arg, "hidden");
    const ne_tensor& weight = tensor_arg(weight_arg, "weight");
    const ne_tensor* bias = optional_tensor_arg(bias_arg, "bias");
    const ne_tensor& targets = tensor_arg(targets_arg, "targets");
    const ne_tensor& samples = tensor_arg(samples_arg, "samples");
    const bool corrected = params.subtract_log_expected_count == 1;
    if (corrected && (sample_counts_arg == nullptr || target_counts_arg == nullptr)) {
        fail(NE_STATUS_NULL_POINTER, "argument '", sample_counts_arg ? "target_expected_counts" : "sample_expected_counts",
             "' is NULL; expected a tensor with params.subtract_log_expected_count = 1");
    }
    const ne_tensor* sample_counts = optional_tensor_arg(sample_counts_arg, "sample_expected_counts");
    const ne_tensor* target_counts = optional_tensor_arg(target_counts_arg, "target_expected_counts");
    const ne_tensor& loss = tensor_arg(loss_arg, "loss");
    const ne_tensor* probs = optional_tensor_arg(probs_arg, "probs");

    SampledForwardArgs args{sampled_args(context, hidden, weight, targets, samples), nullptr, nullptr, 0};
    SampledArgs& in = args.in;
    if (bias) f32_vector_arg(*bias, context, in.V, "bias");
    if (sample_counts) f32_vector_arg(*sample_counts, context, in.S, "sample_expected_counts");
    if (target_counts) f32_vector_arg(*target_counts, context, in.N, "target_expected_counts");
    f32_vector_arg(loss, context, in.N, "loss");
    const Matrix p = probs ? f32_matrix_arg(*probs, context, in.N, in.S + 1, "probs") : Matrix{};
    const NamedTensor outputs[] = {{&loss, "loss"}, {probs, "probs"}};
    const NamedTensor inputs[] = {{&hidden, "hidden"},   {&weight, "weight"},
                                  {bias, "bias"},        {&targets, "targets"},
                                  {&samples, "samples"}, {sample_counts, "sample_expected_counts"},
                                  {target_counts, "target_expected_counts"}};
    expect_separate(outputs, std::size(outputs), inputs, std::size(inputs));
    if (corrected) {
        in.sample_counts = data_of<float>(*sample_counts);
        in.target_counts = data_of<float>(*target_counts);
        expect_positive_counts(context, in.sample_counts, in.S, nullptr, "sample_expected_counts");
        expect_positive_counts(context, in.target_counts, in.N, in.targets, "target_expected_counts");
    }
    in.bias = bias ? data_of<float>(*bias) : nullptr;
    in.remove_accidental_hits = params.remove_accidental_hits == 1;
    args.loss = data_of<float>(loss);
    args.probs = probs ? data_of<float>(*probs) : nullptr;
    args.probs_stride = p.row_stride;
    return args;
}

SampledBackwardArgs sampled_backward_args(const ne_context& context, const ne_sampled_softmax_params& params,
                                          const ne_tensor* hidden_arg, const ne_tensor* weight_arg,
                                          const ne_tensor* targets_arg, const ne_tensor* samples_arg,
                                          const ne_tensor* probs_arg, const ne_tensor* dloss_arg,
                                          const ne_tensor* dhidden_arg, const ne_tensor* dweight_arg,
                                          const ne_tensor* dbias_arg) {
    const ne_tensor& hidden = tensor_arg(hidden_arg, "hidden");
    const ne_tensor& weight = tensor_arg(weight_arg, "weight");
    const ne_tensor& targets = tensor_arg(targets_arg, "targets");
    const ne_tensor& samples = tensor_arg(samples_arg, "samples");
    const ne_tensor& probs = tensor_arg(probs_arg, "probs");
    const ne_tensor& dloss = tensor_arg(dloss_arg, "dloss");
    const ne_tensor& dhidden = tensor_arg(dhidden_arg, "dhidden");
    const ne_tensor* dweight = optional_tensor_arg(dweight_arg, "dweight");
    const ne_tensor* dbias = optional_tensor_arg(dbias_arg, "dbias");

    SampledBackwardArgs args{};
    args.in = sampled_args(context, hidden, weight, targets, samples);
    const SampledArgs& in = args.in;
    const Matrix p = f32_matrix_arg(probs, context, in.N, in.S + 1, "probs");
    f32_vector_arg(dloss, context, in.N, "dloss");
    const Matrix dh = f32_matrix_arg(dhidden, context, in.N, in.D, "dhidden");
    const Matrix dw = dweight ? f32_matrix_arg(*dweight, context, in.V, in.D, "dweight") : Matrix{};
    if (dbias) f32_vector_arg(*dbias, context, in.V, "dbias");
    const NamedTensor outputs[] = {{&dhidden, "dhidden"}, {dweight, "dweight"}, {dbias, "dbias"}};
    const NamedTensor inputs[] = {{&hidden, "hidden"}, {&weight, "weight"}, {&targets, "targets"},
                                  {&samples, "samples"}, {&probs, "probs"},   {&dloss, "dloss"}};
    expect_separate(outputs, std::size(outputs), inputs, std::size(inputs));
    args.probs = data_of<float>(probs);
    args.probs_stride = p.row_stride;
    args.dloss = data_of<float>(dloss);
    args.dhidden = data_of<float>(dhidden);
    args.dhidden_stride = dh.row_stride;
    args.dweight = dweight ? data_of<float>(*dweight) : nullptr;
    args.dweight_stride = dw.row_stride;
    args.dbias = dbias ? data_of<float>(*dbias) : nullptr;
    args.accumulate = params.accumulate == 1;
    return args;
}

// ==========================================================================================
// Kernels: the sampled rows of weight gathered into [S, D], GEMMs on the context's threads, and
// row passes split among them
// ==========================================================================================

namespace rows = avx2::softmax_rows;

// gathered [S, D] = the rows samples[s] of weight.
void gather_sampled_rows(ne_context& context, const SampledArgs& in, float* gathered) {
    const int64_t D = in.D;
    context.pool->parallel_for(in.S, rows_per_task(D), [&](int64_t begin, int64_t end) {
        for (int64_t s = begin; s < end; ++s) {
            std::memcpy(gathered + s * D, in.weight + in.samples[s] * in.weight_stride,
                        static_cast<size_t>(D) * sizeof(float));
        }
    });
}

// A class and a position among the samples (or rows), sorted by class, then position.
struct ClassEntry {
    int64_t class_id;
    int64_t position;

    bool operator<(const ClassEntry& other) const {
        return class_id != other.class_id ? class_id < other.class_id : position < other.position;
    }
};

void sampled_forward_fast(ne_context& context, const SampledForwardArgs& a) {
    const SampledArgs& in = a.in;
    const int64_t N = in.N, D = in.D, S = in.S, width = S + 1;
    constexpr int64_t kFloat = sizeof(float);
    Scratch gathered(context, checked_multiply(S, D * kFloat, "the gathered rows of weight"));
    Scratch offsets_memory(context, S * kFloat);
    // The logits are computed in probs, which they become, when the caller asks for it.
    Scratch logits_memory(context, a.probs ? 0 : checked_multiply(N, width * kFloat, "the sampled logits"));
    Scratch hits_memory(context, in.remove_accidental_hits ? S * static_cast<int64_t>(sizeof(ClassEntry)) : 0);
    float* z = a.probs ? a.probs : logits_memory.as<float>();
    const int64_t z_stride = a.probs ? a.probs_stride : width;

    // Per sample: bias - log(expected count), the same in every row.
    float* offsets = offsets_memory.as<float>();
    for (int64_t s = 0; s < S; ++s) {
        const int64_t c = in.samples[s];
        offsets[s] = (in.bias ? in.bias[c] : 0.0f) - (in.sample_counts ? std::log(in.sample_counts[s]) : 0.0f);
    }
    // The samples sorted by class: a row finds the positions of its accidental hits by bisection.
    ClassEntry* hits = hits_memory.as<ClassEntry>();
    if (in.remove_accidental_hits) {
        for (int64_t s = 0; s < S; ++s) hits[s] = {in.samples[s], s};
        std::sort(hits, hits + S);
    }

    gather_sampled_rows(context, in, gathered.as<float>());
    sgemm(context, false, true, N, S, D, 1.0f, in.hidden, in.hidden_stride, gathered.as<float>(), D, 0.0f, z + 1, z_stride);

    context.pool->parallel_for(N, rows_per_task(width), [&](int64_t begin, int64_t end) {
        for (int64_t n = begin; n < end; ++n) {
            float* zn = z + n * z_stride;
            const int64_t target = in.targets[n];
            if (target < 0) {
                a.loss[n] = 0.0f;
                if (a.probs) std::fill_n(zn, width, 0.0f);
                continue;
            }
            float target_logit = rows::dot(in.hidden + n * in.hidden_stride, in.weight + target * in.weight_stride, D);
            if (in.bias) target_logit += in.bias[target];
            if (in.target_counts) target_logit -= std::log(in.target_counts[n]);
            zn[0] = target_logit;
            float samples_max = rows::add_bias_and_max(zn + 1, offsets, S);
            if (in.remove_accidental_hits) {
                const ClassEntry* hit = std::lower_bound(hits, hits + S, ClassEntry{target, 0});
                if (hit != hits + S && hit->class_id == target) {
                    for (; hit != hits + S && hit->class_id == target; ++hit) zn[1 + hit->position] = -kInfinity;
                    samples_max = rows::add_bias_and_max(zn + 1, nullptr, S);
                }
            }
            const float max = std::max(target_logit, samples_max);
            const float lse = max + std::log(rows::sum_exp(zn, width, max));
            a.loss[n] = lse - target_logit;
            if (a.probs) rows::scaled_softmax(zn, nullptr, width, lse, 1.0f);
        }
    });
}

// The classes whose rows of dweight and dbias the backward pass writes, and what goes into them:
// entries (class, source) sorted by class, where source s < S is sample s and S + n is row n
// (its target); starts[g] .. starts[g + 1] are the entries of the g-th touched class.
struct ClassGroups {
    const ClassEntry* entries;
    const int64_t* starts;
    int64_t count;
};

// entries has room for S + N entries, starts for S + N + 1.
ClassGroups group_by_class(const SampledArgs& in, ClassEntry* entries, int64_t* starts) {
    int64_t entry_count = 0;
    for (int64_t s = 0; s < in.S; ++s) entries[entry_count++] = {in.samples[s], s};
    for (int64_t n = 0; n < in.N; ++n) {
        if (in.targets[n] >= 0) entries[entry_count++] = {in.targets[n], in.S + n};
    }
    std::sort(entries, entries + entry_count);
    int64_t count = 0;
    for (int64_t e = 0; e < entry_count; ++e) {
        if (e == 0 || entries[e].class_id != entries[e - 1].class_id) starts[count++] = e;
    }
    starts[count] = entry_count;
    return {entries, starts, count};
}

// dweight and dbias at the touched classes. Each touched class gets the sum of its
// contributions in a fixed order (its samples in sample order, then its rows in row order) from
// one thread, and is then written (or added) once: no two threads write a row, and the bits do
// not depend on the thread count. With accumulate = 0, the other rows are zeroed first. sums
// holds D floats per thread of the pool.
void scatter_class_gradients(ne_context& context, const SampledBackwardArgs& a, const ClassGroups& groups, const float* dz,
                             const float* sample_dweight, const float* sample_dbias, float* sums) {
    const SampledArgs& in = a.in;
    const int64_t D = in.D, S = in.S, width = S + 1;
    if (!a.accumulate) {
        context.pool->parallel_for(in.V, rows_per_task(D), [&](int64_t begin, int64_t end) {
            for (int64_t c = begin; c < end; ++c) {
                if (a.dweight) std::fill_n(a.dweight + c * a.dweight_stride, D, 0.0f);
                if (a.dbias) a.dbias[c] = 0.0f;
            }
        });
    }
    const int64_t groups_per_task = rows_per_task(D);
    const int64_t task_count = std::min<int64_t>(context.pool->size(), (groups.count + groups_per_task - 1) / groups_per_task);
    context.pool->run(static_cast<int>(task_count), [&](int index, int count) {
        float* sum = sums + index * D;
        for (int64_t g = groups.count * index / count; g < groups.count * (index + 1) / count; ++g) {
            std::fill_n(sum, D, 0.0f);
            float bias_sum = 0.0f;
            for (int64_t e = groups.starts[g]; e < groups.starts[g + 1]; ++e) {
                const int64_t source = groups.entries[e].position;
                if (source < S) {
                    if (a.dweight) {
                        const float* contribution = sample_dweight + source * D;
                        for (int64_t d = 0; d < D; ++d) sum[d] += contribution[d];
                    }
                    if (a.dbias) bias_sum += sample_dbias[source];
                } else {
                    const int64_t n = source - S;
                    const float dz_target = dz[n * width];
                    if (a.dweight) {
                        const float* h = in.hidden + n * in.hidden_stride;
                        for (int64_t d = 0; d < D; ++d) sum[d] += dz_target * h[d];
                    }
                    if (a.dbias) bias_sum += dz_target;
                }
            }
            const int64_t c = groups.entries[groups.starts[g]].class_id;
            if (a.dweight) {
                float* dw = a.dweight + c * a.dweight_stride;
                for (int64_t d = 0; d < D; ++d) dw[d] = a.accumulate ? dw[d] + sum[d] : sum[d];
            }
            if (a.dbias) a.dbias[c] = a.accumulate ? a.dbias[c] + bias_sum : bias_sum;
        }
    });
}

void sampled_backward_fast(ne_context& context, const SampledBackwardArgs& a) {
    const SampledArgs& in = a.in;
    const int64_t N = in.N, D = in.D, S = in.S, width = S + 1;
    const bool parameter_gradients = a.dweight || a.dbias;
    // All scratch memory comes first: a failing allocation leaves the outputs untouched.
    constexpr int64_t kFloat = sizeof(float);
    Scratch dz_memory(context, checked_multiply(N, width * kFloat, "the gradient of the sampled logits"));
    Scratch gathered(context, checked_multiply(S, D * kFloat, "the gathered rows of weight"));
    Scratch sample_dweight(context, a.dweight ? S * D * kFloat : 0);
    Scratch sample_dbias(context, a.dbias ? S * kFloat : 0);
    Scratch entries(context, parameter_gradients ? (S + N) * static_cast<int64_t>(sizeof(ClassEntry)) : 0);
    Scratch group_starts(context, parameter_gradients ? (S + N + 1) * static_cast<int64_t>(sizeof(int64_t)) : 0);
    Scratch sums(context, parameter_gradients ? context.pool->size() * D * kFloat : 0);
    float* dz = dz_memory.as<float>();

    // dZ = dloss * (probs - onehot(column 0)); 0 for ignored rows.
    context.pool->parallel_for(N, rows_per_task(width), [&](int64_t begin, int64_t end) {
        for (int64_t n = begin; n < end; ++n) {
            float* dzn = dz + n * width;
            if (in.targets[n] < 0) {
                std::fill_n(dzn, width, 0.0f);
                continue;
            }
            const float* probs = a.probs + n * a.probs_stride;
            const float scale = a.dloss[n];
            for (int64_t j = 0; j < width; ++j) dzn[j] = probs[j] * scale;
            dzn[0] -= scale;
        }
    });

    // dhidden = dZ[:, 1:] W_samples, plus dZ[:, 0] times each row's target row of weight.
    gather_sampled_rows(context, in, gathered.as<float>());
    sgemm(context, false, false, N, D, S, 1.0f, dz + 1, width, gathered.as<float>(), D, 0.0f, a.dhidden, a.dhidden_stride);
    context.pool->parallel_for(N, rows_per_task(D), [&](int64_t begin, int64_t end) {
        for (int64_t n = begin; n < end; ++n) {
            const int64_t target = in.targets[n];
            if (target < 0) continue;
            const float dz_target = dz[n * width];
            const float* w = in.weight + target * in.weight_stride;
            float* dh = a.dhidden + n * a.dhidden_stride;
            for (int64_t d = 0; d < D; ++d) dh[d] += dz_target * w[d];
        }
    });

    if (!parameter_gradients) return;
    // Per sample: its row of dweight, dZ[:, 1 + s]^T hidden, and of dbias, the column sum.
    if (a.dweight) {
        sgemm(context, true, false, S, D, N, 1.0f, dz + 1, width, in.hidden, in.hidden_stride, 0.0f, sample_dweight.as<float>(),
              D);
    }
    if (a.dbias) column_sums(context, dz + 1, N, S, width, sample_dbias.as<float>(), false);
    const ClassGroups groups = group_by_class(in, entries.as<ClassEntry>(), group_starts.as<int64_t>());
    scatter_class_gradients(context, a, groups, dz, sample_dweight.as<float>(), sample_dbias.as<float>(), sums.as<float>());
}

}  // namespace
}  // namespace ne::cpu

// ------------------------------------------------------------------------------------------
// Exported functions
// ------------------------------------------------------------------------------------------

extern "C" {

NE_API ne_status ne_sample_log_uniform(ne_context* context, const ne_sampler_params* params, const ne_tensor* targets,
                                       ne_tensor* samples, ne_tensor* sample_expected_counts,
                                       ne_tensor* target_expected_counts) {
    return ne::guard("ne_sample_log_uniform", [&] {
        ne_context& ctx = ne::context_arg(context, "context");
        const ne_sampler_params p = ne::cpu::sampler_params_arg(params);
        const auto args =
            ne::cpu::sampler_args(ctx, p, targets, samples, sample_expected_counts, target_expected_counts);
        if (ctx.device) {
            ctx.device->sample_log_uniform(args);
        } else {
            ne::cpu::sample_log_uniform(ctx, args);
        }
    });
}

NE_API ne_status ne_sampled_softmax_forward(ne_context* context, const ne_sampled_softmax_params* params,
                                            const ne_tensor* hidden, const ne_tensor* weight, const ne_tensor* bias,
                                            const ne_tensor* targets, const ne_tensor* samples,
                                            const ne_tensor* sample_expected_counts,
                                            const ne_tensor* target_expected_counts, ne_tensor* loss,
                                            ne_tensor* probs) {
    return ne::guard("ne_sampled_softmax_forward", [&] {
        ne_context& ctx = ne::context_arg(context, "context");
        const ne_sampled_softmax_params p = ne::cpu::sampled_params_arg(params, false);
        const auto args = ne::cpu::sampled_forward_args(ctx, p, hidden, weight, bias, targets, samples,
                                                        sample_expected_counts, target_expected_counts, loss, probs);
        if (ctx.device) {
            ctx.device->sampled_softmax_forward(args);
        } else if (ctx.simd_level == NE_SIMD_LEVEL_SCALAR) {
            ne::cpu::sampled_forward_reference(ctx, args);
        } else {
            ne::cpu::sampled_forward_fast(ctx, args);
        }
    });
}

NE_API ne_status ne_sampled_softmax_backward(ne_context* context, const ne_sampled_softmax_params* params,
                                             const ne_tensor* hidden, const ne_tensor* weight, const ne_tensor* targets,
                                             const ne_tensor* samples, const ne_tensor* probs, const ne_tensor* dloss,
                                             ne_tensor* dhidden, ne_tensor* dweight, ne_tensor* dbias) {
    return ne::guard("ne_sampled_softmax_backward", [&] {
        ne_context& ctx = ne::context_arg(context, "context");
        const ne_sampled_softmax_params p = ne::cpu::sampled_params_arg(params, true);
        const auto args = ne::cpu::sampled_backward_args(ctx, p, hidden, weight, targets, samples, probs, dloss, dhidden,
                                                         dweight, dbias);
        if (ctx.device) {
            ctx.device->sampled_softmax_backward(args);
        } else if (ctx.simd_level == NE_SIMD_LEVEL_SCALAR) {
            ne::cpu::sampled_backward_reference(args);
        } else {
            ne::cpu::sampled_backward_fast(ctx, args);
        }
    });
}

}  // extern "C"
