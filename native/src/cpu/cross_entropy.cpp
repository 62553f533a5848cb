// Softmax cross-entropy over an output projection, computed in chunks of classes so that the
// [N, V] logits never exist at once; the contract is in nativeengine.h.
//
// Reads top-down: the scalar reference (what NE_SIMD_LEVEL_SCALAR runs, on one thread), the
// validation shared with the sampled softmax (sampled_softmax.cpp), the chunked kernels that run
// the GEMMs on the context's threads and the softmax row passes of cross_entropy_avx2.cpp, and
// the exported functions, which hand device contexts to their Device (cuda/cross_entropy.cu, the
// same chunked algorithm) after validation.
//
// Shape letters: N rows, D hidden size, V classes; a chunk covers `chunk` classes.
//
// What the header leaves open:
// - hidden, weight and dhidden are 2-D with contiguous rows (any row stride); dweight too. bias,
//   targets, loss, lse, dloss and dbias are contiguous 1-D tensors.
// - An ignored row (negative target) still gets its logsumexp in lse; its loss and its dhidden
//   row are 0, and the backward pass reads neither its lse nor its dloss.
// - Outputs never share memory with inputs or with each other (NE_STATUS_INVALID_ARGUMENT).
//
// The chunked kernels, per chunk of classes [c0, c0 + chunk):
//   forward:  Z = hidden W_c^T (+ bias_c), then per row an online logsumexp: the running max m
//             and sum s = sum exp(z - m) are rescaled to the chunk's new max, and z[target] is
//             picked up in the chunk that holds it.
//   backward: Z as above, P = exp(Z - lse) * dloss with dloss subtracted at the target
//             (dZ = dloss * (softmax - onehot)), then dhidden (+)= P W_c, dW_c (+)= P^T hidden and
//             dbias_c (+)= column sums of P.
// Every reduction has a fixed order (the GEMM's bits do not depend on the thread count, and
// column sums run in row order), so all outputs are the same for every thread count.
//
// Cost: the three GEMMs (6 N V D flops per step) take about 90% of a step at N = 4096, D = 512,
// V = 20000 (perf, two AVX2 cores), the row passes (an exp per logit in each pass) about 3%; that
// is why AVX-512 contexts share the AVX2 row kernels.
#include "cpu/cross_entropy.hpp"
#include "cpu/softmax_losses.hpp"

#include "core/validate.hpp"
#include "cpu/gemm.hpp"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <limits>

namespace ne::cpu {
namespace {

constexpr float kInfinity = std::numeric_limits<float>::infinity();

// ------------------------------------------------------------------------------------------
// Scalar reference, in the style of llm.c: one logit at a time, no [N, V] or chunk buffers.
// ------------------------------------------------------------------------------------------

// z[n, c] = hidden_n . weight_c + bias_c, accumulated in d order.
float logit_reference(const CrossEntropyArgs& a, int64_t n, int64_t c) {
    const float* h = a.hidden + n * a.hidden_stride;
    const float* w = a.weight + c * a.weight_stride;
    float z = 0.0f;
    for (int64_t d = 0; d < a.D; ++d) z += h[d] * w[d];
    return a.bias ? z + a.bias[c] : z;
}

void forward_reference(const CrossEntropyForwardArgs& a) {
    const CrossEntropyArgs& in = a.in;
    for (int64_t n = 0; n < in.N; ++n) {
        const int32_t target = in.targets[n];
        // online logsumexp: the max so far, and the sum of exp(z - max) so far
        float max = -kInfinity;
        float sum = 0.0f;
        float target_logit = 0.0f;
        for (int64_t c = 0; c < in.V; ++c) {
            const float z = logit_reference(in, n, c);
            if (z > max) {
                sum = sum * std::exp(max - z) + 1.0f;
                max = z;
            } else {
                sum += std::exp(z - max);
            }
            if (c == target) target_logit = z;
        }
        const float lse = max + std::log(sum);
        a.loss[n] = target < 0 ? 0.0f : lse - target_logit;
        if (a.lse) a.lse[n] = lse;
    }
}

// dloss_n/dz_c = softmax_c - [c == target] = exp(z_c - lse_n) - [c == target], and z_c is linear
// in hidden_n, weight_c and bias_c.
void backward_reference(const CrossEntropyBackwardArgs& a) {
    const CrossEntropyArgs& in = a.in;
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
        const int32_t target = in.targets[n];
        if (target < 0) continue;
        for (int64_t c = 0; c < in.V; ++c) {
            const float probability = std::exp(logit_reference(in, n, c) - a.lse[n]);
            const float dz = a.dloss[n] * (c == target ? probability - 1.0f : probability);
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

}  // namespace

// ------------------------------------------------------------------------------------------
// Validation, shared with the sampled softmax
// ------------------------------------------------------------------------------------------

Matrix f32_matrix_arg(const ne_tensor& tensor, const ne_context& context, int64_t rows, int64_t cols, const char* name) {
    expect_context(tensor, context, name);
    expect_dtype(tensor, NE_DTYPE_F32, name);
    const bool rows_match = rows < 0 || (tensor.rank == 2 && tensor.shape[0] == rows);
    const bool cols_match = cols < 0 || (tensor.rank == 2 && tensor.shape[1] == cols);
    if (tensor.rank != 2 || !rows_match || !cols_match) {
        fail(NE_STATUS_SHAPE_MISMATCH, "argument '", name, "': expected shape [", rows < 0 ? str("*") : str(rows), ", ",
             cols < 0 ? str("*") : str(cols), "], got ", shape_string(tensor));
    }
    const RowMatrix matrix = row_matrix(tensor, name);
    return {matrix.rows, matrix.cols, matrix.row_stride};
}

void f32_vector_arg(const ne_tensor& tensor, const ne_context& context, int64_t length, const char* name) {
    expect_context(tensor, context, name);
    expect_dtype(tensor, NE_DTYPE_F32, name);
    expect_shape(tensor, {length}, name);
    expect_contiguous(tensor, name);
}

int64_t class_ids_arg(const ne_tensor& tensor, const ne_context& context, int64_t length, int64_t V,
                      bool negatives_ignored, const char* name) {
    expect_context(tensor, context, name);
    expect_dtype(tensor, NE_DTYPE_I32, name);
    if (length < 0 && tensor.rank != 1) {
        fail(NE_STATUS_SHAPE_MISMATCH, "argument '", name, "': expected a 1-D tensor, got shape ", shape_string(tensor));
    }
    if (length >= 0) expect_shape(tensor, {length}, name);
    expect_contiguous(tensor, name);
    const int64_t count = tensor.shape[0];
    const int32_t* ids = data_of<int32_t>(tensor);
    auto describe = [V, negatives_ignored, name](int64_t index, uint32_t bits) {
        return str("argument '", name, "': ", flat_position(index), " is ", static_cast<int32_t>(bits),
                   "; expected a class in [0, ", V, ")", negatives_ignored ? " or a negative value for an ignored row" : "");
    };
    if (context.device) {
        context.device->check_int_range({{ids, count, count, count}, 0, V, negatives_ignored}, describe);
        return count;
    }
    for (int64_t i = 0; i < count; ++i) {
        if (ids[i] >= V || (ids[i] < 0 && !negatives_ignored)) {
            fail(NE_STATUS_INVALID_ARGUMENT, describe(i, static_cast<uint32_t>(ids[i])));
        }
    }
    return count;
}

void expect_separate(const NamedTensor* outputs, int64_t output_count, const NamedTensor* inputs, int64_t input_count) {
    for (int64_t i = 0; i < output_count; ++i) {
        const NamedTensor& output = outputs[i];
        if (output.tensor == nullptr) continue;
        for (int64_t j = i + 1; j < output_count; ++j) {
            if (outputs[j].tensor) expect_no_overlap(*output.tensor, output.name, *outputs[j].tensor, outputs[j].name);
        }
        for (int64_t j = 0; j < input_count; ++j) {
            if (inputs[j].tensor) expect_no_overlap(*output.tensor, output.name, *inputs[j].tensor, inputs[j].name);
        }
    }
}

// ------------------------------------------------------------------------------------------
// Parallel helpers, shared with the sampled softmax
// ------------------------------------------------------------------------------------------

// Waking the pool's threads costs 10 to 20 us on the 2-core development VM; a task of this many
// logits (one exp each, about 1 ns on one AVX2 core) is worth it.
constexpr int64_t kMinLogitsPerTask = int64_t{1} << 14;

int64_t rows_per_task(int64_t width) { return std::max<int64_t>(1, kMinLogitsPerTask / std::max<int64_t>(1, width)); }

void column_sums(ne_context& context, const float* matrix, int64_t rows, int64_t cols, int64_t row_stride, float* sums,
                 bool accumulate) {
    // Blocks of columns small enough for their partial sums to stay in registers or L1.
    constexpr int64_t kBlock = 64;
    const int64_t blocks = (cols + kBlock - 1) / kBlock;
    const int64_t blocks_per_task = std::max<int64_t>(1, kMinLogitsPerTask / (rows * kBlock));
    context.pool->parallel_for(blocks, blocks_per_task, [&](int64_t block_begin, int64_t block_end) {
        for (int64_t block = block_begin; block < block_end; ++block) {
            const int64_t c0 = block * kBlock;
            const int64_t width = std::min(kBlock, cols - c0);
            float partial[kBlock] = {};
            for (int64_t r = 0; r < rows; ++r) {
                const float* row = matrix + r * row_stride + c0;
                for (int64_t j = 0; j < width; ++j) partial[j] += row[j];
            }
            for (int64_t j = 0; j < width; ++j) sums[c0 + j] = accumulate ? sums[c0 + j] + partial[j] : partial[j];
        }
    });
}

namespace {

// ------------------------------------------------------------------------------------------
// Validation of the full cross-entropy
// ------------------------------------------------------------------------------------------

// The default chunk keeps the [N, chunk] logits near 4 MiB, where the GEMM that writes them and
// the row pass that reads them back meet in the last-level cache, and covers at least 128
// classes: narrower chunks make the GEMMs repack hidden and re-read dhidden for too few classes.
// Measured for one step at N = 4096, D = 512, V = 20000 on two AVX2 cores (total CPU time): 128
// to 4096 classes within 5% of each other, 64 classes 25% more. A multiple of 16 classes.
// A device runs each chunk's GEMMs as single cuBLAS calls, which only fill a GPU from a few
// hundred million flops on: its default chunk holds up to 64 MiB of logits (2048 classes wide at
// N = 8192), in multiples of 128 classes, the tile width of cuBLAS's large kernels.
constexpr int64_t kDefaultChunkBytes = int64_t{4} << 20;
constexpr int64_t kMinDefaultChunk = 128;
constexpr int64_t kDeviceChunkBytes = int64_t{64} << 20;

int64_t chunk_arg(int64_t requested, int64_t N, int64_t V, bool device) {
    if (requested > 0) return std::min(requested, V);
    const int64_t bytes = device ? kDeviceChunkBytes : kDefaultChunkBytes;
    const int64_t multiple = device ? 128 : 16;
    const int64_t fitting = bytes / (N * static_cast<int64_t>(sizeof(float))) / multiple * multiple;
    return std::min(std::max(fitting, kMinDefaultChunk), V);
}

ne_cross_entropy_params cross_entropy_params_arg(const ne_cross_entropy_params* params, bool backward) {
    const ne_cross_entropy_params defaults{sizeof(ne_cross_entropy_params), 0, 0, 0};
    const ne_cross_entropy_params p = params_arg(params, "params", sizeof(ne_cross_entropy_params), defaults);
    if (p.chunk_size < 0) {
        fail(NE_STATUS_INVALID_ARGUMENT, "argument 'params': chunk_size is ", p.chunk_size,
             "; expected a number of classes >= 1, or 0 for the default");
    }
    if (p.allow_tf32 != 0 && p.allow_tf32 != 1) {
        fail(NE_STATUS_INVALID_ARGUMENT, "argument 'params': allow_tf32 is ", p.allow_tf32, "; expected 0 or 1");
    }
    if (backward && p.accumulate != 0 && p.accumulate != 1) {
        fail(NE_STATUS_INVALID_ARGUMENT, "argument 'params': accumulate is ", p.accumulate, "; expected 0 or 1");
    }
    return p;
}

template <class T>
T* data_or_null(const ne_tensor* tensor) {
    return tensor ? data_of<T>(*tensor) : nullptr;
}

// hidden, weight, bias and targets; outputs and further inputs are checked by the callers.
CrossEntropyArgs projection_args(const ne_context& context, const ne_cross_entropy_params& params, const ne_tensor& hidden,
                               const ne_tensor& weight, const ne_tensor* bias, const ne_tensor& targets) {
    const Matrix h = f32_matrix_arg(hidden, context, -1, -1, "hidden");
    const Matrix w = f32_matrix_arg(weight, context, -1, h.cols, "weight");
    if (bias) f32_vector_arg(*bias, context, w.rows, "bias");
    class_ids_arg(targets, context, h.rows, w.rows, true, "targets");
    return {h.rows,
            h.cols,
            w.rows,
            data_of<float>(hidden),
            h.row_stride,
            data_of<float>(weight),
            w.row_stride,
            data_or_null<float>(bias),
            data_of<int32_t>(targets),
            chunk_arg(params.chunk_size, h.rows, w.rows, context.device != nullptr),
            params.allow_tf32 == 1};
}

CrossEntropyForwardArgs forward_args(const ne_context& context, const ne_cross_entropy_params& params, const ne_tensor* hidden_arg,
                         const ne_tensor* weight_arg, const ne_tensor* bias_arg, const ne_tensor* targets_arg,
                         const ne_tensor* loss_arg, const ne_tensor* lse_arg) {
    const ne_tensor& hidden = tensor_arg(hidden_arg, "hidden");
    const ne_tensor& weight = tensor_arg(weight_arg, "weight");
    const ne_tensor* bias = optional_tensor_arg(bias_arg, "bias");
    const ne_tensor& targets = tensor_arg(targets_arg, "targets");
    const ne_tensor& loss = tensor_arg(loss_arg, "loss");
    const ne_tensor* lse = optional_tensor_arg(lse_arg, "lse");

    const CrossEntropyArgs in = projection_args(context, params, hidden, weight, bias, targets);
    f32_vector_arg(loss, context, in.N, "loss");
    if (lse) f32_vector_arg(*lse, context, in.N, "lse");
    const NamedTensor outputs[] = {{&loss, "loss"}, {lse, "lse"}};
    const NamedTensor inputs[] = {{&hidden, "hidden"}, {&weight, "weight"}, {bias, "bias"}, {&targets, "targets"}};
    expect_separate(outputs, std::size(outputs), inputs, std::size(inputs));
    return {in, data_of<float>(loss), data_or_null<float>(lse)};
}

CrossEntropyBackwardArgs backward_args(const ne_context& context, const ne_cross_entropy_params& params, const ne_tensor* hidden_arg,
                           const ne_tensor* weight_arg, const ne_tensor* bias_arg, const ne_tensor* targets_arg,
                           const ne_tensor* lse_arg, const ne_tensor* dloss_arg, const ne_tensor* dhidden_arg,
                           const ne_tensor* dweight_arg, const ne_tensor* dbias_arg) {
    const ne_tensor& hidden = tensor_arg(hidden_arg, "hidden");
    const ne_tensor& weight = tensor_arg(weight_arg, "weight");
    const ne_tensor* bias = optional_tensor_arg(bias_arg, "bias");
    const ne_tensor& targets = tensor_arg(targets_arg, "targets");
    const ne_tensor& lse = tensor_arg(lse_arg, "lse");
    const ne_tensor& dloss = tensor_arg(dloss_arg, "dloss");
    const ne_tensor& dhidden = tensor_arg(dhidden_arg, "dhidden");
    const ne_tensor* dweight = optional_tensor_arg(dweight_arg, "dweight");
    const ne_tensor* dbias = optional_tensor_arg(dbias_arg, "dbias");

    const CrossEntropyArgs in = projection_args(context, params, hidden, weight, bias, targets);
    f32_vector_arg(lse, context, in.N, "lse");
    f32_vector_arg(dloss, context, in.N, "dloss");
    const Matrix dh = f32_matrix_arg(dhidden, context, in.N, in.D, "dhidden");
    const Matrix dw = dweight ? f32_matrix_arg(*dweight, context, in.V, in.D, "dweight") : Matrix{};
    if (dbias) f32_vector_arg(*dbias, context, in.V, "dbias");
    const NamedTensor outputs[] = {{&dhidden, "dhidden"}, {dweight, "dweight"}, {dbias, "dbias"}};
    const NamedTensor inputs[] = {{&hidden, "hidden"}, {&weight, "weight"}, {bias, "bias"},
                                  {&targets, "targets"}, {&lse, "lse"},       {&dloss, "dloss"}};
    expect_separate(outputs, std::size(outputs), inputs, std::size(inputs));
    return {in,
            data_of<float>(lse),
            data_of<float>(dloss),
            data_of<float>(dhidden),
            dh.row_stride,
            data_or_null<float>(dweight),
            dw.row_stride,
            data_or_null<float>(dbias),
            params.accumulate == 1};
}

// ------------------------------------------------------------------------------------------
// Chunked kernels: the GEMMs on the context's threads, then row passes split among them
// ------------------------------------------------------------------------------------------

namespace rows = avx2::softmax_rows;

// Z [N, width] = hidden W_c^T for the classes [c0, c0 + width), without the bias.
void chunk_logits(ne_context& context, const CrossEntropyArgs& in, int64_t c0, int64_t width, float* z) {
    sgemm(context, false, true, in.N, width, in.D, 1.0f, in.hidden, in.hidden_stride, in.weight + c0 * in.weight_stride,
          in.weight_stride, 0.0f, z, width);
}

void forward_chunked(ne_context& context, const CrossEntropyForwardArgs& a) {
    const CrossEntropyArgs& in = a.in;
    const int64_t N = in.N;
    Scratch logits(context, checked_multiply(N, in.chunk * static_cast<int64_t>(sizeof(float)), "the chunk of logits"));
    Scratch row_state(context, 3 * N * static_cast<int64_t>(sizeof(float)));
    float* z = logits.as<float>();
    float* running_max = row_state.as<float>();
    float* running_sum = running_max + N;
    float* target_logit = running_sum + N;
    std::fill_n(running_max, N, -kInfinity);
    std::fill_n(running_sum, N, 0.0f);
    std::fill_n(target_logit, N, 0.0f);

    for (int64_t c0 = 0; c0 < in.V; c0 += in.chunk) {
        const int64_t width = std::min(in.chunk, in.V - c0);
        chunk_logits(context, in, c0, width, z);
        context.pool->parallel_for(N, rows_per_task(width), [&](int64_t begin, int64_t end) {
            for (int64_t n = begin; n < end; ++n) {
                float* zn = z + n * width;
                const float chunk_max = rows::add_bias_and_max(zn, in.bias ? in.bias + c0 : nullptr, width);
                const float max = std::max(running_max[n], chunk_max);
                running_sum[n] = running_sum[n] * std::exp(running_max[n] - max) + rows::sum_exp(zn, width, max);
                running_max[n] = max;
                const int64_t target = in.targets[n];
                if (target >= c0 && target < c0 + width) target_logit[n] = zn[target - c0];
            }
        });
    }
    for (int64_t n = 0; n < N; ++n) {
        const float lse = running_max[n] + std::log(running_sum[n]);
        a.loss[n] = in.targets[n] < 0 ? 0.0f : lse - target_logit[n];
        if (a.lse) a.lse[n] = lse;
    }
}

void backward_chunked(ne_context& context, const CrossEntropyBackwardArgs& a) {
    const CrossEntropyArgs& in = a.in;
    const int64_t N = in.N, D = in.D;
    Scratch logits(context, checked_multiply(N, in.chunk * static_cast<int64_t>(sizeof(float)), "the chunk of logits"));
    float* z = logits.as<float>();

    for (int64_t c0 = 0; c0 < in.V; c0 += in.chunk) {
        const int64_t width = std::min(in.chunk, in.V - c0);
        chunk_logits(context, in, c0, width, z);
        // dZ = dloss * (softmax - onehot(target)); 0 for ignored rows.
        context.pool->parallel_for(N, rows_per_task(width), [&](int64_t begin, int64_t end) {
            for (int64_t n = begin; n < end; ++n) {
                float* zn = z + n * width;
                const int64_t target = in.targets[n];
                if (target < 0) {
                    std::fill_n(zn, width, 0.0f);
                    continue;
                }
                rows::scaled_softmax(zn, in.bias ? in.bias + c0 : nullptr, width, a.lse[n], a.dloss[n]);
                if (target >= c0 && target < c0 + width) zn[target - c0] -= a.dloss[n];
            }
        });
        const float* weight_chunk = in.weight + c0 * in.weight_stride;
        sgemm(context, false, false, N, D, width, 1.0f, z, width, weight_chunk, in.weight_stride, c0 == 0 ? 0.0f : 1.0f,
              a.dhidden, a.dhidden_stride);
        if (a.dweight) {
            sgemm(context, true, false, width, D, N, 1.0f, z, width, in.hidden, in.hidden_stride, a.accumulate ? 1.0f : 0.0f,
                  a.dweight + c0 * a.dweight_stride, a.dweight_stride);
        }
        if (a.dbias) column_sums(context, z, N, width, width, a.dbias + c0, a.accumulate);
    }
}

}  // namespace
}  // namespace ne::cpu

// ------------------------------------------------------------------------------------------
// Exported functions
// ------------------------------------------------------------------------------------------

extern "C" {

NE_API ne_status ne_cross_entropy_forward(ne_context* context, const ne_cross_entropy_params* params,
                                          const ne_tensor* hidden, const ne_tensor* weight, const ne_tensor* bias,
                                          const ne_tensor* targets, ne_tensor* loss, ne_tensor* lse) {
    return ne::guard("ne_cross_entropy_forward", [&] {
        ne_context& ctx = ne::context_arg(context, "context");
        const ne_cross_entropy_params p = ne::cpu::cross_entropy_params_arg(params, false);
        const auto args = ne::cpu::forward_args(ctx, p, hidden, weight, bias, targets, loss, lse);
        if (ctx.device) {
            ctx.device->cross_entropy_forward(args);
        } else if (ctx.simd_level == NE_SIMD_LEVEL_SCALAR) {
            ne::cpu::forward_reference(args);
        } else {
            ne::cpu::forward_chunked(ctx, args);
        }
    });
}

NE_API ne_status ne_cross_entropy_backward(ne_context* context, const ne_cross_entropy_params* params,
                                           const ne_tensor* hidden, const ne_tensor* weight, const ne_tensor* bias,
                                           const ne_tensor* targets, const ne_tensor* lse, const ne_tensor* dloss,
                                           ne_tensor* dhidden, ne_tensor* dweight, ne_tensor* dbias) {
    return ne::guard("ne_cross_entropy_backward", [&] {
        ne_context& ctx = ne::context_arg(context, "context");
        const ne_cross_entropy_params p = ne::cpu::cross_entropy_params_arg(params, true);
        const auto args =
            ne::cpu::backward_args(ctx, p, hidden, weight, bias, targets, lse, dloss, dhidden, dweight, dbias);
        if (ctx.device) {
            ctx.device->cross_entropy_backward(args);
        } else if (ctx.simd_level == NE_SIMD_LEVEL_SCALAR) {
            ne::cpu::backward_reference(args);
        } else {
            ne::cpu::backward_chunked(ctx, args);
        }
    });
}

}  // extern "C"
