// The CUDA entry points of the CPU-only library (libnativeengine): CUDA contexts are refused
// with a message that names the library that has them.
#include "device.hpp"
#include "error.hpp"

namespace ne {

std::unique_ptr<Device> open_cuda_device(int32_t, MemoryCounters&, DeviceDescription*) {
    fail(NE_STATUS_BACKEND_UNAVAILABLE,
         "the CUDA backend is not compiled into this library (libnativeengine); load libnativeengine_cuda");
}

bool cuda_compiled() noexcept { return false; }

int32_t cuda_device_count() noexcept { return 0; }

}  // namespace ne
