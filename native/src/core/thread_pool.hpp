// A fixed set of worker threads owned by a CPU context. Work is split statically (thread t of
// T always gets the same share), so kernels that reduce per share are deterministic for a given
// thread count; kernels that must not depend on the thread count reduce per fixed-size chunk.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace ne {

class ThreadPool {
public:
    // num_threads counts the calling thread: num_threads - 1 workers are started.
    explicit ThreadPool(int num_threads);
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int size() const { return num_threads_; }

    // True on a thread that is running a task of some pool: a run() from there executes inline,
    // so a kernel called there should plan (and allocate workspace) for one thread.
    static bool in_task();

    // Calls task(thread_index, thread_count) once on each of thread_count threads (the caller is
    // index 0) and returns when all have finished. thread_count is clamped to [1, size()].
    // Rethrows the first exception a task threw. Called from inside a task, runs inline.
    template <class Task>
    void run(int thread_count, Task&& task) {
        run_erased(thread_count, &task, [](void* erased, int index, int count) {
            (*static_cast<Task*>(erased))(index, count);
        });
    }

    // Splits [0, n) into contiguous ranges of at least min_grain items, one per thread, and calls
    // body(begin, end) for each non-empty range.
    template <class Body>
    void parallel_for(int64_t n, int64_t min_grain, Body&& body) {
        if (n <= 0) return;
        const int64_t grain = min_grain < 1 ? 1 : min_grain;
        const int64_t max_threads = (n + grain - 1) / grain;
        const int threads = static_cast<int>(max_threads < num_threads_ ? max_threads : num_threads_);
        run(threads, [&](int index, int count) {
            const int64_t begin = n * index / count;
            const int64_t end = n * (index + 1) / count;
            if (begin < end) body(begin, end);
        });
    }

private:
    using Trampoline = void (*)(void*, int, int);
    void run_erased(int thread_count, void* task, Trampoline trampoline);
    void worker_loop(int index);
    void execute(int index);

    int num_threads_;
    std::vector<std::thread> workers_;
    std::mutex mutex_;
    std::condition_variable start_;
    std::condition_variable done_;
    uint64_t generation_ = 0;
    bool stopping_ = false;
    int active_count_ = 0;   // threads taking part in the current job
    int pending_ = 0;        // of those, workers not yet finished
    void* task_ = nullptr;
    Trampoline trampoline_ = nullptr;
    std::exception_ptr error_;
};

}  // namespace ne
