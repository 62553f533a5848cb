// The objects behind the opaque handles of the C ABI.
//
// Ownership: a context starts with one reference, its owner's. Every allocation holds one
// reference to its context and every tensor handle one reference to its allocation, so a
// context lives until its owner destroyed it and its last tensor is gone. After the owner's
// destroy, the handle is refused by every entry point even while tensors keep it alive.
#pragma once

#include "device.hpp"
#include "dtype.hpp"
#include "nativeengine.h"
#include "thread_pool.hpp"

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

namespace ne {

// Tags that tell a live object of the right type from a stale or foreign pointer.
constexpr uint64_t kContextMagic = 0x4e45434f4e545854ull;  // "NECONTXT"
constexpr uint64_t kTensorMagic = 0x4e4554454e534f52ull;   // "NETENSOR"
constexpr uint64_t kDeadMagic = 0xdeaddeaddeaddeadull;

// Live counts of one context, or of the whole library.
struct MemoryCounters {
    std::atomic<int64_t> contexts{0};
    std::atomic<int64_t> tensors{0};
    std::atomic<int64_t> allocations{0};
    std::atomic<int64_t> bytes{0};
    std::atomic<int64_t> peak_bytes{0};

    void on_allocate(int64_t size);
    void on_free(int64_t size);
    ne_memory_stats snapshot() const;
};

MemoryCounters& global_counters();

struct Allocation;

}  // namespace ne

struct ne_context {
    uint64_t magic = ne::kContextMagic;
    std::atomic<int64_t> references{1};
    std::atomic<bool> destroyed_by_owner{false};

    ne_backend backend = NE_BACKEND_CPU;
    int32_t device_index = 0;
    int32_t num_threads = 1;
    ne_simd_level simd_level = NE_SIMD_LEVEL_SCALAR;
    ne::DeviceDescription description;
    std::unique_ptr<ne::ThreadPool> pool;
    ne::MemoryCounters counters;
    // The device of a device backend (CUDA), or null on the CPU. Declared after the counters:
    // it is destroyed before them.
    std::unique_ptr<ne::Device> device;
};

struct ne_tensor {
    uint64_t magic = ne::kTensorMagic;
    ne::Allocation* allocation = nullptr;
    ne_dtype dtype = NE_DTYPE_F32;
    int32_t rank = 0;
    int64_t shape[NE_MAX_RANK] = {};
    int64_t strides[NE_MAX_RANK] = {};
    int64_t offset = 0;
    int64_t element_count = 1;
};

namespace ne {

struct Allocation {
    ne_context* context;
    void* data;
    int64_t bytes;
    std::atomic<int64_t> references{1};
};

void retain(ne_context* context);
void release(ne_context* context);

// Allocates zero-filled memory of the context's backend (host memory, or the memory of the
// context's device). Throws ne::Error.
Allocation* allocate(ne_context* context, int64_t bytes);
void retain(Allocation* allocation);
void release(Allocation* allocation);

inline ne_context* context_of(const ne_tensor& tensor) { return tensor.allocation->context; }

// The device that holds the tensor's memory, or null for host memory.
inline Device* device_of(const ne_tensor& tensor) { return tensor.allocation->context->device.get(); }

// Temporary host memory of a kernel (packed panels, partial sums, chunks of logits). It counts
// in its context's live and peak bytes while it exists, so that memory statistics show a
// kernel's whole footprint. Allocate it before starting threads: the constructor throws.
class Scratch {
public:
    Scratch(ne_context& context, int64_t bytes);
    ~Scratch();
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;

    template <class T>
    T* as() const {
        return static_cast<T*>(data_);
    }
    int64_t bytes() const { return bytes_; }

private:
    ne_context* context_;
    void* data_;
    int64_t bytes_;
};

// Address of element 0 of the tensor: a host pointer on the CPU, a device address on a device.
template <class T>
T* data_of(const ne_tensor& tensor) {
    char* base = static_cast<char*>(tensor.allocation->data);
    return reinterpret_cast<T*>(base + tensor.offset * dtype_size(tensor.dtype));
}

}  // namespace ne
