// Embedding lookup and its gradient on CUDA: kernels, then launchers.
// The backward pass gives each thread one channel of dtable and walks the ids in order, as the
// CPU does, so the sums have the CPU's bits and need no atomics (deterministic).
#include "common.cuh"

#include <climits>

namespace ne::cuda {
namespace {

__device__ int32_t id_at(const DeviceIds& ids, int64_t n) { return ids.data[n / ids.cols * ids.row_stride + n % ids.cols]; }

__global__ void first_bad_id_kernel(DeviceIds ids, int64_t V, unsigned long long* first) {
    for (int64_t n = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; n < ids.count; n += int64_t{gridDim.x} * blockDim.x) {
        const int32_t id = id_at(ids, n);
        if (id < 0 || id >= V) atomicMin(first, static_cast<unsigned long long>(n));
    }
}

__global__ void embedding_forward_kernel(EmbeddingLaunch l) {
    const int64_t count = l.ids.count * l.C;
    for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += int64_t{gridDim.x} * blockDim.x) {
        const int64_t n = i / l.C, c = i % l.C;
        l.destination[n * l.destination_stride + c] = l.source[id_at(l.ids, n) * l.source_stride + c];
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
            l.destination[id_at(l.ids, n) * l.destination_stride + c] += l.source[n * l.source_stride + c];
        }
    }
}

constexpr int kThreads = 256;

}  // namespace

int64_t first_id_out_of_range(const Queue& queue, const DeviceIds& ids, int64_t V, int32_t* value) {
    const Scratch first(queue, sizeof(unsigned long long));
    check(cudaMemsetAsync(first.as<void>(), 0xff, sizeof(unsigned long long), queue.stream), "cudaMemsetAsync");
    first_bad_id_kernel<<<grid_for(queue, ids.count, kThreads), kThreads, 0, queue.stream>>>(ids, V,
                                                                                             first.as<unsigned long long>());
    check_launch("first_bad_id_kernel");
    unsigned long long index = 0;
    check(cudaMemcpyAsync(&index, first.as<void>(), sizeof index, cudaMemcpyDeviceToHost, queue.stream), "cudaMemcpyAsync");
    check(cudaStreamSynchronize(queue.stream), "cudaStreamSynchronize");
    if (index == ULLONG_MAX) return -1;
    const auto n = static_cast<int64_t>(index);
    check(cudaMemcpy(value, ids.data + n / ids.cols * ids.row_stride + n % ids.cols, sizeof *value, cudaMemcpyDeviceToHost),
          "cudaMemcpy");
    return n;
}

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
