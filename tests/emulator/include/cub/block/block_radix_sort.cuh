// The SIMT emulator's stand-in for CUB's block_radix_sort.cuh (see ../simt_cub.hpp).
#pragma once

#include "../simt_cub.hpp"
