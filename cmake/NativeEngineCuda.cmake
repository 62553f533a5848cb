# Finds the CUDA toolchain for libnativeengine_cuda. Sets NE_HAVE_CUDA when the library can be
# built; never fails the configure: without nvcc only the CPU library is built.
#
# NE_CUDA: AUTO (build the CUDA library when a CUDA compiler works), ON (require it), OFF.
# CMAKE_CUDA_ARCHITECTURES: 80;90 unless given (plus 90a, the wgmma/TMA target, from CUDA 12 on).
# CUDA 11.8 (CI) and 13 (the GPU machine) must both compile every source.

set(NE_CUDA "AUTO" CACHE STRING "Build libnativeengine_cuda: AUTO (when nvcc works), ON or OFF")
set_property(CACHE NE_CUDA PROPERTY STRINGS AUTO ON OFF)
set(NE_HAVE_CUDA OFF)

# nvcc accepts only host compilers it was validated against (11.8: up to g++ 11 and clang 14).
# Without an explicit choice, an nvcc older than 12 gets clang++-14 or g++-11 when installed.
function(ne_pick_cuda_host_compiler)
  if(DEFINED CMAKE_CUDA_HOST_COMPILER)
    set(ENV{CUDAHOSTCXX} "${CMAKE_CUDA_HOST_COMPILER}")
    return()
  endif()
  if(DEFINED ENV{CUDAHOSTCXX})
    return()
  endif()
  find_program(NE_NVCC nvcc HINTS "$ENV{CUDACXX}" /usr/local/cuda/bin)
  if(NOT NE_NVCC)
    return()
  endif()
  execute_process(COMMAND "${NE_NVCC}" --version OUTPUT_VARIABLE nvcc_version ERROR_QUIET)
  if(nvcc_version MATCHES "release ([0-9]+)\\.([0-9]+)" AND CMAKE_MATCH_1 LESS 12)
    find_program(NE_CUDA_HOST_CXX NAMES clang++-14 g++-11)
    if(NE_CUDA_HOST_CXX)
      # check_language() probes in a separate project that sees the environment, not our cache.
      set(ENV{CUDAHOSTCXX} "${NE_CUDA_HOST_CXX}")
      set(CMAKE_CUDA_HOST_COMPILER "${NE_CUDA_HOST_CXX}" CACHE FILEPATH "Host compiler of nvcc")
    endif()
  endif()
endfunction()

# NE_CUBLAS_ROOT: a cuBLAS outside the CUDA toolkit, used instead of the toolkit's, e.g. the one
# PyTorch's wheels install (site-packages/nvidia/cublas, with lib/libcublas.so.<major> and
# include/cublas_v2.h) on a machine whose toolkit has nvcc but no cuBLAS.
set(NE_CUBLAS_ROOT "" CACHE PATH "cuBLAS and cuBLASLt to use instead of the CUDA toolkit's (with lib/ and include/)")

# ne_find_cublas(): the INTERFACE target ne_cublas (cuBLAS and cuBLASLt, with their headers), from
# NE_CUBLAS_ROOT when it is set, else from the toolkit; no target when neither has them.
function(ne_find_cublas)
  if(TARGET ne_cublas)
    return()
  endif()
  if(NE_CUBLAS_ROOT)
    if(NOT EXISTS "${NE_CUBLAS_ROOT}/include/cublas_v2.h")
      message(FATAL_ERROR "NE_CUBLAS_ROOT=${NE_CUBLAS_ROOT} has no include/cublas_v2.h")
    endif()
    set(libraries "")
    foreach(name cublas cublasLt)
      # Wheels ship only the versioned file (libcublas.so.13), which find_library does not match.
      file(GLOB candidates "${NE_CUBLAS_ROOT}/lib/lib${name}.so" "${NE_CUBLAS_ROOT}/lib/lib${name}.so.[0-9]*")
      list(SORT candidates)
      list(LENGTH candidates count)
      if(count EQUAL 0)
        message(FATAL_ERROR "NE_CUBLAS_ROOT=${NE_CUBLAS_ROOT} has no lib/lib${name}.so*")
      endif()
      list(GET candidates 0 library)
      list(APPEND libraries "${library}")
    endforeach()
    add_library(ne_cublas INTERFACE)
    target_include_directories(ne_cublas SYSTEM INTERFACE "${NE_CUBLAS_ROOT}/include")
    target_link_libraries(ne_cublas INTERFACE ${libraries})
    message(STATUS "cuBLAS from NE_CUBLAS_ROOT: ${libraries}")
  elseif(TARGET CUDA::cublas AND TARGET CUDA::cublasLt)
    add_library(ne_cublas INTERFACE)
    target_link_libraries(ne_cublas INTERFACE CUDA::cublas CUDA::cublasLt)
    message(STATUS "cuBLAS from the CUDA toolkit: ${CUDA_cublas_LIBRARY}")
  endif()
endfunction()

if(NOT NE_CUDA STREQUAL "OFF")
  # A compiler not found by an earlier configure (before nvcc was installed) is looked for again.
  if(DEFINED CACHE{CMAKE_CUDA_COMPILER} AND NOT CMAKE_CUDA_COMPILER)
    unset(CMAKE_CUDA_COMPILER CACHE)
  endif()
  ne_pick_cuda_host_compiler()
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    # The default, 80;90, gains 90a (wgmma/TMA) from CUDA 12 on; any other value given on the
    # command line (-DCMAKE_CUDA_ARCHITECTURES=90 on the GPU machine) is kept as it is.
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 80 90)
    endif()
    enable_language(CUDA)
    if(CMAKE_CUDA_ARCHITECTURES STREQUAL "80;90" AND CMAKE_CUDA_COMPILER_VERSION VERSION_GREATER_EQUAL 12)
      set(CMAKE_CUDA_ARCHITECTURES "80;90;90a" CACHE STRING "CUDA architectures" FORCE)
    endif()
    find_package(CUDAToolkit)
    ne_find_cublas()
    if(CUDAToolkit_FOUND AND TARGET ne_cublas AND TARGET CUDA::cudart_static)
      set(NE_HAVE_CUDA ON)
    endif()
  endif()
  if(NOT NE_HAVE_CUDA)
    if(NE_CUDA STREQUAL "ON")
      message(FATAL_ERROR "NE_CUDA is ON but no working CUDA compiler with cuBLAS was found "
                          "(Debian: apt-get install nvidia-cuda-toolkit; nvcc 11 needs CUDAHOSTCXX=clang++-14)")
    endif()
    message(STATUS "CUDA not found: building the CPU library only")
  else()
    message(STATUS "CUDA ${CMAKE_CUDA_COMPILER_VERSION} (host compiler ${CMAKE_CUDA_HOST_COMPILER}): "
                   "building libnativeengine_cuda for architectures ${CMAKE_CUDA_ARCHITECTURES}")
  endif()
endif()

# ne_set_cuda_options(<target>): language level, warnings (as errors with NE_WARNINGS_AS_ERRORS)
# and numerics of the CUDA sources of a target.
function(ne_set_cuda_options target)
  set_target_properties(${target} PROPERTIES CUDA_STANDARD 17 CUDA_STANDARD_REQUIRED ON CUDA_EXTENSIONS OFF
                                             CUDA_VISIBILITY_PRESET hidden CUDA_RUNTIME_LIBRARY Static)
  # --fmad=false: as -ffp-contract=off on the host, kernels write their fused multiply-adds
  # explicitly (fmaf), so results do not depend on what the compiler chose to contract.
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:CUDA>:--fmad=false -Xcompiler=-Wall,-Wextra>
    $<$<AND:$<COMPILE_LANGUAGE:CUDA>,$<BOOL:${NE_WARNINGS_AS_ERRORS}>>:--Werror=all-warnings -Xcompiler=-Werror>)
endfunction()
