// The launchers of the CUDA flash attention kernels (attention.cu), for device.cpp. See
// Device::attention_forward / attention_backward for the arguments.
#pragma once

#include "launch.hpp"

#include "core/device.hpp"

namespace ne::cuda {

void launch_attention_forward(const Queue& queue, const cpu::AttentionForwardArgs& args, ne_dtype dtype,
                              const DeviceKeyLengths& key_lengths);
void launch_attention_backward(const Queue& queue, const cpu::AttentionBackwardArgs& args, ne_dtype dtype,
                               const DeviceKeyLengths& key_lengths);

}  // namespace ne::cuda
