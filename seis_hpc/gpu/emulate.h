// Host emulation of the CUDA built-ins that kernels.cu uses, so that the host C++ compiler
// builds the same source and seis_hpc.gpu.runtime.EmulatorRuntime runs its kernels on the CPU,
// one (block, thread) after another. Included only when __CUDACC__ is not defined.
//
// The emulation is exact for kernels without shared memory or barriers (kernels.cu has none):
// every thread runs to completion in turn. Intrinsics that are approximate on the GPU
// (rsqrtf, __fdividef; 2 ulp) are exact here; the tests' tolerances cover both.
#pragma once
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <math.h>
#include <cstring>
#include <cstddef>
#include <type_traits>
#include <utility>

#define __global__
#define __device__
#define __forceinline__ inline

struct float2 { float x, y; };
struct float4 { float x, y, z, w; };
struct seis_dim3 { unsigned x = 1, y = 1, z = 1; };

static seis_dim3 threadIdx, blockIdx, blockDim, gridDim;

// SEIS_CHECK in kernels.cu: a failed index check is a bug in the kernels, never bad input
// (inputs are checked before launch), so the emulated launch stops the process loudly.
[[noreturn]] static void seis_emu_fail(const char* cond, int line)
{
    std::fprintf(stderr, "kernels.cu:%d: index check failed: %s (block %u, thread %u)\n", line,
                 cond, blockIdx.x, threadIdx.x);
    std::abort();
}

static inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
static inline float __fdividef(float a, float b) { return a / b; }
static inline float cospif(float x) { return (float)std::cos(M_PI * (double)x); }
static inline int __float_as_int(float x)
{
    int i;
    std::memcpy(&i, &x, sizeof i);
    return i;
}
static inline float __int_as_float(int i)
{
    float x;
    std::memcpy(&x, &i, sizeof x);
    return x;
}
static inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
static inline float atomicAdd(float* p, float v)
{
    const float old = *p;
    *p = old + v;
    return old;
}

// Launch: args[i] points at the i-th kernel argument, as in cuLaunchKernel.
template <typename... A, std::size_t... I>
static void seis_emu_call(void (*k)(A...), void** args, std::index_sequence<I...>)
{
    k(*static_cast<std::remove_reference_t<A>*>(args[I])...);
}

template <typename... A>
static void seis_emu_launch(void (*k)(A...), const unsigned* grid, const unsigned* block,
                            void** args)
{
    gridDim.x = grid[0], gridDim.y = grid[1], gridDim.z = grid[2];
    blockDim.x = block[0], blockDim.y = block[1], blockDim.z = block[2];
    for (unsigned bz = 0; bz < grid[2]; ++bz)
        for (unsigned by = 0; by < grid[1]; ++by)
            for (unsigned bx = 0; bx < grid[0]; ++bx)
                for (unsigned tz = 0; tz < block[2]; ++tz)
                    for (unsigned ty = 0; ty < block[1]; ++ty)
                        for (unsigned tx = 0; tx < block[0]; ++tx) {
                            blockIdx.x = bx, blockIdx.y = by, blockIdx.z = bz;
                            threadIdx.x = tx, threadIdx.y = ty, threadIdx.z = tz;
                            seis_emu_call(k, args, std::index_sequence_for<A...>{});
                        }
}

#define SEIS_EMU_ENTRY(name)                                                               \
    extern "C" void emu_##name(const unsigned* grid, const unsigned* block, void** args)  \
    {                                                                                      \
        seis_emu_launch(name, grid, block, args);                                          \
    }
