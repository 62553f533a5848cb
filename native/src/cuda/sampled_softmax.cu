// The log-uniform sampler and the sampled softmax cross-entropy on CUDA (the CPU's algorithm and
// layout, cpu/sampled_softmax.cpp): row n scores S + 1 classes, its target in column 0 and the
// samples in columns 1..S.
//
// - Sampler: the draws of cpu/sampled_softmax.cpp, computed with the CPU's own code
//   (cpu/log_uniform.hpp: SplitMix64 and an exp of our own), so the samples are the CPU's bit for
//   bit; nothing is read or copied by the host and nothing waits. Independent sampling draws
//   sample s on thread s. Unique sampling runs in one block, in rounds of consecutive draws: a
//   block sort of (class, draw) finds each class's first draw in the round, a bitmap of drawn
//   classes (atomicOr, whose old value says whether an earlier round drew the class) tells the
//   new classes, and a block scan in draw order gives each its position among the samples; the
//   draw of the S-th distinct class gives tries, which stays in device memory. A second kernel
//   computes the expected counts of the samples and the targets from the shared formulas (this
//   backend's log1p and expm1, so a count may differ from the CPU's in its last place).
// - Forward: the sampled rows of weight gathered into [S, D], Z[:, 1:] = hidden G^T (cuBLAS),
//   then one block per row: the target's logit (a dot product), bias minus log expected count,
//   accidental hits to -inf, logsumexp, loss and probs.
// - Backward: dZ = dloss (probs - onehot(column 0)); dhidden = dZ[:, 1:] G + dZ[:, 0] W[target]; the
//   samples' gradient rows dZ[:, 1:]^T hidden (cuBLAS) and column sums; then every touched
//   class of dweight and dbias gets the sum of its contributions in the CPU's order (its samples
//   in sample order, then its rows in row order), found by a stable radix sort of (class, source)
//   pairs and summed by one block per class: no atomics, deterministic, duplicates included.
#include "common.cuh"
#include "core/error.hpp"
#include "cpu/log_uniform.hpp"
#include "softmax_losses.hpp"

#include <cub/block/block_radix_sort.cuh>
#include <cub/block/block_scan.cuh>

#include <climits>

namespace ne::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kRowThreads = 256;

// ---- Sampler --------------------------------------------------------------------------------

// Unique sampling: one block, kRoundDraws threads, each making one draw per round.
constexpr int kRoundBits = 10;
constexpr int kRoundDraws = 1 << kRoundBits;

// Draws until S distinct classes are found: samples[0, S) gets them in the order of their first
// draw and *tries the number of draws up to the S-th (the CPU's loop, a round at a time). drawn
// is a zeroed bitmap of (V + 63) / 64 words; class_bits, the bits of V - 1.
//
// Round r makes draws r kRoundDraws + t, thread t drawing class c_t. Sorting the keys
// (c_t << kRoundBits) | t puts each class's draws of the round together, its first draw first;
// the thread holding such a first draw sets the class's bit, which only it sets this round, so
// the bit's old value says exactly whether an earlier round drew the class. A class is new when
// neither did; the exclusive scan of the new flags in draw order is each new class's position
// after the `found` of earlier rounds. Every step depends on the draws alone, never on timing.
__global__ void __launch_bounds__(kRoundDraws)
    unique_samples_kernel(cpu::SamplerArgs a, int class_bits, unsigned long long* drawn, unsigned long long* tries) {
    using Sort = cub::BlockRadixSort<unsigned long long, kRoundDraws, 1>;
    using Scan = cub::BlockScan<int, kRoundDraws>;
    // The sorted keys reuse the sort's memory, and the scan reuses both (barriers between).
    __shared__ union {
        typename Sort::TempStorage sort;
        unsigned long long sorted[kRoundDraws];
        typename Scan::TempStorage scan;
    } shared;
    __shared__ int is_new[kRoundDraws];  // by draw within the round
    const int t = static_cast<int>(threadIdx.x);
    int64_t found = 0;
    for (unsigned long long round = 0; found < a.S; round += kRoundDraws) {
        const unsigned long long draw = round + static_cast<unsigned long long>(t);
        const int64_t c = log_uniform::log_uniform_class(a.seed, draw, a.log_range, a.V);
        unsigned long long key[1] = {(static_cast<unsigned long long>(c) << kRoundBits) | static_cast<unsigned long long>(t)};
        Sort(shared.sort).Sort(key, 0, kRoundBits + class_bits);
        __syncthreads();  // the sort is done with its memory
        shared.sorted[t] = key[0];
        __syncthreads();
        const auto sorted_class = static_cast<int64_t>(key[0] >> kRoundBits);
        const int sorted_draw = static_cast<int>(key[0] & (kRoundDraws - 1));
        bool first = t == 0 || static_cast<int64_t>(shared.sorted[t - 1] >> kRoundBits) != sorted_class;
        if (first) {
            const unsigned long long bit = 1ull << (sorted_class % 64);
            first = (atomicOr(drawn + sorted_class / 64, bit) & bit) == 0;
        }
        is_new[sorted_draw] = first ? 1 : 0;
        __syncthreads();  // every flag is written, and the sorted keys are read
        int rank = 0, new_count = 0;
        Scan(shared.scan).ExclusiveSum(is_new[t], rank, new_count);
        if (is_new[t] && found + rank < a.S) {
            a.samples[found + rank] = static_cast<int32_t>(c);
            if (found + rank == a.S - 1) *tries = draw + 1;
        }
        found += new_count;
        __syncthreads();  // the scan is done with its memory and the flags are read
    }
}

// Independent sampling draws sample s here (unique sampling has stored the samples, and tries
// at *unique_tries); then the expected counts of the samples and of the targets (1 for an
// ignored row).
__global__ void draws_and_counts_kernel(cpu::SamplerArgs a, const unsigned long long* unique_tries) {
    const int64_t tries = a.unique ? static_cast<int64_t>(*unique_tries) : a.S;
    for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < a.S + a.N; i += int64_t{gridDim.x} * blockDim.x) {
        if (i < a.S) {
            int64_t c = 0;
            if (a.unique) {
                c = a.samples[i];
            } else {
                c = log_uniform::log_uniform_class(a.seed, static_cast<uint64_t>(i), a.log_range, a.V);
                a.samples[i] = static_cast<int32_t>(c);
            }
            a.sample_counts[i] = static_cast<float>(log_uniform::expected_count(c, a.log_range, a.unique, a.S, tries));
            continue;
        }
        const int64_t n = i - a.S;
        const int32_t target = a.targets[n];
        a.target_counts[n] =
            target < 0 ? 1.0f : static_cast<float>(log_uniform::expected_count(target, a.log_range, a.unique, a.S, tries));
    }
}

// ---- Forward --------------------------------------------------------------------------------

// Targets and samples outside [0, V), which the exported op's deferred checks report, are
// treated as ignored rows and removed samples, so that no kernel reads or writes past weight.
__device__ bool in_vocabulary(int64_t c, int64_t V) { return c >= 0 && c < V; }

// gathered [S, D] = the rows samples[s] of weight.
__global__ void gather_rows_kernel(const float* weight, int64_t weight_stride, int64_t V, const int32_t* samples, int64_t S,
                                   int64_t D, float* gathered) {
    for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < S * D; i += int64_t{gridDim.x} * blockDim.x) {
        const int64_t c = samples[i / D];
        gathered[i] = in_vocabulary(c, V) ? weight[c * weight_stride + i % D] : 0.0f;
    }
}

// z [N, S + 1] (row stride z_stride) holds hidden G^T in columns 1..S; each row becomes its
// probabilities (or stays logits when probs_out is false) and writes its loss.
__global__ void forward_rows_kernel(cpu::SampledArgs in, float* z, int64_t z_stride, bool probs_out, float* loss) {
    __shared__ float shared[kRowThreads / kWarpSize];
    const int64_t width = in.S + 1;
    for (int64_t n = blockIdx.x; n < in.N; n += gridDim.x) {
        float* zn = z + n * z_stride;
        const int64_t target = in.targets[n];
        if (!in_vocabulary(target, in.V)) {
            if (threadIdx.x == 0) loss[n] = 0.0f;
            if (probs_out) {
                for (int64_t j = threadIdx.x; j < width; j += blockDim.x) zn[j] = 0.0f;
            }
            continue;
        }
        const float* h = in.hidden + n * in.hidden_stride;
        const float* w = in.weight + target * in.weight_stride;
        float partial = 0.0f;
        for (int64_t d = threadIdx.x; d < in.D; d += blockDim.x) partial += h[d] * w[d];
        float target_logit = block_reduce(partial, SumOp{}, shared);
        if (in.bias) target_logit += in.bias[target];
        if (in.target_counts) target_logit -= logf(in.target_counts[n]);

        float local_max = target_logit;
        for (int64_t s = threadIdx.x; s < in.S; s += blockDim.x) {
            const int32_t c = in.samples[s];
            float logit = -INFINITY;
            if (in_vocabulary(c, in.V) && !(in.remove_accidental_hits && c == target)) {
                const float offset = (in.bias ? in.bias[c] : 0.0f) - (in.sample_counts ? logf(in.sample_counts[s]) : 0.0f);
                logit = zn[1 + s] + offset;
            }
            zn[1 + s] = logit;
            local_max = fmaxf(local_max, logit);
        }
        const float max = block_reduce(local_max, MaxOp{}, shared);
        float local_sum = threadIdx.x == 0 ? expf(target_logit - max) : 0.0f;
        for (int64_t s = threadIdx.x; s < in.S; s += blockDim.x) local_sum += expf(zn[1 + s] - max);
        const float lse = max + logf(block_reduce(local_sum, SumOp{}, shared));
        if (threadIdx.x == 0) {
            loss[n] = lse - target_logit;
            if (probs_out) zn[0] = expf(target_logit - lse);
        }
        if (probs_out) {
            for (int64_t s = threadIdx.x; s < in.S; s += blockDim.x) zn[1 + s] = expf(zn[1 + s] - lse);
        }
    }
}

// ---- Backward -------------------------------------------------------------------------------

// dz [N, S + 1] = dloss (probs - onehot(column 0)); 0 on ignored rows.
__global__ void dlogits_kernel(cpu::SampledBackwardArgs a, float* dz) {
    const int64_t width = a.in.S + 1;
    for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < a.in.N * width; i += int64_t{gridDim.x} * blockDim.x) {
        const int64_t n = i / width, j = i % width;
        if (!in_vocabulary(a.in.targets[n], a.in.V)) {
            dz[i] = 0.0f;
            continue;
        }
        const float scale = a.dloss[n];
        const float value = a.probs[n * a.probs_stride + j] * scale;
        dz[i] = j == 0 ? value - scale : value;
    }
}

// dhidden row n += dz[n, 0] times the target's row of weight.
__global__ void add_target_rows_kernel(cpu::SampledBackwardArgs a, const float* dz) {
    const int64_t D = a.in.D, width = a.in.S + 1;
    for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < a.in.N * D; i += int64_t{gridDim.x} * blockDim.x) {
        const int64_t n = i / D, d = i % D;
        const int64_t target = a.in.targets[n];
        if (!in_vocabulary(target, a.in.V)) continue;
        float* dh = a.dhidden + n * a.dhidden_stride + d;
        *dh = *dh + dz[n * width] * a.in.weight[target * a.in.weight_stride + d];
    }
}

__global__ void zero_parameter_gradients_kernel(float* dweight, int64_t dweight_stride, float* dbias, int64_t V, int64_t D) {
    for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < V * D; i += int64_t{gridDim.x} * blockDim.x) {
        const int64_t c = i / D, d = i % D;
        if (dweight) dweight[c * dweight_stride + d] = 0.0f;
        if (dbias && d == 0) dbias[c] = 0.0f;
    }
}

// keys: the samples' classes, then the rows' targets (-1: ignored); sources 0..S + N - 1.
__global__ void class_entries_kernel(const int32_t* samples, int64_t S, const int32_t* targets, int64_t N, int64_t V,
                                     int32_t* keys, int32_t* sources) {
    for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < S + N; i += int64_t{gridDim.x} * blockDim.x) {
        const int32_t c = i < S ? samples[i] : targets[i - S];
        keys[i] = in_vocabulary(c, V) ? c : -1;
        sources[i] = static_cast<int32_t>(i);
    }
}

// The entries sorted by class (stably: sources ascending within a class). The block of the
// first entry of each class sums the class's contributions in entry order and writes (or adds)
// the class's rows of dweight and dbias once.
__global__ void scatter_classes_kernel(cpu::SampledBackwardArgs a, const int32_t* keys, const int32_t* sources, int64_t count,
                                       const float* dz, const float* sample_dweight, const float* sample_dbias) {
    const int64_t S = a.in.S, D = a.in.D, width = S + 1;
    for (int64_t e = blockIdx.x; e < count; e += gridDim.x) {
        const int64_t end = key_run_end(keys, e, count);
        if (end < 0) continue;
        const int32_t c = keys[e];
        if (a.dweight) {
            float* dw = a.dweight + c * a.dweight_stride;
            for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
                float sum = 0.0f;
                for (int64_t k = e; k < end; ++k) {
                    const int64_t source = sources[k];
                    if (source < S) {
                        sum += sample_dweight[source * D + d];
                    } else {
                        const int64_t n = source - S;
                        sum += dz[n * width] * a.in.hidden[n * a.in.hidden_stride + d];
                    }
                }
                dw[d] = a.accumulate ? dw[d] + sum : sum;
            }
        }
        if (a.dbias && threadIdx.x == 0) {
            float sum = 0.0f;
            for (int64_t k = e; k < end; ++k) {
                const int64_t source = sources[k];
                sum += source < S ? sample_dbias[source] : dz[(source - S) * width];
            }
            a.dbias[c] = a.accumulate ? a.dbias[c] + sum : sum;
        }
    }
}

constexpr int64_t kFloat = sizeof(float);

}  // namespace

void launch_sample_log_uniform(const Queue& queue, const cpu::SamplerArgs& a) {
    // Unique sampling: the bitmap of drawn classes, then tries.
    const int64_t words = a.unique ? (a.V + 63) / 64 : 0;
    const int64_t state_bytes = a.unique ? (words + 1) * static_cast<int64_t>(sizeof(unsigned long long)) : 0;
    const Scratch state(queue, state_bytes);
    auto* drawn = state.as<unsigned long long>();
    if (a.unique) {
        int class_bits = 0;
        while ((int64_t{1} << class_bits) < a.V) ++class_bits;
        check(cudaMemsetAsync(drawn, 0, static_cast<size_t>(state_bytes), queue.stream), "cudaMemsetAsync");
        unique_samples_kernel<<<1, kRoundDraws, 0, queue.stream>>>(a, class_bits, drawn, drawn + words);
        check_launch("unique_samples_kernel");
    }
    draws_and_counts_kernel<<<grid_for(queue, a.S + a.N, kThreads), kThreads, 0, queue.stream>>>(a, drawn + words);
    check_launch("draws_and_counts_kernel");
}

void launch_sampled_softmax_forward(const Queue& queue, const cpu::SampledForwardArgs& a) {
    const cpu::SampledArgs& in = a.in;
    const int64_t N = in.N, D = in.D, S = in.S, width = S + 1;
    const Scratch gathered(queue, S * D * kFloat);
    // The logits are computed in probs, which they become, when the caller asks for it.
    const Scratch logits(queue, a.probs ? 0 : N * width * kFloat);
    float* z = a.probs ? a.probs : logits.as<float>();
    const int64_t z_stride = a.probs ? a.probs_stride : width;

    gather_rows_kernel<<<grid_for(queue, S * D, kThreads), kThreads, 0, queue.stream>>>(in.weight, in.weight_stride, in.V,
                                                                                        in.samples, S, D, gathered.as<float>());
    check_launch("gather_rows_kernel");
    sgemm_rows(queue, false, false, true, N, S, D, 1.0f, in.hidden, in.hidden_stride, gathered.as<float>(), D, 0.0f, z + 1, z_stride);
    forward_rows_kernel<<<row_blocks(N), kRowThreads, 0, queue.stream>>>(in, z, z_stride, a.probs != nullptr, a.loss);
    check_launch("forward_rows_kernel");
}

void launch_sampled_softmax_backward(const Queue& queue, const cpu::SampledBackwardArgs& a) {
    const cpu::SampledArgs& in = a.in;
    const int64_t N = in.N, D = in.D, S = in.S, V = in.V, width = S + 1;
    const bool parameter_gradients = a.dweight || a.dbias;
    const int64_t entries = S + N;
    if (parameter_gradients && entries > INT_MAX) {
        fail(NE_STATUS_UNSUPPORTED, "S + N = ", entries, " samples and rows exceed the 32-bit range of the device's sort");
    }
    // All scratch memory comes first: a failing allocation leaves the outputs untouched.
    const Scratch dz_memory(queue, N * width * kFloat);
    const Scratch gathered(queue, S * D * kFloat);
    const Scratch sample_dweight(queue, a.dweight ? S * D * kFloat : 0);
    const Scratch sample_dbias(queue, a.dbias ? S * kFloat : 0);
    const Scratch ones(queue, a.dbias ? N * kFloat : 0);
    const SortedEntries classes(queue, parameter_gradients ? static_cast<int>(entries) : 0);
    float* dz = dz_memory.as<float>();

    dlogits_kernel<<<grid_for(queue, N * width, kThreads), kThreads, 0, queue.stream>>>(a, dz);
    check_launch("dlogits_kernel");
    gather_rows_kernel<<<grid_for(queue, S * D, kThreads), kThreads, 0, queue.stream>>>(in.weight, in.weight_stride, in.V,
                                                                                        in.samples, S, D, gathered.as<float>());
    check_launch("gather_rows_kernel");
    sgemm_rows(queue, false, false, false, N, D, S, 1.0f, dz + 1, width, gathered.as<float>(), D, 0.0f, a.dhidden, a.dhidden_stride);
    add_target_rows_kernel<<<grid_for(queue, N * D, kThreads), kThreads, 0, queue.stream>>>(a, dz);
    check_launch("add_target_rows_kernel");
    if (!parameter_gradients) return;

    if (a.dweight) {
        sgemm_rows(queue, false, true, false, S, D, N, 1.0f, dz + 1, width, in.hidden, in.hidden_stride, 0.0f, sample_dweight.as<float>(),
                   D);
    }
    if (a.dbias) {
        fill_floats(queue, ones.as<float>(), N, 1.0f);
        column_sums(queue, dz + 1, N, S, width, ones.as<float>(), sample_dbias.as<float>(), false);
    }
    if (!a.accumulate) {
        zero_parameter_gradients_kernel<<<grid_for(queue, V * D, kThreads), kThreads, 0, queue.stream>>>(
            a.dweight, a.dweight_stride, a.dbias, V, D);
        check_launch("zero_parameter_gradients_kernel");
    }
    class_entries_kernel<<<grid_for(queue, entries, kThreads), kThreads, 0, queue.stream>>>(in.samples, S, in.targets, N, V,
                                                                                            classes.keys(), classes.sources());
    check_launch("class_entries_kernel");
    classes.sort(queue);
    scatter_classes_kernel<<<row_blocks(entries), kRowThreads, 0, queue.stream>>>(
        a, classes.sorted_keys(), classes.sorted_sources(), entries, dz, sample_dweight.as<float>(), sample_dbias.as<float>());
    check_launch("scatter_classes_kernel");
}

}  // namespace ne::cuda
