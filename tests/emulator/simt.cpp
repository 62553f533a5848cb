// The SIMT emulator's scheduler: a launch runs its blocks one after another; the threads of a
// block are fibers on the calling thread, each run until it finishes or waits at a barrier.
// When every fiber waits, the barriers whose participants have all arrived are released (a
// block barrier needs every thread of the block, exited ones included, as CUDA requires); when
// none can be, the threads are deadlocked and the launch fails with a description of who waits
// where. Odd blocks run their threads in reverse order, so that a read of another thread's
// write that lacks the barrier ordering them sees the stale value in one of the two orders.
#include "simt.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <new>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define SIMT_ASAN 1
#else
#define SIMT_ASAN 0
#endif

#if !defined(__x86_64__)
#error "the SIMT emulator's context switch is written for x86-64"
#endif

// Saves the callee-saved registers and the stack pointer of the running context into *save and
// continues the context whose stack pointer is `load` (System V x86-64).
asm(R"(
    .text
    .globl simt_switch_context
    .hidden simt_switch_context
    .type simt_switch_context, @function
simt_switch_context:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size simt_switch_context, .-simt_switch_context
)");

extern "C" void simt_switch_context(void** save, void* load);
extern "C" [[noreturn]] void simt_fiber_entry();

namespace simt {
namespace {

constexpr size_t kStackBytes = 256 * 1024;
constexpr unsigned kMaxBlockThreads = 1024;
constexpr unsigned kMaxGridY = 65535;
constexpr unsigned kMaxGridX = 0x7fffffffu;
// What a kernel may use without cudaFuncSetAttribute, and the opt-in limit the emulated device
// reports (runtime.cpp): an H100's.
constexpr size_t kDefaultDynamicShared = 48 * 1024;
constexpr size_t kMaxDynamicShared = 227 * 1024;

enum class Wait { running, block, warp, done };

// A cp.async copy that has started but not completed: its source bytes, read when it started.
struct AsyncCopy {
    unsigned char* destination;
    unsigned char bytes[16];
    size_t size;
    int group;  // the commit group it joins: the thread's count of commits when it started
};

struct Fiber {
    void* sp = nullptr;
    unsigned char* stack = nullptr;
    Wait wait = Wait::running;
    unsigned warp_mask = 0;
    ThreadState state{};
    void* fake_stack = nullptr;
    std::vector<AsyncCopy> async_copies;
    int commits = 0;
};

struct Warp {
    uint64_t slots[32];
    const void* pointers[3 * 32];
};

struct Scheduler {
    void (*body)(void*) = nullptr;
    void* closure = nullptr;
    BlockState block{};
    std::vector<Fiber> fibers;
    std::vector<Warp> warps;
    Fiber* running = nullptr;
    void* scheduler_sp = nullptr;
    const void* scheduler_stack_bottom = nullptr;
    size_t scheduler_stack_size = 0;
    std::string fault;
};

std::mutex g_mutex;
Scheduler g_scheduler;
std::vector<unsigned char*> g_stacks;
struct AlignedFree {
    void operator()(unsigned char* p) const { ::operator delete[](p, std::align_val_t{1024}); }
};
// Exactly the launch's bytes, so that AddressSanitizer sees a read past them.
std::unique_ptr<unsigned char[], AlignedFree> g_dynamic_shared;
size_t g_dynamic_shared_bytes = 0;
std::map<const void*, int> g_max_dynamic_shared;

unsigned char* stack_for(size_t index) {
    while (g_stacks.size() <= index) {
        const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
        void* memory = mmap(nullptr, kStackBytes + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (memory == MAP_FAILED) return nullptr;
        mprotect(memory, page, PROT_NONE);  // a guard page below the stack: an overflow faults
        g_stacks.push_back(static_cast<unsigned char*>(memory) + page);
    }
    return g_stacks[index];
}

// A new fiber's stack, laid out as simt_switch_context leaves a suspended one: six saved
// registers, then the address it returns to (the entry), then a slot standing for the entry's
// own return address, so that the entry starts with the stack alignment of a called function.
void* initial_stack_pointer(unsigned char* stack) {
    auto top = reinterpret_cast<uintptr_t>(stack + kStackBytes) & ~uintptr_t{15};
    auto* words = reinterpret_cast<uintptr_t*>(top);
    words[-1] = 0;
    words[-2] = reinterpret_cast<uintptr_t>(&simt_fiber_entry);
    for (int i = 3; i <= 8; ++i) words[-i] = 0;
    return words - 8;
}

void resume(Fiber& fiber) {
    Scheduler& s = g_scheduler;
    s.running = &fiber;
#if SIMT_ASAN
    void* fake_stack = nullptr;
    __sanitizer_start_switch_fiber(&fake_stack, fiber.stack, kStackBytes);
    simt_switch_context(&s.scheduler_sp, fiber.sp);
    __sanitizer_finish_switch_fiber(fake_stack, nullptr, nullptr);
#else
    simt_switch_context(&s.scheduler_sp, fiber.sp);
#endif
    s.running = nullptr;
}

// Called on the running fiber: back to the scheduler until a barrier releases it (never, when
// `wait` is done).
void suspend(Wait wait, unsigned mask) {
    Scheduler& s = g_scheduler;
    Fiber& fiber = *s.running;
    fiber.wait = wait;
    fiber.warp_mask = mask;
#if SIMT_ASAN
    __sanitizer_start_switch_fiber(wait == Wait::done ? nullptr : &fiber.fake_stack, s.scheduler_stack_bottom,
                                   s.scheduler_stack_size);
    simt_switch_context(&fiber.sp, s.scheduler_sp);
    __sanitizer_finish_switch_fiber(fiber.fake_stack, &s.scheduler_stack_bottom, &s.scheduler_stack_size);
#else
    simt_switch_context(&fiber.sp, s.scheduler_sp);
#endif
}

std::string describe(const Fiber& fiber) {
    const BlockState& b = g_scheduler.block;
    return "block (" + std::to_string(b.block_index.x) + ", " + std::to_string(b.block_index.y) + ", " +
           std::to_string(b.block_index.z) + ") thread (" + std::to_string(fiber.state.thread_index.x) + ", " +
           std::to_string(fiber.state.thread_index.y) + ", " + std::to_string(fiber.state.thread_index.z) + ")";
}

// Releases every warp barrier whose lanes have all arrived; false when none could be. Records a
// fault when a barrier names a lane that has exited or lanes disagree on the mask.
bool release_warp_barriers() {
    Scheduler& s = g_scheduler;
    bool released = false;
    const size_t threads = s.fibers.size();
    for (size_t first = 0; first < threads; first += 32) {
        unsigned waiting = 0, exited = 0, present = 0;
        for (size_t lane = 0; lane < 32 && first + lane < threads; ++lane) {
            const Fiber& f = s.fibers[first + lane];
            present |= 1u << lane;
            if (f.wait == Wait::warp) waiting |= 1u << lane;
            if (f.wait == Wait::done) exited |= 1u << lane;
        }
        for (size_t lane = 0; lane < 32 && first + lane < threads; ++lane) {
            Fiber& f = s.fibers[first + lane];
            if (f.wait != Wait::warp) continue;
            const unsigned mask = f.warp_mask & present;
            if (mask & exited) {
                s.fault = describe(f) + " waits at a warp barrier or shuffle whose mask names an exited lane";
                return false;
            }
            if ((mask & ~waiting) != 0) continue;
            for (size_t other = 0; other < 32; ++other) {
                if ((mask >> other & 1u) && (s.fibers[first + other].warp_mask & present) != mask) {
                    s.fault = describe(f) + " and " + describe(s.fibers[first + other]) +
                              " wait at warp barriers with different masks";
                    return false;
                }
            }
            for (size_t other = 0; other < 32; ++other) {
                if (mask >> other & 1u) s.fibers[first + other].wait = Wait::running;
            }
            released = true;
        }
    }
    return released;
}

std::string deadlock_report() {
    const Scheduler& s = g_scheduler;
    int at_block = 0, at_warp = 0, exited = 0;
    const Fiber* example_block = nullptr;
    const Fiber* example_warp = nullptr;
    for (const Fiber& f : s.fibers) {
        if (f.wait == Wait::block) {
            ++at_block;
            if (!example_block) example_block = &f;
        } else if (f.wait == Wait::warp) {
            ++at_warp;
            if (!example_warp) example_warp = &f;
        } else if (f.wait == Wait::done) {
            ++exited;
        }
    }
    std::string report = "deadlock: " + std::to_string(at_block) + " threads wait at __syncthreads, " +
                         std::to_string(at_warp) + " at warp barriers or shuffles, " + std::to_string(exited) + " have exited";
    if (example_block) report += "; e.g. " + describe(*example_block) + " at __syncthreads";
    if (example_warp) report += "; e.g. " + describe(*example_warp) + " at a warp barrier (mask " +
                                std::to_string(example_warp->warp_mask) + ")";
    return report;
}

bool run_block(size_t block_linear) {
    Scheduler& s = g_scheduler;
    const dim3 d = s.block.block_dim;
    const size_t threads = static_cast<size_t>(d.x) * d.y * d.z;
    s.fibers.assign(threads, Fiber{});
    s.warps.assign((threads + 31) / 32, Warp{});
    for (size_t i = 0; i < threads; ++i) {
        Fiber& f = s.fibers[i];
        f.stack = stack_for(i);
        if (!f.stack) {
            s.fault = "out of memory for the stacks of the block's threads";
            return false;
        }
#if SIMT_ASAN
        __asan_unpoison_memory_region(f.stack, kStackBytes);  // an abandoned fiber's frames
#endif
        f.sp = initial_stack_pointer(f.stack);
        f.state.thread_index = make_uint3(static_cast<unsigned>(i % d.x), static_cast<unsigned>(i / d.x % d.y),
                                          static_cast<unsigned>(i / (static_cast<size_t>(d.x) * d.y)));
        f.state.linear = static_cast<int>(i);
        f.state.lane = static_cast<int>(i % 32);
        f.state.warp = static_cast<int>(i / 32);
    }
    // Shared memory is not initialized on a GPU: NaN bytes make a read before any write show.
    std::fill_n(g_dynamic_shared.get(), g_dynamic_shared_bytes, static_cast<unsigned char>(0xff));
    const bool reverse = block_linear % 2 == 1;
    for (;;) {
        for (size_t k = 0; k < threads; ++k) {
            Fiber& f = s.fibers[reverse ? threads - 1 - k : k];
            if (f.wait == Wait::running) resume(f);
            if (!s.fault.empty()) return false;
        }
        size_t alive = 0, at_block = 0;
        for (const Fiber& f : s.fibers) {
            if (f.wait != Wait::done) ++alive;
            if (f.wait == Wait::block) ++at_block;
        }
        if (alive == 0) return true;
        // __syncthreads must be reached by every thread of the block (CUDA leaves a barrier that
        // some threads skip, by returning early among them, undefined): exited threads do not count.
        if (at_block == threads) {
            for (Fiber& f : s.fibers) {
                if (f.wait == Wait::block) f.wait = Wait::running;
            }
            continue;
        }
        if (release_warp_barriers()) continue;
        if (s.fault.empty()) s.fault = deadlock_report();
        return false;
    }
}

const char* configuration_error(dim3 grid, dim3 block, size_t shared, const void* kernel) {
    const size_t threads = static_cast<size_t>(block.x) * block.y * block.z;
    if (threads == 0 || threads > kMaxBlockThreads || block.z > 64) return "the block has 0 or more than 1024 threads";
    if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > kMaxGridX || grid.y > kMaxGridY || grid.z > kMaxGridY) {
        return "a grid dimension is 0 or beyond the device's limit";
    }
    const auto allowed = g_max_dynamic_shared.find(kernel);
    const size_t limit = allowed == g_max_dynamic_shared.end() ? kDefaultDynamicShared : static_cast<size_t>(allowed->second);
    if (shared > limit) return "the dynamic shared memory exceeds the kernel's limit (cudaFuncSetAttribute)";
    return nullptr;
}

cudaError_t g_launch_error = cudaSuccess;

}  // namespace

const ThreadState& current_thread() { return g_scheduler.running->state; }
const BlockState& current_block() { return g_scheduler.block; }

void sync_block() { suspend(Wait::block, 0); }
void sync_warp(unsigned mask) { suspend(Wait::warp, mask); }

uint64_t* warp_exchange_slots() { return g_scheduler.warps[static_cast<size_t>(current_thread().warp)].slots; }
const void** warp_pointer_slots() { return g_scheduler.warps[static_cast<size_t>(current_thread().warp)].pointers; }

void kernel_fault(const char* message) {
    g_scheduler.fault = describe(*g_scheduler.running) + ": " + message;
    suspend(Wait::done, 0);
    __builtin_unreachable();
}

cudaError_t run_grid(const void* kernel, dim3 grid, dim3 block, size_t dynamic_shared_bytes, void (*body)(void*),
                     void* closure) {
    std::lock_guard lock(g_mutex);
    if (const char* error = configuration_error(grid, block, dynamic_shared_bytes, kernel)) {
        std::fprintf(stderr, "simt: launch refused: %s\n", error);
        g_launch_error = cudaErrorInvalidConfiguration;
        return g_launch_error;
    }
    Scheduler& s = g_scheduler;
    s.body = body;
    s.closure = closure;
    s.fault.clear();
    g_dynamic_shared_bytes = dynamic_shared_bytes;
    g_dynamic_shared.reset(static_cast<unsigned char*>(::operator new[](std::max<size_t>(dynamic_shared_bytes, 1), std::align_val_t{1024})));
    s.block.dynamic_shared = g_dynamic_shared.get();
    s.block.block_dim = block;
    s.block.grid_dim = grid;
    size_t linear = 0;
    for (unsigned z = 0; z < grid.z; ++z) {
        for (unsigned y = 0; y < grid.y; ++y) {
            for (unsigned x = 0; x < grid.x; ++x, ++linear) {
                s.block.block_index = make_uint3(x, y, z);
                if (!run_block(linear)) {
                    std::fprintf(stderr, "simt: kernel failed: %s\n", s.fault.c_str());
                    g_launch_error = cudaErrorLaunchFailure;
                    return g_launch_error;
                }
            }
        }
    }
    return cudaSuccess;
}

unsigned char* dynamic_shared() { return g_scheduler.block.dynamic_shared; }

namespace {
bool in_dynamic_shared(const void* address, size_t bytes) {
    const auto* p = static_cast<const unsigned char*>(address);
    return p >= g_dynamic_shared.get() && p + bytes <= g_dynamic_shared.get() + g_dynamic_shared_bytes;
}
}  // namespace

void load_matrices(uint32_t (&r)[4], const void* row, bool transpose) {
    if (reinterpret_cast<uintptr_t>(row) % 16 != 0 || !in_dynamic_shared(row, 16)) {
        kernel_fault("ldmatrix: a row address is not 16-byte aligned dynamic shared memory");
    }
    const int lane = current_thread().lane;
    const void** slots = warp_pointer_slots();
    slots[lane * 3] = row;
    sync_warp(0xffffffffu);
    const int g = lane / 4, t = lane % 4;
    // Element (i, j) of matrix m: column j of the row that lane 8 m + i named.
    const auto element = [&](int m, int i, int j) {
        uint16_t bits;
        std::memcpy(&bits, static_cast<const unsigned char*>(slots[(8 * m + i) * 3]) + 2 * j, sizeof bits);
        return uint32_t{bits};
    };
    uint32_t result[4];
    for (int m = 0; m < 4; ++m) {
        result[m] = transpose ? element(m, 2 * t, g) | element(m, 2 * t + 1, g) << 16
                              : element(m, g, 2 * t) | element(m, g, 2 * t + 1) << 16;
    }
    sync_warp(0xffffffffu);  // every lane has read the rows before any lane names new ones
    for (int m = 0; m < 4; ++m) r[m] = result[m];
}

void copy_async(void* shared, const void* global, size_t bytes) {
    if ((bytes != 4 && bytes != 8 && bytes != 16) || reinterpret_cast<uintptr_t>(shared) % bytes != 0 ||
        reinterpret_cast<uintptr_t>(global) % bytes != 0) {
        kernel_fault("cp.async: the size is not 4, 8 or 16 bytes, or an address is not aligned to it");
    }
    if (!in_dynamic_shared(shared, bytes)) kernel_fault("cp.async: the destination is not dynamic shared memory");
    Fiber& fiber = *g_scheduler.running;
    AsyncCopy copy{static_cast<unsigned char*>(shared), {}, bytes, fiber.commits};
    std::memcpy(copy.bytes, global, bytes);
    std::memset(shared, 0xff, bytes);
    fiber.async_copies.push_back(copy);
}

void commit_async() { ++g_scheduler.running->commits; }

void wait_async(int pending) {
    Fiber& fiber = *g_scheduler.running;
    auto& copies = fiber.async_copies;
    const auto complete = [&](const AsyncCopy& copy) { return copy.group < fiber.commits - pending; };
    for (const AsyncCopy& copy : copies) {
        if (complete(copy)) std::memcpy(copy.destination, copy.bytes, copy.size);
    }
    copies.erase(std::remove_if(copies.begin(), copies.end(), complete), copies.end());
}

cudaError_t set_max_dynamic_shared(const void* kernel, int bytes) {
    if (bytes < 0 || static_cast<size_t>(bytes) > kMaxDynamicShared) return cudaErrorInvalidValue;
    std::lock_guard lock(g_mutex);
    g_max_dynamic_shared[kernel] = bytes;
    return cudaSuccess;
}

cudaError_t occupancy(int* blocks, const void*, int threads, size_t dynamic_shared_bytes) {
    if (!blocks || threads <= 0 || threads > static_cast<int>(kMaxBlockThreads)) return cudaErrorInvalidValue;
    int count = std::min(32, 2048 / threads);
    if (dynamic_shared_bytes > 0) count = std::min<int>(count, static_cast<int>((kMaxDynamicShared + 1024) / (dynamic_shared_bytes + 1024)));
    *blocks = count;
    return cudaSuccess;
}

cudaError_t take_launch_error() {
    std::lock_guard lock(g_mutex);
    const cudaError_t error = g_launch_error;
    g_launch_error = cudaSuccess;
    return error;
}

cudaError_t peek_launch_error() {
    std::lock_guard lock(g_mutex);
    return g_launch_error;
}

}  // namespace simt

extern "C" void simt_fiber_entry() {
    simt::Scheduler& s = simt::g_scheduler;
#if SIMT_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &s.scheduler_stack_bottom, &s.scheduler_stack_size);
#endif
    s.body(s.closure);
    simt::suspend(simt::Wait::done, 0);
    __builtin_unreachable();
}
