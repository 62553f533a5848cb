// Reductions and softmax on CUDA (ne_sum_rows, ne_reduce_sum, ne_softmax_forward): kernels,
// then the launcher. All are deterministic: every sum is formed in a fixed order.
// - sum_rows: rows summed per chunk of rows with the CPU's chunking (cpu/reduce.cpp), then the
//   chunks in order, with f32 adds in the same order as the CPU's SIMD paths: the same bits.
// - reduce_sum: per block of elements in double (a fixed tree), then the blocks in order.
// - softmax: one block per row (max, sum of exp, scale).
#include "common.cuh"

namespace ne::cuda {
namespace {

// Chunking of the CPU's SIMD paths for ne_sum_rows.
constexpr int64_t kChunkRows = 32;
constexpr int64_t kMaxChunks = 256;

// partials[k, c] = sum of rows [k * chunk_rows, ...) of column c, rows in order from 0.
__global__ void sum_rows_chunks_kernel(RowReduceLaunch l, int64_t chunk_rows, float* partials) {
    const int64_t c = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
    if (c >= l.cols) return;
    const int64_t k = blockIdx.y;
    const int64_t end = (k + 1) * chunk_rows < l.rows ? (k + 1) * chunk_rows : l.rows;
    float sum = 0.0f;
    for (int64_t n = k * chunk_rows; n < end; ++n) sum += l.x.data[n * l.x.row_stride + c];
    partials[k * l.cols + c] = sum;
}

__global__ void sum_rows_total_kernel(RowReduceLaunch l, const float* partials, int64_t chunks) {
    for (int64_t c = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; c < l.cols; c += int64_t{gridDim.x} * blockDim.x) {
        float total = partials[c];
        for (int64_t k = 1; k < chunks; ++k) total += partials[k * l.cols + c];
        l.out.data[c] = l.accumulate ? l.out.data[c] + total : total;
    }
}

constexpr int kReduceThreads = 256;
constexpr int64_t kElementsPerBlock = int64_t{1} << 14;

__global__ void reduce_sum_blocks_kernel(RowReduceLaunch l, double* partials) {
    __shared__ double reduce_space[kWarpSize];
    const int64_t count = l.rows * l.cols;
    const int64_t begin = blockIdx.x * kElementsPerBlock;
    const int64_t end = begin + kElementsPerBlock < count ? begin + kElementsPerBlock : count;
    double sum = 0.0;
    for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
        const double value = l.x.data[i / l.cols * l.x.row_stride + i % l.cols];
        sum += l.squares ? value * value : value;
    }
    sum = block_reduce(sum, SumOp{}, reduce_space);
    if (threadIdx.x == 0) partials[blockIdx.x] = sum;
}

__global__ void reduce_sum_total_kernel(RowReduceLaunch l, const double* partials, int64_t blocks) {
    double total = 0.0;
    for (int64_t k = 0; k < blocks; ++k) total += partials[k];
    const double result = l.accumulate ? static_cast<double>(l.out.data[0]) + total : total;
    l.out.data[0] = static_cast<float>(result);
}

__global__ void softmax_kernel(RowReduceLaunch l) {
    __shared__ float reduce_space[kWarpSize];
    const int64_t n = blockIdx.x;
    const float* x = l.x.data + n * l.x.row_stride;
    float* out = l.out.data + n * l.out.row_stride;
    float largest = -INFINITY;
    for (int64_t c = threadIdx.x; c < l.cols; c += blockDim.x) largest = fmaxf(largest, x[c]);
    largest = block_reduce(largest, MaxOp{}, reduce_space);
    if (largest == -INFINITY) {  // every score masked
        for (int64_t c = threadIdx.x; c < l.cols; c += blockDim.x) out[c] = 0.0f;
        return;
    }
    float sum = 0.0f;
    for (int64_t c = threadIdx.x; c < l.cols; c += blockDim.x) sum += expf(x[c] - largest);
    const float inverse = 1.0f / block_reduce(sum, SumOp{}, reduce_space);
    for (int64_t c = threadIdx.x; c < l.cols; c += blockDim.x) out[c] = expf(x[c] - largest) * inverse;
}

}  // namespace

void launch_row_reduce(const Queue& queue, const RowReduceLaunch& launch) {
    switch (launch.op) {
        case RowReduceOp::sum_rows: {
            const int64_t chunk_rows = kChunkRows > ceil_div(launch.rows, kMaxChunks) ? kChunkRows : ceil_div(launch.rows, kMaxChunks);
            const int64_t chunks = ceil_div(launch.rows, chunk_rows);
            const Scratch partials(queue, chunks * launch.cols * static_cast<int64_t>(sizeof(float)));
            const dim3 grid(static_cast<unsigned>(ceil_div(launch.cols, kReduceThreads)), static_cast<unsigned>(chunks));
            sum_rows_chunks_kernel<<<grid, kReduceThreads, 0, queue.stream>>>(launch, chunk_rows, partials.as<float>());
            check_launch("sum_rows_chunks_kernel");
            sum_rows_total_kernel<<<grid_for(queue, launch.cols, kReduceThreads), kReduceThreads, 0, queue.stream>>>(
                launch, partials.as<float>(), chunks);
            check_launch("sum_rows_total_kernel");
            return;
        }
        case RowReduceOp::reduce_sum: {
            const int64_t blocks = ceil_div(launch.rows * launch.cols, kElementsPerBlock);
            const Scratch partials(queue, blocks * static_cast<int64_t>(sizeof(double)));
            reduce_sum_blocks_kernel<<<static_cast<unsigned>(blocks), kReduceThreads, 0, queue.stream>>>(launch,
                                                                                                         partials.as<double>());
            check_launch("reduce_sum_blocks_kernel");
            reduce_sum_total_kernel<<<1, 1, 0, queue.stream>>>(launch, partials.as<double>(), blocks);
            check_launch("reduce_sum_total_kernel");
            return;
        }
        case RowReduceOp::softmax: {
            const int threads = launch.cols <= 256 ? 64 : (launch.cols <= 1024 ? 128 : 256);
            softmax_kernel<<<static_cast<unsigned>(launch.rows), threads, 0, queue.stream>>>(launch);
            check_launch("softmax_kernel");
            return;
        }
    }
}

}  // namespace ne::cuda
