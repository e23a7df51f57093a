// Rectified local contrast normalisation (RRANet, Eq. 2) as a fused box filter.
//
// One block computes one output tile of one (batch, channel) plane. The tile and its halo are read from
// global memory once into shared memory; separable box sums of x and x^2 (rows, then columns) give the
// local mean and standard deviation; the rectified, normalised value is written once. Borders reflect
// without repeating the edge sample (numpy/torch "reflect"), which needs radius < height and width.
//
// Values are shifted by one sample of the tile before summing: the variance is shift-invariant, and
// E[x^2] - E[x]^2 of shifted values cancels far less in float32 on smooth image regions.

__device__ __forceinline__ int reflect_index(int i, const int n) {
    // One reflection is exact for every sample a written output uses (radius < n). The halo of the last,
    // partial tile reaches further, for outputs that are never written; clamping keeps those loads inside
    // the plane, where an unclamped one could read before the allocation and kill the CUDA context.
    i = i < 0 ? -i : i;
    i = i >= n ? 2 * (n - 1) - i : i;
    return min(max(i, 0), n - 1);
}

extern "C" __global__ void rlcn_box(const float* __restrict__ src, float* __restrict__ dst,
                                    const int height, const int width, const int radius, const float eps) {
    extern __shared__ float smem[];
    const int tile_w = blockDim.x;
    const int tile_h = blockDim.y;
    const int in_w = tile_w + 2 * radius;
    const int in_h = tile_h + 2 * radius;
    const int window = 2 * radius + 1;
    float* tile = smem;                          // in_h x in_w shifted input samples
    float* row_sum = tile + in_h * in_w;         // in_h x tile_w horizontal sums of x
    float* row_sq = row_sum + in_h * tile_w;     // in_h x tile_w horizontal sums of x^2

    const size_t plane_offset = static_cast<size_t>(blockIdx.z) * height * width;
    const float* plane = src + plane_offset;
    const int tile_x = blockIdx.x * tile_w;
    const int tile_y = blockIdx.y * tile_h;
    const int thread = threadIdx.y * tile_w + threadIdx.x;
    const int threads = tile_w * tile_h;

    const float shift = plane[min(tile_y, height - 1) * width + min(tile_x, width - 1)];

    for (int i = thread; i < in_h * in_w; i += threads) {
        const int y = reflect_index(tile_y - radius + i / in_w, height);
        const int x = reflect_index(tile_x - radius + i % in_w, width);
        tile[i] = plane[y * width + x] - shift;
    }
    __syncthreads();

    for (int i = thread; i < in_h * tile_w; i += threads) {
        const float* samples = tile + (i / tile_w) * in_w + (i % tile_w);
        float sum = 0.f, sq = 0.f;
        for (int d = 0; d < window; ++d) {
            const float v = samples[d];
            sum += v;
            sq = fmaf(v, v, sq);
        }
        row_sum[i] = sum;
        row_sq[i] = sq;
    }
    __syncthreads();

    const int out_x = tile_x + threadIdx.x;
    const int out_y = tile_y + threadIdx.y;
    if (out_x >= width || out_y >= height) return;

    float sum = 0.f, sq = 0.f;
    for (int d = 0; d < window; ++d) {
        const int i = (threadIdx.y + d) * tile_w + threadIdx.x;
        sum += row_sum[i];
        sq += row_sq[i];
    }
    const float inv_area = 1.f / static_cast<float>(window * window);
    const float mean = sum * inv_area;
    const float variance = fmaxf(fmaf(-mean, mean, sq * inv_area), 0.f);
    const float centre = tile[(threadIdx.y + radius) * in_w + threadIdx.x + radius];
    dst[plane_offset + static_cast<size_t>(out_y) * width + out_x] =
        fmaxf(centre - mean, 0.f) / (sqrtf(variance) + eps);
}
