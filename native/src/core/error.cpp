#include "error.hpp"

#include <cstring>

namespace ne {
namespace {

// Fixed-size, so that recording an error can never fail or allocate.
constexpr size_t kMessageCapacity = 1024;
thread_local char last_error_message[kMessageCapacity] = "";
thread_local const char* function_on_this_thread = "";

}  // namespace

void set_last_error(const char* function, const char* message) noexcept {
    size_t used = 0;
    auto append = [&](const char* text) {
        while (*text != '\0' && used + 1 < kMessageCapacity) last_error_message[used++] = *text++;
    };
    append(function);
    append(": ");
    append(message);
    last_error_message[used] = '\0';
}

const char* current_function() noexcept { return function_on_this_thread; }

CurrentFunctionScope::CurrentFunctionScope(const char* function) noexcept : outer_(function_on_this_thread) {
    function_on_this_thread = function;
}

CurrentFunctionScope::~CurrentFunctionScope() { function_on_this_thread = outer_; }

}  // namespace ne

extern "C" NE_API const char* ne_last_error(void) { return ne::last_error_message; }
