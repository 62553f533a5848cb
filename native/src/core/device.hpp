// A device backend (CUDA) as the core and the exported operations see it. A context of a
// device backend owns one Device: its memory, its queue of work and its kernels. Every method
// throws ne::Error on failure; kernels are queued on the device's stream in call order.
//
// libnativeengine links core/no_cuda.cpp, whose open_cuda_device refuses; libnativeengine_cuda
// links the CUDA implementation (native/src/cuda/).
#pragma once

#include "cpu/attention.hpp"
#include "device_ops.hpp"
#include "cpu/softmax_losses.hpp"

#include <cstdint>
#include <memory>
#include <string>

struct ne_tensor;

namespace ne {

struct MemoryCounters;

// Attention: a [B] i32 tensor of key lengths on the device: length b is data[b * stride]; data is null
// when every sequence has Tk keys.
struct DeviceKeyLengths {
    const int32_t* data;
    int64_t stride;
};

class Device {
public:
    virtual ~Device() = default;

    // ---- Memory. Pointers are device addresses; byte counts are exact (no rounding). ----
    // Zero-filled memory; never null.
    virtual void* allocate(int64_t bytes) = 0;
    virtual void free(void* data) noexcept = 0;
    // Host -> device copy of contiguous bytes, queued: the host buffer may be reused at once,
    // and the host does not wait for the device's queued work.
    virtual void write(void* device_destination, const void* host_source, int64_t bytes) = 0;
    // Device -> host copy of contiguous bytes; waits for the queued work (see synchronize).
    virtual void read(void* host_destination, const void* device_source, int64_t bytes) = 0;
    // Element copy between tensors of one shape and dtype, any strides, where at least one side
    // lives on this device and the other on this device, another one, or the host.
    virtual void copy(const ne_tensor& destination, const ne_tensor& source) = 0;
    // Sets every element of a tensor of this device to the pattern of element_size bytes.
    virtual void fill(const ne_tensor& tensor, const void* pattern, int64_t element_size) = 0;
    // Waits for all queued work, then reports the first failed check of device data queued
    // since the last wait (see check_int_range).
    virtual void synchronize() = 0;

    // ---- Checks of device data ----
    // Data that an exported op must validate but that lives on the device (ids within a
    // table, finite inputs, key lengths) is checked by a kernel queued before the op, while
    // the host goes on: the host learns the outcome at its next wait for the device
    // (synchronize, read, a copy to the host), which throws the first failure in queue order
    // as "<the queuing op>: <describe(index, bits)> (...)". The kernels that consume such data
    // guard their memory accesses, so a failing op's outputs are unspecified but nothing outside
    // its tensors is touched.
    virtual void check_int_range(const IntRangeCheck& check, DescribeBadElement describe) = 0;
    virtual void check_floats(const FloatCheck& check, DescribeBadElement describe) = 0;
    // How many times the host has waited for this device's queued work (synchronizations,
    // reads, copies to the host, a full staging area), and the checks not yet reported.
    virtual int64_t host_waits() const = 0;
    virtual int64_t pending_checks() const = 0;

    // ---- Kernels, on arguments already validated by the exported functions. ----
    virtual void norm_forward(bool rms, const cpu::NormForwardArgs& args) = 0;
    virtual void norm_backward(bool rms, const cpu::NormBackwardArgs& args, float* dgamma, float* dbeta,
                               bool accumulate) = 0;
    virtual void quantize_int8(const cpu::QuantizeArgs& args) = 0;
    virtual void dequantize_int8(const cpu::DequantizeArgs& args) = 0;
    virtual void gemm_int8(const cpu::GemmArgs& args) = 0;
    // y [M,N] = dequant(quant_per_row(x) w^T) + bias; gemm.a and gemm.a_scales are unset.
    virtual void linear_int8(const float* x, int64_t x_row_stride, const cpu::GemmArgs& gemm) = 0;
    // ne_gemm with a and b of ab_dtype (f32, bf16 or f16) and c of c_dtype (f32 or ab_dtype),
    // accumulated in f32. For 16-bit operands the pointers of batch, typed float*, hold the
    // addresses of the 16-bit elements.
    virtual void gemm(const cpu::SgemmBatch& batch, ne_dtype ab_dtype, ne_dtype c_dtype) = 0;
    virtual void elementwise(const ElementwiseLaunch& launch) = 0;
    virtual void row_reduce(const RowReduceLaunch& launch) = 0;
    virtual void adamw(const AdamwLaunch& launch) = 0;
    virtual void embedding_forward(const EmbeddingLaunch& launch) = 0;
    virtual void embedding_backward(const EmbeddingLaunch& launch) = 0;

    // ---- softmax losses (cpu/softmax_losses.hpp; the contracts are in nativeengine.h) ----
    virtual void cross_entropy_forward(const cpu::CrossEntropyForwardArgs& args) = 0;
    virtual void cross_entropy_backward(const cpu::CrossEntropyBackwardArgs& args) = 0;
    // ne_sample_log_uniform: the CPU's draws bit for bit (cpu/log_uniform.hpp) and the expected
    // counts of the samples and the targets, all on the device: no host read, copy or wait.
    virtual void sample_log_uniform(const cpu::SamplerArgs& args) = 0;
    virtual void sampled_softmax_forward(const cpu::SampledForwardArgs& args) = 0;
    virtual void sampled_softmax_backward(const cpu::SampledBackwardArgs& args) = 0;

    // ---- attention ----
    // The arguments of the CPU kernels (cpu/attention.hpp) with device pointers: q, k, v, out
    // (and dout, dq, dk, dv) all hold elements of `dtype` (f32, bf16 or f16; for 16-bit
    // elements the float pointers hold their addresses), lse and delta are f32. in.key_lengths
    // is unused: the device reads `key_lengths` (validated by the caller) instead.
    virtual void attention_forward(const cpu::AttentionForwardArgs& args, ne_dtype dtype,
                                   const DeviceKeyLengths& key_lengths) = 0;
    // Overwrites dq, dk and dv; deterministic (no atomics: every output element has one writer).
    virtual void attention_backward(const cpu::AttentionBackwardArgs& args, ne_dtype dtype,
                                    const DeviceKeyLengths& key_lengths) = 0;
};

// What ne_context_info reports of a context's device (queried from the device, never assumed).
struct DeviceDescription {
    std::string name;
    int32_t compute_capability = 0;
    int32_t multiprocessor_count = 0;
    int64_t l2_cache_bytes = 0;
    int64_t memory_bytes = 0;
};

// Opens CUDA device `index` for a context whose memory statistics are `counters` (they outlive
// the device). Sets *description. Throws ne::Error: NE_STATUS_BACKEND_UNAVAILABLE without the
// CUDA backend, a driver or a device; NE_STATUS_INVALID_ARGUMENT for an index out of range.
std::unique_ptr<Device> open_cuda_device(int32_t index, MemoryCounters& counters, DeviceDescription* description);

// Whether this library has the CUDA backend, and how many devices it sees (0 without a driver).
bool cuda_compiled() noexcept;
int32_t cuda_device_count() noexcept;

}  // namespace ne
