// The SIMT emulator's stand-ins for the CUB collectives NativeEngine's kernels use, with CUB's
// documented contracts: BlockRadixSort and BlockScan are block-wide collectives over a
// TempStorage the caller places in shared memory (every thread must call them; reusing the
// storage needs a barrier, which these versions do not add for the caller); the radix sorts are
// stable and order keys by bits [begin_bit, end_bit) of their radix representation (signed
// integers with the sign bit flipped); DeviceRadixSort first reports the temporary storage it
// needs, then sorts with it.
#pragma once

#include "../../simt.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <type_traits>
#include <vector>

namespace cub {

struct NullType {};

namespace detail {
template <class Key>
uint64_t radix_bits(Key key, int begin_bit, int end_bit) {
    static_assert(std::is_integral_v<Key> && sizeof(Key) <= 8, "the emulator sorts integer keys");
    using Unsigned = std::make_unsigned_t<Key>;
    auto bits = static_cast<uint64_t>(static_cast<Unsigned>(key));
    if constexpr (std::is_signed_v<Key>) bits ^= uint64_t{1} << (sizeof(Key) * 8 - 1);
    const uint64_t below_end = end_bit >= 64 ? ~uint64_t{0} : (uint64_t{1} << end_bit) - 1;
    return (bits & below_end) >> begin_bit;
}
}  // namespace detail

template <class Key, int kBlockThreads, int kItemsPerThread, class Value = NullType, int kRadixBits = 4, bool = true,
          int = 0, int = 0, int kBlockY = 1, int kBlockZ = 1>
class BlockRadixSort {
public:
    struct TempStorage {
        Key keys[kBlockThreads * kBlockY * kBlockZ * kItemsPerThread];
    };

    explicit BlockRadixSort(TempStorage& storage) : storage_(storage) {}

    void Sort(Key (&keys)[kItemsPerThread], int begin_bit = 0, int end_bit = sizeof(Key) * 8) {
        constexpr int kCount = kBlockThreads * kBlockY * kBlockZ * kItemsPerThread;
        const int t = ::simt::current_thread().linear;
        if (t == 0 && static_cast<int>(blockDim.x * blockDim.y * blockDim.z) != kCount / kItemsPerThread) {
            ::simt::kernel_fault("cub::BlockRadixSort: the block's size differs from the template's");
        }
        for (int i = 0; i < kItemsPerThread; ++i) storage_.keys[t * kItemsPerThread + i] = keys[i];
        __syncthreads();
        if (t == 0) {
            std::stable_sort(storage_.keys, storage_.keys + kCount, [&](Key a, Key b) {
                return detail::radix_bits(a, begin_bit, end_bit) < detail::radix_bits(b, begin_bit, end_bit);
            });
        }
        __syncthreads();
        for (int i = 0; i < kItemsPerThread; ++i) keys[i] = storage_.keys[t * kItemsPerThread + i];
    }

private:
    TempStorage& storage_;
};

template <class T, int kBlockThreads, int = 0, int kBlockY = 1, int kBlockZ = 1>
class BlockScan {
public:
    struct TempStorage {
        T values[kBlockThreads * kBlockY * kBlockZ];
    };

    explicit BlockScan(TempStorage& storage) : storage_(storage) {}

    void ExclusiveSum(T input, T& output, T& block_aggregate) { scan(input, output, block_aggregate, false); }
    void ExclusiveSum(T input, T& output) {
        T aggregate;
        scan(input, output, aggregate, false);
    }
    void InclusiveSum(T input, T& output, T& block_aggregate) { scan(input, output, block_aggregate, true); }
    void InclusiveSum(T input, T& output) {
        T aggregate;
        scan(input, output, aggregate, true);
    }

private:
    void scan(T input, T& output, T& aggregate, bool inclusive) {
        constexpr int kCount = kBlockThreads * kBlockY * kBlockZ;
        const int t = ::simt::current_thread().linear;
        storage_.values[t] = input;
        __syncthreads();
        T prefix{};
        T total{};
        for (int i = 0; i < kCount; ++i) {
            if (i < t || (inclusive && i == t)) prefix = prefix + storage_.values[i];
            total = total + storage_.values[i];
        }
        output = prefix;
        aggregate = total;
        __syncthreads();
    }

    TempStorage& storage_;
};

struct DeviceRadixSort {
    template <class Key, class Value, class Count>
    static cudaError_t SortPairs(void* temp, size_t& temp_bytes, const Key* keys_in, Key* keys_out, const Value* values_in,
                                 Value* values_out, Count count, int begin_bit = 0, int end_bit = sizeof(Key) * 8,
                                 cudaStream_t = nullptr, bool = false) {
        const auto n = static_cast<size_t>(count);
        // As much as a double-buffered sort of the pairs would take, so that a caller that
        // allocates less than it was told fails here.
        const size_t needed = 2 * n * (sizeof(Key) + sizeof(Value)) + 256;
        if (temp == nullptr) {
            temp_bytes = needed;
            return cudaSuccess;
        }
        if (temp_bytes < needed || begin_bit < 0 || end_bit > static_cast<int>(sizeof(Key) * 8) || begin_bit > end_bit) {
            return cudaErrorInvalidValue;
        }
        const auto overlaps = [n](const void* a, const void* b, size_t size) {
            const auto x = reinterpret_cast<uintptr_t>(a), y = reinterpret_cast<uintptr_t>(b);
            return n > 0 && x < y + n * size && y < x + n * size;
        };
        if (overlaps(keys_in, keys_out, sizeof(Key)) || overlaps(values_in, values_out, sizeof(Value))) {
            return cudaErrorInvalidValue;
        }
        std::vector<size_t> order(n);
        std::iota(order.begin(), order.end(), size_t{0});
        std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
            return detail::radix_bits(keys_in[a], begin_bit, end_bit) < detail::radix_bits(keys_in[b], begin_bit, end_bit);
        });
        std::vector<Key> keys(n);
        std::vector<Value> values(n);
        for (size_t i = 0; i < n; ++i) {
            keys[i] = keys_in[order[i]];
            values[i] = values_in[order[i]];
        }
        std::copy(keys.begin(), keys.end(), keys_out);
        std::copy(values.begin(), values.end(), values_out);
        return cudaSuccess;
    }
};

}  // namespace cub
