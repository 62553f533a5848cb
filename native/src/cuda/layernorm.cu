// Fused residual-add + LayerNorm / RMSNorm, forward and backward, on CUDA: kernels, then
// launchers. The arguments are those the CPU kernels get (cpu/layernorm.hpp), validated by the
// exported functions, with device pointers.
//
// Forward: one block per row, which is read from global memory once: into registers where it
// fits (C <= 4096), else into shared memory (C <= kMaxCachedChannels); longer rows are re-read
// (from L2) by the later passes. The mean and variance are the CPU's corrected two-pass ones: the
// first estimate of the mean carries the rounding error of a sum of large values (rows on a large
// offset), so d = s - estimate is taken exactly and mean(d) corrects it; var = mean(d^2) - mean(d)^2.
//
// Backward: each block walks a fixed range of rows and accumulates its dgamma/dbeta partial
// sums (the thread owning channel c adds rows in order, in registers where the row fits), then
// stores them in its own row of a scratch matrix; a second kernel adds the blocks' partials in
// block order. The bits therefore depend only on N, C and the device (its SM count and the
// kernel's occupancy there), never on scheduling.
#include "common.cuh"

namespace ne::cuda {
namespace {

constexpr int64_t kMaxCachedChannels = 8192;  // 32 KiB of shared memory per block

int threads_for(int64_t C) {
    if (C <= 256) return 64;
    if (C <= 1024) return 128;
    return 256;
}

template <bool kCached>
__global__ void norm_forward_kernel(cpu::NormForwardArgs a, bool rms) {
    extern __shared__ float cache[];  // s of this row when kCached
    __shared__ float reduce_space[kWarpSize];
    const int64_t n = blockIdx.x;
    const float* x = a.x + n * a.x_stride;
    const float* residual = a.residual ? a.residual + n * a.residual_stride : nullptr;
    float* sum = a.sum ? a.sum + n * a.sum_stride : nullptr;
    float* y = a.y + n * a.y_stride;
    const auto count = static_cast<float>(a.C);

    // Pass 1: s = x + residual (stored where asked), and its sum.
    float partial = 0.0f;
    for (int64_t c = threadIdx.x; c < a.C; c += blockDim.x) {
        const float s = residual ? x[c] + residual[c] : x[c];
        if (sum) sum[c] = s;
        if (kCached) cache[c] = s;
        partial += s;
    }
    // After pass 1, s is read back from where it is intact: the cache, the stored sum (which may
    // have overwritten x or residual), or x + residual (neither was overwritten).
    auto s_at = [&](int64_t c) {
        if (kCached) return cache[c];
        if (sum) return sum[c];
        return residual ? x[c] + residual[c] : x[c];
    };
    if (kCached) __syncthreads();
    const float estimate = rms ? 0.0f : block_reduce(partial, SumOp{}, reduce_space) / count;

    // Pass 2: the corrected variance about the mean (RMSNorm: the mean square).
    float d_sum = 0.0f, squares = 0.0f;
    for (int64_t c = threadIdx.x; c < a.C; c += blockDim.x) {
        const float d = s_at(c) - estimate;
        d_sum += d;
        squares += d * d;
    }
    const float correction = rms ? 0.0f : block_reduce(d_sum, SumOp{}, reduce_space) / count;
    const float variance = fmaxf(0.0f, block_reduce(squares, SumOp{}, reduce_space) / count - correction * correction);
    const float rstd = 1.0f / sqrtf(variance + a.epsilon);

    // Pass 3: y.
    for (int64_t c = threadIdx.x; c < a.C; c += blockDim.x) {
        const float normalized = (s_at(c) - estimate - correction) * rstd * a.gamma[c];
        y[c] = a.beta ? normalized + a.beta[c] : normalized;
    }
    if (threadIdx.x == 0) {
        if (a.mean) a.mean[n] = estimate + correction;
        if (a.rstd) a.rstd[n] = rstd;
    }
}

// The forward pass for rows that fit in registers (C <= kItems * blockDim.x): each thread loads
// all of its channels of x and residual before it stores anything, so that every load of the
// row is in flight at once (stores to sum or y may alias x, which would otherwise order each
// load after the previous store).
template <int kItems>
__global__ void norm_forward_registers_kernel(cpu::NormForwardArgs a, bool rms) {
    __shared__ float reduce_space[kWarpSize];
    const int64_t n = blockIdx.x;
    const float* x = a.x + n * a.x_stride;
    const float* residual = a.residual ? a.residual + n * a.residual_stride : nullptr;
    float* sum = a.sum ? a.sum + n * a.sum_stride : nullptr;
    float* y = a.y + n * a.y_stride;
    const auto count = static_cast<float>(a.C);

    float s[kItems], r[kItems];
    for (int j = 0; j < kItems; ++j) {
        const int64_t c = threadIdx.x + int64_t{j} * blockDim.x;
        s[j] = c < a.C ? x[c] : 0.0f;
        r[j] = residual && c < a.C ? residual[c] : 0.0f;
    }
    float partial = 0.0f;
    for (int j = 0; j < kItems; ++j) {
        const int64_t c = threadIdx.x + int64_t{j} * blockDim.x;
        if (residual) s[j] = s[j] + r[j];
        if (c < a.C) {
            partial += s[j];
            if (sum) sum[c] = s[j];
        }
    }
    const float estimate = rms ? 0.0f : block_reduce(partial, SumOp{}, reduce_space) / count;
    float d_sum = 0.0f, squares = 0.0f;
    for (int j = 0; j < kItems; ++j) {
        const int64_t c = threadIdx.x + int64_t{j} * blockDim.x;
        const float d = s[j] - estimate;
        if (c < a.C) {
            d_sum += d;
            squares += d * d;
        }
    }
    const float correction = rms ? 0.0f : block_reduce(d_sum, SumOp{}, reduce_space) / count;
    const float variance = fmaxf(0.0f, block_reduce(squares, SumOp{}, reduce_space) / count - correction * correction);
    const float rstd = 1.0f / sqrtf(variance + a.epsilon);
    for (int j = 0; j < kItems; ++j) {
        const int64_t c = threadIdx.x + int64_t{j} * blockDim.x;
        if (c < a.C) {
            const float normalized = (s[j] - estimate - correction) * rstd * a.gamma[c];
            y[c] = a.beta ? normalized + a.beta[c] : normalized;
        }
    }
    if (threadIdx.x == 0) {
        if (a.mean) a.mean[n] = estimate + correction;
        if (a.rstd) a.rstd[n] = rstd;
    }
}

// Rows [block * rows_per_block, ...) of the backward pass; partial sums into row `block` of
// dgamma_partials / dbeta_partials ([blocks, C], either may be null). With kItems > 0, the row
// fits in registers (C <= kItems * blockDim.x): each thread keeps its channels' dy, s and
// partial sums there, and reads each input once; with kItems == 0, any C, with the partial sums
// in the block's row of the scratch matrix and the inputs read twice (the second time from cache).
template <int kItems>
__global__ void norm_backward_kernel(cpu::NormBackwardArgs a, bool rms, int64_t rows_per_block, float* dgamma_partials,
                                     float* dbeta_partials) {
    constexpr int kSlots = kItems > 0 ? kItems : 1;
    __shared__ float reduce_space[kWarpSize];
    const int64_t row_begin = blockIdx.x * rows_per_block;
    const int64_t row_end = row_begin + rows_per_block < a.N ? row_begin + rows_per_block : a.N;
    float* dgamma_row = dgamma_partials ? dgamma_partials + blockIdx.x * a.C : nullptr;
    float* dbeta_row = dbeta_partials ? dbeta_partials + blockIdx.x * a.C : nullptr;
    float dgamma_sum[kSlots] = {}, dbeta_sum[kSlots] = {};
    if (kItems == 0) {
        for (int64_t c = threadIdx.x; c < a.C; c += blockDim.x) {
            if (dgamma_row) dgamma_row[c] = 0.0f;
            if (dbeta_row) dbeta_row[c] = 0.0f;
        }
    }
    const float inverse_count = 1.0f / static_cast<float>(a.C);
    for (int64_t n = row_begin; n < row_end; ++n) {
        const float* dy = a.dy + n * a.dy_stride;
        const float* ds = a.ds ? a.ds + n * a.ds_stride : nullptr;
        const float* s = a.s + n * a.s_stride;
        float* dx = a.dx + n * a.dx_stride;
        const float mean = rms ? 0.0f : a.mean[n];
        const float rstd = a.rstd[n];

        float dy_cached[kSlots], xhat_cached[kSlots], ds_cached[kSlots];
        float dnorm_sum = 0.0f, dnorm_xhat_sum = 0.0f;
        if (kItems > 0) {
            // Every load of the row before the first store (dx may alias dy or ds).
            for (int j = 0; j < kSlots; ++j) {
                const int64_t c = threadIdx.x + int64_t{j} * blockDim.x;
                dy_cached[j] = c < a.C ? dy[c] : 0.0f;
                ds_cached[j] = ds && c < a.C ? ds[c] : 0.0f;
                xhat_cached[j] = c < a.C ? (s[c] - mean) * rstd : 0.0f;
                const float dnorm = c < a.C ? dy_cached[j] * a.gamma[c] : 0.0f;
                dnorm_sum += dnorm;
                dnorm_xhat_sum += dnorm * xhat_cached[j];
            }
        } else {
            for (int64_t c = threadIdx.x; c < a.C; c += blockDim.x) {
                const float xhat = (s[c] - mean) * rstd;
                const float dnorm = dy[c] * a.gamma[c];
                dnorm_sum += dnorm;
                dnorm_xhat_sum += dnorm * xhat;
            }
        }
        const float dnorm_mean = rms ? 0.0f : block_reduce(dnorm_sum, SumOp{}, reduce_space) * inverse_count;
        const float dnorm_xhat_mean = block_reduce(dnorm_xhat_sum, SumOp{}, reduce_space) * inverse_count;

        // Everything of channel c is read before dx[c], which may be dy[c] or ds[c], is written.
        if (kItems > 0) {
            for (int j = 0; j < kSlots; ++j) {
                const int64_t c = threadIdx.x + int64_t{j} * blockDim.x;
                if (c >= a.C) break;
                dgamma_sum[j] += dy_cached[j] * xhat_cached[j];
                dbeta_sum[j] += dy_cached[j];
                const float dnorm = dy_cached[j] * a.gamma[c];
                dx[c] = rstd * (dnorm - dnorm_mean - xhat_cached[j] * dnorm_xhat_mean) + ds_cached[j];
            }
        } else {
            for (int64_t c = threadIdx.x; c < a.C; c += blockDim.x) {
                const float dy_c = dy[c];
                const float xhat = (s[c] - mean) * rstd;
                const float ds_c = ds ? ds[c] : 0.0f;
                if (dgamma_row) dgamma_row[c] += dy_c * xhat;
                if (dbeta_row) dbeta_row[c] += dy_c;
                const float dnorm = dy_c * a.gamma[c];
                dx[c] = rstd * (dnorm - dnorm_mean - xhat * dnorm_xhat_mean) + ds_c;
            }
        }
    }
    if (kItems > 0) {
        for (int j = 0; j < kSlots; ++j) {
            const int64_t c = threadIdx.x + int64_t{j} * blockDim.x;
            if (c >= a.C) break;
            if (dgamma_row) dgamma_row[c] = dgamma_sum[j];
            if (dbeta_row) dbeta_row[c] = dbeta_sum[j];
        }
    }
}

// out[c] = sum of partials[k, c] over k in order (added to out[c] when accumulating).
__global__ void reduce_partials_kernel(const float* partials, int64_t blocks, int64_t C, float* out, bool accumulate) {
    for (int64_t c = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; c < C; c += int64_t{gridDim.x} * blockDim.x) {
        float total = partials[c];
        for (int64_t k = 1; k < blocks; ++k) total += partials[k * C + c];
        out[c] = accumulate ? out[c] + total : total;
    }
}

}  // namespace

void launch_norm_forward(const Queue& queue, bool rms, const cpu::NormForwardArgs& args) {
    const int threads = threads_for(args.C);
    const auto blocks = static_cast<unsigned>(args.N);
    // Registers for 8 channels per thread (up to C = 2048), else 16 (up to 4096): the fewer
    // registers a block needs, the more blocks, and loads, each SM keeps in flight.
    if (args.C <= int64_t{8} * threads) {
        norm_forward_registers_kernel<8><<<blocks, threads, 0, queue.stream>>>(args, rms);
    } else if (args.C <= int64_t{16} * threads) {
        norm_forward_registers_kernel<16><<<blocks, threads, 0, queue.stream>>>(args, rms);
    } else if (args.C <= kMaxCachedChannels) {
        const size_t shared = static_cast<size_t>(args.C) * sizeof(float);
        norm_forward_kernel<true><<<blocks, threads, shared, queue.stream>>>(args, rms);
    } else {
        norm_forward_kernel<false><<<blocks, threads, 0, queue.stream>>>(args, rms);
    }
    check_launch("norm_forward_kernel");
}

// Channels per thread of the register-cached backward kernel.
constexpr int kBackwardItems = 8;
// Rows each backward block sums at least, so that the partial sums (blocks x C) stay small
// beside the [N, C] inputs.
constexpr int64_t kMinRowsPerBlock = 8;

void launch_norm_backward(const Queue& queue, bool rms, const cpu::NormBackwardArgs& args, float* dgamma, float* dbeta,
                          bool accumulate) {
    const int threads = threads_for(args.C);
    const bool cached = args.C <= int64_t{kBackwardItems} * threads;
    const auto kernel = cached ? norm_backward_kernel<kBackwardItems> : norm_backward_kernel<0>;
    // As many blocks as the device holds at once (its SM count times the kernel's occupancy).
    int blocks_per_sm = 0;
    check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks_per_sm, kernel, threads, 0),
          "cudaOccupancyMaxActiveBlocksPerMultiprocessor");
    const int64_t resident = int64_t{queue.sm_count} * (blocks_per_sm > 0 ? blocks_per_sm : 1);
    const int64_t wanted = ceil_div(args.N, kMinRowsPerBlock);
    const int64_t blocks = wanted < resident ? wanted : resident;
    const int64_t rows_per_block = ceil_div(args.N, blocks);
    const int64_t used_blocks = ceil_div(args.N, rows_per_block);
    const int64_t partial_rows = (dgamma ? used_blocks : 0) + (dbeta ? used_blocks : 0);
    const Scratch partials(queue, partial_rows * args.C * static_cast<int64_t>(sizeof(float)));
    float* dgamma_partials = dgamma ? partials.as<float>() : nullptr;
    float* dbeta_partials = dbeta ? partials.as<float>() + (partial_rows - used_blocks) * args.C : nullptr;
    kernel<<<static_cast<unsigned>(used_blocks), threads, 0, queue.stream>>>(args, rms, rows_per_block, dgamma_partials,
                                                                             dbeta_partials);
    check_launch("norm_backward_kernel");
    constexpr int kReduceThreads = 256;
    const unsigned reduce_blocks = grid_for(queue, args.C, kReduceThreads);
    if (dgamma) {
        reduce_partials_kernel<<<reduce_blocks, kReduceThreads, 0, queue.stream>>>(dgamma_partials, used_blocks, args.C,
                                                                                   dgamma, accumulate);
        check_launch("reduce_partials_kernel");
    }
    if (dbeta) {
        reduce_partials_kernel<<<reduce_blocks, kReduceThreads, 0, queue.stream>>>(dbeta_partials, used_blocks, args.C,
                                                                                   dbeta, accumulate);
        check_launch("reduce_partials_kernel");
    }
}

}  // namespace ne::cuda
