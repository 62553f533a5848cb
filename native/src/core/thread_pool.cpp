#include "thread_pool.hpp"

namespace ne {
namespace {

// Set while a thread executes a task, so that a kernel calling back into a pool runs inline
// instead of waiting for workers that are busy with its own caller.
thread_local bool inside_task = false;

struct InsideTaskScope {
    InsideTaskScope() { inside_task = true; }
    ~InsideTaskScope() { inside_task = false; }
};

}  // namespace

bool ThreadPool::in_task() { return inside_task; }

ThreadPool::ThreadPool(int num_threads) : num_threads_(num_threads < 1 ? 1 : num_threads) {
    workers_.reserve(static_cast<size_t>(num_threads_ - 1));
    try {
        for (int index = 1; index < num_threads_; ++index) {
            workers_.emplace_back([this, index] { worker_loop(index); });
        }
    } catch (...) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stopping_ = true;
        }
        start_.notify_all();
        for (auto& worker : workers_) worker.join();
        throw;
    }
}

ThreadPool::~ThreadPool() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stopping_ = true;
    }
    start_.notify_all();
    for (auto& worker : workers_) worker.join();
}

void ThreadPool::execute(int index) {
    try {
        InsideTaskScope scope;
        trampoline_(task_, index, active_count_);
    } catch (...) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!error_) error_ = std::current_exception();
    }
}

void ThreadPool::run_erased(int thread_count, void* task, Trampoline trampoline) {
    const int count = thread_count < 1 ? 1 : (thread_count > num_threads_ ? num_threads_ : thread_count);
    if (count == 1 || inside_task) {
        InsideTaskScope scope;
        for (int index = 0; index < count; ++index) trampoline(task, index, count);
        return;
    }
    {
        std::lock_guard<std::mutex> lock(mutex_);
        task_ = task;
        trampoline_ = trampoline;
        active_count_ = count;
        pending_ = count - 1;
        error_ = nullptr;
        ++generation_;
    }
    start_.notify_all();
    execute(0);
    std::exception_ptr error;
    {
        std::unique_lock<std::mutex> lock(mutex_);
        done_.wait(lock, [this] { return pending_ == 0; });
        error = error_;
        error_ = nullptr;
        task_ = nullptr;
    }
    if (error) std::rethrow_exception(error);
}

void ThreadPool::worker_loop(int index) {
    uint64_t seen_generation = 0;
    for (;;) {
        {
            std::unique_lock<std::mutex> lock(mutex_);
            start_.wait(lock, [&] { return stopping_ || generation_ != seen_generation; });
            if (stopping_) return;
            seen_generation = generation_;
            if (index >= active_count_) continue;
        }
        execute(index);
        bool last;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            last = --pending_ == 0;
        }
        if (last) done_.notify_one();
    }
}

}  // namespace ne
