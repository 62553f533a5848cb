// Errors inside the library are C++ exceptions carrying an ne_status; guard() turns them into
// a status code and a thread-local message at the C ABI boundary, so none ever escapes.
#pragma once

#include "nativeengine.h"

#include <exception>
#include <new>
#include <sstream>
#include <string>
#include <utility>

namespace ne {

class Error : public std::exception {
public:
    Error(ne_status status, std::string message) : status_(status), message_(std::move(message)) {}
    ne_status status() const noexcept { return status_; }
    const char* what() const noexcept override { return message_.c_str(); }

private:
    ne_status status_;
    std::string message_;
};

// Concatenates anything streamable into a string: str("expected ", n, " rows").
template <class... Parts>
std::string str(const Parts&... parts) {
    std::ostringstream out;
    (out << ... << parts);
    return out.str();
}

template <class... Parts>
[[noreturn]] void fail(ne_status status, const Parts&... parts) {
    throw Error(status, str(parts...));
}

void set_last_error(const char* function, const char* message) noexcept;

// The exported entry point running on this thread (set by guard), or "" outside one: checks
// whose outcome arrives later (a device's deferred checks) name the call that queued them.
const char* current_function() noexcept;

class CurrentFunctionScope {
public:
    explicit CurrentFunctionScope(const char* function) noexcept;
    ~CurrentFunctionScope();
    CurrentFunctionScope(const CurrentFunctionScope&) = delete;
    CurrentFunctionScope& operator=(const CurrentFunctionScope&) = delete;

private:
    const char* outer_;
};

// Runs body and converts every exception into a status. function names the exported entry
// point, so that messages read "ne_layernorm_forward: argument 'gamma': ...".
template <class Body>
ne_status guard(const char* function, Body&& body) noexcept {
    const CurrentFunctionScope scope(function);
    try {
        body();
        return NE_STATUS_OK;
    } catch (const Error& e) {
        set_last_error(function, e.what());
        return e.status();
    } catch (const std::bad_alloc&) {
        set_last_error(function, "out of host memory");
        return NE_STATUS_OUT_OF_MEMORY;
    } catch (const std::exception& e) {
        set_last_error(function, e.what());
        return NE_STATUS_INTERNAL_ERROR;
    } catch (...) {
        set_last_error(function, "unknown internal exception");
        return NE_STATUS_INTERNAL_ERROR;
    }
}

}  // namespace ne
