/* test_engine.c: the C engine against PyTorch reference vectors (export_vectors.py; for a
 * corrector, tools/corrector/export_vectors.py).
 *
 *   test_engine WEIGHTS TESTVECTORS
 *
 * A corrector (format assay-shapes-corrector-v1) runs the same checks on its widened
 * condition (caption, reflection, reference image), plus the reflection tokenizer and
 * shapes_encode_reference (8-bit image -> the same condition bits as the float path).
 *
 * Checks: the vectors belong to these weights (sha256), tokenizer cases, text encoder
 * (after block 0 and final), conditioning vector, encoder output, sequence before/after the
 * middle blocks, decoder input, velocity, an 8-step guided sampling run, prologue + blocks
 * + epilogue == velocity bit for bit, batch-size independence, and two threads calling the
 * same engine at once giving identical results. Tolerance: max|err| / max(1, max|ref|). */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "engine.h"
#include "json.h"
#include "ops.h"
#include "safetensors.h"
#include "sha256.h"
#include "testutil.h"

#define TOL 1e-3

static st_file *vec;

/* Tensor `name` of the vectors as float32 (owned by the caller), with its element count. */
static float *get(const char *name, size_t *count) {
   const st_tensor *t = st_find(vec, name);
   if (t == NULL) {
      printf("test vectors lack tensor \"%s\": run refresh_vectors.sh\n", name);
      exit(1);
   }
   float *out = malloc((size_t)t->numel * sizeof *out + 1);
   st_to_f32(vec, t, out);
   if (count != NULL) *count = (size_t)t->numel;
   return out;
}

typedef struct thread_arg {
   const shapes_engine_t *e;
   uint32_t n;
   const float *x, *t, *cond;
   float *v;
   int reps, rc;
} thread_arg_t;

static void *thread_main(void *p) {
   thread_arg_t *a = p;
   a->rc = 0;
   for (int r = 0; r < a->reps && a->rc == 0; r++)
      a->rc = shapes_velocity(a->e, a->n, a->x, a->t, a->cond, a->v, NULL, 0);
   return NULL;
}

/* op_conv3x3 (pixel-major, chunked im2col + sgemm) and op_upsample2x against a direct loop:
 * chunks that split samples, row strides wider than the channel count, stride 2, a 2x
 * upsampled input, 1-pixel images, samples bigger than one chunk (cin 300 and 600); and
 * every sample computed alone equals its rows of the batch bit for bit (both paths). */
static void test_conv(void) {
   /* n, cin, H, cout, stride, up, extra row stride */
   const int cases[][7] = {{3, 5, 16, 7, 1, 1, 0}, {2, 64, 16, 8, 1, 1, 3}, {3, 300, 8, 4, 1, 1, 0},
                           {2, 300, 16, 5, 1, 1, 0}, {2, 600, 16, 3, 1, 1, 2}, {2, 9, 16, 6, 2, 1, 5},
                           {3, 7, 8, 5, 1, 2, 0}, {1, 2, 1, 3, 1, 1, 1}, {2, 3, 2, 2, 2, 1, 0}};
   double worst = 0.0, worst_w = 0.0;
   int conv_variant = 0;
   for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
      const int n = cases[k][0], cin = cases[k][1], H0 = cases[k][2], cout = cases[k][3], st = cases[k][4],
                up = cases[k][5], ld = cin + cases[k][6], ldo = cout + 2;
      const int H = H0 * up, Ho = H / st;
      const size_t in_n = (size_t)n * H0 * H0 * ld, out_n = (size_t)n * Ho * Ho * ldo;
      float *in = malloc(in_n * sizeof *in), *w = malloc((size_t)cout * cin * 9 * sizeof *w);
      float *upb = malloc((size_t)n * H * H * cin * sizeof *upb);
      float *b = malloc((size_t)cout * sizeof *b), *out = malloc(out_n * sizeof *out);
      float *col = malloc(op_conv3x3_col_floats(cin) * sizeof *col);
      unsigned s = 1u + (unsigned)k;
      for (size_t i = 0; i < in_n; i++) { s = s * 1664525u + 1013904223u; in[i] = (float)(s >> 8) / 16777216.0f - 0.5f; }
      for (int i = 0; i < cout * cin * 9; i++) { s = s * 1664525u + 1013904223u; w[i] = (float)(s >> 8) / 16777216.0f - 0.5f; }
      for (int i = 0; i < cout; i++) b[i] = 0.1f * (float)i;
      for (size_t i = 0; i < out_n; i++) out[i] = 1.0f; /* beta = 1 accumulates */
      const float *src = in;
      int lds = ld;
      if (up == 2) {
         op_upsample2x(n, H0, H0, cin, in, ld, upb);
         src = upb;
         lds = cin;
      }
      op_conv3x3(n, H, H, cin, src, lds, cout, st, w, b, 1.0f, out, ldo, col);
      /* batch invariance: each sample alone gives its rows of the batch bit for bit */
      const size_t in_s = (size_t)H * H * lds, out_s = (size_t)Ho * Ho * ldo;
      float *one = malloc(out_s * sizeof *one);
      for (int bb = 0; bb < n; bb++) {
         for (size_t i = 0; i < out_s; i++) one[i] = 1.0f;
         op_conv3x3(1, H, H, cin, src + bb * in_s, lds, cout, st, w, b, 1.0f, one, ldo, col);
         if (memcmp(one, out + bb * out_s, out_s * sizeof *one) != 0) conv_variant++;
      }
      float *outw = NULL;
      if (st == 1 && H % 2 == 0) { /* Winograd on the same problem (torch-layout weights) */
         float *wt = malloc((size_t)cout * cin * 9 * sizeof *wt), *u = malloc((size_t)16 * cout * cin * sizeof *u);
         float *scr = malloc(op_conv3x3_winograd_floats(cin, cout) * sizeof *scr);
         for (int co = 0; co < cout; co++)
            for (int ci = 0; ci < cin; ci++)
               for (int tap = 0; tap < 9; tap++)
                  wt[((size_t)co * cin + ci) * 9 + tap] = w[((size_t)co * 9 + tap) * cin + ci];
         op_winograd_weights(cout, cin, wt, u);
         outw = malloc(out_n * sizeof *outw);
         for (size_t i = 0; i < out_n; i++) outw[i] = 1.0f;
         op_conv3x3_winograd(n, H, H, cin, src, lds, cout, u, b, 1.0f, outw, ldo, scr);
         for (int bb = 0; bb < n; bb++) {
            for (size_t i = 0; i < out_s; i++) one[i] = 1.0f;
            op_conv3x3_winograd(1, H, H, cin, src + bb * in_s, lds, cout, u, b, 1.0f, one, ldo, scr);
            if (memcmp(one, outw + bb * out_s, out_s * sizeof *one) != 0) conv_variant++;
         }
         free(wt); free(u); free(scr);
      }
      for (int co = 0; co < cout; co++)
         for (int bb = 0; bb < n; bb++)
            for (int y = 0; y < Ho; y++)
               for (int x = 0; x < Ho; x++) {
                  double acc = 1.0 + b[co];
                  for (int ci = 0; ci < cin; ci++)
                     for (int ky = 0; ky < 3; ky++)
                        for (int kx = 0; kx < 3; kx++) {
                           const int yi = y * st + ky - 1, xi = x * st + kx - 1;
                           if (yi < 0 || xi < 0 || yi >= H || xi >= H) continue;
                           acc += (double)w[((co * 3 + ky) * 3 + kx) * cin + ci] *
                                  in[(((size_t)bb * H0 + yi / up) * H0 + xi / up) * ld + ci];
                        }
                  const size_t at = (((size_t)bb * Ho + y) * Ho + x) * ldo + co;
                  const double d = fabs(acc - out[at]);
                  if (d > worst) worst = d;
                  if (outw != NULL && fabs(acc - outw[at]) > worst_w) worst_w = fabs(acc - outw[at]);
               }
      free(in); free(w); free(upb); free(b); free(out); free(col); free(outw); free(one);
   }
   printf("  %-22s max|err| %.3g over %zu shapes\n", "conv3x3 vs direct", worst, sizeof cases / sizeof cases[0]);
   CHECK(worst < 1e-3, "op_conv3x3 differs from a direct convolution by %.3g", worst);
   printf("  %-22s max|err| %.3g\n", "winograd vs direct", worst_w);
   CHECK(worst_w < 1e-3, "op_conv3x3_winograd differs from a direct convolution by %.3g", worst_w);
   CHECK(conv_variant == 0, "im2col / Winograd convolution: %d samples alone differ from their rows of the batch",
         conv_variant);
}

/* Batch invariance (engine.h, shapes_velocity): a sample's velocity depends only on its own
 * x, t and condition, bit for bit, never on n, on its position in the batch or on the other
 * samples (the host replays one node of a search tree alone). Reference: every sample of a
 * pool evaluated alone (n = 1); then the same samples inside batches of 16, of 33 (chunks of
 * 16 + 16 + 1, samples at other positions, beside other samples), of 5 in reverse order, of
 * 2 copies of one sample, and a guided batch [m positive rows; the same x under the empty
 * condition] with a different t per row. The blocks path (prologue + blocks + epilogue) and
 * the text encoder must be invariant too. Fails when any sgemm's shape depends on n. */
static float tb_uniform(unsigned *s) {
   *s = *s * 1664525u + 1013904223u;
   return (float)(*s >> 8) / 16777216.0f;
}

/* Rows of got (n samples at indices idx) that are not bit-identical to ref; max |diff|. */
static int tb_mismatches(const float *got, const float *ref, const int *idx, int n, size_t size, double *maxd) {
   int bad = 0;
   for (int r = 0; r < n; r++) {
      const float *g = got + (size_t)r * size, *w = ref + (size_t)idx[r] * size;
      if (memcmp(g, w, size * sizeof *g) != 0) {
         bad++;
         const double d = tu_max_err(g, w, size, NULL);
         if (d > *maxd) *maxd = d;
      }
   }
   return bad;
}

static void test_batch_invariance(const shapes_engine_t *e) {
   const shapes_config_t *c = shapes_engine_config(e);
   enum { POOL = 40 };
   const size_t ls = (size_t)c->latent_size, cs = (size_t)c->condition_size, L = (size_t)c->max_tokens;
   float *x = malloc(POOL * ls * sizeof *x), *t = malloc(POOL * sizeof *t);
   float *cond = malloc(POOL * cs * sizeof *cond), *neg = malloc(cs * sizeof *neg);
   float *vref = malloc(POOL * ls * sizeof *vref), *v = malloc(2 * POOL * ls * sizeof *v);
   float *bx = malloc(2 * POOL * ls * sizeof *bx), *bt = malloc(2 * POOL * sizeof *bt);
   float *bc = malloc(2 * POOL * cs * sizeof *bc);
   int32_t *ids = calloc(POOL * L, sizeof *ids);
   int idx[2 * POOL];
   unsigned s = 20240611u;
   for (size_t i = 0; i < POOL * ls; i++) x[i] = 4.0f * tb_uniform(&s) - 2.0f;
   for (int i = 0; i < POOL; i++) {
      t[i] = i % 7 == 0 ? 1.0f : i % 11 == 0 ? 0.0f : tb_uniform(&s);
      const int words = i % 5 == 4 ? 0 : 1 + (int)(tb_uniform(&s) * (float)L) % (int)L; /* some empty prompts */
      for (int k = 0; k < words; k++)
         ids[(size_t)i * L + k] = 1 + (int)(tb_uniform(&s) * (float)(c->vocab_size - 1)) % (c->vocab_size - 1);
   }
   /* A corrector: random reflections (some empty) and reference images (some absent). */
   const size_t RT = (size_t)c->ref_tokens, IMG = (size_t)c->cond_channels * c->image_size * c->image_size;
   int32_t *rids = NULL;
   float *rimg = NULL;
   if (c->is_corrector) {
      rids = calloc(POOL * RT, sizeof *rids);
      rimg = calloc(POOL * IMG, sizeof *rimg);
      for (int i = 0; i < POOL; i++) {
         const int words = i % 3 == 2 ? 0 : 1 + (int)(tb_uniform(&s) * (float)RT) % (int)RT;
         for (int k = 0; k < words; k++)
            rids[(size_t)i * RT + k] = 1 + (int)(tb_uniform(&s) * (float)(c->ref_vocab_size - 1)) % (c->ref_vocab_size - 1);
         if (i % 4 != 3)
            for (size_t k = 0; k < IMG; k++) rimg[(size_t)i * IMG + k] = 2.0f * tb_uniform(&s) - 1.0f;
      }
   }
   /* Conditions one at a time, then the text encoder on all rows at once must agree. */
   for (int i = 0; i < POOL; i++)
      CHECK(shapes_encode_cond(e, 1, ids + (size_t)i * L, rids ? rids + (size_t)i * RT : NULL,
                               rimg ? rimg + (size_t)i * IMG : NULL, cond + (size_t)i * cs, NULL, 0) == 0, "encode_cond");
   CHECK(shapes_encode_cond(e, POOL, ids, rids, rimg, bc, NULL, 0) == 0, "encode_cond");
   free(rids);
   free(rimg);
   int enc_bad = 0;
   for (int i = 0; i < POOL; i++) enc_bad += memcmp(bc + (size_t)i * cs, cond + (size_t)i * cs, cs * sizeof *bc) != 0;
   printf("  %-22s %d of %d conditions differ between a batch of %d and one at a time\n", "encode batch-invariant",
          enc_bad, POOL, POOL);
   CHECK(enc_bad == 0, "text encoder: %d of %d conditions depend on the batch", enc_bad, POOL);
   {
      int32_t empty[1024] = {0};
      shapes_encode_text(e, 1, empty, neg, NULL, 0);
   }
   for (int i = 0; i < POOL; i++)
      CHECK(shapes_velocity(e, 1, x + i * ls, t + i, cond + (size_t)i * cs, vref + i * ls, NULL, 0) == 0, "velocity");

   int bad = 0, total = 0;
   double maxd = 0.0;
   /* Gathers samples idx[0..n) into one batch and checks each row against its reference. */
#define TB_RUN(n_)                                                                                        \
   do {                                                                                                   \
      for (int r = 0; r < (n_); r++) {                                                                    \
         memcpy(bx + (size_t)r * ls, x + (size_t)idx[r] * ls, ls * sizeof *bx);                          \
         bt[r] = t[idx[r]];                                                                               \
         memcpy(bc + (size_t)r * cs, cond + (size_t)idx[r] * cs, cs * sizeof *bc);                        \
      }                                                                                                   \
      CHECK(shapes_velocity(e, (uint32_t)(n_), bx, bt, bc, v, NULL, 0) == 0, "velocity batch %d", (n_)); \
      bad += tb_mismatches(v, vref, idx, (n_), ls, &maxd);                                                \
      total += (n_);                                                                                      \
   } while (0)
   for (int r = 0; r < 16; r++) idx[r] = r; /* batch of 16: samples 0..15 at their own rows */
   TB_RUN(16);
   for (int r = 0; r < 33; r++) idx[r] = 7 + r; /* 33: 16 + 16 + 1 chunks, everything shifted */
   TB_RUN(33);
   for (int r = 0; r < 5; r++) idx[r] = 20 - 3 * r; /* 5, reverse order */
   TB_RUN(5);
   idx[0] = idx[1] = 3; /* the same sample twice */
   TB_RUN(2);
   for (int r = 0; r < 4; r++) idx[r] = 36 + r; /* 4, the last ones */
   TB_RUN(4);
#undef TB_RUN
   printf("  %-22s %d of %d samples in batches of 16/33/5/2/4 differ from the sample alone (max|diff| %.3g)\n",
          "velocity batch-invariant", bad, total, maxd);
   CHECK(bad == 0, "velocity depends on the batch: %d of %d samples differ from the sample alone (max %.3g)", bad,
         total, maxd);

   /* Guided: [m positive rows; the same x under the empty condition], t varying per pair. */
   {
      const int m = 12;
      float *gref = malloc((size_t)m * ls * sizeof *gref);
      int gbad = 0;
      double gmax = 0.0;
      for (int r = 0; r < m; r++) {
         const int i = 2 + 3 * r;
         memcpy(bx + (size_t)r * ls, x + (size_t)i * ls, ls * sizeof *bx);
         memcpy(bx + (size_t)(m + r) * ls, x + (size_t)i * ls, ls * sizeof *bx);
         bt[r] = bt[m + r] = t[i];
         memcpy(bc + (size_t)r * cs, cond + (size_t)i * cs, cs * sizeof *bc);
         memcpy(bc + (size_t)(m + r) * cs, neg, cs * sizeof *bc);
         idx[r] = i;
         CHECK(shapes_velocity(e, 1, x + (size_t)i * ls, t + i, neg, gref + (size_t)r * ls, NULL, 0) == 0, "velocity");
      }
      CHECK(shapes_velocity(e, (uint32_t)(2 * m), bx, bt, bc, v, NULL, 0) == 0, "guided velocity");
      gbad += tb_mismatches(v, vref, idx, m, ls, &gmax);
      int nidx[POOL];
      for (int r = 0; r < m; r++) nidx[r] = r;
      gbad += tb_mismatches(v + (size_t)m * ls, gref, nidx, m, ls, &gmax);
      printf("  %-22s %d of %d rows of a guided batch of %d differ from the row alone (max|diff| %.3g)\n",
             "guided batch-invariant", gbad, 2 * m, 2 * m, gmax);
      CHECK(gbad == 0, "guided batch [pos; neg]: %d of %d rows differ from the row alone (max %.3g)", gbad, 2 * m, gmax);
      free(gref);
   }

   /* The blocks path at n = 16 against n = 1 (the per-sample results above). */
   {
      const int n = 16;
      float *hid = malloc((size_t)n * c->hidden_size * sizeof *hid), *ctx = malloc((size_t)n * c->context_size * sizeof *ctx);
      for (int r = 0; r < n; r++) idx[r] = 39 - 2 * r;
      for (int r = 0; r < n; r++) {
         memcpy(bx + (size_t)r * ls, x + (size_t)idx[r] * ls, ls * sizeof *bx);
         bt[r] = t[idx[r]];
         memcpy(bc + (size_t)r * cs, cond + (size_t)idx[r] * cs, cs * sizeof *bc);
      }
      int ok = shapes_prologue(e, n, bx, bt, bc, hid, ctx, NULL, 0) == 0;
      for (int i = 0; ok && i < c->mid_layers; i++) ok = shapes_block(e, (uint32_t)i, n, hid, ctx, NULL, 0) == 0;
      ok = ok && shapes_epilogue(e, n, hid, ctx, v, NULL, NULL, 0) == 0;
      CHECK(ok, "blocks path");
      double bmax = 0.0;
      const int bbad = tb_mismatches(v, vref, idx, n, ls, &bmax);
      printf("  %-22s %d of %d samples differ from velocity of the sample alone (max|diff| %.3g)\n",
             "blocks batch-invariant", bbad, n, bmax);
      CHECK(bbad == 0, "blocks path at n = %d: %d samples differ from the sample alone (max %.3g)", n, bbad, bmax);
      free(hid);
      free(ctx);
   }

   /* OpenBLAS threads split a product's rows and columns, never its sum, but a split puts
    * other elements into the kernels' edge tiles, so the thread count may change the bits
    * (it does on OpenBLAS 0.3.21). It is fixed per process (shapes_engine_set_threads), and
    * at a fixed count a sample's products have the same shapes, hence the same split, in
    * every batch: batch invariance must hold at 2 threads too. */
   {
      shapes_engine_set_threads(2);
      float *v1 = malloc(16 * ls * sizeof *v1);
      for (int r = 0; r < 16; r++) idx[r] = 4 + 2 * r;
      for (int r = 0; r < 16; r++)
         CHECK(shapes_velocity(e, 1, x + (size_t)idx[r] * ls, t + idx[r], cond + (size_t)idx[r] * cs, v1 + (size_t)r * ls,
                               NULL, 0) == 0, "velocity, 2 threads");
      for (int r = 0; r < 16; r++) {
         memcpy(bx + (size_t)r * ls, x + (size_t)idx[r] * ls, ls * sizeof *bx);
         bt[r] = t[idx[r]];
         memcpy(bc + (size_t)r * cs, cond + (size_t)idx[r] * cs, cs * sizeof *bc);
      }
      CHECK(shapes_velocity(e, 16, bx, bt, bc, v, NULL, 0) == 0, "velocity, 2 threads");
      int nidx[16];
      for (int r = 0; r < 16; r++) nidx[r] = r;
      double m2 = 0.0, m21 = 0.0;
      const int bad2 = tb_mismatches(v, v1, nidx, 16, ls, &m2);
      const int differ = tb_mismatches(v1, vref, idx, 16, ls, &m21);
      shapes_engine_set_threads(1);
      printf("  %-22s %d of 16 samples in a batch of 16 differ from the sample alone at 2 OpenBLAS threads "
             "(max|diff| %.3g); 2 vs 1 thread: %d of 16 differ (max|diff| %.3g, allowed)\n",
             "2 threads invariant", bad2, m2, differ, m21);
      CHECK(bad2 == 0, "2 OpenBLAS threads: %d of 16 samples depend on the batch (max %.3g)", bad2, m2);
      free(v1);
   }
   free(x); free(t); free(cond); free(neg); free(vref); free(v); free(bx); free(bt); free(bc); free(ids);
}

int main(int argc, char **argv) {
   if (argc != 3) {
      fprintf(stderr, "usage: %s WEIGHTS TESTVECTORS\n", argv[0]);
      return 2;
   }
   const char *wpath = argv[1], *vpath = argv[2];
   char err[1024];
   printf("test_engine: %s vs %s\n", wpath, vpath);
   shapes_engine_set_threads(1);
   test_conv();
   vec = st_open(vpath, ST_F32 | ST_I32, err, sizeof err);
   if (vec == NULL) {
      printf("FAIL cannot read the test vectors: %s\n(run Plugins/shapes/tests/refresh_vectors.sh)\n", err);
      tu_failed++;
      return tu_finish();
   }
   /* 1. The vectors must come from exactly these weights. */
   char sha[65];
   const char *want = st_meta(vec, "weights_sha256");
   if (sha256_file_hex(wpath, sha) != 0) {
      printf("FAIL cannot read the weights %s\n", wpath);
      tu_failed++;
      return tu_finish();
   }
   if (want == NULL || strcmp(want, sha) != 0) {
      printf("FAIL test vectors were exported from weights %s, the weights file is %s: "
             "run Plugins/shapes/tests/refresh_vectors.sh\n", want ? want : "(unknown)", sha);
      tu_failed++;
      return tu_finish();
   }
   tu_passed++;
   printf("  weights sha256 %.16s... (training step %s) matches the vectors\n", sha,
          st_meta(vec, "weights_steps") ? st_meta(vec, "weights_steps") : "?");

   shapes_engine_t *e = shapes_engine_load(wpath, err, sizeof err);
   CHECK(e != NULL, "load: %s", err);
   if (e == NULL)
      return tu_finish();
   const shapes_config_t *c = shapes_engine_config(e);
   printf("  config: width %d, mid_layers %d, text_layers %d, condition %d, hidden %d, context %d floats\n",
          c->width, c->mid_layers, c->text_layers, c->condition_size, c->hidden_size, c->context_size);
   const char *ml = st_meta(vec, "mid_layers");
   CHECK(ml != NULL && atoi(ml) == c->mid_layers, "vectors mid_layers %s != engine %d", ml ? ml : "?", c->mid_layers);
   const int corrector = c->is_corrector;
   if (corrector)
      printf("  corrector: reflection %d tokens (vocabulary %d), reference %d x %d x %d, text prefix %d tokens\n",
             c->ref_tokens, c->ref_vocab_size, c->cond_channels, c->image_size, c->image_size, c->text_tokens);
   CHECK((st_find(vec, "ref_tokens") != NULL) == (corrector != 0),
         "the vectors are %s vectors, the weights %s", st_find(vec, "ref_tokens") ? "corrector" : "base model",
         corrector ? "a corrector" : "a base model");
   if ((st_find(vec, "ref_tokens") != NULL) != (corrector != 0))
      return tu_finish();

   /* 2. Tokenizer. */
   const char *cases_json = st_meta(vec, "tokenizer_cases");
   sj_value *cases = cases_json ? sj_parse(cases_json, strlen(cases_json), err, sizeof err) : NULL;
   CHECK(cases != NULL && cases->type == SJ_ARRAY, "tokenizer_cases metadata missing or bad");
   for (size_t i = 0; cases != NULL && i < cases->length; i++) {
      const sj_value *cs = &cases->items[i];
      const char *caption = cs->items[0].string;
      int32_t ids[64];
      int rc = shapes_tokenize(e, caption, ids, err, sizeof err);
      if (cs->items[1].type == SJ_NULL) {
         CHECK(rc == SHAPES_EINVAL, "tokenize(\"%s\") should fail", caption);
         if (rc != SHAPES_OK) printf("  tokenize(\"%s\") -> %s\n", caption, err);
      } else {
         int same = rc == SHAPES_OK;
         for (int k = 0; same && k < c->max_tokens; k++)
            same = (uint64_t)ids[k] == cs->items[1].items[k].uint_value;
         CHECK(same, "tokenize(\"%s\") differs from world.encode (rc %d: %s)", caption, rc, rc ? err : "");
      }
   }
   sj_free(cases);
   if (corrector) {
      /* 2b. Reflection tokenizer (data.encode_reflection): never an error. */
      const char *rj = st_meta(vec, "reflection_tokenizer_cases");
      sj_value *rc_cases = rj ? sj_parse(rj, strlen(rj), err, sizeof err) : NULL;
      CHECK(rc_cases != NULL && rc_cases->type == SJ_ARRAY, "reflection_tokenizer_cases metadata missing or bad");
      int rbad = 0;
      for (size_t i = 0; rc_cases != NULL && i < rc_cases->length; i++) {
         const sj_value *cs = &rc_cases->items[i];
         int32_t rid[1024];
         int rc = shapes_tokenize_reflection(e, cs->items[0].string, rid, err, sizeof err);
         int same = rc == SHAPES_OK && cs->items[1].length == (size_t)c->ref_tokens;
         for (int k = 0; same && k < c->ref_tokens; k++)
            same = (uint64_t)rid[k] == cs->items[1].items[k].uint_value;
         CHECK(same, "tokenize_reflection(\"%s\") differs from data.encode_reflection (rc %d)", cs->items[0].string, rc);
         rbad += !same;
      }
      printf("  reflection tokenizer: %zu cases, %d differ from data.encode_reflection\n",
             rc_cases ? rc_cases->length : 0, rbad);
      sj_free(rc_cases);
      int32_t rid[1024];
      CHECK(shapes_tokenize_reflection(e, NULL, rid, err, sizeof err) == SHAPES_EINVAL, "NULL reflection accepted");
   } else {
      int32_t rid[1024];
      float one[8];
      CHECK(shapes_tokenize_reflection(e, "Make it red.", rid, err, sizeof err) == SHAPES_EINVAL && strstr(err, "base model"),
            "a base model must refuse a reflection: %s", err);
      CHECK(shapes_encode_reference(e, "a red circle", "", NULL, 0, one, err, sizeof err) == SHAPES_EINVAL &&
               strstr(err, "not a corrector"), "a base model must refuse encode_reference: %s", err);
   }

   /* 3. Forward pieces. */
   size_t nx, ntok;
   float *tokf = get("tokens", &ntok), *x = get("x", &nx), *t = get("t", NULL);
   const uint32_t R = (uint32_t)(ntok / (size_t)c->max_tokens);
   int32_t *ids = malloc(ntok * sizeof *ids);
   for (size_t i = 0; i < ntok; i++) ids[i] = (int32_t)tokf[i];
   const size_t L = (size_t)c->max_tokens, D = (size_t)c->width, T = (size_t)c->text_tokens;
   const size_t RT = (size_t)c->ref_tokens, IMG = (size_t)c->cond_channels * c->image_size * c->image_size;
   float *cond = malloc((size_t)R * c->condition_size * sizeof *cond);
   int32_t *rids = NULL;
   float *rimg = NULL;
   if (corrector) {
      size_t nr;
      float *rf = get("ref_tokens", &nr);
      CHECK(nr == R * RT, "ref_tokens: %zu ids for %u rows of %zu", nr, R, RT);
      rids = malloc(nr * sizeof *rids);
      for (size_t i = 0; i < nr; i++) rids[i] = (int32_t)rf[i];
      free(rf);
      rimg = get("ref_img", NULL);
   }
   float *h0 = malloc((size_t)R * L * D * sizeof *h0);
   CHECK(shapes_text_hidden(e, R, ids, 1, h0, err, sizeof err) == 0, "text_hidden: %s", err);
   float *ref = get("txt_block0", NULL);
   CHECK_CLOSE("text block 0", h0, ref, R * L * D, TOL);
   free(ref);
   CHECK(shapes_encode_cond(e, R, ids, rids, rimg, cond, err, sizeof err) == 0, "encode_cond: %s", err);
   if (corrector) {
      float *rt = malloc(R * RT * D * sizeof *rt);
      for (uint32_t r = 0; r < R; r++)
         memcpy(rt + r * RT * D, cond + (size_t)r * c->condition_size + L * D, RT * D * sizeof *rt);
      float *rref = get("ref_txt", NULL);
      CHECK_CLOSE("ref_txt (reflection)", rt, rref, R * RT * D, TOL);
      free(rt);
      free(rref);
      int img_same = 1;
      for (uint32_t r = 0; r < R; r++)
         img_same &= memcmp(cond + (size_t)r * c->condition_size + (T + 1) * D, rimg + r * IMG, IMG * sizeof *rimg) == 0;
      CHECK(img_same, "the condition's reference image is not the one given");
   }
   float *txt = malloc((size_t)R * L * D * sizeof *txt);
   for (uint32_t r = 0; r < R; r++)
      memcpy(txt + r * L * D, cond + (size_t)r * c->condition_size, L * D * sizeof *txt);
   ref = get("txt", NULL);
   CHECK_CLOSE("txt (text encoder)", txt, ref, R * L * D, TOL);
   /* pooled part = mean of the tokens */
   double perr = 0.0;
   for (uint32_t r = 0; r < R; r++)
      for (size_t d = 0; d < D; d++) {
         double s = 0.0;
         for (size_t l = 0; l < L; l++) s += ref[(r * L + l) * D + d];
         double got = cond[(size_t)r * c->condition_size + T * D + d];
         if (fabs(got - s / (double)L) > perr) perr = fabs(got - s / (double)L);
      }
   printf("  %-22s max|err| %.3g\n", "pooled", perr);
   CHECK(perr < TOL, "pooled text vector error %.3g", perr);
   free(ref);
   /* a caption through the public encode equals the tokens path */
   float *cond1 = malloc((size_t)c->condition_size * sizeof *cond1);
   {
      /* row 0's caption: the base vectors' first prompt, or the corrector vectors' first row */
      char caption0[256] = "a red circle left of a blue square";
      const char *rows_json = corrector ? st_meta(vec, "rows") : NULL;
      sj_value *rows = rows_json ? sj_parse(rows_json, strlen(rows_json), err, sizeof err) : NULL;
      if (rows != NULL && rows->type == SJ_ARRAY && rows->length > 0 && rows->items[0].type == SJ_ARRAY)
         snprintf(caption0, sizeof caption0, "%s", rows->items[0].items[0].string);
      sj_free(rows);
      CHECK(shapes_encode(e, caption0, cond1, err, sizeof err) == 0, "encode: %s", err);
   }
   {
      /* same batch size (1) -> same bits; row 0 of the vectors is that caption (on a corrector
       * both are the caption with an empty reflection and no reference) */
      float *one = malloc((size_t)c->condition_size * sizeof *one);
      shapes_encode_text(e, 1, ids, one, NULL, 0);
      CHECK(memcmp(cond1, one, (size_t)c->condition_size * sizeof *one) == 0, "encode(caption) != encode_text(ids)");
      free(one);
   }
   CHECK(shapes_encode(e, "a purple circle", cond1, err, sizeof err) == SHAPES_EINVAL && strstr(err, "purple"),
         "unknown word should be refused naming it: %s", err);
   if (corrector) {
      /* encode_reference (8-bit image, texts) == the vectors' float path, bit for bit: rows
       * 0..2 carry an image (ref_rgb), row 3 none. */
      const char *rows_json = st_meta(vec, "rows");
      sj_value *rows = rows_json ? sj_parse(rows_json, strlen(rows_json), err, sizeof err) : NULL;
      CHECK(rows != NULL && rows->type == SJ_ARRAY && rows->length == R, "rows metadata missing or bad");
      float *rgbf = get("ref_rgb", NULL);
      const int S = c->image_size;
      const size_t stride = (size_t)3 * S + 5; /* a padded row: the stride is honoured */
      uint8_t *rgb = calloc((size_t)S * stride, 1);
      int same = 0;
      for (uint32_t r = 0; rows != NULL && r < R && r < rows->length; r++) {
         for (int y = 0; y < S; y++)
            for (int k = 0; k < 3 * S; k++) rgb[(size_t)y * stride + k] = (uint8_t)rgbf[((size_t)r * S + y) * 3 * S + k];
         const sj_value *row = &rows->items[r];
         const int rc = shapes_encode_reference(e, row->items[0].string, row->items[1].string, r == 3 ? NULL : rgb, stride,
                                                cond1, err, sizeof err);
         CHECK(rc == 0, "encode_reference row %u: %s", r, err);
         same += rc == 0 && memcmp(cond1, cond + (size_t)r * c->condition_size, (size_t)c->condition_size * sizeof *cond1) == 0;
      }
      printf("  encode_reference: %d of %u rows equal encode_cond of the vectors' tokens and images bit for bit\n", same, R);
      CHECK(same == (int)R, "encode_reference differs from encode_cond (%d of %u equal)", same, R);
      CHECK(shapes_encode_reference(e, "a red circle", "", rgb, (size_t)3 * S - 1, cond1, err, sizeof err) == SHAPES_EINVAL &&
               strstr(err, "stride"), "a short stride must be refused: %s", err);
      CHECK(shapes_encode_reference(e, "a red circle", NULL, rgb, stride, cond1, err, sizeof err) == SHAPES_EINVAL,
            "a NULL instruction must be refused");
      CHECK(shapes_encode_reference(e, "a purple circle", "", rgb, stride, cond1, err, sizeof err) == SHAPES_EINVAL &&
               strstr(err, "purple"), "an unknown caption word must be refused: %s", err);
      CHECK(shapes_encode_reference(e, "a red circle", "Zorgle the blorp, then FLIP it!", rgb, stride, cond1, err,
                                    sizeof err) == 0, "unknown instruction words are not an error: %s", err);
      /* a plain encode = empty reflection, no reference */
      float *c2 = malloc((size_t)c->condition_size * sizeof *c2);
      shapes_encode(e, "a red circle", cond1, NULL, 0);
      shapes_encode_reference(e, "a red circle", "", NULL, 0, c2, NULL, 0);
      CHECK(memcmp(cond1, c2, (size_t)c->condition_size * sizeof *c2) == 0,
            "encode(caption) != encode_reference(caption, \"\", no image)");
      free(c2);
      free(rgb);
      free(rgbf);
      sj_free(rows);
   }

   float *hidden = malloc((size_t)R * c->hidden_size * sizeof *hidden);
   float *context = malloc((size_t)R * c->context_size * sizeof *context);
   CHECK(shapes_prologue(e, R, x, t, cond, hidden, context, err, sizeof err) == 0, "prologue: %s", err);
   float *cs = malloc((size_t)R * c->cond_dim * sizeof *cs);
   const size_t e1 = (size_t)c->ch1 * c->n_img;
   float *enc1 = malloc((size_t)R * e1 * sizeof *enc1);
   for (uint32_t r = 0; r < R; r++) {
      memcpy(cs + (size_t)r * c->cond_dim, shapes_context_cs(e, context, r), (size_t)c->cond_dim * sizeof *cs);
      shapes_context_enc1(e, context, r, enc1 + r * e1);
   }
   ref = get("cs", NULL);
   CHECK_CLOSE("cs (conditioning)", cs, ref, (size_t)R * c->cond_dim, TOL);
   free(ref);
   ref = get("enc1", NULL);
   CHECK_CLOSE("enc1", enc1, ref, R * e1, TOL);
   free(ref);
   ref = get("mid_in", NULL);
   CHECK_CLOSE("mid_in", hidden, ref, (size_t)R * c->hidden_size, TOL);
   free(ref);
   for (int i = 0; i < c->mid_layers; i++) {
      CHECK(shapes_block(e, (uint32_t)i, R, hidden, context, err, sizeof err) == 0, "block %d: %s", i, err);
      if (i == 0 || i == c->mid_layers - 1) {
         ref = get(i == 0 ? "mid0" : "mid_last", NULL);
         CHECK_CLOSE(i == 0 ? "mid block 0" : "mid block last", hidden, ref, (size_t)R * c->hidden_size, TOL);
         free(ref);
      }
   }
   float *mid_out = malloc((size_t)R * e1 * sizeof *mid_out);
   float *v_blocks = malloc(nx * sizeof *v_blocks), *v = malloc(nx * sizeof *v);
   CHECK(shapes_epilogue(e, R, hidden, context, v_blocks, mid_out, err, sizeof err) == 0, "epilogue: %s", err);
   ref = get("mid_out", NULL);
   CHECK_CLOSE("mid_out", mid_out, ref, R * e1, TOL);
   free(ref);
   float *vref = get("v", NULL);
   CHECK_CLOSE("v (blocks path)", v_blocks, vref, nx, TOL);
   CHECK(shapes_velocity(e, R, x, t, cond, v, err, sizeof err) == 0, "velocity: %s", err);
   CHECK_CLOSE("v (velocity)", v, vref, nx, TOL);
   CHECK(memcmp(v, v_blocks, nx * sizeof *v) == 0, "prologue + blocks + epilogue != velocity bit for bit");
   /* determinism: same call twice */
   float *v2 = malloc(nx * sizeof *v2);
   shapes_velocity(e, R, x, t, cond, v2, NULL, 0);
   CHECK(memcmp(v, v2, nx * sizeof *v) == 0, "velocity is not deterministic");
   /* batch independence (to rounding): rows one at a time */
   const size_t ls = (size_t)c->latent_size;
   for (uint32_t r = 0; r < R; r++)
      shapes_velocity(e, 1, x + r * ls, t + r, cond + (size_t)r * c->condition_size, v2 + r * ls, NULL, 0);
   CHECK_CLOSE("v (batch of 1 vs 4)", v2, v, nx, 1e-4);
   CHECK(memcmp(v2, v, nx * sizeof *v) == 0, "velocity of each row alone != the batch of %u bit for bit", R);
   test_batch_invariance(e);

   /* 4. Two threads on the same engine at once give the single-thread result bit for bit. */
   {
      thread_arg_t a[2];
      pthread_t th[2];
      for (int k = 0; k < 2; k++) {
         a[k] = (thread_arg_t){e, R, x, t, cond, malloc(nx * sizeof(float)), 5, -1};
         pthread_create(&th[k], NULL, thread_main, &a[k]);
      }
      for (int k = 0; k < 2; k++) pthread_join(th[k], NULL);
      for (int k = 0; k < 2; k++) {
         CHECK(a[k].rc == 0, "thread %d failed", k);
         CHECK(memcmp(a[k].v, v, nx * sizeof *v) == 0, "thread %d result differs from the single-thread one", k);
         free(a[k].v);
      }
      printf("  2 threads x 5 velocity calls: identical to the single-thread result\n");
   }

   /* 5. Guided sampling, 8 Euler steps, CFG 1.75 against "" (model.sample). */
   {
      size_t ns;
      float *noise = get("sample_noise", &ns), *stf = get("sample_tokens", NULL), *sref = get("sample_out", NULL);
      const uint32_t B = (uint32_t)(ns / ls);
      int32_t *sid = calloc((size_t)2 * B * L, sizeof *sid); /* B prompts then B empty prompts */
      for (size_t i = 0; i < B * L; i++) sid[i] = (int32_t)stf[i];
      float *sc = malloc((size_t)2 * B * c->condition_size * sizeof *sc);
      if (corrector) {
         /* negative: empty caption and reflection, the SAME reference image */
         float *srf = get("sample_ref_tokens", NULL), *simg = get("sample_ref_img", NULL);
         int32_t *srid = calloc((size_t)2 * B * RT, sizeof *srid);
         float *simg2 = malloc((size_t)2 * B * IMG * sizeof *simg2);
         for (size_t i = 0; i < B * RT; i++) srid[i] = (int32_t)srf[i];
         memcpy(simg2, simg, B * IMG * sizeof *simg2);
         memcpy(simg2 + B * IMG, simg, B * IMG * sizeof *simg2);
         CHECK(shapes_encode_cond(e, 2 * B, sid, srid, simg2, sc, err, sizeof err) == 0, "encode_cond: %s", err);
         free(srf); free(simg); free(srid); free(simg2);
      } else {
         shapes_encode_text(e, 2 * B, sid, sc, NULL, 0);
      }
      float *xs = malloc(2 * B * ls * sizeof *xs), *vs = malloc(2 * B * ls * sizeof *vs), *ts = malloc(2 * B * sizeof *ts);
      memcpy(xs, noise, B * ls * sizeof *xs);
      const int steps = 8;
      const float g = 1.75f;
      for (int i = 0; i < steps; i++) {
         const float ti = 1.0f - (float)i / steps, tn = 1.0f - (float)(i + 1) / steps;
         memcpy(xs + B * ls, xs, B * ls * sizeof *xs);
         for (uint32_t k = 0; k < 2 * B; k++) ts[k] = ti;
         shapes_velocity(e, 2 * B, xs, ts, sc, vs, NULL, 0);
         for (size_t j = 0; j < B * ls; j++) {
            const float vn = vs[B * ls + j], vp = vs[j];
            xs[j] += (tn - ti) * (vn + g * (vp - vn));
         }
      }
      for (size_t j = 0; j < B * ls; j++) xs[j] = xs[j] < -1.0f ? -1.0f : xs[j] > 1.0f ? 1.0f : xs[j];
      CHECK_CLOSE("sample (8 steps, CFG)", xs, sref, B * ls, 5e-3);
      free(noise); free(stf); free(sref); free(sid); free(sc); free(xs); free(vs); free(ts);
   }

   /* 6. Timing (informative). */
   {
      struct timespec a, b;
      clock_gettime(CLOCK_MONOTONIC, &a);
      for (int k = 0; k < 3; k++) shapes_velocity(e, R, x, t, cond, v2, NULL, 0);
      clock_gettime(CLOCK_MONOTONIC, &b);
      double ms = ((double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6) / (3.0 * R);
      printf("  velocity: %.2f ms per sample (batch %u, this build's BLAS threads)\n", ms, R);
   }

   free(tokf); free(x); free(t); free(ids); free(cond); free(h0); free(txt); free(cond1); free(hidden);
   free(context); free(cs); free(enc1); free(mid_out); free(v_blocks); free(v); free(vref); free(v2);
   free(rids); free(rimg);
   shapes_engine_free(e);
   st_close(vec);
   return tu_finish();
}
