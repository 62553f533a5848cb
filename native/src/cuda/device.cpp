// The CUDA device of a context: its stream, cuBLAS/cuBLASLt handles and device memory, the
// transfers between host and device, and the dispatch of each exported operation to its
// launcher. Compiled by the host compiler; the kernels live in the .cu files.
#include "attention.hpp"
#include "launch.hpp"
#include "softmax_losses.hpp"

#include "core/validate.hpp"

#include <cstring>
#include <limits>
#include <vector>

namespace ne::cuda {

void check(cudaError_t status, const char* what) {
    if (status == cudaSuccess) return;
    cudaGetLastError();  // clears a non-sticky error, so that the context stays usable
    fail(status == cudaErrorMemoryAllocation ? NE_STATUS_OUT_OF_MEMORY : NE_STATUS_DEVICE_ERROR, what, " failed: ",
         cudaGetErrorName(status), ": ", cudaGetErrorString(status));
}

void check(cublasStatus_t status, const char* what) {
    if (status == CUBLAS_STATUS_SUCCESS) return;
    fail(status == CUBLAS_STATUS_ALLOC_FAILED ? NE_STATUS_OUT_OF_MEMORY : NE_STATUS_DEVICE_ERROR, what,
         " failed: cuBLAS status ", static_cast<int>(status));
}

void check_launch(const char* kernel) { check(cudaGetLastError(), kernel); }

namespace {

void* allocate_device(const Queue& queue, int64_t bytes) {
    // cudaMalloc(0) gives no pointer; one byte keeps every allocation a distinct address.
    const auto size = static_cast<size_t>(bytes > 0 ? bytes : 1);
    void* data = nullptr;
    if (queue.stream_ordered_memory) check(cudaMallocAsync(&data, size, queue.stream), "cudaMallocAsync");
    else check(cudaMalloc(&data, size), "cudaMalloc");
    return data;
}

void free_device(const Queue& queue, void* data) noexcept {
    const cudaError_t status = queue.stream_ordered_memory ? cudaFreeAsync(data, queue.stream) : cudaFree(data);
    // A release cannot report; keep its error out of the next launch's check.
    if (status != cudaSuccess) cudaGetLastError();
}

}  // namespace

Scratch::Scratch(const Queue& queue, int64_t bytes) : queue_(&queue), data_(allocate_device(queue, bytes)), bytes_(bytes) {
    queue.counters->on_allocate(bytes_);
    global_counters().on_allocate(bytes_);
}

Scratch::~Scratch() {
    free_device(*queue_, data_);
    queue_->counters->on_free(bytes_);
    global_counters().on_free(bytes_);
}

namespace {

Layout layout_of(const ne_tensor& tensor) {
    Layout layout{};
    layout.data = data_of<char>(tensor);
    layout.rank = tensor.rank;
    for (int32_t d = 0; d < tensor.rank; ++d) {
        layout.shape[d] = tensor.shape[d];
        layout.strides[d] = tensor.strides[d];
    }
    layout.element_count = tensor.element_count;
    return layout;
}

// The same elements, stored contiguously at `data`.
Layout contiguous_layout(const ne_tensor& tensor, void* data) {
    Layout layout = layout_of(tensor);
    layout.data = data;
    int64_t stride = 1;
    for (int32_t d = tensor.rank - 1; d >= 0; --d) {
        layout.strides[d] = stride;
        stride *= tensor.shape[d];
    }
    return layout;
}

// Walks a host tensor's elements in row-major order: visit(element address, index).
template <class Visit>
void for_each_host_element(const ne_tensor& tensor, Visit&& visit) {
    const int64_t size = dtype_size(tensor.dtype);
    char* base = static_cast<char*>(tensor.allocation->data);
    int64_t index[NE_MAX_RANK] = {};
    int64_t offset = tensor.offset;
    for (int64_t n = 0; n < tensor.element_count; ++n) {
        visit(base + offset * size, n);
        for (int32_t d = tensor.rank - 1; d >= 0; --d) {
            offset += tensor.strides[d];
            if (++index[d] < tensor.shape[d]) break;
            offset -= tensor.strides[d] * tensor.shape[d];
            index[d] = 0;
        }
    }
}

// Host-to-device copies through pinned buffers: from pageable memory the driver may wait for
// the stream before staging a copy, and a training step's uploads (its token ids) must not make
// the host wait for the device. A buffer is reused once the event recorded after its copy has
// passed; the host waits (counted) only when kMaxBytes of buffers are all in flight, and copies
// larger than kMaxBytes / 4 (weights being loaded) go from pageable memory, waiting.
class PinnedUploads {
public:
    PinnedUploads() = default;
    PinnedUploads(const PinnedUploads&) = delete;
    PinnedUploads& operator=(const PinnedUploads&) = delete;

    ~PinnedUploads() {
        for (const Buffer& buffer : buffers_) release(buffer);
    }

    void upload(const Queue& queue, void* device_destination, const void* host_source, int64_t bytes) {
        if (bytes == 0) return;
        const auto size = static_cast<size_t>(bytes);
        if (bytes > kMaxBytes / 4) {
            check(cudaMemcpyAsync(device_destination, host_source, size, cudaMemcpyHostToDevice, queue.stream),
                  "cudaMemcpyAsync (host to device)");
            queue.checks->wait(queue);
            return;
        }
        Buffer& buffer = free_buffer(queue, bytes);
        std::memcpy(buffer.host, host_source, size);
        check(cudaMemcpyAsync(device_destination, buffer.host, size, cudaMemcpyHostToDevice, queue.stream),
              "cudaMemcpyAsync (host to device)");
        check(cudaEventRecord(buffer.copied, queue.stream), "cudaEventRecord");
    }

private:
    static constexpr int64_t kMaxBytes = int64_t{64} << 20;
    static constexpr int64_t kSmallestBuffer = int64_t{64} << 10;

    struct Buffer {
        void* host;
        int64_t bytes;
        cudaEvent_t copied;
    };

    static void release(const Buffer& buffer) noexcept {
        const cudaError_t destroyed = cudaEventDestroy(buffer.copied);
        const cudaError_t freed = cudaFreeHost(buffer.host);
        if (destroyed != cudaSuccess || freed != cudaSuccess) cudaGetLastError();
    }

    static bool copied(const Buffer& buffer) {
        const cudaError_t status = cudaEventQuery(buffer.copied);
        if (status == cudaErrorNotReady) {
            cudaGetLastError();  // not an error: keep it out of the next launch's check
            return false;
        }
        check(status, "cudaEventQuery");
        return true;
    }

    // The smallest idle buffer of at least `bytes`, else a new one; waits for the queue when
    // a new one would pass kMaxBytes.
    Buffer& free_buffer(const Queue& queue, int64_t bytes) {
        Buffer* best = nullptr;
        for (Buffer& buffer : buffers_) {
            if (buffer.bytes >= bytes && (!best || buffer.bytes < best->bytes) && copied(buffer)) best = &buffer;
        }
        if (best) return *best;
        int64_t size = kSmallestBuffer;
        while (size < bytes) size *= 2;
        if (total_bytes_ + size > kMaxBytes) {
            queue.checks->wait(queue);
            for (const Buffer& buffer : buffers_) release(buffer);
            buffers_.clear();
            total_bytes_ = 0;
        }
        Buffer buffer{nullptr, size, nullptr};
        check(cudaMallocHost(&buffer.host, static_cast<size_t>(size)), "cudaMallocHost");
        const cudaError_t status = cudaEventCreateWithFlags(&buffer.copied, cudaEventDisableTiming);
        if (status != cudaSuccess) {
            cudaFreeHost(buffer.host);
            check(status, "cudaEventCreateWithFlags");
        }
        buffers_.push_back(buffer);
        total_bytes_ += size;
        return buffers_.back();
    }

    std::vector<Buffer> buffers_;
    int64_t total_bytes_ = 0;
};

class CudaDevice final : public Device {
public:
    CudaDevice(int32_t index, MemoryCounters& counters) {
        queue_.device = index;
        queue_.counters = &counters;
        queue_.checks = &checks_;
        check(cudaSetDevice(index), "cudaSetDevice");
        cudaDeviceProp properties{};
        check(cudaGetDeviceProperties(&properties, index), "cudaGetDeviceProperties");
        description_.name = properties.name;
        description_.compute_capability = properties.major * 10 + properties.minor;
        description_.multiprocessor_count = properties.multiProcessorCount;
        description_.l2_cache_bytes = properties.l2CacheSize;
        description_.memory_bytes = static_cast<int64_t>(properties.totalGlobalMem);
        queue_.sm_count = properties.multiProcessorCount;
        queue_.max_shared_bytes_per_block = static_cast<int64_t>(properties.sharedMemPerBlockOptin);
        int pools = 0;
        check(cudaDeviceGetAttribute(&pools, cudaDevAttrMemoryPoolsSupported, index), "cudaDeviceGetAttribute");
        queue_.stream_ordered_memory = pools != 0;
        if (queue_.stream_ordered_memory) {
            // Keep freed memory in the pool across synchronizations: a training step then
            // allocates from the pool instead of the driver.
            cudaMemPool_t pool = nullptr;
            check(cudaDeviceGetDefaultMemPool(&pool, index), "cudaDeviceGetDefaultMemPool");
            uint64_t threshold = std::numeric_limits<uint64_t>::max();
            check(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold), "cudaMemPoolSetAttribute");
        }
        check(cudaStreamCreateWithFlags(&queue_.stream, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
        try {
            check(cublasCreate(&queue_.blas), "cublasCreate");
            check(cublasSetStream(queue_.blas, queue_.stream), "cublasSetStream");
            // f32 products in f32: the default mode never rounds inputs to TF32 (only
            // CUBLAS_TF32_TENSOR_OP_MATH would), so results stay within the CPU's tolerances.
            check(cublasSetMathMode(queue_.blas, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
            check(cublasLtCreate(&queue_.blas_lt), "cublasLtCreate");
            // The size cuBLAS recommends for a user-provided workspace (cublasSetWorkspace): 32 MiB
            // on Hopper, 4 MiB before. Like the cuBLAS handle's own, it is not in the context's
            // memory statistics, which count tensors and scratch memory.
            queue_.blas_lt_workspace_bytes = uint64_t{properties.major >= 9 ? 32u : 4u} << 20;
            check(cudaMalloc(&queue_.blas_lt_workspace, queue_.blas_lt_workspace_bytes), "cudaMalloc (cuBLASLt workspace)");
            checks_.prepare(queue_);
        } catch (...) {
            release_handles();
            throw;
        }
    }

    ~CudaDevice() override {
        cudaSetDevice(queue_.device);
        cudaStreamSynchronize(queue_.stream);
        release_handles();
    }

    const DeviceDescription& description() const { return description_; }

    void* allocate(int64_t bytes) override {
        select();
        void* data = allocate_device(queue_, bytes);
        if (bytes > 0) {
            const cudaError_t status = cudaMemsetAsync(data, 0, static_cast<size_t>(bytes), queue_.stream);
            if (status != cudaSuccess) {
                free_device(queue_, data);
                check(status, "cudaMemsetAsync");
            }
        }
        return data;
    }

    void free(void* data) noexcept override {
        cudaSetDevice(queue_.device);
        free_device(queue_, data);
    }

    void write(void* device_destination, const void* host_source, int64_t bytes) override {
        select();
        uploads_.upload(queue_, device_destination, host_source, bytes);
    }

    void read(void* host_destination, const void* device_source, int64_t bytes) override {
        select();
        check(cudaMemcpyAsync(host_destination, device_source, static_cast<size_t>(bytes), cudaMemcpyDeviceToHost, queue_.stream),
              "cudaMemcpyAsync (device to host)");
        synchronize();
    }

    void copy(const ne_tensor& destination, const ne_tensor& source) override {
        Device* destination_device = device_of(destination);
        Device* source_device = device_of(source);
        // Another context's queued work on either tensor finishes first; ours is ordered by the stream.
        if (source_device && source_device != this) source_device->synchronize();
        if (destination_device && destination_device != this) destination_device->synchronize();
        select();
        const int64_t size = dtype_size(destination.dtype);
        const int64_t bytes = destination.element_count * size;
        if (is_contiguous(destination) && is_contiguous(source)) {
            if (source_device == nullptr) {  // from the host: staged, without waiting
                write(data_of<char>(destination), data_of<const char>(source), bytes);
                return;
            }
            check(cudaMemcpyAsync(data_of<char>(destination), data_of<const char>(source), static_cast<size_t>(bytes),
                                  cudaMemcpyDefault, queue_.stream),
                  "cudaMemcpyAsync");
            if (destination_device != this || source_device != this) synchronize();
            return;
        }
        if (destination_device == this && source_device == this) {
            launch_copy(queue_, layout_of(destination), layout_of(source), size);
            return;
        }
        if (destination_device != nullptr && source_device != nullptr) {
            fail(NE_STATUS_UNSUPPORTED, "a strided copy between two CUDA contexts; copy into a contiguous tensor of the source's "
                                        "context first");
        }
        if (source_device == nullptr) {  // host -> this device, through a contiguous staging copy
            std::vector<char> packed(static_cast<size_t>(bytes));
            for_each_host_element(source, [&](const char* element, int64_t n) {
                std::memcpy(packed.data() + n * size, element, static_cast<size_t>(size));
            });
            const Scratch staging(queue_, bytes);
            write(staging.as<void>(), packed.data(), bytes);
            launch_copy(queue_, layout_of(destination), contiguous_layout(source, staging.as<void>()), size);
            return;
        }
        // this device -> host
        const Scratch staging(queue_, bytes);
        launch_copy(queue_, contiguous_layout(destination, staging.as<void>()), layout_of(source), size);
        std::vector<char> packed(static_cast<size_t>(bytes));
        read(packed.data(), staging.as<void>(), bytes);
        for_each_host_element(destination, [&](char* element, int64_t n) {
            std::memcpy(element, packed.data() + n * size, static_cast<size_t>(size));
        });
    }

    void fill(const ne_tensor& tensor, const void* pattern, int64_t element_size) override {
        select();
        uint32_t bits = 0;
        std::memcpy(&bits, pattern, static_cast<size_t>(element_size));
        launch_fill(queue_, layout_of(tensor), bits, element_size);
    }

    void synchronize() override {
        select();
        checks_.wait(queue_);
    }

    void check_int_range(const IntRangeCheck& range, DescribeBadElement describe) override {
        select();
        checks_.check_int_range(queue_, range, std::move(describe));
    }

    void check_floats(const FloatCheck& floats, DescribeBadElement describe) override {
        select();
        checks_.check_floats(queue_, floats, std::move(describe));
    }

    int64_t host_waits() const override { return checks_.waits(); }
    int64_t pending_checks() const override { return checks_.pending(); }

    void norm_forward(bool rms, const cpu::NormForwardArgs& args) override {
        select();
        launch_norm_forward(queue_, rms, args);
    }

    void norm_backward(bool rms, const cpu::NormBackwardArgs& args, float* dgamma, float* dbeta, bool accumulate) override {
        select();
        launch_norm_backward(queue_, rms, args, dgamma, dbeta, accumulate);
    }

    void quantize_int8(const cpu::QuantizeArgs& args) override {
        select();
        launch_quantize_int8(queue_, args);
    }

    void dequantize_int8(const cpu::DequantizeArgs& args) override {
        select();
        launch_dequantize_int8(queue_, args);
    }

    void gemm_int8(const cpu::GemmArgs& args) override {
        select();
        launch_gemm_int8(queue_, args);
    }

    void linear_int8(const float* x, int64_t x_row_stride, const cpu::GemmArgs& gemm) override {
        select();
        launch_linear_int8(queue_, x, x_row_stride, gemm);
    }

    void gemm(const cpu::SgemmBatch& batch, ne_dtype ab_dtype, ne_dtype c_dtype) override {
        select();
        launch_gemm(queue_, batch, ab_dtype, c_dtype);
    }

    void elementwise(const ElementwiseLaunch& launch) override {
        select();
        launch_elementwise(queue_, launch);
    }

    void row_reduce(const RowReduceLaunch& launch) override {
        select();
        launch_row_reduce(queue_, launch);
    }

    void adamw(const AdamwLaunch& launch) override {
        select();
        launch_adamw(queue_, launch);
    }

    void embedding_forward(const EmbeddingLaunch& launch) override {
        select();
        launch_embedding_forward(queue_, launch);
    }

    void embedding_backward(const EmbeddingLaunch& launch) override {
        select();
        launch_embedding_backward(queue_, launch);
    }

    // ---- softmax losses ----
    void cross_entropy_forward(const cpu::CrossEntropyForwardArgs& args) override {
        select();
        launch_cross_entropy_forward(queue_, args);
    }

    void cross_entropy_backward(const cpu::CrossEntropyBackwardArgs& args) override {
        select();
        launch_cross_entropy_backward(queue_, args);
    }

    void sample_log_uniform(const cpu::SamplerArgs& args) override {
        select();
        launch_sample_log_uniform(queue_, args);
    }

    void sampled_softmax_forward(const cpu::SampledForwardArgs& args) override {
        select();
        launch_sampled_softmax_forward(queue_, args);
    }

    void sampled_softmax_backward(const cpu::SampledBackwardArgs& args) override {
        select();
        launch_sampled_softmax_backward(queue_, args);
    }

    // ---- attention ----
    void attention_forward(const cpu::AttentionForwardArgs& args, ne_dtype dtype, const DeviceKeyLengths& key_lengths) override {
        select();
        launch_attention_forward(queue_, args, dtype, key_lengths);
    }

    void attention_backward(const cpu::AttentionBackwardArgs& args, ne_dtype dtype,
                            const DeviceKeyLengths& key_lengths) override {
        select();
        launch_attention_backward(queue_, args, dtype, key_lengths);
    }

private:
    // The calling thread may have used another device since: every entry point selects ours.
    void select() const { check(cudaSetDevice(queue_.device), "cudaSetDevice"); }

    void release_handles() noexcept {
        if (queue_.blas_lt_workspace) cudaFree(queue_.blas_lt_workspace);
        if (queue_.blas_lt) cublasLtDestroy(queue_.blas_lt);
        if (queue_.blas) cublasDestroy(queue_.blas);
        if (queue_.stream) cudaStreamDestroy(queue_.stream);
        queue_.blas_lt_workspace = nullptr;
        queue_.blas_lt = nullptr;
        queue_.blas = nullptr;
        queue_.stream = nullptr;
    }

    Queue queue_{};
    DeviceDescription description_;
    // Released after the destructor's body has waited for the stream.
    DeferredChecks checks_;
    PinnedUploads uploads_;
};

}  // namespace
}  // namespace ne::cuda

namespace ne {

std::unique_ptr<Device> open_cuda_device(int32_t index, MemoryCounters& counters, DeviceDescription* description) {
    int count = 0;
    const cudaError_t status = cudaGetDeviceCount(&count);
    if (status != cudaSuccess || count == 0) {
        cudaGetLastError();
        fail(NE_STATUS_BACKEND_UNAVAILABLE, "no CUDA device is available (",
             status == cudaSuccess ? "the driver reports 0 devices" : cudaGetErrorString(status),
             "); install the NVIDIA driver or use the CPU backend");
    }
    if (index < 0 || index >= count) {
        fail(NE_STATUS_INVALID_ARGUMENT, "argument 'options': device_index is ", index, "; expected 0..", count - 1, " (",
             count, " CUDA device", count == 1 ? "" : "s", " visible)");
    }
    auto device = std::make_unique<cuda::CudaDevice>(index, counters);
    *description = device->description();
    return device;
}

bool cuda_compiled() noexcept { return true; }

int32_t cuda_device_count() noexcept {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return count;
}

}  // namespace ne
