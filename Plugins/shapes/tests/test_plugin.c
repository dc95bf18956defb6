/* test_plugin.c: the shapes model plugin through the Assay ABI (dlopen, entry, factory,
 * instance, assay.model/1 and assay.model-blocks/1), with a minimal fake host.
 *
 *   test_plugin PATH/shapes.so WEIGHTS TURBO_WEIGHTS [TINY_WEIGHTS [CORRECTOR_WEIGHTS]]
 *
 * shapes-corrector (with CORRECTOR_WEIGHTS): refusals both ways (base weights under the
 * corrector id, corrector weights under shapes / shapes-turbo), its widened condition, the
 * base model's latent space, assay.model-reference.draft/1 (info, encode_reference equal to
 * the engine's shapes_encode_reference bit for bit, unknown instruction words accepted, bad
 * sizes / strides / NULLs reported through the host), blocks == velocity and batch
 * invariance on reference conditions.
 *
 * Checks: exactly the ABI's exported symbol, descriptors (shapes, shapes-turbo), refusal
 * reasons (missing weights, base weights offered to shapes-turbo,
 * corrupt weights, bad options), weights found beside the library, info, encode (and its
 * errors), the draft latent-space id (equal for shapes and shapes-turbo, another for the
 * tiny model), velocity determinism, batch invariance (shapes and shapes-turbo: a row alone ==
 * its row in any batch, guided ones too, bit for bit), prologue + all blocks + epilogue ==
 * velocity bit for bit, a cached evaluation (skipping blocks), decode rounding, two threads
 * at once. */
#define _POSIX_C_SOURCE 200809L
#include <assay/assay.h>
#include <assay/ext/draft/latent-space.h>
#include <assay/ext/draft/model-reference.h>
#include <dlfcn.h>
#include <pthread.h>

#include "engine.h"
#include "testutil.h"

static char last_error[2048];
static int errors_with_call, errors_without_call;

static void host_report(const assay_host_t *host, const assay_call_t *call, const char *message) {
   (void)host;
   snprintf(last_error, sizeof last_error, "%s", message);
   if (call) errors_with_call++; else errors_without_call++;
}
static void host_log(const assay_host_t *host, const assay_call_t *call, assay_log_level_t level, const char *m) {
   (void)host; (void)call; (void)level;
   printf("  [log] %s\n", m);
}
static bool host_cancelled(const assay_host_t *host, const assay_call_t *call) {
   (void)host; (void)call;
   return false;
}
static const void *host_ext(const assay_host_t *host, const char *id) {
   (void)host; (void)id;
   return NULL;
}

static const assay_host_t host = {ASSAY_VERSION_INIT, NULL, "test_plugin", "0", host_ext, host_log,
                                  host_cancelled, host_report};
static const assay_call_t call = {&host, 1, NULL};
static const assay_plugin_factory_t *factory;

/* Creates + inits an instance of plugin `id` with the given options; NULL (with last_error)
 * on refusal. */
static const assay_plugin_t *make_id(const char *id, const assay_option_t *opts, uint32_t count,
                                     assay_result_t *rc) {
   const assay_plugin_t *p = factory->create_plugin(factory, &host, id);
   if (p == NULL) return NULL;
   assay_options_t o = {count, count ? opts : NULL};
   last_error[0] = 0;
   *rc = p->init(p, &o);
   if (*rc != ASSAY_OK) {
      p->destroy(p);
      return NULL;
   }
   return p;
}

static const assay_plugin_t *make(const assay_option_t *opts, uint32_t count, assay_result_t *rc) {
   return make_id("shapes", opts, count, rc);
}

/* Plugin `id` finds its default weights file beside the library, as in the daemon's plugin
 * directory (skipped, saying so, when the Makefile has not copied them there). */
static void check_beside(const char *so, const char *id) {
   const char *file = strcmp(id, "shapes") == 0         ? "shapes-base.safetensors"
                      : strcmp(id, "shapes-turbo") == 0 ? "shapes-turbo.safetensors"
                                                        : "shapes-corrector.safetensors";
   char beside[4200];
   snprintf(beside, sizeof beside, "%s", so);
   char *slash = strrchr(beside, '/');
   snprintf(slash ? slash + 1 : beside, sizeof beside - (size_t)(slash ? slash + 1 - beside : 0), "%s", file);
   FILE *f = fopen(beside, "rb");
   if (f == NULL) {
      printf("  (no %s: skipping the beside-the-library case for %s)\n", beside, id);
      return;
   }
   fclose(f);
   assay_result_t rc;
   const assay_plugin_t *p = make_id(id, NULL, 0, &rc);
   CHECK(p != NULL, "%s: weights beside the library should load: %s", id, last_error);
   if (p) p->destroy(p);
}

/* Uniform Euler steps `from`..`to` of an n-step grid from t0 to 0 on `count` samples x (in
 * place), with conditions cond; guidance g != 1 doubles the batch (cond holds the positive
 * conditions, then the negative ones) and combines v_neg + g (v_pos - v_neg), as the host does.
 * xs and vs are scratch for 2 * count samples. */
static assay_result_t euler(const assay_plugin_t *p, const assay_model_ext_t *m, uint32_t count, float *x,
                            const float *cond, float t0, int n, int from, int to, float g, float *xs, float *vs) {
   assay_model_info_t info;
   m->get_info(p, &info);
   const size_t S = (size_t)info.latent_channels * info.latent_height * info.latent_width, size = count * S;
   const uint32_t rows = g != 1.0f ? 2 * count : count;
   float t[64];
   if (rows > 64) return ASSAY_ERR_INVALID_ARGUMENT;
   for (int st = from; st < to; st++) {
      const float ta = t0 * (1.0f - (float)st / n), tb = t0 * (1.0f - (float)(st + 1) / n);
      for (uint32_t i = 0; i < rows; i++) t[i] = ta;
      memcpy(xs, x, size * sizeof *xs);
      if (rows > count) memcpy(xs + size, x, size * sizeof *xs);
      assay_result_t rc = m->velocity(p, &call, rows, xs, t, cond, vs);
      if (rc != ASSAY_OK) return rc;
      for (size_t q = 0; q < size; q++)
         x[q] += (tb - ta) * (rows > count ? vs[size + q] + g * (vs[q] - vs[size + q]) : vs[q]);
   }
   return ASSAY_OK;
}

/* Mean |pixel difference| (0..255, over the 3 channels) between two RGB images of `pixels`
 * pixels, over the pixels that are foreground (some channel >= 128) in either. */
static double foreground_distance(const uint8_t *a, const uint8_t *b, size_t pixels) {
   double sum = 0;
   size_t fg = 0;
   for (size_t px = 0; px < pixels; px++) {
      const uint8_t *pa = a + px * 3, *pb = b + px * 3;
      if (pa[0] >= 128 || pa[1] >= 128 || pa[2] >= 128 || pb[0] >= 128 || pb[1] >= 128 || pb[2] >= 128) {
         for (int ch = 0; ch < 3; ch++) sum += fabs((double)pb[ch] - pa[ch]) / 3;
         fg++;
      }
   }
   return fg ? sum / (double)fg : 0;
}

typedef struct targ {
   const assay_plugin_t *p;
   const assay_model_ext_t *m;
   uint32_t n;
   const float *x, *t, *c;
   float *v;
   assay_result_t rc;
} targ_t;

static void *tmain(void *a) {
   targ_t *t = a;
   for (int r = 0; r < 4; r++)
      t->rc = t->m->velocity(t->p, &call, t->n, t->x, t->t, t->c, t->v);
   return NULL;
}

/* The draft latent-space id of an instance, copied into out (at most 128 chars of
 * [a-z0-9._/-], as latent-space.h requires); "" when the extension or the id is missing
 * or malformed (and a failed check says which). */
static void latent_id(const assay_plugin_t *p, const char *label, char *out, size_t size) {
   out[0] = 0;
   const assay_latent_space_ext_t *ls = p->get_extension(p, ASSAY_EXT_LATENT_SPACE_DRAFT);
   CHECK(ls != NULL && ls->id != NULL, "%s: no %s extension", label, ASSAY_EXT_LATENT_SPACE_DRAFT);
   if (ls == NULL || ls->id == NULL) return;
   const char *id = ls->id(p);
   CHECK(id != NULL, "%s: latent-space id is NULL", label);
   if (id == NULL) return;
   const size_t n = strlen(id);
   int ok = n >= 1 && n <= 128;
   for (size_t i = 0; ok && i < n; i++)
      ok = (id[i] >= 'a' && id[i] <= 'z') || (id[i] >= '0' && id[i] <= '9') || strchr("._/-", id[i]) != NULL;
   CHECK(ok, "%s: latent-space id \"%s\" is not 1-128 chars of [a-z0-9._/-]", label, id);
   CHECK(ls->id(p) == id, "%s: latent-space id must be constant for the instance's life", label);
   if (ok) snprintf(out, size, "%s", id);
   printf("  %s latent space: %s\n", label, id);
}

/* Batch invariance through the ABI (assay.model/1 velocity contract): a row's velocity is
 * bit-identical whether it is evaluated alone or inside any batch, at any position, beside
 * any other rows: batches of 16 and 17 (the engine works in chunks of 16), and a guided
 * batch [m positive rows; the same x under ""] with a different t per pair, as the host
 * sends them. Returns the number of rows that differ. */
static int batch_invariance(const assay_plugin_t *p, const assay_model_ext_t *m, const char *label) {
   assay_model_info_t info;
   m->get_info(p, &info);
   enum { POOL = 20, G = 9 };
   const size_t S = (size_t)info.latent_channels * info.latent_height * info.latent_width, CS = info.condition_size;
   const char *prompts[6] = {"a red circle", "two blue squares", "", "a green triangle above a yellow square",
                             "three yellow circles", "a blue square left of a red triangle"};
   float *pc = malloc(6 * CS * sizeof *pc), *x = malloc(POOL * S * sizeof *x), *t = malloc(POOL * sizeof *t);
   float *ref = malloc(POOL * S * sizeof *ref), *nref = malloc(G * S * sizeof *nref);
   float *bx = malloc(2 * POOL * S * sizeof *bx), *bt = malloc(2 * POOL * sizeof *bt);
   float *bc = malloc(2 * POOL * CS * sizeof *bc), *v = malloc(2 * POOL * S * sizeof *v);
   int prompt[POOL];
   for (int i = 0; i < 6; i++)
      CHECK(m->encode(p, &call, prompts[i], pc + (size_t)i * CS) == ASSAY_OK, "%s: encode %s", label, prompts[i]);
   unsigned seed = 99;
   for (size_t i = 0; i < POOL * S; i++) {
      seed = seed * 1664525u + 1013904223u;
      x[i] = ((float)(seed >> 8) / 16777216.0f) * 4.0f - 2.0f;
   }
   for (int i = 0; i < POOL; i++) {
      seed = seed * 1664525u + 1013904223u;
      t[i] = i == 0 ? 1.0f : (float)(seed >> 8) / 16777216.0f;
      prompt[i] = i % 6;
   }
   for (int i = 0; i < POOL; i++)
      CHECK(m->velocity(p, &call, 1, x + i * S, t + i, pc + (size_t)prompt[i] * CS, ref + i * S) == ASSAY_OK,
            "%s: velocity: %s", label, last_error);
   int bad = 0, rows = 0;
   /* Plain batches: 16 rows from sample 0, 17 rows from sample 3 (other positions, other
    * neighbours, one chunk of 16 + 1). */
   const int starts[2] = {0, 3}, counts[2] = {16, 17};
   for (int k = 0; k < 2; k++) {
      const int n = counts[k];
      for (int r = 0; r < n; r++) {
         const int i = starts[k] + r;
         memcpy(bx + (size_t)r * S, x + (size_t)i * S, S * sizeof *bx);
         bt[r] = t[i];
         memcpy(bc + (size_t)r * CS, pc + (size_t)prompt[i] * CS, CS * sizeof *bc);
      }
      CHECK(m->velocity(p, &call, (uint32_t)n, bx, bt, bc, v) == ASSAY_OK, "%s: velocity: %s", label, last_error);
      for (int r = 0; r < n; r++)
         bad += memcmp(v + (size_t)r * S, ref + (size_t)(starts[k] + r) * S, S * sizeof *v) != 0;
      rows += n;
   }
   /* Guided: [G positive rows; the same x and t under ""], t differing between pairs. */
   for (int r = 0; r < G; r++) {
      const int i = 2 * r + 1;
      memcpy(bx + (size_t)r * S, x + (size_t)i * S, S * sizeof *bx);
      memcpy(bx + (size_t)(G + r) * S, x + (size_t)i * S, S * sizeof *bx);
      bt[r] = bt[G + r] = t[i];
      memcpy(bc + (size_t)r * CS, pc + (size_t)prompt[i] * CS, CS * sizeof *bc);
      memcpy(bc + (size_t)(G + r) * CS, pc + 2 * CS, CS * sizeof *bc);
      CHECK(m->velocity(p, &call, 1, x + (size_t)i * S, t + i, pc + 2 * CS, nref + (size_t)r * S) == ASSAY_OK,
            "%s: velocity: %s", label, last_error);
   }
   CHECK(m->velocity(p, &call, 2 * G, bx, bt, bc, v) == ASSAY_OK, "%s: guided velocity: %s", label, last_error);
   for (int r = 0; r < G; r++) {
      bad += memcmp(v + (size_t)r * S, ref + (size_t)(2 * r + 1) * S, S * sizeof *v) != 0;
      bad += memcmp(v + (size_t)(G + r) * S, nref + (size_t)r * S, S * sizeof *v) != 0;
   }
   rows += 2 * G;
   printf("  %s batch invariance: %d of %d rows in batches of 16, 17 and guided 2 x %d differ from the row alone\n",
          label, bad, rows, G);
   CHECK(bad == 0, "%s: velocity depends on the batch: %d of %d rows differ from the row alone", label, bad, rows);
   free(pc); free(x); free(t); free(ref); free(nref); free(bx); free(bt); free(bc); free(v);
   return bad;
}

/* A 32x32-ish RGB test picture: black, a red square and a blue disc, rows `stride` bytes apart
 * (padding bytes 0xAB: never read). */
static void test_picture(uint8_t *rgb, uint32_t S, uint32_t stride, int variant) {
   memset(rgb, 0xAB, (size_t)S * stride);
   for (uint32_t y = 0; y < S; y++)
      for (uint32_t x = 0; x < S; x++) {
         uint8_t *px = rgb + (size_t)y * stride + x * 3;
         const int sq = x >= 4 + (uint32_t)variant && x < 14 + (uint32_t)variant && y >= 6 && y < 16;
         const int dx = (int)x - 22, dy = (int)y - 20, disc = dx * dx + dy * dy <= 25;
         px[0] = sq ? 255 : 0;
         px[1] = (uint8_t)(disc && variant ? 255 : 0);
         px[2] = disc ? 255 : 0;
      }
}

/* shapes-corrector through the ABI. */
static void test_corrector(const char *so, const char *cweights, const char *weights, const char *turbo_weights,
                           const char *base_space) {
   (void)so;
   (void)turbo_weights;
   assay_result_t rc;
   assay_option_t o_base = {"weights", ASSAY_OPTION_STRING, weights, 0};
   CHECK(make_id("shapes-corrector", &o_base, 1, &rc) == NULL && rc == ASSAY_ERR_INVALID_ARGUMENT &&
            strncmp(last_error, "shapes-corrector: ", 18) == 0 && strstr(last_error, "not a corrector"),
         "base weights offered to shapes-corrector must be refused, naming the plugin: rc %d, \"%s\"", rc, last_error);
   printf("  shapes-corrector with base weights -> %.160s...\n", last_error);
   assay_option_t o_corr = {"weights", ASSAY_OPTION_STRING, cweights, 0};
   CHECK(make_id("shapes", &o_corr, 1, &rc) == NULL && rc == ASSAY_ERR_INVALID_ARGUMENT &&
            strncmp(last_error, "shapes: ", 8) == 0 && strstr(last_error, "\"shapes-corrector\""),
         "corrector weights offered to shapes must be refused, naming the right id: rc %d, \"%s\"", rc, last_error);
   printf("  shapes with corrector weights -> %.160s...\n", last_error);
   CHECK(make_id("shapes-turbo", &o_corr, 1, &rc) == NULL && rc == ASSAY_ERR_INVALID_ARGUMENT &&
            strstr(last_error, "\"shapes-corrector\""),
         "corrector weights offered to shapes-turbo must be refused: rc %d, \"%s\"", rc, last_error);

   const assay_plugin_t *pc = make_id("shapes-corrector", &o_corr, 1, &rc);
   CHECK(pc != NULL, "shapes-corrector init: %s", last_error);
   if (pc == NULL) return;
   const assay_model_ext_t *m = pc->get_extension(pc, ASSAY_EXT_MODEL);
   const assay_model_blocks_ext_t *bx = pc->get_extension(pc, ASSAY_EXT_MODEL_BLOCKS);
   const assay_model_reference_ext_t *rx = pc->get_extension(pc, ASSAY_EXT_MODEL_REFERENCE_DRAFT);
   CHECK(m != NULL && bx != NULL && rx != NULL && rx->get_info != NULL && rx->encode_reference != NULL,
         "shapes-corrector extensions (model, blocks, model-reference)");
   if (m == NULL || bx == NULL || rx == NULL) { pc->destroy(pc); return; }
   char space[160];
   latent_id(pc, "shapes-corrector", space, sizeof space);
   CHECK(strcmp(space, base_space) == 0, "shapes-corrector must declare the base model's latent space (\"%s\" vs \"%s\")",
         space, base_space);
   assay_model_info_t info;
   m->get_info(pc, &info);
   assay_model_reference_info_t ri;
   memset(&ri, 0xff, sizeof ri);
   rx->get_info(pc, &ri);
   printf("  corrector info: condition %u floats, steps %u, guidance %.2f; reference %ux%u, %u instruction words\n",
          info.condition_size, info.default_steps, (double)info.default_guidance, ri.image_width, ri.image_height,
          ri.max_instruction_words);
   CHECK(info.condition_size == (8 + 24) * 160 + 160 + 3 * 32 * 32 && info.latent_channels == 3 &&
            info.latent_height == 32 && info.default_steps == 20 && info.default_guidance == 1.75f,
         "corrector info: condition %u (want 8352), the base model's latent and defaults", info.condition_size);
   CHECK(ri.image_width == 32 && ri.image_height == 32 && ri.max_instruction_words == 24, "reference info");

   /* encode_reference == the engine's shapes_encode_reference, bit for bit. */
   char err[1024];
   shapes_engine_t *e = shapes_engine_load(cweights, err, sizeof err);
   CHECK(e != NULL, "engine load: %s", err);
   const uint32_t S = ri.image_width, CS = info.condition_size, LS = 3 * S * S, stride = 3 * S + 7;
   uint8_t *rgb = malloc((size_t)S * stride), *rgb2 = malloc((size_t)S * stride);
   test_picture(rgb, S, stride, 0);
   test_picture(rgb2, S, stride, 3);
   assay_image_t img = {S, S, stride, rgb}, img2 = {S, S, stride, rgb2};
   float *c1 = malloc((size_t)4 * CS * sizeof *c1), *c2 = malloc((size_t)CS * sizeof *c2);
   const char *prompt = "a red square left of a blue circle", *instr = "Move the red square to the left of the blue circle.";
   CHECK(rx->encode_reference(pc, &call, prompt, instr, &img, c1) == ASSAY_OK, "encode_reference: %s", last_error);
   if (e != NULL) {
      CHECK(shapes_encode_reference(e, prompt, instr, rgb, stride, c2, err, sizeof err) == 0, "engine: %s", err);
      CHECK(memcmp(c1, c2, (size_t)CS * sizeof *c1) == 0, "plugin encode_reference != engine shapes_encode_reference");
      int in_range = 1;
      for (uint32_t k = 0; k < LS; k++) in_range &= c1[CS - LS + k] >= -1.0f && c1[CS - LS + k] <= 1.0f;
      CHECK(in_range && c1[CS - LS] == -1.0f, "the reference image part must be the picture in [-1, 1]");
   }
   /* unknown instruction words are not an error; neither is an overlong instruction */
   errors_with_call = 0;
   CHECK(rx->encode_reference(pc, &call, prompt, "Frobnicate the zorgle, then FLIP it upside-down!", &img, c2) == ASSAY_OK &&
            errors_with_call == 0, "unknown instruction words must not be an error: %s", last_error);
   CHECK(rx->encode_reference(pc, &call, prompt, "one two three four five six seven eight nine ten eleven twelve thirteen "
                              "fourteen fifteen sixteen seventeen eighteen nineteen twenty twenty-one twenty-two "
                              "twenty-three twenty-four twenty-five twenty-six", &img, c2) == ASSAY_OK,
         "an instruction longer than max_instruction_words must not be an error: %s", last_error);
   /* errors, reported with the call */
   assay_image_t small = {S / 2, S / 2, stride, rgb}, narrow = {S, S, 3 * S - 1, rgb}, nopix = {S, S, stride, NULL};
   errors_with_call = 0;
   CHECK(rx->encode_reference(pc, &call, prompt, "", &small, c2) == ASSAY_ERR_INVALID_ARGUMENT && strstr(last_error, "16x16") &&
            strncmp(last_error, "shapes-corrector: ", 18) == 0, "a 16x16 image must be refused: %s", last_error);
   printf("  encode_reference(16x16 image) -> %.160s\n", last_error);
   CHECK(rx->encode_reference(pc, &call, prompt, "", &narrow, c2) == ASSAY_ERR_INVALID_ARGUMENT && strstr(last_error, "stride"),
         "a short stride must be refused: %s", last_error);
   CHECK(rx->encode_reference(pc, &call, prompt, "", &nopix, c2) == ASSAY_ERR_INVALID_ARGUMENT, "NULL pixels");
   CHECK(rx->encode_reference(pc, &call, prompt, NULL, &img, c2) == ASSAY_ERR_INVALID_ARGUMENT, "NULL instruction");
   CHECK(rx->encode_reference(pc, &call, NULL, "", &img, c2) == ASSAY_ERR_INVALID_ARGUMENT, "NULL text");
   CHECK(rx->encode_reference(pc, &call, prompt, "", NULL, c2) == ASSAY_ERR_INVALID_ARGUMENT, "NULL image");
   CHECK(rx->encode_reference(pc, &call, "a purple square", "", &img, c2) == ASSAY_ERR_INVALID_ARGUMENT &&
            strstr(last_error, "purple"), "an unknown prompt word must be refused naming it: %s", last_error);
   CHECK(errors_with_call == 7, "every refusal is reported with its call (%d of 7)", errors_with_call);

   /* Guided rows as the host sends them: [pos(img), pos(img2); neg(img), neg(img2)]; blocks ==
    * velocity, each row alone == its row of the batch, deterministic. */
   rx->encode_reference(pc, &call, prompt, instr, &img, c1);
   rx->encode_reference(pc, &call, "two blue circles", "Add one more blue circle.", &img2, c1 + CS);
   rx->encode_reference(pc, &call, "", "", &img, c1 + 2 * CS);
   rx->encode_reference(pc, &call, "", "", &img2, c1 + 3 * CS);
   assay_model_blocks_info_t bi;
   bx->get_info(pc, &bi);
   CHECK(bi.tokens == 8 + 24 + 64 && bi.hidden_size == bi.tokens * bi.width, "corrector blocks: %u tokens", bi.tokens);
   float *x = malloc((size_t)4 * LS * sizeof *x), *v = malloc((size_t)4 * LS * sizeof *v), *vb = malloc((size_t)4 * LS * sizeof *vb);
   float t[4] = {0.9f, 0.35f, 0.9f, 0.35f};
   unsigned seed = 31;
   for (uint32_t k = 0; k < 2 * LS; k++) {
      seed = seed * 1664525u + 1013904223u;
      x[k] = ((float)(seed >> 8) / 16777216.0f) * 4.0f - 2.0f;
   }
   memcpy(x + 2 * LS, x, (size_t)2 * LS * sizeof *x);
   CHECK(m->velocity(pc, &call, 4, x, t, c1, v) == ASSAY_OK, "corrector velocity: %s", last_error);
   float *hid = malloc((size_t)4 * bi.hidden_size * sizeof *hid), *ctx = malloc((size_t)4 * bi.context_size * sizeof *ctx);
   int ok = bx->prologue(pc, &call, 4, x, t, c1, hid, ctx) == ASSAY_OK;
   for (uint32_t i = 0; ok && i < bi.block_count; i++) ok = bx->block(pc, &call, i, 4, hid, ctx) == ASSAY_OK;
   ok = ok && bx->epilogue(pc, &call, 4, hid, ctx, vb) == ASSAY_OK;
   CHECK(ok && memcmp(v, vb, (size_t)4 * LS * sizeof *v) == 0, "corrector: prologue + blocks + epilogue != velocity");
   int alone_bad = 0;
   for (int r = 0; r < 4; r++) {
      m->velocity(pc, &call, 1, x + (size_t)r * LS, t + r, c1 + (size_t)r * CS, vb);
      alone_bad += memcmp(vb, v + (size_t)r * LS, LS * sizeof *vb) != 0;
   }
   CHECK(alone_bad == 0, "corrector: %d of 4 guided rows differ from the row alone", alone_bad);
   /* the reference matters: the same row with the other picture gives another velocity */
   memcpy(c2, c1, (size_t)CS * sizeof *c2);
   memcpy(c2 + CS - LS, c1 + CS + CS - LS, (size_t)LS * sizeof *c2);
   m->velocity(pc, &call, 1, x, t, c2, vb);
   const double dref = tu_max_err(vb, v, LS, NULL);
   printf("  corrector: guided rows with blocks == velocity, rows alone == batch; another reference changes v by %.3g\n",
          dref);
   CHECK(dref > 1e-3, "the reference image has no effect on the velocity (%.3g)", dref);
   batch_invariance(pc, m, "shapes-corrector");
   free(hid); free(ctx); free(x); free(v); free(vb);
   free(rgb); free(rgb2); free(c1); free(c2);
   shapes_engine_free(e);
   pc->destroy(pc);
}

int main(int argc, char **argv) {
   if (argc < 4 || argc > 6) {
      fprintf(stderr, "usage: %s shapes.so WEIGHTS TURBO_WEIGHTS [TINY_WEIGHTS [CORRECTOR_WEIGHTS]]\n", argv[0]);
      return 2;
   }
   const char *so = argv[1], *weights = argv[2], *turbo_weights = argv[3];
   printf("test_plugin: %s\n", so);
   void *lib = dlopen(so, RTLD_NOW | RTLD_LOCAL);
   CHECK(lib != NULL, "dlopen: %s", dlerror());
   if (lib == NULL) return tu_finish();
   const assay_plugin_entry_t *entry = dlsym(lib, ASSAY_ENTRY_SYMBOL);
   CHECK(entry != NULL, "no assay_entry");
   if (entry == NULL) return tu_finish();
   CHECK(entry->abi_version.major == ASSAY_VERSION_MAJOR, "ABI major %u", entry->abi_version.major);
   CHECK(dlsym(lib, "shapes_engine_load") == NULL && dlsym(lib, "op_linear") == NULL,
         "engine symbols must stay hidden (only assay_entry is exported)");
   CHECK(entry->init(so), "entry init refused");
   factory = entry->get_factory(ASSAY_PLUGIN_FACTORY_ID);
   CHECK(factory != NULL && factory->get_plugin_count(factory) == 3, "factory");
   const assay_plugin_descriptor_t *d = factory->get_plugin_descriptor(factory, 0);
   CHECK(d != NULL && strcmp(d->id, "shapes") == 0 && d->kind == ASSAY_KIND_MODEL, "descriptor");
   d = factory->get_plugin_descriptor(factory, 1);
   CHECK(d != NULL && strcmp(d->id, "shapes-turbo") == 0 && d->kind == ASSAY_KIND_MODEL, "turbo descriptor");
   d = factory->get_plugin_descriptor(factory, 2);
   CHECK(d != NULL && strcmp(d->id, "shapes-corrector") == 0 && d->kind == ASSAY_KIND_MODEL, "corrector descriptor");
   CHECK(factory->get_plugin_descriptor(factory, 3) == NULL, "descriptor index past the end must give NULL");
   CHECK(factory->create_plugin(factory, &host, "nope") == NULL, "unknown id must give NULL");

   /* Refusals. */
   assay_result_t rc;
   assay_option_t o_missing = {"weights", ASSAY_OPTION_STRING, "/nonexistent/shapes-base.safetensors", 0};
   CHECK(make(&o_missing, 1, &rc) == NULL && rc == ASSAY_ERR_IO && strstr(last_error, "cannot open") &&
            errors_without_call > 0,
         "missing weights: rc %d, reason \"%s\"", rc, last_error);
   printf("  missing weights -> %s\n", last_error);
   char bad[4200];
   snprintf(bad, sizeof bad, "%s.truncated-for-test", weights);
   {
      size_t n;
      unsigned char *b = tu_read_file(weights, &n);
      FILE *f = fopen(bad, "wb");
      if (b && f) fwrite(b, 1, n / 2, f);
      if (f) fclose(f);
      free(b);
   }
   assay_option_t o_bad = {"weights", ASSAY_OPTION_STRING, bad, 0};
   CHECK(make(&o_bad, 1, &rc) == NULL && rc == ASSAY_ERR_IO && strstr(last_error, "truncated"),
         "truncated weights: rc %d, reason \"%s\"", rc, last_error);
   printf("  truncated weights -> %.200s...\n", last_error);
   remove(bad);
   assay_option_t o_threads[2] = {{"weights", ASSAY_OPTION_STRING, weights, 0}, {"threads", ASSAY_OPTION_NUMBER, NULL, 0.5}};
   CHECK(make(o_threads, 2, &rc) == NULL && rc == ASSAY_ERR_INVALID_ARGUMENT && strstr(last_error, "threads"),
         "threads = 0.5 must be refused naming the key: %s", last_error);
   o_threads[1].type = ASSAY_OPTION_STRING;
   o_threads[1].string = "two";
   CHECK(make(o_threads, 2, &rc) == NULL && rc == ASSAY_ERR_INVALID_ARGUMENT, "threads as a string must be refused");

   /* Weights beside the library (the Makefile copies them), if present. */
   check_beside(so, "shapes");
   check_beside(so, "shapes-turbo");
   check_beside(so, "shapes-corrector");

   /* A model with another config and sampling defaults in its metadata (tests/make_tiny.py). */
   char tiny_space[160] = "";
   if (argc >= 5) {
      assay_option_t o_tiny = {"weights", ASSAY_OPTION_STRING, argv[4], 0};
      const assay_plugin_t *pt = make(&o_tiny, 1, &rc);
      CHECK(pt != NULL, "tiny model: %s", last_error);
      if (pt != NULL) {
         const assay_model_ext_t *mt = pt->get_extension(pt, ASSAY_EXT_MODEL);
         const assay_model_blocks_ext_t *bt = pt->get_extension(pt, ASSAY_EXT_MODEL_BLOCKS);
         assay_model_info_t ti;
         assay_model_blocks_info_t tb;
         mt->get_info(pt, &ti);
         bt->get_info(pt, &tb);
         printf("  tiny model: latent %ux%ux%u, condition %u, steps %u, guidance %.2f, %u middle blocks\n",
                ti.latent_channels, ti.latent_height, ti.latent_width, ti.condition_size, ti.default_steps,
                (double)ti.default_guidance, tb.block_count);
         CHECK(ti.latent_height == 16 && ti.image_width == 16 && ti.default_steps == 12 &&
                  ti.default_guidance == 2.5f && tb.block_count == 3 && ti.condition_size == 8 * 32 + 32,
               "tiny model info does not follow its metadata");
         latent_id(pt, "tiny model", tiny_space, sizeof tiny_space);
         pt->destroy(pt);
      }
   }

   /* A working instance. */
   assay_option_t o_ok[3] = {{"weights", ASSAY_OPTION_STRING, weights, 0}, {"threads", ASSAY_OPTION_NUMBER, NULL, 1},
                             {"unknown-key", ASSAY_OPTION_STRING, "ignored", 0}};
   const assay_plugin_t *p = make(o_ok, 3, &rc);
   CHECK(p != NULL, "init: %s", last_error);
   if (p == NULL) return tu_finish();
   const assay_model_ext_t *m = p->get_extension(p, ASSAY_EXT_MODEL);
   const assay_model_blocks_ext_t *bx = p->get_extension(p, ASSAY_EXT_MODEL_BLOCKS);
   CHECK(m != NULL && bx != NULL, "extensions");
   CHECK(p->get_extension(p, "assay.sampler/1") == NULL, "no sampler interface");
   CHECK(p->get_extension(p, ASSAY_EXT_MODEL_REFERENCE_DRAFT) == NULL, "the base model has no reference extension");
   if (m == NULL || bx == NULL) return tu_finish();
   /* Draft latent-space id: pixel space of the weights' shape; another shape, another id. */
   char base_space[160];
   latent_id(p, "shapes", base_space, sizeof base_space);
   CHECK(strcmp(base_space, "io.assay.shapes/rgb-3x32x32/1") == 0, "shapes latent-space id \"%s\"", base_space);
   if (argc >= 5)
      CHECK(tiny_space[0] != 0 && strcmp(tiny_space, base_space) != 0,
            "the tiny 16x16 model must declare another latent space than the 32x32 one (\"%s\" vs \"%s\")",
            tiny_space, base_space);
   assay_model_info_t info;
   m->get_info(p, &info);
   printf("  info: latent %ux%ux%u, image %ux%u, condition %u, steps %u, guidance %.2f, shift %.2f\n",
          info.latent_channels, info.latent_height, info.latent_width, info.image_width, info.image_height,
          info.condition_size, info.default_steps, (double)info.default_guidance, (double)info.schedule_shift);
   CHECK(info.latent_channels == 3 && info.latent_height == 32 && info.latent_width == 32 && info.image_width == 32 &&
            info.image_height == 32, "shape");
   CHECK(info.default_steps >= 1 && info.default_guidance > 0.0f && info.schedule_shift > 0.0f, "defaults");
   assay_model_blocks_info_t bi;
   bx->get_info(p, &bi);
   printf("  blocks: %u middle blocks, hidden %u (= %u x %u), context %u floats; GFLOP/sample prologue %.3f, "
          "block %.3f, epilogue %.3f\n", bi.block_count, bi.hidden_size, bi.tokens, bi.width, bi.context_size,
          bi.prologue_flops / 1e9, bi.block_flops / 1e9, bi.epilogue_flops / 1e9);
   CHECK(bi.block_count >= 1 && bi.hidden_size == bi.tokens * bi.width && bi.context_size > 0 && bi.block_flops > 0,
         "blocks info");

   const uint32_t n = 3, S = info.latent_channels * info.latent_height * info.latent_width, CS = info.condition_size;
   float *cond = malloc((size_t)n * CS * sizeof *cond), *x = malloc((size_t)n * S * sizeof *x);
   float t[3] = {1.0f, 0.55f, 0.1f};
   const char *prompts[3] = {"a red circle", "TWO  blue squares", ""};
   for (uint32_t i = 0; i < n; i++)
      CHECK(m->encode(p, &call, prompts[i], cond + (size_t)i * CS) == ASSAY_OK, "encode \"%s\": %s", prompts[i], last_error);
   errors_with_call = 0;
   CHECK(m->encode(p, &call, "a purple circle", cond) == ASSAY_ERR_INVALID_ARGUMENT && strstr(last_error, "purple") &&
            errors_with_call == 1,
         "unknown word: %s", last_error);
   printf("  encode(\"a purple circle\") -> %.160s...\n", last_error);
   m->encode(p, &call, "a red circle", cond);
   CHECK(m->encode(p, &call, "one two three four red green blue yellow circle", cond + CS) == ASSAY_ERR_INVALID_ARGUMENT &&
            strstr(last_error, "max is 8"),
         "too long: %s", last_error);
   m->encode(p, &call, prompts[1], cond + CS);
   unsigned seed = 7;
   for (size_t i = 0; i < (size_t)n * S; i++) {
      seed = seed * 1664525u + 1013904223u;
      x[i] = ((float)(seed >> 8) / 16777216.0f) * 4.0f - 2.0f;
   }
   float *v = malloc((size_t)n * S * sizeof *v), *v2 = malloc((size_t)n * S * sizeof *v2);
   CHECK(m->velocity(p, &call, n, x, t, cond, v) == ASSAY_OK, "velocity: %s", last_error);
   CHECK(m->velocity(p, &call, n, x, t, cond, v2) == ASSAY_OK && memcmp(v, v2, (size_t)n * S * sizeof *v) == 0,
         "velocity not deterministic");
   float tbad[3] = {1.5f, 0.5f, 0.5f};
   CHECK(m->velocity(p, &call, n, x, tbad, cond, v2) == ASSAY_ERR_INVALID_ARGUMENT && strstr(last_error, "t[0]"),
         "t outside [0,1] must be refused: %s", last_error);

   /* Blocks: full evaluation == velocity bit for bit. */
   float *hidden = malloc((size_t)n * bi.hidden_size * sizeof *hidden);
   float *context = malloc((size_t)n * bi.context_size * sizeof *context);
   CHECK(bx->prologue(p, &call, n, x, t, cond, hidden, context) == ASSAY_OK, "prologue: %s", last_error);
   for (uint32_t i = 0; i < bi.block_count; i++)
      CHECK(bx->block(p, &call, i, n, hidden, context) == ASSAY_OK, "block %u: %s", i, last_error);
   CHECK(bx->epilogue(p, &call, n, hidden, context, v2) == ASSAY_OK, "epilogue: %s", last_error);
   double e = tu_max_err(v2, v, (size_t)n * S, NULL);
   printf("  prologue + %u blocks + epilogue vs velocity: max|diff| %.3g\n", bi.block_count, e);
   CHECK(memcmp(v, v2, (size_t)n * S * sizeof *v) == 0, "blocks path differs from velocity (max %.3g)", e);
   CHECK(bx->block(p, &call, bi.block_count, n, hidden, context) == ASSAY_ERR_INVALID_ARGUMENT,
         "block index out of range must be refused");
   /* Samples are independent: one sample's state alone gives the same velocity (to rounding). */
   {
      float *h1 = malloc(bi.hidden_size * sizeof *h1), *c1 = malloc(bi.context_size * sizeof *c1), *v1 = malloc(S * sizeof *v1);
      bx->prologue(p, &call, 1, x + S, t + 1, cond + CS, h1, c1);
      for (uint32_t i = 0; i < bi.block_count; i++) bx->block(p, &call, i, 1, h1, c1);
      bx->epilogue(p, &call, 1, h1, c1, v1);
      double e1 = tu_max_err(v1, v + S, S, NULL);
      CHECK(memcmp(v1, v + S, S * sizeof *v1) == 0, "sample 1 alone differs from its row of the batch by %.3g "
            "(batch invariance: it must be bit-identical)", e1);
      /* DBCache-style cached evaluation: reuse the residual of blocks 1.. from a full pass at a
       * nearby t; the result stays close to the full one. */
      float *hA = malloc(bi.hidden_size * sizeof *hA), *res = malloc(bi.hidden_size * sizeof *res);
      float tt = t[1] + 0.02f;
      bx->prologue(p, &call, 1, x + S, &tt, cond + CS, h1, c1);
      bx->block(p, &call, 0, 1, h1, c1);
      memcpy(hA, h1, bi.hidden_size * sizeof *hA);
      for (uint32_t i = 1; i < bi.block_count; i++) bx->block(p, &call, i, 1, h1, c1);
      for (uint32_t k = 0; k < bi.hidden_size; k++) res[k] = h1[k] - hA[k];
      bx->prologue(p, &call, 1, x + S, t + 1, cond + CS, h1, c1);
      bx->block(p, &call, 0, 1, h1, c1);
      for (uint32_t k = 0; k < bi.hidden_size; k++) h1[k] += res[k];
      bx->epilogue(p, &call, 1, h1, c1, v1);
      double ec = tu_max_err(v1, v + S, S, NULL);
      printf("  cached evaluation (blocks 1..%u skipped, residual from t+0.02): max|v - v_full| %.3g, "
             "FLOP saving %.0f%%\n", bi.block_count - 1, ec,
             100.0 * (bi.block_count - 1) * bi.block_flops /
                (bi.prologue_flops + bi.block_count * bi.block_flops + bi.epilogue_flops));
      CHECK(ec < 0.5, "cached evaluation far from the full one (%.3g)", ec);
      free(h1); free(c1); free(v1); free(hA); free(res);
   }

   batch_invariance(p, m, "shapes");

   /* Decode: round((clamp(x) + 1) * 127.5), ties to even, NaN -> 0. */
   {
      float *xd = calloc(S, sizeof *xd);
      uint8_t *rgb = malloc((size_t)info.image_width * info.image_height * 3);
      const float vals[6] = {-1.0f, 1.0f, 0.0f, -2.0f, 5.0f, NAN};
      const uint8_t want[6] = {0, 255, 128, 0, 255, 0};
      const uint32_t plane = info.image_width * info.image_height;
      for (int k = 0; k < 6; k++) xd[k] = vals[k];
      xd[plane + 0] = 1.0f; /* G of pixel 0 */
      CHECK(m->decode(p, &call, 1, xd, rgb) == ASSAY_OK, "decode");
      int ok = 1;
      for (int k = 0; k < 6; k++) ok &= rgb[k * 3] == want[k];
      CHECK(ok && rgb[1] == 255 && rgb[2] == 128, "decode values: %u %u %u %u %u %u / G %u B %u", rgb[0], rgb[3], rgb[6],
            rgb[9], rgb[12], rgb[15], rgb[1], rgb[2]);
      free(xd);
      free(rgb);
   }

   /* Two job threads on the same instance. */
   {
      targ_t a[2];
      pthread_t th[2];
      for (int k = 0; k < 2; k++) {
         a[k] = (targ_t){p, m, n, x, t, cond, malloc((size_t)n * S * sizeof(float)), -1};
         pthread_create(&th[k], NULL, tmain, &a[k]);
      }
      for (int k = 0; k < 2; k++) pthread_join(th[k], NULL);
      for (int k = 0; k < 2; k++) {
         CHECK(a[k].rc == ASSAY_OK && memcmp(a[k].v, v, (size_t)n * S * sizeof *v) == 0, "thread %d result differs", k);
         free(a[k].v);
      }
   }

   /* shapes-turbo: the distilled student, same library, its own weights and defaults. */
   {
      assay_option_t o_base = {"weights", ASSAY_OPTION_STRING, weights, 0};
      CHECK(make_id("shapes-turbo", &o_base, 1, &rc) == NULL && rc == ASSAY_ERR_INVALID_ARGUMENT &&
               strncmp(last_error, "shapes-turbo: ", 14) == 0 && strstr(last_error, "not a distilled student"),
            "base weights offered to shapes-turbo must be refused, naming the plugin: rc %d, \"%s\"", rc, last_error);
      printf("  shapes-turbo with base weights -> %.160s...\n", last_error);
      assay_option_t o_turbo = {"weights", ASSAY_OPTION_STRING, turbo_weights, 0};
      const assay_plugin_t *pt = make_id("shapes-turbo", &o_turbo, 1, &rc);
      CHECK(pt != NULL, "shapes-turbo init: %s", last_error);
      const assay_model_ext_t *mt = pt ? pt->get_extension(pt, ASSAY_EXT_MODEL) : NULL;
      if (mt != NULL) {
         assay_model_info_t ti;
         mt->get_info(pt, &ti);
         printf("  turbo info: steps %u, guidance %.2f, shift %.2f\n", ti.default_steps, (double)ti.default_guidance,
                (double)ti.schedule_shift);
         CHECK(ti.default_steps >= 1 && ti.default_steps <= 4 && ti.default_guidance == 1.0f &&
                  ti.latent_channels == info.latent_channels && ti.latent_height == info.latent_height &&
                  ti.condition_size == info.condition_size,
               "turbo info: a 1-4 step model without guidance and the base model's latent and condition");
         CHECK(pt->get_extension(pt, ASSAY_EXT_MODEL_BLOCKS) != NULL, "turbo blocks extension");
         batch_invariance(pt, mt, "shapes-turbo");
         /* The student reads and writes the base model's latents (Co-Fusion hands x_t over). */
         char turbo_space[160];
         latent_id(pt, "shapes-turbo", turbo_space, sizeof turbo_space);
         CHECK(turbo_space[0] != 0 && strcmp(turbo_space, base_space) == 0,
               "shapes-turbo must declare the base model's latent space (\"%s\" vs \"%s\")", turbo_space, base_space);

         /* Co-Fusion premise: from the base model's state x_t at t = 0.8 (4 of 20 guided
          * steps), the student's 4-step sketch (4 NFE) must land nearer the base model's own
          * 20-step result than the base model itself does for the same 4 NFE (2 guided
          * steps). Distance: mean |pixel difference| over pixels that are foreground (some
          * channel >= 128) in either image, as tools/shapes/cofusion.py measures it. */
         enum { N = 4, STEPS = 20, K = 4, SKETCH = 4, BASE_SKETCH = 2 };
         const char *cp[N] = {"a red circle", "two blue squares", "a green triangle above a yellow square",
                              "a yellow circle and a blue triangle"};
         float *cb = malloc((size_t)2 * N * CS * sizeof *cb), *ct = malloc((size_t)N * CS * sizeof *ct);
         float *xs = malloc((size_t)2 * N * S * sizeof *xs), *vs = malloc((size_t)2 * N * S * sizeof *vs);
         float *xk = malloc((size_t)N * S * sizeof *xk), *xo[3];
         for (int r = 0; r < 3; r++) xo[r] = malloc((size_t)N * S * sizeof(float));
         for (int i = 0; i < N; i++) {
            CHECK(m->encode(p, &call, cp[i], cb + (size_t)i * CS) == ASSAY_OK, "encode %s", cp[i]);
            CHECK(m->encode(p, &call, "", cb + (size_t)(N + i) * CS) == ASSAY_OK, "encode \"\"");
            CHECK(mt->encode(pt, &call, cp[i], ct + (size_t)i * CS) == ASSAY_OK, "turbo encode %s", cp[i]);
         }
         unsigned g = 12345;
         for (size_t i = 0; i < (size_t)N * S; i += 2) { /* Box-Muller on an LCG */
            g = g * 1664525u + 1013904223u;
            double u1 = ((g >> 8) + 1.0) / 16777217.0;
            g = g * 1664525u + 1013904223u;
            double u2 = (g >> 8) / 16777216.0;
            xk[i] = (float)(sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
            xk[i + 1] = (float)(sqrt(-2 * log(u1)) * sin(6.283185307179586 * u2));
         }
         euler(p, m, N, xk, cb, 1.0f, STEPS, 0, K, 1.75f, xs, vs);
         const float tk = 1.0f - (float)K / STEPS;
         memcpy(xo[0], xk, (size_t)N * S * sizeof(float));
         euler(p, m, N, xo[0], cb, 1.0f, STEPS, K, STEPS, 1.75f, xs, vs); /* the base model's own result */
         memcpy(xo[1], xk, (size_t)N * S * sizeof(float));
         euler(p, m, N, xo[1], cb, tk, BASE_SKETCH, 0, BASE_SKETCH, 1.75f, xs, vs); /* base, 2 guided steps (4 NFE) */
         memcpy(xo[2], xk, (size_t)N * S * sizeof(float));
         CHECK(euler(pt, mt, N, xo[2], ct, tk, SKETCH, 0, SKETCH, 1.0f, xs, vs) == ASSAY_OK, /* turbo, 4 steps (4 NFE) */
               "turbo velocity: %s", last_error);
         uint8_t *img[3];
         for (int r = 0; r < 3; r++) {
            img[r] = malloc((size_t)N * S);
            m->decode(p, &call, N, xo[r], img[r]);
         }
         const double d_base = foreground_distance(img[0], img[1], (size_t)N * S / 3);
         const double d_turbo = foreground_distance(img[0], img[2], (size_t)N * S / 3);
         printf("  Co-Fusion from t = %.2f, 4 NFE: mean |pixel - base result| on foreground: turbo 4 steps %.1f, "
                "base 2 guided steps %.1f (of 255)\n", (double)tk, d_turbo, d_base);
         CHECK(d_turbo < d_base, "the turbo sketch (%.1f) must keep the base layout better than the base model "
               "for the same NFEs (%.1f)", d_turbo, d_base);
         for (int r = 0; r < 3; r++) { free(xo[r]); free(img[r]); }
         free(cb); free(ct); free(xs); free(vs); free(xk);
      }
      if (pt != NULL) pt->destroy(pt);
   }

   if (argc == 6)
      test_corrector(so, argv[5], weights, turbo_weights, base_space);

   free(cond); free(x); free(v); free(v2); free(hidden); free(context);
   p->destroy(p);
   entry->deinit();
   dlclose(lib);
   return tu_finish();
}
