// The SIMT emulator's CUDA runtime: one device (index 0) whose memory is host memory, streams
// and events that are always complete (every operation runs when it is issued), and the
// checks a real runtime or compute-sanitizer makes on the calls: copies must stay inside live
// allocations in the direction they name, frees must name a live allocation, device 0 is the
// only device. New device memory holds 0xff bytes (a NaN in every float), because a GPU's does
// not start zeroed. Calls that make the host wait for the device on a GPU (synchronizations,
// cudaMalloc/cudaFree and the pinned-memory calls, copies to or from pageable host memory) are
// counted: simt_host_blocking_calls() exports the count, so that a test can show a loop makes none.
#include "runtime.hpp"
#include "simt.hpp"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <map>
#include <mutex>
#include <new>

struct CUstream_st {
    unsigned flags;
};
struct CUevent_st {
    unsigned flags;
};
struct CUmemPoolHandle_st {
    uint64_t release_threshold;
};

namespace simt {
namespace {

// The emulated device: an H100's limits, except 4 multiprocessors, which keeps grid-stride
// launches (sized by the multiprocessor count) small and exercises their loops.
constexpr int kMultiprocessors = 4;
constexpr size_t kDeviceMemory = size_t{16} << 30;
constexpr int kMaxDynamicSharedOptin = 227 * 1024;

std::mutex g_mutex;
std::map<uintptr_t, size_t> g_device;  // start -> bytes
std::map<uintptr_t, size_t> g_pinned;
size_t g_device_bytes = 0;
int g_current_device = 0;
CUmemPoolHandle_st g_pool{0};
std::atomic<int64_t> g_host_blocking_calls{0};

void host_blocks() { ++g_host_blocking_calls; }

bool within(const std::map<uintptr_t, size_t>& allocations, const void* address, size_t bytes) {
    const auto a = reinterpret_cast<uintptr_t>(address);
    auto it = allocations.upper_bound(a);
    if (it == allocations.begin()) return false;
    --it;
    return a >= it->first && a + bytes <= it->first + it->second;
}

bool overlaps_device(const void* address, size_t bytes) {
    const auto a = reinterpret_cast<uintptr_t>(address);
    auto it = g_device.upper_bound(a + (bytes ? bytes - 1 : 0));
    if (it == g_device.begin()) return false;
    --it;
    return it->first + it->second > a;
}

cudaError_t allocate(void** pointer, size_t bytes) {
    if (!pointer) return cudaErrorInvalidValue;
    std::lock_guard lock(g_mutex);
    if (bytes > kDeviceMemory - g_device_bytes) return cudaErrorMemoryAllocation;
    void* memory = ::operator new(std::max<size_t>(bytes, 1), std::align_val_t{256}, std::nothrow);
    if (!memory) return cudaErrorMemoryAllocation;
    std::memset(memory, 0xff, bytes);
    g_device[reinterpret_cast<uintptr_t>(memory)] = bytes;
    g_device_bytes += bytes;
    *pointer = memory;
    return cudaSuccess;
}

cudaError_t release(void* pointer) {
    if (!pointer) return cudaSuccess;
    std::lock_guard lock(g_mutex);
    const auto it = g_device.find(reinterpret_cast<uintptr_t>(pointer));
    if (it == g_device.end()) {
        report_misuse("cudaFree", "the pointer is not the start of a live device allocation");
        return cudaErrorInvalidValue;
    }
    g_device_bytes -= it->second;
    g_device.erase(it);
    ::operator delete(pointer, std::align_val_t{256});
    return cudaSuccess;
}

cudaError_t check_copy(const char* api, void* destination, const void* source, size_t bytes, cudaMemcpyKind kind) {
    std::lock_guard lock(g_mutex);
    const bool destination_device = within(g_device, destination, bytes);
    const bool source_device = within(g_device, source, bytes);
    bool valid = true;
    switch (kind) {
        case cudaMemcpyHostToDevice: valid = destination_device && !overlaps_device(source, bytes); break;
        case cudaMemcpyDeviceToHost: valid = source_device && !overlaps_device(destination, bytes); break;
        case cudaMemcpyDeviceToDevice: valid = destination_device && source_device; break;
        case cudaMemcpyHostToHost: valid = !overlaps_device(destination, bytes) && !overlaps_device(source, bytes); break;
        case cudaMemcpyDefault:
            valid = (destination_device || !overlaps_device(destination, bytes)) && (source_device || !overlaps_device(source, bytes));
            break;
    }
    if (!valid && bytes > 0) {
        report_misuse(api, "a range is not inside one device allocation, or not on the side the copy's kind names");
        return cudaErrorInvalidValue;
    }
    // A copy between the device and pageable (not cudaMallocHost) memory waits for the stream.
    const bool pageable_host = (!destination_device && !within(g_pinned, destination, bytes)) ||
                               (!source_device && !within(g_pinned, source, bytes));
    if (bytes > 0 && pageable_host && (destination_device || source_device)) host_blocks();
    return cudaSuccess;
}

}  // namespace

bool is_device_range(const void* address, size_t bytes) {
    std::lock_guard lock(g_mutex);
    return within(g_device, address, bytes);
}

void report_misuse(const char* api, const char* message) { std::fprintf(stderr, "simt: %s: %s\n", api, message); }

}  // namespace simt

using simt::report_misuse;

extern "C" {

__attribute__((visibility("default"))) int64_t simt_host_blocking_calls(void) { return simt::g_host_blocking_calls.load(); }

cudaError_t cudaGetDeviceCount(int* count) {
    if (!count) return cudaErrorInvalidValue;
    *count = 1;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
    if (device != 0) return cudaErrorInvalidDevice;
    simt::g_current_device = device;
    return cudaSuccess;
}

cudaError_t cudaGetDevice(int* device) {
    if (!device) return cudaErrorInvalidValue;
    *device = simt::g_current_device;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* properties, int device) {
    if (!properties) return cudaErrorInvalidValue;
    if (device != 0) return cudaErrorInvalidDevice;
    *properties = cudaDeviceProp{};
    std::snprintf(properties->name, sizeof properties->name, "%s", "NativeEngine SIMT emulator");
    properties->totalGlobalMem = simt::kDeviceMemory;
    properties->sharedMemPerBlock = 48 * 1024;
    properties->sharedMemPerBlockOptin = simt::kMaxDynamicSharedOptin;
    properties->sharedMemPerMultiprocessor = 228 * 1024;
    properties->regsPerBlock = 65536;
    properties->warpSize = 32;
    properties->maxThreadsPerBlock = 1024;
    properties->maxThreadsDim[0] = 1024;
    properties->maxThreadsDim[1] = 1024;
    properties->maxThreadsDim[2] = 64;
    properties->maxGridSize[0] = 0x7fffffff;
    properties->maxGridSize[1] = 65535;
    properties->maxGridSize[2] = 65535;
    properties->major = 9;
    properties->minor = 0;
    properties->multiProcessorCount = simt::kMultiprocessors;
    properties->maxThreadsPerMultiProcessor = 2048;
    properties->l2CacheSize = 50 << 20;
    return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attribute, int device) {
    if (!value) return cudaErrorInvalidValue;
    if (device != 0) return cudaErrorInvalidDevice;
    switch (attribute) {
        case cudaDevAttrMemoryPoolsSupported: *value = 1; return cudaSuccess;
        case cudaDevAttrMultiProcessorCount: *value = simt::kMultiprocessors; return cudaSuccess;
        case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = simt::kMaxDynamicSharedOptin; return cudaSuccess;
        case cudaDevAttrWarpSize: *value = 32; return cudaSuccess;
        case cudaDevAttrComputeCapabilityMajor: *value = 9; return cudaSuccess;
        case cudaDevAttrComputeCapabilityMinor: *value = 0; return cudaSuccess;
        default: report_misuse("cudaDeviceGetAttribute", "the emulator does not know this attribute"); return cudaErrorInvalidValue;
    }
}

cudaError_t cudaDriverGetVersion(int* version) {
    if (!version) return cudaErrorInvalidValue;
    *version = CUDART_VERSION;
    return cudaSuccess;
}

cudaError_t cudaRuntimeGetVersion(int* version) { return cudaDriverGetVersion(version); }

cudaError_t cudaGetLastError(void) { return simt::take_launch_error(); }
cudaError_t cudaPeekAtLastError(void) { return simt::peek_launch_error(); }

const char* cudaGetErrorName(cudaError_t error) {
    switch (error) {
        case cudaSuccess: return "cudaSuccess";
        case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
        case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
        case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
        case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
        case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
        case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
        case cudaErrorNotReady: return "cudaErrorNotReady";
        default: return "cudaErrorUnknown";
    }
}

const char* cudaGetErrorString(cudaError_t error) {
    switch (error) {
        case cudaSuccess: return "no error";
        case cudaErrorInvalidValue: return "invalid argument";
        case cudaErrorMemoryAllocation: return "out of memory";
        case cudaErrorInvalidConfiguration: return "invalid configuration argument";
        case cudaErrorLaunchFailure: return "unspecified launch failure (SIMT emulator: see standard error)";
        case cudaErrorInvalidDevice: return "invalid device ordinal";
        case cudaErrorInvalidResourceHandle: return "invalid resource handle";
        case cudaErrorNotReady: return "device not ready";
        default: return "unknown error";
    }
}

cudaError_t cudaMalloc(void** pointer, size_t bytes) {
    simt::host_blocks();
    return simt::allocate(pointer, bytes);
}
cudaError_t cudaMallocAsync(void** pointer, size_t bytes, cudaStream_t) { return simt::allocate(pointer, bytes); }
cudaError_t cudaFree(void* pointer) {
    simt::host_blocks();
    return simt::release(pointer);
}
cudaError_t cudaFreeAsync(void* pointer, cudaStream_t) { return simt::release(pointer); }

cudaError_t cudaMallocHost(void** pointer, size_t bytes) {
    if (!pointer) return cudaErrorInvalidValue;
    simt::host_blocks();
    void* memory = std::malloc(std::max<size_t>(bytes, 1));
    if (!memory) return cudaErrorMemoryAllocation;
    std::lock_guard lock(simt::g_mutex);
    simt::g_pinned[reinterpret_cast<uintptr_t>(memory)] = bytes;
    *pointer = memory;
    return cudaSuccess;
}

cudaError_t cudaFreeHost(void* pointer) {
    if (!pointer) return cudaSuccess;
    simt::host_blocks();
    std::lock_guard lock(simt::g_mutex);
    if (simt::g_pinned.erase(reinterpret_cast<uintptr_t>(pointer)) == 0) {
        report_misuse("cudaFreeHost", "the pointer is not a live cudaMallocHost allocation");
        return cudaErrorInvalidValue;
    }
    std::free(pointer);
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* destination, const void* source, size_t bytes, cudaMemcpyKind kind, cudaStream_t) {
    if (bytes > 0 && (!destination || !source)) return cudaErrorInvalidValue;
    if (const cudaError_t error = simt::check_copy("cudaMemcpyAsync", destination, source, bytes, kind)) return error;
    if (bytes > 0) std::memmove(destination, source, bytes);
    return cudaSuccess;
}

cudaError_t cudaMemcpy(void* destination, const void* source, size_t bytes, cudaMemcpyKind kind) {
    simt::host_blocks();
    return cudaMemcpyAsync(destination, source, bytes, kind, nullptr);
}

cudaError_t cudaMemsetAsync(void* pointer, int value, size_t bytes, cudaStream_t) {
    if (bytes == 0) return cudaSuccess;
    if (!simt::is_device_range(pointer, bytes)) {
        report_misuse("cudaMemsetAsync", "the range is not inside one device allocation");
        return cudaErrorInvalidValue;
    }
    std::memset(pointer, value, bytes);
    return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags) {
    if (!stream) return cudaErrorInvalidValue;
    *stream = new CUstream_st{flags};
    return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
    delete stream;
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t) {
    simt::host_blocks();
    return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize(void) {
    simt::host_blocks();
    return cudaSuccess;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned flags) {
    if (!event) return cudaErrorInvalidValue;
    *event = new CUevent_st{flags};
    return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
    delete event;
    return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t) { return event ? cudaSuccess : cudaErrorInvalidResourceHandle; }
cudaError_t cudaEventQuery(cudaEvent_t event) { return event ? cudaSuccess : cudaErrorInvalidResourceHandle; }
cudaError_t cudaEventSynchronize(cudaEvent_t event) {
    simt::host_blocks();
    return event ? cudaSuccess : cudaErrorInvalidResourceHandle;
}

cudaError_t cudaDeviceGetDefaultMemPool(cudaMemPool_t* pool, int device) {
    if (!pool) return cudaErrorInvalidValue;
    if (device != 0) return cudaErrorInvalidDevice;
    *pool = &simt::g_pool;
    return cudaSuccess;
}

cudaError_t cudaMemPoolSetAttribute(cudaMemPool_t pool, cudaMemPoolAttr attribute, void* value) {
    if (!pool || !value) return cudaErrorInvalidValue;
    if (attribute == cudaMemPoolAttrReleaseThreshold) std::memcpy(&pool->release_threshold, value, sizeof(uint64_t));
    return cudaSuccess;
}

cudaError_t cudaFuncSetAttribute(const void* kernel, cudaFuncAttribute attribute, int value) {
    if (attribute != cudaFuncAttributeMaxDynamicSharedMemorySize) return cudaSuccess;
    return simt::set_max_dynamic_shared(kernel, value);
}

cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int* blocks, const void* kernel, int threads, size_t dynamic_shared) {
    return simt::occupancy(blocks, kernel, threads, dynamic_shared);
}

}  // extern "C"
