// The CUDA backend's internal interface: the queue a context's work runs on, error checks,
// counted scratch memory, and the launchers of each kernel family (one .cu file per family).
// Launchers queue their kernels on the queue's stream and return without waiting, unless
// their comment says they synchronize.
//
// Included by the CUDA translation units (nvcc, C++17) and by device.cpp (the host compiler).
#pragma once

#include "core/device_ops.hpp"

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>
#include <vector>

namespace ne {
struct MemoryCounters;
}

namespace ne::cuda {

class DeferredChecks;

// What one context's kernels need: its stream, library handles and device properties.
struct Queue {
    cudaStream_t stream;
    cublasHandle_t blas;
    cublasLtHandle_t blas_lt;
    // Device memory cuBLASLt's products may use: without it, its heuristic leaves out the
    // algorithms that need a workspace (split-K among them).
    void* blas_lt_workspace;
    uint64_t blas_lt_workspace_bytes;
    int32_t device;
    int32_t sm_count;
    int64_t max_shared_bytes_per_block;  // the opt-in limit of dynamic shared memory
    bool stream_ordered_memory;  // cudaMallocAsync is supported
    MemoryCounters* counters;    // the context's, where scratch memory counts
    DeferredChecks* checks;      // the context's checks of device data, reported at its waits
};

// Throw ne::Error (NE_STATUS_DEVICE_ERROR, or NE_STATUS_OUT_OF_MEMORY) naming what failed.
void check(cudaError_t status, const char* what);
void check(cublasStatus_t status, const char* what);
// After a kernel launch: reports a bad launch configuration at once.
void check_launch(const char* kernel);

// Device memory a kernel needs for the length of one call, freed in stream order (no wait),
// counted in the context's live and peak bytes like the CPU's scratch memory.
class Scratch {
public:
    Scratch(const Queue& queue, int64_t bytes);
    ~Scratch();
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;

    template <class T>
    T* as() const {
        return static_cast<T*>(data_);
    }

private:
    const Queue* queue_;
    void* data_;
    int64_t bytes_;
};

// A tensor's elements as a kernel walks them: element (i0, i1, ...) at
// data + (i0 * strides[0] + i1 * strides[1] + ...) * element_size.
struct Layout {
    void* data;
    int32_t rank;
    int64_t shape[NE_MAX_RANK];
    int64_t strides[NE_MAX_RANK];
    int64_t element_count;
};

// sort.cu: (key, source) pairs sorted by key, stably (sources stay ascending within a key), for
// the deterministic scatters that give each distinct key one block (key_run_end in common.cuh);
// a negative key marks an entry to skip. The constructor allocates all the memory, so that a
// caller can allocate everything before it writes any output; a kernel of the caller fills keys()
// and sources(), then sort() queues the sort.
class SortedEntries {
public:
    SortedEntries(const Queue& queue, int count);

    int32_t* keys() const { return entries_.as<int32_t>(); }
    int32_t* sources() const { return keys() + count_; }
    int32_t* sorted_keys() const { return sources() + count_; }
    int32_t* sorted_sources() const { return sorted_keys() + count_; }
    void sort(const Queue& queue) const;

private:
    int count_;
    size_t sort_bytes_;
    Scratch entries_;
    Scratch sort_memory_;
};

// checks.cu: the checks of device data of Device::check_int_range, and the host's waits.
class DeferredChecks {
public:
    DeferredChecks() = default;
    ~DeferredChecks();
    DeferredChecks(const DeferredChecks&) = delete;
    DeferredChecks& operator=(const DeferredChecks&) = delete;

    // Allocates the slots, at the context's creation: cudaMalloc may wait for the device, which
    // no check in a step may do.
    void prepare(const Queue& queue);
    void check_int_range(const Queue& queue, const IntRangeCheck& range, DescribeBadElement describe);
    void check_floats(const Queue& queue, const FloatCheck& floats, DescribeBadElement describe);
    // Waits for the queue, then throws the first failure among the checks queued before.
    void wait(const Queue& queue);
    int64_t waits() const { return waits_; }
    int64_t pending() const { return static_cast<int64_t>(pending_.size()); }

private:
    struct Pending {
        std::string function;
        DescribeBadElement describe;
    };
    // One slot of device memory per pending check: its kernel atomically keeps the smallest
    // (index << 32 | bits) of a bad element; all ones while none.
    unsigned long long* next_slot(const Queue& queue, DescribeBadElement describe);

    unsigned long long* slots_ = nullptr;
    std::vector<Pending> pending_;
    int64_t waits_ = 0;
};

// memory.cu
void launch_copy(const Queue& queue, const Layout& destination, const Layout& source, int64_t element_size);
void launch_fill(const Queue& queue, const Layout& tensor, uint32_t pattern, int64_t element_size);

// layernorm.cu
void launch_norm_forward(const Queue& queue, bool rms, const cpu::NormForwardArgs& args);
void launch_norm_backward(const Queue& queue, bool rms, const cpu::NormBackwardArgs& args, float* dgamma, float* dbeta,
                          bool accumulate);

// int8.cu. Their callers (cpu/int8.cpp) queue the check of quantized input for non-finite values.
void launch_quantize_int8(const Queue& queue, const cpu::QuantizeArgs& args);
void launch_dequantize_int8(const Queue& queue, const cpu::DequantizeArgs& args);
void launch_gemm_int8(const Queue& queue, const cpu::GemmArgs& args);
void launch_linear_int8(const Queue& queue, const float* x, int64_t x_row_stride, const cpu::GemmArgs& gemm);

// gemm.cu: see Device::gemm.
void launch_gemm(const Queue& queue, const cpu::SgemmBatch& batch, ne_dtype ab_dtype, ne_dtype c_dtype);

// elementwise.cu
void launch_elementwise(const Queue& queue, const ElementwiseLaunch& launch);

// reduce.cu
void launch_row_reduce(const Queue& queue, const RowReduceLaunch& launch);

// adamw.cu
void launch_adamw(const Queue& queue, const AdamwLaunch& launch);

// embedding.cu. Ids outside [0, V) (reported by the caller's check) are skipped.
void launch_embedding_forward(const Queue& queue, const EmbeddingLaunch& launch);
void launch_embedding_backward(const Queue& queue, const EmbeddingLaunch& launch);

}  // namespace ne::cuda
