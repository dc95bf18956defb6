/* ops.h: float32 kernels of the shapes engine. Activations of the convolutional path use the
 * "CNHW" layout [channels][batch][height][width], so a convolution over a whole batch is a
 * single sgemm (weights [cout][cin*k*k] x im2col [cin*k*k][n*h*w]) and a channel concat is
 * two adjacent channel blocks. Pure functions of their arguments: thread-safe. */
#pragma once

#include <stddef.h>

/* y[M][N] (row stride ldy) = beta * y + x[M][K] (row stride ldx) * W^T + b, W [N][K]
 * (torch Linear layout), b may be NULL. */
void op_linear(int M, int N, int K, const float *x, int ldx, const float *W, const float *b,
               float beta, float *y, int ldy);

/* 3x3 convolution, padding 1, stride 1 or 2, optional nearest 2x upsampling of the input
 * first (up = 1 or 2). in [cin][n][H][W] (pre-upsampling size), out [cout][n][Ho][Wo] with
 * Ho = H*up/stride. out = beta * out + conv + bias. The im2col matrix is built and
 * multiplied in chunks of output rows; col: scratch of op_conv3x3_col_floats(...) floats
 * (independent of n). */
size_t op_conv3x3_col_floats(int cin, int W, int stride, int up);
void op_conv3x3(int n, int cin, int H, int W, const float *in, int cout, int stride, int up,
                const float *weight, const float *bias, float beta, float *out, float *col);

/* Nearest-neighbour 2x upsampling: in [C][n][H][W] -> out [C][n][2H][2W]. */
void op_upsample2x(int n, int C, int H, int W, const float *in, float *out);

/* 1x1 convolution: out[cout][n*HW] = beta * out + W[cout][cin] * in[cin][n*HW] + bias. */
void op_conv1x1(int n, int cin, int HW, const float *in, int cout, const float *weight,
                const float *bias, float beta, float *out);

/* GroupNorm (biased variance, eps) per sample over x [C][n][HW], affine gamma/beta, then
 * optionally FiLM y = y * (1 + film[b][c]) + film[b][C + c] (film row stride ldf), then
 * optionally SiLU. y may not alias x. */
void op_groupnorm(int n, int C, int HW, int groups, float eps, const float *x, const float *gamma,
                  const float *beta, const float *film, int ldf, int silu, float *y);

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
