// Embedding lookup and its gradient on CUDA: kernels, then launchers.
// The backward pass gives each thread one channel of dtable and walks the ids in order, as the
// CPU does, so the sums have the CPU's bits and need no atomics (deterministic). Ids outside
// [0, V), which the caller's deferred check reports, read zeros and are skipped.
#include "common.cuh"

#include <climits>

namespace ne::cuda {
namespace {

__device__ int32_t id_at(const DeviceIds& ids, int64_t n) { return ids.data[n / ids.cols * ids.row_stride + n % ids.cols]; }

__global__ void embedding_forward_kernel(EmbeddingLaunch l) {
    const int64_t count = l.ids.count * l.C;
    for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += int64_t{gridDim.x} * blockDim.x) {
        const int64_t n = i / l.C, c = i % l.C;
        const int64_t id = id_at(l.ids, n);
        l.destination[n * l.destination_stride + c] = id >= 0 && id < l.V ? l.source[id * l.source_stride + c] : 0.0f;
    }
}

__global__ void zero_rows_kernel(float* rows, int64_t count, int64_t cols, int64_t row_stride) {
    for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count * cols; i += int64_t{gridDim.x} * blockDim.x) {
        rows[i / cols * row_stride + i % cols] = 0.0f;
    }
}

__global__ void embedding_backward_kernel(EmbeddingLaunch l) {
    for (int64_t c = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; c < l.C; c += int64_t{gridDim.x} * blockDim.x) {
        for (int64_t n = 0; n < l.ids.count; ++n) {
            const int64_t id = id_at(l.ids, n);
            if (id >= 0 && id < l.V) l.destination[id * l.destination_stride + c] += l.source[n * l.source_stride + c];
        }
    }
}

constexpr int kThreads = 256;

}  // namespace

void launch_embedding_forward(const Queue& queue, const EmbeddingLaunch& launch) {
    embedding_forward_kernel<<<grid_for(queue, launch.ids.count * launch.C, kThreads), kThreads, 0, queue.stream>>>(launch);
    check_launch("embedding_forward_kernel");
}

void launch_embedding_backward(const Queue& queue, const EmbeddingLaunch& launch) {
    if (!launch.accumulate) {
        zero_rows_kernel<<<grid_for(queue, launch.V * launch.C, kThreads), kThreads, 0, queue.stream>>>(
            launch.destination, launch.V, launch.C, launch.destination_stride);
        check_launch("zero_rows_kernel");
    }
    embedding_backward_kernel<<<grid_for(queue, launch.C, kThreads), kThreads, 0, queue.stream>>>(launch);
    check_launch("embedding_backward_kernel");
}

}  // namespace ne::cuda
