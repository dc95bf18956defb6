/* ops.c: see ops.h. */
#include "ops.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* Elementwise kernels get an AVX2 (x86-64-v3) clone picked at load time by an ifunc, plus
 * the baseline one; the matmuls dispatch inside OpenBLAS. */
#if defined(__x86_64__) && defined(__GNUC__) && defined(__ELF__) && !defined(SHAPES_NO_CLONES)
#define OP_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define OP_CLONES
#endif

/* exp(x) for float, written so that the compiler can vectorise loops around it (no libm
 * call, no branch): Cody-Waite range reduction and the Cephes polynomial, about 1 ulp.
 * The input is clamped to [-80, 80]: neither the result nor anything the callers derive
 * from it (x * 1 / (1 + exp(-x)), softmax weights) becomes subnormal, because subnormal
 * arithmetic costs ~100x on x86 (the vectorised code evaluates every lane). Callers only
 * use exp(-x) against 1 or after subtracting the row maximum, where the clamp is invisible
 * (e^-80 ~ 1.8e-35). Build with -fno-trapping-math so that these loops vectorise. */
static inline float op_expf(float x) {
   x = x < -80.0f ? -80.0f : x;
   x = x > 80.0f ? 80.0f : x;
   /* k = round(x / ln 2) by the 1.5 * 2^23 trick (round to nearest, no libm). */
   const float magic = 12582912.0f;
   float k = (x * 1.44269504088896341f + magic) - magic;
   float r = x - k * 0.693359375f;
   r = r - k * -2.12194440e-4f;
   float p = 1.9875691500e-4f;
   p = p * r + 1.3981999507e-3f;
   p = p * r + 8.3334519073e-3f;
   p = p * r + 4.1665795894e-2f;
   p = p * r + 1.6666665459e-1f;
   p = p * r + 5.0000001201e-1f;
   float y = p * r * r + r + 1.0f;
   int32_t ki = (int32_t)k;
   uint32_t bits = (uint32_t)(ki + 127) << 23;
   float scale;
   memcpy(&scale, &bits, sizeof scale);
   return y * scale;
}

OP_CLONES
void op_silu(float *x, size_t count) {
   for (size_t i = 0; i < count; i++)
      x[i] = x[i] * (1.0f / (1.0f + op_expf(-x[i])));
}

/* 0.5 x (1 + tanh(u)) = x * sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3). */
OP_CLONES
void op_gelu_tanh(float *x, size_t count) {
   const float k0 = 0.7978845608028654f, k1 = 0.044715f;
   for (size_t i = 0; i < count; i++) {
      const float v = x[i];
      const float u = k0 * (v + k1 * v * v * v);
      x[i] = v * (1.0f / (1.0f + op_expf(-2.0f * u)));
   }
}

void op_linear(int M, int N, int K, const float *x, int ldx, const float *W, const float *b,
               float beta, float *y, int ldy) {
   if (M <= 0)
      return;
   cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, x, ldx, W, K, beta, y, ldy);
   if (b != NULL)
      for (int i = 0; i < M; i++) {
         float *row = y + (size_t)i * ldy;
         for (int j = 0; j < N; j++)
            row[j] += b[j];
      }
}

static void op_add_bias_rows(int rows, size_t cols, const float *bias, float *out) {
   if (bias == NULL)
      return;
   for (int r = 0; r < rows; r++) {
      float *o = out + (size_t)r * cols;
      const float b = bias[r];
      for (size_t j = 0; j < cols; j++)
         o[j] += b;
   }
}

/* Columns of one im2col chunk: the chunk is packed by OpenBLAS right after we write it, so
 * keeping it around L2 size avoids a round trip through memory (measured ~15% faster than
 * one im2col of the whole batch). */
#ifndef OP_COL_CHUNK_FLOATS
#define OP_COL_CHUNK_FLOATS (160 * 1024)
#endif

/* im2col of output rows r0..r0+nr (row r = sample r / Ho, y = r % Ho) into col[cin*9][nr*Wo]:
 * row (ci, ky, kx), column (r - r0) * Wo + xo. Zero padding 1; input index
 * (y*stride + ky - 1) / up for nearest upsampling by `up`. */
static void op_im2col(int n, int cin, int H, int W, const float *in, int stride, int up, int r0, int nr,
                      float *col) {
   const int Hu = H * up, Wu = W * up, Ho = Hu / stride, Wo = Wu / stride;
   const size_t plane_in = (size_t)H * W, nc = (size_t)nr * Wo;
   if (stride == 1 && up == 1) {
      /* Same-size 3x3: for one sample, rows y0..y1 of tap (ky, kx) are ONE shifted copy of the
       * input plane (offset (ky-1)*W + kx-1), then the out-of-image rows and the wrapped edge
       * column are zeroed. */
      for (int ci = 0; ci < cin; ci++)
         for (int ky = 0; ky < 3; ky++)
            for (int kx = 0; kx < 3; kx++) {
               float *crow = col + ((size_t)ci * 9 + (size_t)ky * 3 + (size_t)kx) * nc;
               for (int r = r0; r < r0 + nr;) {
                  const int b = r / Ho, y0 = r % Ho;
                  const int y1 = (r0 + nr - r) < (Ho - y0) ? y0 + (r0 + nr - r) : Ho; /* rows y0..y1-1 */
                  float *d = crow + (size_t)(r - r0) * Wo;
                  const float *src = in + ((size_t)ci * n + (size_t)b) * plane_in;
                  const int yv0 = y0 > 1 - ky ? y0 : 1 - ky, yv1 = y1 < H + 1 - ky ? y1 : H + 1 - ky;
                  if (yv0 >= yv1) {
                     memset(d, 0, (size_t)(y1 - y0) * W * sizeof *d);
                  } else {
                     if (yv0 > y0)
                        memset(d, 0, (size_t)(yv0 - y0) * W * sizeof *d);
                     if (y1 > yv1)
                        memset(d + (size_t)(yv1 - y0) * W, 0, (size_t)(y1 - yv1) * W * sizeof *d);
                     float *dv = d + (size_t)(yv0 - y0) * W;
                     const long len = (long)(yv1 - yv0) * W;
                     const long s0 = (long)(yv0 + ky - 1) * W + kx - 1;
                     long lo = 0, hi = len;
                     if (s0 < 0) lo = 1;                             /* element (y=0, x=-1) */
                     if (s0 + len > (long)plane_in) hi = len - 1;    /* element (y=H-1, x=W) */
                     memcpy(dv + lo, src + s0 + lo, (size_t)(hi - lo) * sizeof *d);
                     if (kx == 0)
                        for (int y = yv0; y < yv1; y++) dv[(size_t)(y - yv0) * W] = 0.0f;
                     else if (kx == 2)
                        for (int y = yv0; y < yv1; y++) dv[(size_t)(y - yv0) * W + W - 1] = 0.0f;
                  }
                  r += y1 - y0;
               }
            }
      return;
   }
   for (int ci = 0; ci < cin; ci++)
      for (int ky = 0; ky < 3; ky++)
         for (int kx = 0; kx < 3; kx++) {
            float *crow = col + ((size_t)ci * 9 + (size_t)ky * 3 + (size_t)kx) * nc;
            for (int r = r0; r < r0 + nr; r++) {
               const int b = r / Ho, yo = r % Ho, yi = yo * stride + ky - 1;
               float *d = crow + (size_t)(r - r0) * Wo;
               if (yi < 0 || yi >= Hu) {
                  memset(d, 0, (size_t)Wo * sizeof *d);
                  continue;
               }
               const float *s = in + ((size_t)ci * n + (size_t)b) * plane_in + (size_t)(yi / up) * W;
               for (int xo = 0; xo < Wo; xo++) {
                  const int xi = xo * stride + kx - 1;
                  d[xo] = (xi < 0 || xi >= Wu) ? 0.0f : s[xi / up];
               }
            }
         }
}

void op_upsample2x(int n, int C, int H, int W, const float *in, float *out) {
   for (size_t p = 0; p < (size_t)C * n; p++) {
      const float *s = in + p * H * W;
      float *d = out + p * 4 * H * W;
      for (int y = 0; y < 2 * H; y++)
         for (int x = 0; x < 2 * W; x++)
            d[(size_t)y * 2 * W + x] = s[(size_t)(y / 2) * W + x / 2];
   }
}

size_t op_conv3x3_col_floats(int cin, int W, int stride, int up) {
   const size_t row = (size_t)cin * 9 * (size_t)(W * up / stride);
   return row > OP_COL_CHUNK_FLOATS ? row : OP_COL_CHUNK_FLOATS;
}

void op_conv3x3(int n, int cin, int H, int W, const float *in, int cout, int stride, int up,
                const float *weight, const float *bias, float beta, float *out, float *col) {
   const int Hu = H * up, Wu = W * up;
   const int Ho = Hu / stride, Wo = Wu / stride;
   const size_t ncols = (size_t)n * Ho * Wo;
   const int K = cin * 9, rows_total = n * Ho;
   int rows_chunk = (int)(OP_COL_CHUNK_FLOATS / ((size_t)K * Wo));
   rows_chunk = rows_chunk < 1 ? 1 : rows_chunk > rows_total ? rows_total : rows_chunk;
   for (int r0 = 0; r0 < rows_total; r0 += rows_chunk) {
      const int nr = rows_total - r0 < rows_chunk ? rows_total - r0 : rows_chunk;
      const size_t nc = (size_t)nr * Wo;
      op_im2col(n, cin, H, W, in, stride, up, r0, nr, col);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, cout, (int)nc, K, 1.0f, weight, K, col, (int)nc,
                  beta, out + (size_t)r0 * Wo, (int)ncols);
   }
   op_add_bias_rows(cout, ncols, bias, out);
}

void op_conv1x1(int n, int cin, int HW, const float *in, int cout, const float *weight,
                const float *bias, float beta, float *out) {
   const int ncols = n * HW;
   cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, cout, ncols, cin, 1.0f, weight, cin, in,
               ncols, beta, out, ncols);
   op_add_bias_rows(cout, (size_t)ncols, bias, out);
}

OP_CLONES
void op_groupnorm(int n, int C, int HW, int groups, float eps, const float *x, const float *gamma,
                  const float *beta, const float *film, int ldf, int silu, float *y) {
   const int cpg = C / groups;
   const double count = (double)cpg * HW;
   for (int b = 0; b < n; b++) {
      for (int g = 0; g < groups; g++) {
         double sum = 0.0;
         for (int c = g * cpg; c < (g + 1) * cpg; c++) {
            const float *p = x + ((size_t)c * n + (size_t)b) * HW;
            float s = 0.0f;
            for (int i = 0; i < HW; i++)
               s += p[i];
            sum += s;
         }
         const double mean = sum / count;
         double var = 0.0;
         for (int c = g * cpg; c < (g + 1) * cpg; c++) {
            const float *p = x + ((size_t)c * n + (size_t)b) * HW;
            const float m = (float)mean;
            float s = 0.0f;
            for (int i = 0; i < HW; i++) {
               const float d = p[i] - m;
               s += d * d;
            }
            var += s;
         }
         const float rstd = (float)(1.0 / sqrt(var / count + eps));
         for (int c = g * cpg; c < (g + 1) * cpg; c++) {
            const float *p = x + ((size_t)c * n + (size_t)b) * HW;
            float *q = y + ((size_t)c * n + (size_t)b) * HW;
            float a = rstd * gamma[c];
            float o = beta[c] - (float)mean * a;
            if (film != NULL) {
               const float sc = 1.0f + film[(size_t)b * ldf + c], sh = film[(size_t)b * ldf + C + c];
               a *= sc;
               o = o * sc + sh;
            }
            for (int i = 0; i < HW; i++)
               q[i] = p[i] * a + o;
            if (silu)
               op_silu(q, (size_t)HW);
         }
      }
   }
}

OP_CLONES
void op_layernorm(int rows, int D, float eps, const float *x, int ldx, const float *gamma,
                  const float *beta, float *y, int ldy) {
   for (int r = 0; r < rows; r++) {
      const float *p = x + (size_t)r * ldx;
      float *q = y + (size_t)r * ldy;
      float s = 0.0f;
      for (int i = 0; i < D; i++)
         s += p[i];
      const float mean = s / (float)D;
      float v = 0.0f;
      for (int i = 0; i < D; i++) {
         const float d = p[i] - mean;
         v += d * d;
      }
      const float rstd = 1.0f / sqrtf(v / (float)D + eps);
      if (gamma != NULL) {
         for (int i = 0; i < D; i++)
            q[i] = (p[i] - mean) * rstd * gamma[i] + beta[i];
      } else {
         for (int i = 0; i < D; i++)
            q[i] = (p[i] - mean) * rstd;
      }
   }
}

OP_CLONES
void op_attention(int n, int N, int D, int heads, const float *qkv, float *o, float *S) {
   const int hd = D / heads, ld = 3 * D;
   const float scale = 1.0f / sqrtf((float)hd);
   for (int b = 0; b < n; b++) {
      const float *base = qkv + (size_t)b * N * ld;
      float *ob = o + (size_t)b * N * D;
      for (int h = 0; h < heads; h++) {
         const float *q = base + h * hd, *k = base + D + h * hd, *v = base + 2 * D + h * hd;
         cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, N, hd, scale, q, ld, k, ld, 0.0f, S, N);
         for (int i = 0; i < N; i++) {
            float *row = S + (size_t)i * N;
            float m = row[0];
            for (int j = 1; j < N; j++)
               m = row[j] > m ? row[j] : m;
            float sum = 0.0f;
            for (int j = 0; j < N; j++) {
               row[j] = op_expf(row[j] - m);
               sum += row[j];
            }
            const float inv = 1.0f / sum;
            for (int j = 0; j < N; j++)
               row[j] *= inv;
         }
         cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, hd, N, 1.0f, S, N, v, ld, 0.0f,
                     ob + h * hd, D);
      }
   }
}
