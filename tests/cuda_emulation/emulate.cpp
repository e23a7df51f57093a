// Runs a CUDA kernel source file on the CPU, for testing its indexing without a GPU.
//
// Each CUDA thread of a block is a std::thread and __syncthreads() is a std::barrier, so the kernel's
// shared-memory phases run with real barrier semantics; blocks run one after another. This checks tiling,
// halos, border handling and barrier placement. It says nothing about speed or warp-level behaviour.
#include <algorithm>
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstddef>
#include <thread>
#include <vector>

struct dim3_t { unsigned x = 1, y = 1, z = 1; };
static thread_local dim3_t threadIdx;
static dim3_t blockIdx, blockDim;
static std::barrier<>* block_barrier = nullptr;
static std::vector<float> shared_storage;

// The kernel source is included with its dynamic shared-memory declaration rewritten by the test to
// `EMULATED_SHARED(name)`, which binds the name to this block's shared storage.
#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__
#define EMULATED_SHARED(name) float* const name = shared_storage.data()
static void __syncthreads() { block_barrier->arrive_and_wait(); }
using std::max;
using std::min;  // fmaf, fmaxf and sqrtf come from <cmath> as in CUDA

// Reads of the input plane go through this check (the test rewrites `plane[` to `CHECKED_PLANE(plane)[`):
// a read outside the plane is counted, where on a GPU it could be an illegal address.
static std::atomic<long> out_of_bounds_reads{0};
static std::atomic<long> lowest_read{0};
struct checked_plane {
    const float* data;
    long size;
    float operator[](long index) const {
        if (index < 0 || index >= size) {
            ++out_of_bounds_reads;
            long low = lowest_read.load();
            while (index < low && !lowest_read.compare_exchange_weak(low, index)) {}
            return NAN;
        }
        return data[index];
    }
};
#define CHECKED_PLANE(plane) checked_plane{plane, static_cast<long>(height) * width}

#include KERNEL_SOURCE

extern "C" long bad_reads() { return out_of_bounds_reads.load(); }
extern "C" long lowest_bad_read() { return lowest_read.load(); }

extern "C" void launch(const float* src, float* dst, int height, int width, int radius, float eps,
                       int grid_x, int grid_y, int grid_z, int block_x, int block_y, int shared_bytes) {
    shared_storage.assign(shared_bytes / sizeof(float), NAN);  // poison: reading unwritten smem shows up
    out_of_bounds_reads = 0;
    lowest_read = 0;
    blockDim = {static_cast<unsigned>(block_x), static_cast<unsigned>(block_y), 1};
    for (int z = 0; z < grid_z; ++z)
        for (int y = 0; y < grid_y; ++y)
            for (int x = 0; x < grid_x; ++x) {
                blockIdx = {static_cast<unsigned>(x), static_cast<unsigned>(y), static_cast<unsigned>(z)};
                std::barrier<> barrier(block_x * block_y);
                block_barrier = &barrier;
                std::vector<std::thread> threads;
                for (int ty = 0; ty < block_y; ++ty)
                    for (int tx = 0; tx < block_x; ++tx)
                        threads.emplace_back([=] {
                            threadIdx = {static_cast<unsigned>(tx), static_cast<unsigned>(ty), 0};
                            KERNEL_NAME(src, dst, height, width, radius, eps);
                        });
                for (auto& thread : threads) thread.join();
            }
}
