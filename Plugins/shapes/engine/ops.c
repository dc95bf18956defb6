/* ops.c: see ops.h. */
#include "ops.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Elementwise kernels get AVX-512 (x86-64-v4) and AVX2 (x86-64-v3) clones, picked at load
 * time by an ifunc, plus the baseline one; the matmuls dispatch inside OpenBLAS. Define
 * SHAPES_NO_CLONES for ThreadSanitizer builds (TSan crashes in ifunc resolvers that run
 * before it is set up). Results differ between clones by rounding only. */
#if defined(__x86_64__) && defined(__GNUC__) && defined(__ELF__) && !defined(SHAPES_NO_CLONES)
#define OP_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
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

/* Batch invariance (see ops.h): every product below is issued per sample with a shape that
 * depends only on the layer (never on n), so OpenBLAS picks the same kernels, blocking and
 * thread split for a sample whatever batch it is in. One call with M = n * rows would let
 * OpenBLAS choose by M (small-matrix and direct paths, GEMV forwarding for M = 1, edge
 * kernels for the remainder rows of a tile, thread splits), and the rounding of a sample
 * would depend on the batch. */
static void op_gemm_rows(int M, int N, int K, const float *x, int ldx, const float *W, float beta, float *y,
                         int ldy) {
   if (M == 1) { /* y = W x: no packing of W for a single row */
      if (beta == 0.0f) /* y may hold garbage (NaN): some OpenBLAS versions scale it by 0 */
         memset(y, 0, (size_t)N * sizeof *y);
      cblas_sgemv(CblasRowMajor, CblasNoTrans, N, K, 1.0f, W, K, x, 1, beta, y, 1);
   } else
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, x, ldx, W, K, beta, y, ldy);
}

void op_linear(int n, int rows, int N, int K, const float *x, int ldx, const float *W, const float *b,
               float beta, float *y, int ldy) {
   if (n <= 0 || rows <= 0)
      return;
   for (int s = 0; s < n; s++) {
      const float *xs = x + (size_t)s * rows * ldx;
      float *ys = y + (size_t)s * rows * ldy;
      op_gemm_rows(rows, N, K, xs, ldx, W, beta, ys, ldy);
      if (b != NULL)
         for (int i = 0; i < rows; i++) {
            float *row = ys + (size_t)i * ldy;
            for (int j = 0; j < N; j++)
               row[j] += b[j];
         }
   }
}

/* Pixels of one im2col chunk: about OP_COL_CHUNK_FLOATS floats of patches, so that the
 * patch matrix is still in L2 when OpenBLAS packs it, while each sgemm call has enough rows
 * to amortise packing the weights. */
#ifndef OP_COL_CHUNK_FLOATS
#define OP_COL_CHUNK_FLOATS (256 * 1024)
#endif
#define OP_MIN_CHUNK_PIXELS 64

static int op_chunk_pixels(int cin) {
   const int K = 9 * cin;
   int px = (int)(OP_COL_CHUNK_FLOATS / (size_t)K);
   return px < OP_MIN_CHUNK_PIXELS ? OP_MIN_CHUNK_PIXELS : px;
}

size_t op_conv3x3_col_floats(int cin) {
   return (size_t)op_chunk_pixels(cin) * 9 * (size_t)cin;
}

/* Splits the rows of n samples of `per` rows each into chunks of at most about `cap` rows:
 * whole samples while they fit (the elementwise im2col / transforms run over a chunk, the
 * products per sample), else each sample on its own in pieces of `cap` rows, so that every
 * product's M and row offset within its sample depend only on `per` and `cap`. */
typedef struct op_chunk { int r0, nr, m; } op_chunk_t; /* first row, rows, rows per product */

static int op_next_chunk(int n, int per, int cap, int r0, op_chunk_t *ch) {
   const int total = n * per;
   if (r0 >= total)
      return 0;
   ch->r0 = r0;
   if (per <= cap) {
      const int samples = cap / per, left = (total - r0) / per;
      ch->nr = (samples < left ? samples : left) * per;
      ch->m = per;
   } else {
      const int in_sample = per - r0 % per;
      ch->nr = in_sample < cap ? in_sample : cap;
      ch->m = ch->nr;
   }
   return 1;
}

void op_conv3x3(int n, int H, int W, int cin, const float *in, int ldin, int cout, int stride,
                const float *weight, const float *bias, float beta, float *out, int ldout, float *col) {
   const int Ho = H / stride, Wo = W / stride, K = 9 * cin;
   const size_t row_bytes = (size_t)cin * sizeof(float);
   op_chunk_t ch;
   for (int p0 = 0; op_next_chunk(n, Ho * Wo, op_chunk_pixels(cin), p0, &ch); p0 += ch.nr) {
      const int np = ch.nr;
      /* im2col, one row per output pixel: K = (ky, kx, ci), matching the permuted weights. */
      for (int p = p0; p < p0 + np; p++) {
         const int b = p / (Ho * Wo), yo = (p / Wo) % Ho, xo = p % Wo;
         float *dst = col + (size_t)(p - p0) * K;
         for (int ky = 0; ky < 3; ky++) {
            const int yi = yo * stride + ky - 1;
            float *d = dst + (size_t)ky * 3 * cin;
            if (yi < 0 || yi >= H) {
               memset(d, 0, 3 * row_bytes);
               continue;
            }
            const float *srow = in + ((size_t)b * H + (size_t)yi) * W * ldin;
            const int xi0 = xo * stride - 1;
            if (ldin == cin && xi0 >= 0 && xi0 + 2 < W) { /* three neighbours are contiguous */
               memcpy(d, srow + (size_t)xi0 * cin, 3 * row_bytes);
               continue;
            }
            for (int kx = 0; kx < 3; kx++) {
               const int xi = xi0 + kx;
               if (xi < 0 || xi >= W)
                  memset(d + kx * cin, 0, row_bytes);
               else
                  memcpy(d + kx * cin, srow + (size_t)xi * ldin, row_bytes);
            }
         }
      }
      float *o = out + (size_t)p0 * ldout;
      for (int q = 0; q < np; q += ch.m)
         cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, ch.m, cout, K, 1.0f, col + (size_t)q * K, K, weight, K,
                     beta, o + (size_t)q * ldout, ldout);
      if (bias != NULL)
         for (int p = 0; p < np; p++) {
            float *row = o + (size_t)p * ldout;
            for (int c = 0; c < cout; c++)
               row[c] += bias[c];
         }
   }
}

/* ---- Winograd F(2x2, 3x3) ---------------------------------------------------------------
 * Same-size 3x3 convolution (stride 1, padding 1, H and W even) with 16 multiplies per 2x2
 * output tile instead of 36: V = B^T d B per 4x4 input tile and channel, M[k] = V[k] U[k]^T
 * (16 sgemms, k = 4*i + j), Y = A^T M A. U = G g G^T is precomputed from the weights. */

void op_winograd_weights(int cout, int cin, const float *w, float *u) {
   const size_t plane = (size_t)cout * cin;
   for (int co = 0; co < cout; co++)
      for (int ci = 0; ci < cin; ci++) {
         const float *g = w + ((size_t)co * cin + ci) * 9; /* torch layout [cout][cin][3][3] */
         float r[4][3];
         for (int c = 0; c < 3; c++) {
            r[0][c] = g[c];
            r[1][c] = 0.5f * (g[c] + g[3 + c] + g[6 + c]);
            r[2][c] = 0.5f * (g[c] - g[3 + c] + g[6 + c]);
            r[3][c] = g[6 + c];
         }
         for (int i = 0; i < 4; i++) {
            const float q[4] = {r[i][0], 0.5f * (r[i][0] + r[i][1] + r[i][2]), 0.5f * (r[i][0] - r[i][1] + r[i][2]),
                                r[i][2]};
            for (int j = 0; j < 4; j++)
               u[(size_t)(4 * i + j) * plane + (size_t)co * cin + ci] = q[j];
         }
      }
}

static int op_wino_tiles(int cin, int cout) {
   const int c = cin > cout ? cin : cout;
   int t = (int)((size_t)(512 * 1024) / ((size_t)16 * c));
   return t < 32 ? 32 : t;
}

size_t op_conv3x3_winograd_floats(int cin, int cout) {
   return (size_t)16 * op_wino_tiles(cin, cout) * (size_t)(cin + cout) + (size_t)16 * (cin > cout ? cin : cout);
}

static inline void op_vsub(float *restrict o, const float *restrict x, const float *restrict y, int n) {
   for (int c = 0; c < n; c++)
      o[c] = x[c] - y[c];
}
static inline void op_vadd(float *restrict o, const float *restrict x, const float *restrict y, int n) {
   for (int c = 0; c < n; c++)
      o[c] = x[c] + y[c];
}

/* V[k][t][ci] for tiles t0..t0+nt of the batch; tmp: 16*cin floats. Channel-contiguous
 * loops, so everything vectorises. */
OP_CLONES
static void op_wino_input(int H, int W, int cin, const float *in, int ldin, int t0, int nt, float *V,
                          const float *zeros, float *tmp) {
   const int tw = W / 2, th = H / 2;
   const size_t vs = (size_t)nt * cin;
   for (int t = t0; t < t0 + nt; t++) {
      const int b = t / (th * tw), ty = (t / tw) % th, tx = t % tw;
      const float *d[16];
      for (int i = 0; i < 4; i++)
         for (int j = 0; j < 4; j++) {
            const int y = 2 * ty - 1 + i, x = 2 * tx - 1 + j;
            d[4 * i + j] = (y < 0 || y >= H || x < 0 || x >= W) ? zeros
                                                                 : in + (((size_t)b * H + y) * W + x) * ldin;
         }
      /* r = B^T d (rows), into tmp[4*i + j]. */
      for (int j = 0; j < 4; j++) {
         op_vsub(tmp + (size_t)(0 + j) * cin, d[j], d[8 + j], cin);
         op_vadd(tmp + (size_t)(4 + j) * cin, d[4 + j], d[8 + j], cin);
         op_vsub(tmp + (size_t)(8 + j) * cin, d[8 + j], d[4 + j], cin);
         op_vsub(tmp + (size_t)(12 + j) * cin, d[4 + j], d[12 + j], cin);
      }
      /* V = r B (columns). */
      float *v = V + (size_t)(t - t0) * cin;
      for (int i = 0; i < 4; i++) {
         const float *r0 = tmp + (size_t)(4 * i) * cin, *r1 = r0 + cin, *r2 = r1 + cin, *r3 = r2 + cin;
         op_vsub(v + (size_t)(4 * i + 0) * vs, r0, r2, cin);
         op_vadd(v + (size_t)(4 * i + 1) * vs, r1, r2, cin);
         op_vsub(v + (size_t)(4 * i + 2) * vs, r2, r1, cin);
         op_vsub(v + (size_t)(4 * i + 3) * vs, r1, r3, cin);
      }
   }
}

/* out (2x2 pixels per tile) = beta * out + A^T M A + bias; tmp: 8*cout floats. */
OP_CLONES
static void op_wino_output(int H, int W, int cout, const float *Mb, int t0, int nt, const float *bias, float beta,
                           float *out, int ldout, float *tmp) {
   const int tw = W / 2, th = H / 2;
   const size_t ms = (size_t)nt * cout;
   for (int t = t0; t < t0 + nt; t++) {
      const int b = t / (th * tw), ty = (t / tw) % th, tx = t % tw;
      const float *m = Mb + (size_t)(t - t0) * cout;
      /* s = A^T M: s[i][j] for i < 2, j < 4 into tmp[(4*i + j) * cout]. */
      for (int j = 0; j < 4; j++) {
         const float *restrict m0 = m + (size_t)j * ms, *restrict m1 = m + (size_t)(4 + j) * ms;
         const float *restrict m2 = m + (size_t)(8 + j) * ms, *restrict m3 = m + (size_t)(12 + j) * ms;
         float *restrict s0 = tmp + (size_t)j * cout, *restrict s1 = tmp + (size_t)(4 + j) * cout;
         for (int c = 0; c < cout; c++) {
            s0[c] = m0[c] + m1[c] + m2[c];
            s1[c] = m1[c] - m2[c] - m3[c];
         }
      }
      for (int i = 0; i < 2; i++) {
         const float *restrict a0 = tmp + (size_t)(4 * i) * cout, *restrict a1 = a0 + cout;
         const float *restrict a2 = a1 + cout, *restrict a3 = a2 + cout;
         float *restrict p0 = out + (((size_t)b * H + 2 * ty + i) * W + 2 * tx) * ldout;
         float *restrict p1 = p0 + ldout;
         if (beta == 0.0f) {
            for (int c = 0; c < cout; c++) {
               const float bb = bias != NULL ? bias[c] : 0.0f;
               p0[c] = a0[c] + a1[c] + a2[c] + bb;
               p1[c] = a1[c] - a2[c] - a3[c] + bb;
            }
         } else {
            for (int c = 0; c < cout; c++) {
               const float bb = bias != NULL ? bias[c] : 0.0f;
               p0[c] = beta * p0[c] + (a0[c] + a1[c] + a2[c] + bb);
               p1[c] = beta * p1[c] + (a1[c] - a2[c] - a3[c] + bb);
            }
         }
      }
   }
}

void op_conv3x3_winograd(int n, int H, int W, int cin, const float *in, int ldin, int cout, const float *u,
                         const float *bias, float beta, float *out, int ldout, float *scratch) {
   const int chunk = op_wino_tiles(cin, cout);
   const size_t plane = (size_t)cout * cin;
   float *V = scratch, *Mb = scratch + (size_t)16 * chunk * cin, *tmp = Mb + (size_t)16 * chunk * cout;
   /* A row of zeros for the padding, as long as the widest input row read. */
   float zeros[512];
   const float *zero_row = zeros;
   float *zbig = NULL;
   if (cin > 512) {
      zbig = calloc((size_t)cin, sizeof *zbig);
      zero_row = zbig;
   } else {
      memset(zeros, 0, sizeof zeros);
   }
   op_chunk_t ch;
   for (int t0 = 0; op_next_chunk(n, (H / 2) * (W / 2), chunk, t0, &ch); t0 += ch.nr) {
      const int nt = ch.nr;
      op_wino_input(H, W, cin, in, ldin, t0, nt, V, zero_row, tmp);
      for (int k = 0; k < 16; k++)
         for (int q = 0; q < nt; q += ch.m) /* per sample (or piece of one): M independent of n */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, ch.m, cout, cin, 1.0f,
                        V + (size_t)k * nt * cin + (size_t)q * cin, cin, u + (size_t)k * plane, cin, 0.0f,
                        Mb + (size_t)k * nt * cout + (size_t)q * cout, cout);
      op_wino_output(H, W, cout, Mb, t0, nt, bias, beta, out, ldout, tmp);
   }
   free(zbig);
}

void op_upsample2x(int n, int H, int W, int C, const float *in, int ldin, float *out) {
   for (int b = 0; b < n; b++)
      for (int y = 0; y < 2 * H; y++)
         for (int x = 0; x < 2 * W; x++)
            memcpy(out + (((size_t)b * 2 * H + (size_t)y) * 2 * W + (size_t)x) * C,
                   in + (((size_t)b * H + (size_t)(y / 2)) * W + (size_t)(x / 2)) * ldin, (size_t)C * sizeof(float));
}

OP_CLONES
void op_groupnorm(int n, int HW, int C, int groups, float eps, const float *x, int ldx, const float *gamma,
                  const float *beta, const float *film, int ldf, int silu, float *y, int ldy, float *stats) {
   const int cpg = C / groups;
   const double count = (double)cpg * HW;
   float *sum = stats, *mean = stats + C, *a = stats + 2 * C, *o = stats + 3 * C;
   for (int b = 0; b < n; b++) {
      const float *xb = x + (size_t)b * HW * ldx;
      float *yb = y + (size_t)b * HW * ldy;
      for (int c = 0; c < C; c++)
         sum[c] = 0.0f;
      for (int p = 0; p < HW; p++) {
         const float *row = xb + (size_t)p * ldx;
         for (int c = 0; c < C; c++)
            sum[c] += row[c];
      }
      for (int g = 0; g < groups; g++) {
         double s = 0.0;
         for (int c = g * cpg; c < (g + 1) * cpg; c++)
            s += sum[c];
         for (int c = g * cpg; c < (g + 1) * cpg; c++)
            mean[c] = (float)(s / count);
      }
      for (int c = 0; c < C; c++)
         sum[c] = 0.0f;
      for (int p = 0; p < HW; p++) {
         const float *row = xb + (size_t)p * ldx;
         for (int c = 0; c < C; c++) {
            const float d = row[c] - mean[c];
            sum[c] += d * d;
         }
      }
      for (int g = 0; g < groups; g++) {
         double s = 0.0;
         for (int c = g * cpg; c < (g + 1) * cpg; c++)
            s += sum[c];
         const float rstd = (float)(1.0 / sqrt(s / count + eps));
         for (int c = g * cpg; c < (g + 1) * cpg; c++) {
            float ac = rstd * gamma[c];
            float oc = beta[c] - mean[c] * ac;
            if (film != NULL) {
               const float sc = 1.0f + film[(size_t)b * ldf + c], sh = film[(size_t)b * ldf + C + c];
               ac *= sc;
               oc = oc * sc + sh;
            }
            a[c] = ac;
            o[c] = oc;
         }
      }
      for (int p = 0; p < HW; p++) {
         const float *row = xb + (size_t)p * ldx;
         float *q = yb + (size_t)p * ldy;
         for (int c = 0; c < C; c++)
            q[c] = row[c] * a[c] + o[c];
         if (silu)
            for (int c = 0; c < C; c++)
               q[c] = q[c] * (1.0f / (1.0f + op_expf(-q[c])));
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
            for (int j = 0; j < N; j++) /* vectorises (no reduction in this loop) */
               row[j] = op_expf(row[j] - m);
            float sum = 0.0f;
            for (int j = 0; j < N; j++)
               sum += row[j];
            const float inv = 1.0f / sum;
            for (int j = 0; j < N; j++)
               row[j] *= inv;
         }
         cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, hd, N, 1.0f, S, N, v, ld, 0.0f,
                     ob + h * hd, D);
      }
   }
}
