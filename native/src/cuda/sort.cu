// SortedEntries (launch.hpp): CUB's stable radix sort of (key, source) pairs.
#include "launch.hpp"

#include <cub/device/device_radix_sort.cuh>

namespace ne::cuda {
namespace {

size_t sort_bytes(const Queue& queue, int count) {
    if (count == 0) return 0;
    size_t bytes = 0;
    check(cub::DeviceRadixSort::SortPairs(nullptr, bytes, static_cast<const int32_t*>(nullptr), static_cast<int32_t*>(nullptr),
                                          static_cast<const int32_t*>(nullptr), static_cast<int32_t*>(nullptr), count, 0, 32,
                                          queue.stream),
          "cub::DeviceRadixSort::SortPairs (size query)");
    return bytes;
}

}  // namespace

SortedEntries::SortedEntries(const Queue& queue, int count)
    : count_(count),
      sort_bytes_(sort_bytes(queue, count)),
      entries_(queue, 4 * int64_t{count} * static_cast<int64_t>(sizeof(int32_t))),
      sort_memory_(queue, static_cast<int64_t>(sort_bytes_)) {}

void SortedEntries::sort(const Queue& queue) const {
    if (count_ == 0) return;
    size_t bytes = sort_bytes_;
    check(cub::DeviceRadixSort::SortPairs(sort_memory_.as<void>(), bytes, keys(), sorted_keys(), sources(), sorted_sources(), count_, 0, 32, queue.stream),
          "cub::DeviceRadixSort::SortPairs");
}

}  // namespace ne::cuda
