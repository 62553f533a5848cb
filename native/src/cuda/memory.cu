// Strided copies and fills of device tensors: kernel, then launcher.
#include "common.cuh"

namespace ne::cuda {
namespace {

// Offset, in elements, of the element with row-major index `index` of a layout.
__device__ int64_t element_offset(const Layout& layout, int64_t index) {
    int64_t offset = 0;
    for (int32_t d = layout.rank - 1; d >= 0; --d) {
        const int64_t extent = layout.shape[d];
        offset += (index % extent) * layout.strides[d];
        index /= extent;
    }
    return offset;
}

template <class T>
__global__ void copy_kernel(Layout destination, Layout source) {
    for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < destination.element_count;
         i += int64_t{gridDim.x} * blockDim.x) {
        static_cast<T*>(destination.data)[element_offset(destination, i)] =
            static_cast<const T*>(source.data)[element_offset(source, i)];
    }
}

template <class T>
__global__ void fill_kernel(Layout tensor, T value) {
    for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < tensor.element_count;
         i += int64_t{gridDim.x} * blockDim.x) {
        static_cast<T*>(tensor.data)[element_offset(tensor, i)] = value;
    }
}

constexpr int kThreads = 256;

}  // namespace

void launch_copy(const Queue& queue, const Layout& destination, const Layout& source, int64_t element_size) {
    const unsigned blocks = grid_for(queue, destination.element_count, kThreads);
    switch (element_size) {
        case 1: copy_kernel<uint8_t><<<blocks, kThreads, 0, queue.stream>>>(destination, source); break;
        case 2: copy_kernel<uint16_t><<<blocks, kThreads, 0, queue.stream>>>(destination, source); break;
        default: copy_kernel<uint32_t><<<blocks, kThreads, 0, queue.stream>>>(destination, source); break;
    }
    check_launch("copy_kernel");
}

void launch_fill(const Queue& queue, const Layout& tensor, uint32_t pattern, int64_t element_size) {
    const unsigned blocks = grid_for(queue, tensor.element_count, kThreads);
    switch (element_size) {
        case 1: fill_kernel<<<blocks, kThreads, 0, queue.stream>>>(tensor, static_cast<uint8_t>(pattern)); break;
        case 2: fill_kernel<<<blocks, kThreads, 0, queue.stream>>>(tensor, static_cast<uint16_t>(pattern)); break;
        default: fill_kernel<<<blocks, kThreads, 0, queue.stream>>>(tensor, pattern); break;
    }
    check_launch("fill_kernel");
}

}  // namespace ne::cuda
