// Embedding lookup and its gradient on CUDA: kernels, then launchers.
// The backward pass sorts the (id, position) pairs by id, stably, and gives each distinct id one
// block, which adds the id's rows of dout into its row of dtable in position order: the CPU's
// order, so the sums have the CPU's bits, with no atomics (deterministic), and the ids' rows are
// summed in parallel (one thread per channel walking every id in turn would leave all but C
// threads idle for N dependent steps). Ids outside [0, V), which the caller's deferred check
// reports, read zeros and are skipped.
#include "common.cuh"
#include "core/error.hpp"

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

// keys: the ids, -1 where outside [0, V); positions 0..N - 1.
__global__ void id_entries_kernel(DeviceIds ids, int64_t V, int32_t* keys, int32_t* positions) {
    for (int64_t n = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; n < ids.count; n += int64_t{gridDim.x} * blockDim.x) {
        const int32_t id = id_at(ids, n);
        keys[n] = id >= 0 && id < V ? id : -1;
        positions[n] = static_cast<int32_t>(n);
    }
}

// The entries sorted by id (positions ascending within an id): the block of each id's first
// entry adds the rows of its positions, in order, into the id's row of dtable.
__global__ void embedding_backward_kernel(EmbeddingLaunch l, const int32_t* keys, const int32_t* positions) {
    const int64_t count = l.ids.count;
    for (int64_t e = blockIdx.x; e < count; e += gridDim.x) {
        const int64_t end = key_run_end(keys, e, count);
        if (end < 0) continue;
        float* row = l.destination + keys[e] * l.destination_stride;
        for (int64_t c = threadIdx.x; c < l.C; c += blockDim.x) {
            float sum = row[c];
            for (int64_t k = e; k < end; ++k) sum += l.source[positions[k] * l.source_stride + c];
            row[c] = sum;
        }
    }
}

constexpr int kThreads = 256;
constexpr int kRowThreads = 128;

}  // namespace

void launch_embedding_forward(const Queue& queue, const EmbeddingLaunch& launch) {
    embedding_forward_kernel<<<grid_for(queue, launch.ids.count * launch.C, kThreads), kThreads, 0, queue.stream>>>(launch);
    check_launch("embedding_forward_kernel");
}

void launch_embedding_backward(const Queue& queue, const EmbeddingLaunch& launch) {
    const int64_t count = launch.ids.count;
    if (count > INT_MAX) {
        fail(NE_STATUS_UNSUPPORTED, "ids of ", count, " elements exceed the 32-bit range of the device's sort");
    }
    // All scratch memory comes first: a failing allocation leaves dtable untouched.
    const SortedEntries entries(queue, static_cast<int>(count));
    if (!launch.accumulate) {
        zero_rows_kernel<<<grid_for(queue, launch.V * launch.C, kThreads), kThreads, 0, queue.stream>>>(
            launch.destination, launch.V, launch.C, launch.destination_stride);
        check_launch("zero_rows_kernel");
    }
    if (count == 0) return;
    id_entries_kernel<<<grid_for(queue, count, kThreads), kThreads, 0, queue.stream>>>(launch.ids, launch.V, entries.keys(),
                                                                                       entries.sources());
    check_launch("id_entries_kernel");
    entries.sort(queue);
    embedding_backward_kernel<<<row_blocks(count), kRowThreads, 0, queue.stream>>>(launch, entries.sorted_keys(),
                                                                                  entries.sorted_sources());
    check_launch("embedding_backward_kernel");
}

}  // namespace ne::cuda
