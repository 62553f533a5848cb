# Warnings, sanitizers and per-ISA flags shared by every native target.

# ne_set_numerics(<target>): no floating-point contraction. GCC fuses a * b + c into an FMA
# where it likes (even in ISO mode), which would make a kernel's bits depend on the compiler's
# choices and differ between ISA levels; kernels that want an FMA write it explicitly.
function(ne_set_numerics target)
  if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-ffp-contract=off>)
  endif()
endfunction()

# ne_set_warnings(<target>): the project's warning set, as errors when NE_WARNINGS_AS_ERRORS is on.
function(ne_set_warnings target)
  if(MSVC)
    target_compile_options(${target} PRIVATE /W4 $<$<BOOL:${NE_WARNINGS_AS_ERRORS}>:/WX>)
  else()
    target_compile_options(${target} PRIVATE
      $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast
                                -Wcast-align -Woverloaded-virtual -Wnull-dereference -Wimplicit-fallthrough>
      $<$<AND:$<COMPILE_LANGUAGE:CXX>,$<BOOL:${NE_WARNINGS_AS_ERRORS}>>:-Werror>)
  endif()
endfunction()

# ne_enable_sanitizers(<target>): compile and link with NE_SANITIZE (e.g. "address,undefined").
function(ne_enable_sanitizers target)
  if(NE_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=${NE_SANITIZE} -fno-omit-frame-pointer
                                             -fno-sanitize-recover=all)
    target_link_options(${target} PRIVATE -fsanitize=${NE_SANITIZE})
  endif()
endfunction()

# ne_set_isa_flags(<sources>...): SIMD kernels live in translation units named *_avx2.cpp and
# *_avx512.cpp; only those are compiled for the instruction set in their name, and the library
# calls them after checking the CPU at run time. Everything else stays baseline x86-64.
function(ne_set_isa_flags)
  foreach(source IN LISTS ARGN)
    if(source MATCHES "_avx512\\.cpp$")
      if(MSVC)
        set_source_files_properties(${source} PROPERTIES COMPILE_OPTIONS "/arch:AVX512")
      else()
        set(avx512_options "-mavx512f;-mavx512bw;-mavx512dq;-mavx512vl;-mavx512vnni;-mavx2;-mfma;-mf16c")
        # GCC before 13 warns "may be used uninitialized" inside AVX-512 intrinsics whose
        # pass-through operand is _mm512_undefined_ps() (min, max, roundscale, scalef, ...)
        # once they are inlined into a kernel: GCC bug 105593, a false positive.
        if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
          list(APPEND avx512_options "-Wno-maybe-uninitialized")
        endif()
        set_source_files_properties(${source} PROPERTIES COMPILE_OPTIONS "${avx512_options}")
      endif()
    elseif(source MATCHES "_avx2\\.cpp$")
      if(MSVC)
        set_source_files_properties(${source} PROPERTIES COMPILE_OPTIONS "/arch:AVX2")
      else()
        set_source_files_properties(${source} PROPERTIES COMPILE_OPTIONS "-mavx2;-mfma;-mf16c")
      endif()
    endif()
  endforeach()
endfunction()
