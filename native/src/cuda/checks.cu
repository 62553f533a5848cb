// Checks of data on the device (Device::check_int_range, check_floats): a kernel per check
// records its first bad element in a slot of device memory while the host goes on; the host
// reads the slots only when it waits for the queue anyway, so that validating ids, targets and
// inputs costs a training step no round trip.
#include "common.cuh"
#include "core/error.hpp"

#include <climits>

namespace ne::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kSlots = 1024;
constexpr unsigned long long kNone = ULLONG_MAX;
// The largest index a slot records exactly; larger ones are recorded as this one plus one.
constexpr unsigned long long kLargestIndex = 0xfffffffdull;

// The smallest key wins, and the index is its high half: the slot ends up with the first bad
// element in row-major order, and that element's bits.
__device__ void record(unsigned long long* slot, int64_t index, uint32_t bits) {
    const unsigned long long capped = index > static_cast<int64_t>(kLargestIndex) ? kLargestIndex + 1 : index;
    atomicMin(slot, capped << 32 | bits);
}

__global__ void int_range_kernel(IntRangeCheck range, unsigned long long* slot) {
    const DeviceIds& ids = range.ids;
    for (int64_t n = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; n < ids.count; n += int64_t{gridDim.x} * blockDim.x) {
        const int32_t value = ids.data[n / ids.cols * ids.row_stride + n % ids.cols];
        const bool good = (value >= range.low && value < range.high) || (value < 0 && range.negatives_allowed);
        if (!good) record(slot, n, static_cast<uint32_t>(value));
    }
}

__global__ void floats_kernel(FloatCheck floats, unsigned long long* slot) {
    const int64_t count = floats.rows * floats.cols;
    for (int64_t n = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; n < count; n += int64_t{gridDim.x} * blockDim.x) {
        const int64_t r = n / floats.cols;
        if (floats.skip_rows && floats.skip_rows[r] < 0) continue;
        const float value = floats.data[r * floats.row_stride + n % floats.cols];
        const bool good = isfinite(value) && (!floats.positive || value > 0.0f);
        if (!good) record(slot, n, __float_as_uint(value));
    }
}

}  // namespace

DeferredChecks::~DeferredChecks() {
    if (slots_) cudaFree(slots_);
}

void DeferredChecks::prepare(const Queue& queue) {
    check(cudaMalloc(&slots_, kSlots * sizeof(unsigned long long)), "cudaMalloc (check slots)");
    check(cudaMemsetAsync(slots_, 0xff, kSlots * sizeof(unsigned long long), queue.stream), "cudaMemsetAsync");
}

unsigned long long* DeferredChecks::next_slot(const Queue& queue, DescribeBadElement describe) {
    // Every slot in use: a rare wait, so that the slots never grow.
    if (static_cast<int64_t>(pending_.size()) == kSlots) wait(queue);
    pending_.push_back({current_function(), std::move(describe)});
    return slots_ + pending_.size() - 1;
}

void DeferredChecks::check_int_range(const Queue& queue, const IntRangeCheck& range, DescribeBadElement describe) {
    if (range.ids.count == 0) return;
    unsigned long long* slot = next_slot(queue, std::move(describe));
    int_range_kernel<<<grid_for(queue, range.ids.count, kThreads), kThreads, 0, queue.stream>>>(range, slot);
    check_launch("int_range_kernel");
}

void DeferredChecks::check_floats(const Queue& queue, const FloatCheck& floats, DescribeBadElement describe) {
    if (floats.rows == 0 || floats.cols == 0) return;
    unsigned long long* slot = next_slot(queue, std::move(describe));
    floats_kernel<<<grid_for(queue, floats.rows * floats.cols, kThreads), kThreads, 0, queue.stream>>>(floats, slot);
    check_launch("floats_kernel");
}

void DeferredChecks::wait(const Queue& queue) {
    ++waits_;
    check(cudaStreamSynchronize(queue.stream), "cudaStreamSynchronize");
    if (pending_.empty()) return;
    std::vector<unsigned long long> keys(pending_.size());
    const std::vector<Pending> checked = std::move(pending_);
    pending_.clear();
    const size_t bytes = keys.size() * sizeof(unsigned long long);
    check(cudaMemcpyAsync(keys.data(), slots_, bytes, cudaMemcpyDeviceToHost, queue.stream), "cudaMemcpyAsync");
    check(cudaMemsetAsync(slots_, 0xff, bytes, queue.stream), "cudaMemsetAsync");
    check(cudaStreamSynchronize(queue.stream), "cudaStreamSynchronize");
    for (size_t i = 0; i < keys.size(); ++i) {
        if (keys[i] == kNone) continue;
        const unsigned long long index = keys[i] >> 32;
        const std::string message = checked[i].describe(index > kLargestIndex ? -1 : static_cast<int64_t>(index),
                                                        static_cast<uint32_t>(keys[i]));
        fail(NE_STATUS_INVALID_ARGUMENT, checked[i].function, ": ", message,
             " (found on the device after that call had returned; its outputs are unspecified)");
    }
}

}  // namespace ne::cuda
