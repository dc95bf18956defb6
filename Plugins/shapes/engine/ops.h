/* ops.h: float32 kernels of the shapes engine. Activations of the convolutional path are
 * "pixel-major" (NHWC): a batch of n images of H x W pixels is a matrix of n*H*W rows (pixel
 * (b, y, x) is row (b*H + y)*W + x) with C channels per row, rows `ld` floats apart (ld >= C:
 * a channel concat is two column blocks of one buffer). A convolution is an im2col of
 * per-pixel patches (K = 9*cin, ordered (ky, kx, ci)) times the weights [cout][K]: sgemm with
 * the pixels of a sample as rows and the weights transposed. Pure functions of their
 * arguments: thread-safe. */
#pragma once

#include <stddef.h>

/* Batch invariance: every function below computes each sample of a batch with exactly the
 * same operations in the same order whatever n is, wherever the sample is in the batch and
 * whatever the other samples are, so its result is bit-identical to the sample computed
 * alone. Products go to OpenBLAS one sample (or a fixed-size piece of one) at a time, with
 * a shape that depends only on the layer; only the elementwise work (im2col, Winograd
 * transforms, norms) runs over many samples at once. Bits may still differ between
 * machines (OpenBLAS kernels per CPU, the elementwise clones below). */

/* n samples of `rows` rows each, consecutive (sample s = rows s*rows..): y[n*rows][N] (row
 * stride ldy) = beta * y + x[n*rows][K] (row stride ldx) * W^T + b, W [N][K] (torch Linear
 * layout), b may be NULL; one product per sample. rows = 1 with ldx, ldy the strides
 * between samples: a vector per sample. Also the 1x1 convolution in pixel-major layout. */
void op_linear(int n, int rows, int N, int K, const float *x, int ldx, const float *W, const float *b,
               float beta, float *y, int ldy);

/* Scratch floats op_conv3x3 needs for `cin` input channels (independent of n, H, W). */
size_t op_conv3x3_col_floats(int cin);

/* 3x3 convolution, padding 1, stride 1 or 2 (H, W even): in [n*H*W][cin] (row stride ldin),
 * out [n*(H/stride)*(W/stride)][cout] (row stride ldout) = beta * out + conv + bias.
 * weight [cout][3][3][cin] (torch's [cout][cin][3][3] permuted at load). */
void op_conv3x3(int n, int H, int W, int cin, const float *in, int ldin, int cout, int stride,
                const float *weight, const float *bias, float beta, float *out, int ldout, float *col);

/* Winograd F(2x2, 3x3) for the same-size 3x3 convolution (stride 1, padding 1, H and W
 * even), same arguments as op_conv3x3 but with transformed weights u [16][cout][cin] from
 * op_winograd_weights (w in torch layout [cout][cin][3][3]); scratch of
 * op_conv3x3_winograd_floats(cin, cout) floats. 2.25x fewer multiplies; rounding differs
 * from the direct convolution by a few ulps of the output scale. */
void op_winograd_weights(int cout, int cin, const float *w, float *u);
size_t op_conv3x3_winograd_floats(int cin, int cout);
void op_conv3x3_winograd(int n, int H, int W, int cin, const float *in, int ldin, int cout, const float *u,
                         const float *bias, float beta, float *out, int ldout, float *scratch);

/* Nearest-neighbour 2x upsampling: in [n*H*W][C] (row stride ldin) -> out [n*2H*2W][C]. */
void op_upsample2x(int n, int H, int W, int C, const float *in, int ldin, float *out);

/* GroupNorm (biased variance, eps) per sample over x [n*HW][C] (row stride ldx), affine
 * gamma/beta, then optionally FiLM y = y * (1 + film[b][c]) + film[b][C + c] (film row
 * stride ldf), then optionally SiLU; y [n*HW][C] (row stride ldy) may not alias x.
 * stats: scratch of 4*C floats. */
void op_groupnorm(int n, int HW, int C, int groups, float eps, const float *x, int ldx, const float *gamma,
                  const float *beta, const float *film, int ldf, int silu, float *y, int ldy, float *stats);

/* LayerNorm over rows of D (biased variance, eps); gamma/beta may be NULL (no affine).
 * x rows at stride ldx, y rows at stride ldy. y may alias x. */
void op_layernorm(int rows, int D, float eps, const float *x, int ldx, const float *gamma,
                  const float *beta, float *y, int ldy);

/* Multi-head softmax attention for n independent sequences of N tokens:
 * qkv [n][N][3D] (q, k, v column blocks; head h = columns h*D/heads..), o [n][N][D].
 * S: scratch of N*N floats. */
void op_attention(int n, int N, int D, int heads, const float *qkv, float *o, float *S);

void op_silu(float *x, size_t count);
void op_gelu_tanh(float *x, size_t count);
