// Library-wide entry points, contexts and memory.
#include "cpu_features.hpp"
#include "validate.hpp"

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <limits>

#ifndef NE_VERSION_STRING
#  define NE_VERSION_STRING "0.0.0"
#endif

namespace ne {

void MemoryCounters::on_allocate(int64_t size) {
    allocations.fetch_add(1, std::memory_order_relaxed);
    const int64_t now = bytes.fetch_add(size, std::memory_order_relaxed) + size;
    int64_t peak = peak_bytes.load(std::memory_order_relaxed);
    while (now > peak && !peak_bytes.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
    }
}

void MemoryCounters::on_free(int64_t size) {
    allocations.fetch_sub(1, std::memory_order_relaxed);
    bytes.fetch_sub(size, std::memory_order_relaxed);
}

ne_memory_stats MemoryCounters::snapshot() const {
    ne_memory_stats stats{};
    stats.struct_size = sizeof stats;
    stats.live_contexts = contexts.load(std::memory_order_relaxed);
    stats.live_tensors = tensors.load(std::memory_order_relaxed);
    stats.live_allocations = allocations.load(std::memory_order_relaxed);
    stats.live_bytes = bytes.load(std::memory_order_relaxed);
    stats.peak_bytes = peak_bytes.load(std::memory_order_relaxed);
    return stats;
}

MemoryCounters& global_counters() {
    static MemoryCounters counters;
    return counters;
}

void retain(ne_context* context) { context->references.fetch_add(1, std::memory_order_relaxed); }

void release(ne_context* context) {
    if (context->references.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        context->magic = kDeadMagic;
        global_counters().contexts.fetch_sub(1, std::memory_order_relaxed);
        delete context;
    }
}

namespace {

// CPU memory is aligned to a cache line, which also suits every SIMD width we use.
constexpr int64_t kCpuAlignment = 64;

}  // namespace

namespace {

void* allocate_host(int64_t bytes) {
    if (bytes > std::numeric_limits<int64_t>::max() - kCpuAlignment) {
        fail(NE_STATUS_OVERFLOW, "allocation of ", bytes, " bytes overflows");
    }
    const int64_t rounded = (bytes + kCpuAlignment - 1) / kCpuAlignment * kCpuAlignment;
    void* data = std::aligned_alloc(static_cast<size_t>(kCpuAlignment), static_cast<size_t>(rounded));
    if (data == nullptr) fail(NE_STATUS_OUT_OF_MEMORY, "could not allocate ", bytes, " bytes of host memory");
    std::memset(data, 0, static_cast<size_t>(rounded));
    return data;
}

void free_memory(ne_context* context, void* data) noexcept {
    if (context->device) context->device->free(data);
    else std::free(data);
}

}  // namespace

Allocation* allocate(ne_context* context, int64_t bytes) {
    void* data = context->device ? context->device->allocate(bytes) : allocate_host(bytes);
    Allocation* allocation;
    try {
        allocation = new Allocation{context, data, bytes};
    } catch (...) {
        free_memory(context, data);
        throw;
    }
    retain(context);
    context->counters.on_allocate(bytes);
    global_counters().on_allocate(bytes);
    return allocation;
}

Scratch::Scratch(ne_context& context, int64_t bytes) : context_(&context), bytes_(bytes) {
    if (bytes < 0 || bytes > std::numeric_limits<int64_t>::max() - kCpuAlignment) {
        fail(NE_STATUS_OVERFLOW, "scratch memory of ", bytes, " bytes overflows");
    }
    const int64_t rounded = (bytes + kCpuAlignment - 1) / kCpuAlignment * kCpuAlignment;
    data_ = rounded == 0 ? nullptr : std::aligned_alloc(static_cast<size_t>(kCpuAlignment), static_cast<size_t>(rounded));
    if (rounded != 0 && data_ == nullptr) {
        fail(NE_STATUS_OUT_OF_MEMORY, "could not allocate ", bytes, " bytes of scratch memory");
    }
    context_->counters.on_allocate(bytes_);
    global_counters().on_allocate(bytes_);
}

Scratch::~Scratch() {
    std::free(data_);
    context_->counters.on_free(bytes_);
    global_counters().on_free(bytes_);
}

void retain(Allocation* allocation) { allocation->references.fetch_add(1, std::memory_order_relaxed); }

void release(Allocation* allocation) {
    if (allocation->references.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        ne_context* context = allocation->context;
        free_memory(context, allocation->data);
        context->counters.on_free(allocation->bytes);
        global_counters().on_free(allocation->bytes);
        delete allocation;
        release(context);
    }
}

}  // namespace ne

using namespace ne;

extern "C" {

NE_API uint32_t ne_abi_version(void) { return NE_ABI_VERSION; }

NE_API const char* ne_status_string(ne_status status) {
    switch (status) {
        case NE_STATUS_OK: return "NE_STATUS_OK";
        case NE_STATUS_INVALID_ARGUMENT: return "NE_STATUS_INVALID_ARGUMENT";
        case NE_STATUS_NULL_POINTER: return "NE_STATUS_NULL_POINTER";
        case NE_STATUS_SHAPE_MISMATCH: return "NE_STATUS_SHAPE_MISMATCH";
        case NE_STATUS_DTYPE_MISMATCH: return "NE_STATUS_DTYPE_MISMATCH";
        case NE_STATUS_CONTEXT_MISMATCH: return "NE_STATUS_CONTEXT_MISMATCH";
        case NE_STATUS_OVERFLOW: return "NE_STATUS_OVERFLOW";
        case NE_STATUS_OUT_OF_MEMORY: return "NE_STATUS_OUT_OF_MEMORY";
        case NE_STATUS_UNSUPPORTED: return "NE_STATUS_UNSUPPORTED";
        case NE_STATUS_BACKEND_UNAVAILABLE: return "NE_STATUS_BACKEND_UNAVAILABLE";
        case NE_STATUS_DEVICE_ERROR: return "NE_STATUS_DEVICE_ERROR";
        case NE_STATUS_VERSION_MISMATCH: return "NE_STATUS_VERSION_MISMATCH";
        case NE_STATUS_INVALID_HANDLE: return "NE_STATUS_INVALID_HANDLE";
        case NE_STATUS_INTERNAL_ERROR: return "NE_STATUS_INTERNAL_ERROR";
        case NE_STATUS_MAX_ENUM: break;
    }
    return "NE_STATUS_UNKNOWN";
}

NE_API ne_status ne_get_system_info(ne_system_info* out_info) {
    return guard("ne_get_system_info", [&] {
        ne_system_info info{};
        info.best_simd_level = best_simd_level();
        info.hardware_threads = hardware_threads();
        info.cuda_compiled = cuda_compiled() ? 1 : 0;
        info.cuda_device_count = cuda_device_count();
        std::strncpy(info.version, NE_VERSION_STRING, sizeof info.version - 1);
        write_info(out_info, info, "out_info", sizeof(ne_system_info));
    });
}

NE_API ne_status ne_context_create(const ne_context_options* options, ne_context** out_context) {
    return guard("ne_context_create", [&] {
        ne_context_options defaults{};
        const ne_context_options opts =
            params_arg(options, "options", sizeof(ne_context_options), defaults);
        if (out_context == nullptr) fail(NE_STATUS_NULL_POINTER, "argument 'out_context' is NULL");
        const int32_t backend = raw_enum(opts.backend);
        if (backend != NE_BACKEND_CPU && backend != NE_BACKEND_CUDA && backend != NE_BACKEND_AUTO) {
            fail(NE_STATUS_INVALID_ARGUMENT, "argument 'options': backend ", backend,
                 " is not a valid ne_backend; expected NE_BACKEND_CPU (0), NE_BACKEND_CUDA (1) or NE_BACKEND_AUTO (2)");
        }
        if (opts.backend != NE_BACKEND_CUDA) {
            // AUTO validates the CPU options even where it picks CUDA, so that options refused on
            // one machine are refused on every machine.
            if (opts.device_index != 0) {
                fail(NE_STATUS_INVALID_ARGUMENT, "argument 'options': device_index is ", opts.device_index,
                     opts.backend == NE_BACKEND_AUTO
                         ? "; expected 0 for NE_BACKEND_AUTO (it picks CUDA device 0 or the CPU); name "
                           "NE_BACKEND_CUDA to choose another device"
                         : "; expected 0 for the CPU backend");
            }
            if (opts.num_threads < 0) {
                fail(NE_STATUS_INVALID_ARGUMENT, "argument 'options': num_threads is ", opts.num_threads,
                     "; expected 0 (all hardware threads) or a positive count");
            }
            constexpr int32_t kMaxThreads = 1024;
            if (opts.num_threads > kMaxThreads) {
                fail(NE_STATUS_INVALID_ARGUMENT, "argument 'options': num_threads is ", opts.num_threads,
                     "; expected at most ", kMaxThreads);
            }
            const int32_t simd_level = raw_enum(opts.simd_level);
            if (simd_level < NE_SIMD_LEVEL_AUTO || simd_level > NE_SIMD_LEVEL_AVX512) {
                fail(NE_STATUS_INVALID_ARGUMENT, "argument 'options': simd_level ", simd_level,
                     " is not a valid ne_simd_level");
            }
            const ne_simd_level best = best_simd_level();
            if (opts.simd_level > best) {
                fail(NE_STATUS_UNSUPPORTED, "argument 'options': simd_level ", simd_level_name(opts.simd_level),
                     " is not supported by this CPU; the best level here is ", simd_level_name(best));
            }
        }
        const bool cuda = opts.backend == NE_BACKEND_CUDA ||
                          (opts.backend == NE_BACKEND_AUTO && cuda_compiled() && cuda_device_count() > 0);
        if (cuda) {
            auto context = std::make_unique<ne_context>();
            context->backend = NE_BACKEND_CUDA;
            context->device_index = opts.device_index;
            context->device = open_cuda_device(opts.device_index, context->counters, &context->description);
            // Host-side work of a device context (argument checks, launches) runs on the caller's thread.
            context->num_threads = 1;
            context->simd_level = NE_SIMD_LEVEL_SCALAR;
            context->pool = std::make_unique<ThreadPool>(1);
            global_counters().contexts.fetch_add(1, std::memory_order_relaxed);
            *out_context = context.release();
            return;
        }

        const ne_simd_level best = best_simd_level();
        auto context = std::make_unique<ne_context>();
        context->backend = NE_BACKEND_CPU;
        context->device_index = 0;
        context->num_threads = opts.num_threads == 0 ? hardware_threads() : opts.num_threads;
        context->simd_level = opts.simd_level == NE_SIMD_LEVEL_AUTO ? best : opts.simd_level;
        context->description.name = cpu_model_name();
        context->pool = std::make_unique<ThreadPool>(context->num_threads);
        global_counters().contexts.fetch_add(1, std::memory_order_relaxed);
        *out_context = context.release();
    });
}

NE_API ne_status ne_context_destroy(ne_context* context) {
    return guard("ne_context_destroy", [&] {
        if (context == nullptr) return;
        context_arg(context, "context");
        context->destroyed_by_owner.store(true, std::memory_order_relaxed);
        release(context);
    });
}

NE_API ne_status ne_context_get_info(const ne_context* context, ne_context_info* out_info) {
    return guard("ne_context_get_info", [&] {
        const ne_context& ctx = context_arg(context, "context");
        ne_context_info info{};
        info.backend = ctx.backend;
        info.device_index = ctx.device_index;
        info.num_threads = ctx.num_threads;
        info.simd_level = ctx.simd_level;
        std::strncpy(info.device_name, ctx.description.name.c_str(), sizeof info.device_name - 1);
        info.compute_capability = ctx.description.compute_capability;
        info.multiprocessor_count = ctx.description.multiprocessor_count;
        info.l2_cache_bytes = ctx.description.l2_cache_bytes;
        info.memory_bytes = ctx.description.memory_bytes;
        // Callers built before the device properties were added pass the shorter struct.
        write_info(out_info, info, "out_info", offsetof(ne_context_info, compute_capability));
    });
}

NE_API ne_status ne_context_synchronize(ne_context* context) {
    return guard("ne_context_synchronize", [&] {
        ne_context& ctx = context_arg(context, "context");
        if (ctx.device) ctx.device->synchronize();
    });
}

NE_API ne_status ne_context_get_activity(const ne_context* context, ne_context_activity* out_activity) {
    return guard("ne_context_get_activity", [&] {
        const ne_context& ctx = context_arg(context, "context");
        ne_context_activity activity{};
        activity.struct_size = sizeof(ne_context_activity);
        if (ctx.device) {
            activity.host_waits = ctx.device->host_waits();
            activity.pending_checks = ctx.device->pending_checks();
        }
        write_info(out_activity, activity, "out_activity", sizeof(ne_context_activity));
    });
}

NE_API ne_status ne_get_memory_stats(ne_memory_stats* out_stats) {
    return guard("ne_get_memory_stats", [&] {
        write_info(out_stats, global_counters().snapshot(), "out_stats", sizeof(ne_memory_stats));
    });
}

NE_API ne_status ne_context_get_memory_stats(const ne_context* context, ne_memory_stats* out_stats) {
    return guard("ne_context_get_memory_stats", [&] {
        const ne_context& ctx = context_arg(context, "context");
        ne_memory_stats stats = ctx.counters.snapshot();
        stats.live_contexts = 0;
        write_info(out_stats, stats, "out_stats", sizeof(ne_memory_stats));
    });
}

}  // extern "C"
