/* Plugins/shapes/judge/test_judge.c: tests of the shapes judge and the shapes-judge plugin.
 *
 *   test_judge PLUGIN.so WEIGHTS.safetensors VECTORS.safetensors CASES.bin TMPDIR
 *
 * 1. C vs PyTorch: the network's raw output on the vectors of tools/judge/train.py --export
 *    differs by < 1e-3 (float32 both sides, different summation orders).
 * 2. Verdicts: on the committed degraded renders (tools/judge/export_cases.py: yardstick blur
 *    0.9, noise 8) the C verdicts and scores equal the numpy twin's (tools/judge/judge.py), and
 *    recall on correct scenes / false passes on wrong ones stay within the measured floors.
 * 3. Rules: sw_relations against hand-made boxes (world.py relative_position), counting.
 * 4. Corrupt weights: missing, empty, truncated, bad header, wrong dtype / shape, missing
 *    tensor, wrong format, bad threshold, a NaN are refused with a reason.
 * 5. The plugin through the ABI (dlopen): descriptor, weights beside the library, option
 *    `weights`, prompt-check, out-of-grammar prompts refused, details JSON, any image size
 *    (nearest-neighbour resampling: a pixel-doubled 64x64 image gets the 32x32 verdict),
 *    malformed images refused, cancellation, bit-identical results from 4 threads.
 * The last line is "N passed, M failed"; the exit status is 1 when M > 0. */
#define _POSIX_C_SOURCE 200809L
#include <assay/assay.h>

#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../engine/safetensors.h"
#include "judge.h"

/* Floors measured on cases.bin (tools/judge/README.md); a retrained judge must meet them. */
#define FLOOR_RECALL 0.95
#define CEIL_FALSE_PASS 0.03

static int passed, failed;
static int verbose_failures = 30;

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void expect(int ok, const char *fmt, ...) {
   if (ok) {
      passed++;
      return;
   }
   failed++;
   if (verbose_failures-- > 0) {
      va_list args;
      va_start(args, fmt);
      printf("FAIL: ");
      vprintf(fmt, args);
      printf("\n");
      va_end(args);
   }
}

static uint8_t *read_all(const char *path, size_t *size) {
   FILE *f = fopen(path, "rb");
   if (f == NULL)
      return NULL;
   fseek(f, 0, SEEK_END);
   long n = ftell(f);
   fseek(f, 0, SEEK_SET);
   uint8_t *b = malloc(n > 0 ? (size_t)n : 1);
   if (b == NULL || (n > 0 && fread(b, 1, (size_t)n, f) != (size_t)n)) {
      free(b);
      fclose(f);
      return NULL;
   }
   fclose(f);
   *size = (size_t)n;
   return b;
}

static int write_all(const char *path, const uint8_t *b, size_t n) {
   FILE *f = fopen(path, "wb");
   if (f == NULL)
      return -1;
   size_t w = fwrite(b, 1, n, f);
   fclose(f);
   return w == n ? 0 : -1;
}

static double now(void) {
   struct timespec t;
   clock_gettime(CLOCK_MONOTONIC, &t);
   return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* ---- 1. vectors ------------------------------------------------------------------------- */
#define NV_MAX 16
static int nv;
static uint8_t vimg[NV_MAX][32 * 32 * 3];

static void test_vectors(const jg_model *m, const char *path) {
   char err[512];
   st_file *f = st_open(path, ST_F32 | ST_I32, err, sizeof err);
   expect(f != NULL, "vectors: %s", err);
   if (f == NULL)
      return;
   const st_tensor *ti = st_find(f, "images"), *to = st_find(f, "outputs");
   expect(ti != NULL && to != NULL && ti->ndim == 4 && to->ndim == 4 && ti->shape[0] == to->shape[0] &&
             ti->shape[0] <= NV_MAX && ti->shape[1] == 32 && ti->shape[2] == 32 && ti->shape[3] == 3 &&
             to->shape[1] == JG_OUT_CH && to->shape[2] == JG_GRID && to->shape[3] == JG_GRID,
          "vectors: tensors images (n,32,32,3) and outputs (n,15,16,16) expected");
   if (ti == NULL || to == NULL || ti->ndim != 4 || to->ndim != 4 || ti->shape[0] > NV_MAX ||
       ti->numel != ti->shape[0] * 3072 || to->numel != to->shape[0] * JG_OUT_CH * JG_GRID * JG_GRID) {
      st_close(f);
      return;
   }
   nv = (int)ti->shape[0];
   float *fi = malloc(ti->numel * sizeof *fi), *fo = malloc(to->numel * sizeof *fo);
   st_to_f32(f, ti, fi);
   st_to_f32(f, to, fo);
   for (int i = 0; i < nv; i++)
      for (int k = 0; k < 3072; k++)
         vimg[i][k] = (uint8_t)fi[i * 3072 + k];
   const size_t per = JG_OUT_CH * JG_GRID * JG_GRID;
   float out[JG_OUT_CH * JG_GRID * JG_GRID];
   double maxd = 0;
   for (int i = 0; i < nv; i++) {
      expect(jg_forward(m, vimg[i], out) == 0, "forward");
      for (size_t k = 0; k < per; k++)
         maxd = fmax(maxd, fabs((double)out[k] - (double)fo[i * per + k]));
   }
   printf("     C vs PyTorch on %d vector images: max |diff| %.2e\n", nv, maxd);
   expect(maxd < 1e-3, "C output differs from PyTorch by %.3g", maxd);
   double t0 = now();
   int reps = 50;
   for (int r = 0; r < reps; r++)
      jg_forward(m, vimg[r % nv], out);
   printf("     forward: %.2f ms per image\n", (now() - t0) * 1000.0 / reps);
   free(fi);
   free(fo);
   st_close(f);
}

/* ---- 2. cases --------------------------------------------------------------------------- */
typedef struct jcase {
   int category, truth, np_pass;
   float np_score;
   char caption[64];
   uint8_t img[3072];
} jcase;
static jcase *cases;
static int ncases;

static int load_cases(const char *path) {
   size_t n = 0;
   uint8_t *b = read_all(path, &n);
   if (b == NULL || n < 12 || memcmp(b, "SJCASES1", 8) != 0) {
      free(b);
      return -1;
   }
   uint32_t count = (uint32_t)b[8] | (uint32_t)b[9] << 8 | (uint32_t)b[10] << 16 | (uint32_t)b[11] << 24;
   cases = calloc(count ? count : 1, sizeof *cases);
   size_t at = 12;
   for (uint32_t i = 0; i < count; i++) {
      if (at + 4 > n)
         break;
      jcase *c = &cases[i];
      c->category = b[at];
      c->truth = b[at + 1];
      c->np_pass = b[at + 2];
      size_t cl = b[at + 3];
      at += 4;
      if (cl >= sizeof c->caption || at + cl + 4 + 3072 > n)
         break;
      memcpy(c->caption, b + at, cl);
      c->caption[cl] = '\0';
      at += cl;
      memcpy(&c->np_score, b + at, 4);
      at += 4;
      memcpy(c->img, b + at, 3072);
      at += 3072;
      ncases++;
   }
   free(b);
   return ncases == (int)count && at == n ? 0 : -1;
}

static void test_cases(const jg_model *m) {
   int agree = 0, score_agree = 0, tp = 0, pos = 0, fp = 0, neg = 0, parse_ok = 1;
   jg_result_t *r = malloc(sizeof *r);
   for (int i = 0; i < ncases; i++) {
      sw_spec_t spec;
      char err[256];
      if (sw_parse(cases[i].caption, &spec, err, sizeof err) != 0) {
         parse_ok = 0;
         continue;
      }
      jg_judge(m, cases[i].img, 32, 32, 96, &spec, r);
      agree += r->pass == cases[i].np_pass;
      score_agree += fabs(r->score - (double)cases[i].np_score) < 1e-6;
      if (r->pass != cases[i].np_pass && getenv("SJ_SHOW") != NULL)
         printf("     disagree: case %d \"%s\" C %d numpy %d\n", i, cases[i].caption, r->pass,
                cases[i].np_pass);
      if (cases[i].truth) {
         pos++;
         tp += r->pass;
      } else {
         neg++;
         fp += r->pass;
      }
   }
   free(r);
   expect(parse_ok, "cases: a caption does not parse");
   printf("     cases (blur 0.9, noise 8): C agrees with numpy on %d of %d verdicts, %d scores; "
          "recall %.3f (%d/%d), false pass %.3f (%d/%d)\n", agree, ncases, score_agree,
          (double)tp / (pos ? pos : 1), tp, pos, (double)fp / (neg ? neg : 1), fp, neg);
   expect(ncases > 0 && agree == ncases, "C and numpy verdicts differ on %d of %d cases",
          ncases - agree, ncases);
   expect(score_agree == ncases, "C and numpy scores differ on %d cases", ncases - score_agree);
   expect(pos > 0 && (double)tp / pos >= FLOOR_RECALL, "recall %.3f below the floor %.2f",
          (double)tp / (pos ? pos : 1), FLOOR_RECALL);
   expect(neg > 0 && (double)fp / neg <= CEIL_FALSE_PASS, "false pass %.3f above %.2f",
          (double)fp / (neg ? neg : 1), CEIL_FALSE_PASS);
}

/* ---- 3. rules --------------------------------------------------------------------------- */
static void test_rules(void) {
   const double a[4] = {2, 10, 10, 18}, b[4] = {20, 10, 28, 18}, c[4] = {20, 11, 28, 19};
   const double top[4] = {12, 0, 20, 8}, bottom[4] = {12, 20, 20, 28};
   expect(sw_relations(a, b) == 1u << SW_LEFT_OF, "a left of b");
   expect(sw_relations(b, a) == 1u << SW_RIGHT_OF, "b right of a");
   expect(sw_relations(top, bottom) == 1u << SW_ABOVE, "top above bottom");
   expect(sw_relations(bottom, top) == 1u << SW_BELOW, "bottom below top");
   expect(sw_relations(a, a) == 0, "no relation to itself");
   expect(sw_relations(a, c) == 1u << SW_LEFT_OF, "small vertical offset is absorbed");
   const double d1[4] = {0, 0, 10, 10}, d2[4] = {11, 11, 21, 21};
   expect(sw_relations(d1, d2) == (1u << SW_LEFT_OF | 1u << SW_ABOVE), "a diagonal pair: left of and above");

   jg_det_t dets[3] = {{SW_CIRCLE, SW_RED, {2, 10, 10, 18}, 0.9},
                       {SW_SQUARE, SW_BLUE, {20, 10, 28, 18}, 0.9},
                       {SW_CIRCLE, SW_RED, {12, 22, 18, 28}, 0.9}};
   struct {
      const char *caption;
      int pass;
      double score;
   } t[] = {
      {"a red circle left of a blue square", 1, 1.0}, {"a blue square left of a red circle", 0, 2.0 / 3},
      {"two red circles", 1, 1.0},                    {"one red circle", 0, 0.0},
      {"a circle and a square", 1, 1.0},              {"a triangle", 0, 0.0},
      {"", 1, 1.0},                                   {"three circles", 0, 0.0},
      {"a green circle and a blue square", 0, 0.5},
   };
   for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
      sw_spec_t spec;
      char err[256];
      jg_result_t r;
      expect(sw_parse(t[i].caption, &spec, err, sizeof err) == 0, "parse \"%s\"", t[i].caption);
      jg_rules(dets, 3, &spec, &r);
      expect(r.pass == t[i].pass && fabs(r.score - t[i].score) < 1e-12,
             "rules \"%s\": pass %d score %g, want %d %g", t[i].caption, r.pass, r.score,
             t[i].pass, t[i].score);
   }
}

/* ---- 4. corrupt weights ----------------------------------------------------------------- */
static uint8_t *wbytes;
static size_t wsize;
static uint64_t hlen;
static char tmpdir[3000];

static void expect_refused_bytes(const uint8_t *b, size_t n, const char *what, const char *needle) {
   char path[4096], err[1024] = "";
   snprintf(path, sizeof path, "%s/corrupt.safetensors", tmpdir);
   write_all(path, b, n);
   jg_model *m = jg_model_load(path, err, sizeof err);
   expect(m == NULL && err[0] != '\0', "%s: not refused", what);
   if (m == NULL && needle != NULL)
      expect(strstr(err, needle) != NULL, "%s: reason \"%s\" lacks \"%s\"", what, err, needle);
   if (m == NULL && getenv("SJ_SHOW") != NULL)
      printf("     %s -> %s\n", what, err);
   jg_model_free(m);
}

/* A copy of the weights with `from` replaced by `to` in the header (first occurrence, length
 * prefix fixed). NULL when `from` is not there. */
static uint8_t *with_header_edit(const char *from, const char *to, size_t *out_size) {
   const char *h = (const char *)wbytes + 8;
   size_t fl = strlen(from), tl = strlen(to), pre = 0;
   int found = 0;
   for (size_t i = 0; i + fl <= hlen; i++)
      if (memcmp(h + i, from, fl) == 0) {
         pre = i;
         found = 1;
         break;
      }
   if (!found)
      return NULL;
   uint64_t nh = hlen - fl + tl;
   size_t ns = wsize - fl + tl;
   uint8_t *b = malloc(ns);
   for (int i = 0; i < 8; i++)
      b[i] = (uint8_t)(nh >> (8 * i));
   memcpy(b + 8, h, pre);
   memcpy(b + 8 + pre, to, tl);
   memcpy(b + 8 + pre + tl, h + pre + fl, hlen - pre - fl);
   memcpy(b + 8 + nh, wbytes + 8 + hlen, wsize - 8 - hlen);
   *out_size = ns;
   return b;
}

static void test_corrupt(void) {
   char err[1024] = "", path[4096];
   snprintf(path, sizeof path, "%s/does-not-exist.safetensors", tmpdir);
   jg_model *m = jg_model_load(path, err, sizeof err);
   expect(m == NULL && err[0] != '\0', "missing file not refused");
   jg_model_free(m);
   uint8_t zero = 0;
   expect_refused_bytes(&zero, 0, "empty file", NULL);
   size_t cuts[] = {4, 8, 9, 8 + (size_t)hlen / 2, 8 + (size_t)hlen, 8 + (size_t)hlen + 100,
                    wsize / 2, wsize - 1};
   for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
      char what[64];
      snprintf(what, sizeof what, "truncated to %zu bytes", cuts[i]);
      expect_refused_bytes(wbytes, cuts[i], what, NULL);
   }
   uint8_t *b = malloc(wsize);
   memcpy(b, wbytes, wsize);
   b[8] = 'x';
   expect_refused_bytes(b, wsize, "header not JSON", NULL);
   struct {
      const char *from, *to, *what, *needle;
   } edits[] = {
      {"\"dtype\":\"F32\"", "\"dtype\":\"I32\"", "dtype I32", "dtype"},
      {"\"dtype\":\"F32\"", "\"dtype\":\"F16\"", "dtype F16 with F32-sized data", NULL},
      {"\"c3.weight\":{\"dtype\":\"F32\",\"shape\":[48,32,3,3]",
       "\"c3.weight\":{\"dtype\":\"F32\",\"shape\":[32,48,3,3]", "c3 transposed", "shape"},
      {"\"c1.weight\":{\"dtype\":\"F32\",\"shape\":[24,3,3,3]",
       "\"c1.weight\":{\"dtype\":\"F32\",\"shape\":[24,3,9]", "c1 3-d", "shape"},
      {"\"head.bias\"", "\"head.biaz\"", "missing head.bias", "missing"},
      {"shapes-judge/1", "shapes-judge/9", "wrong format", "format"},
      {"\"threshold\":\"", "\"threshold\":\"9", "threshold out of range", "threshold"},
      {"\"threshold\":\"", "\"thresholX\":\"", "no threshold", "threshold"},
   };
   for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
      size_t n = 0;
      uint8_t *e = with_header_edit(edits[i].from, edits[i].to, &n);
      expect(e != NULL, "%s: the header has no %s (test out of date?)", edits[i].what, edits[i].from);
      if (e != NULL)
         expect_refused_bytes(e, n, edits[i].what, edits[i].needle);
      free(e);
   }
   /* a NaN in the last tensor's last value */
   memcpy(b, wbytes, wsize);
   const uint32_t nan_bits = 0x7fc00000u;
   memcpy(b + wsize - 4, &nan_bits, 4);
   expect_refused_bytes(b, wsize, "a NaN weight", "non-finite");
   free(b);
}

/* ---- 5. plugin -------------------------------------------------------------------------- */
static char init_error[2048];
typedef struct call_ctx {
   char error[2048];
   int cancel;
} call_ctx;

static void h_report(const assay_host_t *host, const assay_call_t *call, const char *message) {
   (void)host;
   if (call == NULL)
      snprintf(init_error, sizeof init_error, "%s", message);
   else
      snprintf(((call_ctx *)call->host_data)->error, sizeof init_error, "%s", message);
}
static void h_log(const assay_host_t *host, const assay_call_t *call, assay_log_level_t level,
                  const char *message) {
   (void)host;
   (void)call;
   (void)level;
   if (getenv("SJ_SHOW") != NULL)
      printf("     log: %s\n", message);
}
static bool h_cancelled(const assay_host_t *host, const assay_call_t *call) {
   (void)host;
   return ((call_ctx *)call->host_data)->cancel != 0;
}
static const void *h_ext(const assay_host_t *host, const char *id) {
   (void)host;
   (void)id;
   return NULL;
}
static const assay_host_t host = {ASSAY_VERSION_INIT, NULL, "test", "0", h_ext, h_log, h_cancelled,
                                  h_report};

static const assay_plugin_factory_t *factory;

static const assay_plugin_t *make(const assay_options_t *opts, assay_result_t *rc) {
   const assay_plugin_t *p = factory->create_plugin(factory, &host, "shapes-judge");
   if (p == NULL) {
      *rc = ASSAY_ERR_INTERNAL;
      return NULL;
   }
   init_error[0] = '\0';
   *rc = p->init(p, opts);
   if (*rc != ASSAY_OK) {
      p->destroy(p);
      return NULL;
   }
   return p;
}

#define NB 24
typedef struct set_ctx {
   assay_text_out_t out;
   char text[NB][4096];
} set_ctx;
static void t_set(const assay_text_out_t *out, uint32_t index, const char *utf8) {
   set_ctx *c = (set_ctx *)out;
   if (index < NB)
      snprintf(c->text[index], sizeof c->text[index], "%s", utf8);
}

static assay_image_t batch[NB];
static const assay_verifier_ext_t *vx;
static const assay_plugin_t *plugin;
static double ref[NB];

typedef struct thread_arg {
   int id, bad;
} thread_arg;

static void *worker(void *p) {
   thread_arg *a = p;
   call_ctx ctx = {{0}, 0};
   assay_call_t call = {&host, (uint64_t)a->id + 1, &ctx};
   for (int it = 0; it < 2; it++) {
      double s[NB];
      if (vx->score(plugin, &call, cases[0].caption, NB, batch, s, NULL) != ASSAY_OK ||
          memcmp(s, ref, sizeof s) != 0)
         a->bad++;
   }
   return NULL;
}

static void test_plugin(const char *so, const char *weights) {
   void *lib = dlopen(so, RTLD_NOW | RTLD_LOCAL);
   expect(lib != NULL, "dlopen %s: %s", so, dlerror());
   if (lib == NULL)
      return;
   const assay_plugin_entry_t *entry = dlsym(lib, ASSAY_ENTRY_SYMBOL);
   expect(entry != NULL && entry->abi_version.major == ASSAY_VERSION_MAJOR, "entry/ABI");
   if (entry == NULL)
      return;
   factory = entry->get_factory(ASSAY_PLUGIN_FACTORY_ID);
   expect(factory != NULL && factory->get_plugin_count(factory) == 1, "factory");
   if (factory == NULL)
      return;
   const assay_plugin_descriptor_t *d = factory->get_plugin_descriptor(factory, 0);
   expect(d != NULL && strcmp(d->id, "shapes-judge") == 0 && d->kind == ASSAY_KIND_VERIFIER,
          "descriptor");
   expect(factory->create_plugin(factory, &host, "shapes-checker") == NULL, "another id created");
   assay_result_t rc;

   char path[4096];
   snprintf(path, sizeof path, "%s/empty/shapes-judge.so", tmpdir);
   expect(entry->init(path), "entry init");
   const assay_plugin_t *p = make(NULL, &rc);
   expect(p == NULL && rc == ASSAY_ERR_IO && strstr(init_error, "shapes-judge.safetensors") != NULL,
          "missing weights: rc %d, reason \"%s\"", rc, init_error);
   expect(entry->init(so), "entry init");
   p = make(NULL, &rc);
   expect(p != NULL, "weights beside the library: rc %d: %s", rc, init_error);
   if (p != NULL)
      p->destroy(p);

   assay_option_t opt = {"weights", ASSAY_OPTION_NUMBER, NULL, 3};
   assay_options_t opts = {1, &opt};
   p = make(&opts, &rc);
   expect(p == NULL && rc == ASSAY_ERR_INVALID_ARGUMENT && strstr(init_error, "weights") != NULL,
          "numeric weights option: rc %d \"%s\"", rc, init_error);
   snprintf(path, sizeof path, "%s/truncated.safetensors", tmpdir);
   write_all(path, wbytes, wsize - 10);
   opt = (assay_option_t){"weights", ASSAY_OPTION_STRING, path, 0};
   p = make(&opts, &rc);
   expect(p == NULL && rc == ASSAY_ERR_IO && init_error[0] != '\0',
          "truncated weights: rc %d \"%s\"", rc, init_error);
   if (getenv("SJ_SHOW") != NULL)
      printf("     init refusal: %s\n", init_error);
   assay_option_t opt2[2] = {{"unrelated", ASSAY_OPTION_NUMBER, NULL, 1},
                             {"weights", ASSAY_OPTION_STRING, weights, 0}};
   opts = (assay_options_t){2, opt2};
   plugin = make(&opts, &rc);
   expect(plugin != NULL, "option weights: rc %d: %s", rc, init_error);
   if (plugin == NULL)
      return;
   vx = plugin->get_extension(plugin, ASSAY_EXT_VERIFIER);
   const assay_prompt_check_ext_t *pc = plugin->get_extension(plugin, ASSAY_EXT_PROMPT_CHECK);
   expect(vx != NULL && vx->score != NULL && pc != NULL && pc->check_prompt != NULL, "extensions");
   if (vx == NULL || pc == NULL)
      return;

   call_ctx ctx = {{0}, 0};
   assay_call_t call = {&host, 1, &ctx};
   expect(pc->check_prompt(plugin, &call, "a red circle left of a blue square") == ASSAY_OK,
          "prompt-check refuses a good caption: %s", ctx.error);
   expect(pc->check_prompt(plugin, &call, "") == ASSAY_OK, "prompt-check refuses the empty caption");
   ctx.error[0] = '\0';
   expect(pc->check_prompt(plugin, &call, "a red hexagon") == ASSAY_ERR_INVALID_ARGUMENT &&
             strstr(ctx.error, "hexagon") != NULL, "prompt-check: \"a red hexagon\": %s", ctx.error);
   ctx.error[0] = '\0';
   expect(pc->check_prompt(plugin, &call, "three circles and two squares") == ASSAY_ERR_INVALID_ARGUMENT &&
             ctx.error[0] != '\0', "prompt-check: 5 objects accepted");

   /* one caption, NB case images: scores and details equal the library's */
   const int nb = ncases < NB ? ncases : NB;
   for (int i = 0; i < nb; i++)
      batch[i] = (assay_image_t){32, 32, 96, cases[i].img};
   static set_ctx sc;
   memset(&sc, 0, sizeof sc);
   sc.out.set = t_set;
   rc = vx->score(plugin, &call, cases[0].caption, (uint32_t)nb, batch, ref, &sc.out);
   expect(rc == ASSAY_OK, "score: rc %d %s", rc, ctx.error);
   sw_spec_t spec;
   char err[256];
   sw_parse(cases[0].caption, &spec, err, sizeof err);
   int same = 1, json_ok = 1;
   jg_result_t *r = malloc(sizeof *r);
   char err2[512];
   jg_model *m = jg_model_load(weights, err2, sizeof err2);
   for (int i = 0; i < nb && m != NULL; i++) {
      jg_judge(m, cases[i].img, 32, 32, 96, &spec, r);
      same = same && r->score == ref[i];
      char *j = jg_result_json(r, 32, 32);
      json_ok = json_ok && j != NULL && strcmp(j, sc.text[i]) == 0 &&
                strncmp(sc.text[i], r->pass ? "{\"pass\":true,\"score\":" : "{\"pass\":false,\"score\":", 21) == 0 &&
                strstr(sc.text[i], "\"failed\":[") != NULL && strstr(sc.text[i], "\"detected\":[") != NULL;
      free(j);
   }
   expect(same, "plugin scores differ from jg_judge");
   expect(json_ok, "details JSON: %s", sc.text[0]);
   if (getenv("SJ_SHOW") != NULL)
      printf("     details: %s\n", sc.text[0]);

   /* the same case images as pixel-doubled 64x64 images: same scores, boxes doubled */
   uint8_t *big = malloc((size_t)nb * 64 * 64 * 3);
   assay_image_t bigs[NB];
   for (int i = 0; i < nb; i++) {
      for (int y = 0; y < 64; y++)
         for (int x = 0; x < 64; x++)
            memcpy(big + (size_t)i * 12288 + ((size_t)y * 64 + x) * 3, cases[i].img + ((y / 2) * 32 + x / 2) * 3, 3);
      bigs[i] = (assay_image_t){64, 64, 192, big + (size_t)i * 12288};
   }
   double s[NB];
   static set_ctx sc2;
   memset(&sc2, 0, sizeof sc2);
   sc2.out.set = t_set;
   rc = vx->score(plugin, &call, cases[0].caption, (uint32_t)nb, bigs, s, &sc2.out);
   expect(rc == ASSAY_OK && memcmp(s, ref, (size_t)nb * sizeof s[0]) == 0,
          "64x64 pixel-doubled images do not score like their 32x32 originals");
   /* a strided 32x32 image (row padding) scores like the packed one */
   uint8_t *padded = calloc(32 * 128, 1);
   for (int y = 0; y < 32; y++)
      memcpy(padded + y * 128, cases[0].img + y * 96, 96);
   assay_image_t pim = {32, 32, 128, padded};
   rc = vx->score(plugin, &call, cases[0].caption, 1, &pim, s, NULL);
   expect(rc == ASSAY_OK && s[0] == ref[0], "a strided image scores differently");
   /* odd sizes work: 1x1, 7x45 */
   uint8_t px[7 * 45 * 3] = {0};
   assay_image_t tiny = {1, 1, 3, px}, odd = {45, 7, 135, px};
   rc = vx->score(plugin, &call, "a circle", 1, &tiny, s, NULL);
   expect(rc == ASSAY_OK && s[0] == 0.0, "1x1 black image: rc %d score %g %s", rc, s[0], ctx.error);
   rc = vx->score(plugin, &call, "", 1, &odd, s, NULL);
   expect(rc == ASSAY_OK && s[0] == 1.0, "45x7 image, empty caption: rc %d score %g", rc, s[0]);
   /* malformed images and prompts */
   ctx.error[0] = '\0';
   assay_image_t bad = {32, 32, 90, cases[0].img};
   rc = vx->score(plugin, &call, "a circle", 1, &bad, s, NULL);
   expect(rc == ASSAY_ERR_INVALID_ARGUMENT && strstr(ctx.error, "stride") != NULL,
          "stride < 3 * width: rc %d \"%s\"", rc, ctx.error);
   assay_image_t empty = {0, 32, 96, cases[0].img};
   rc = vx->score(plugin, &call, "a circle", 1, &empty, s, NULL);
   expect(rc == ASSAY_ERR_INVALID_ARGUMENT, "0x32 image: rc %d", rc);
   assay_image_t huge = {5000, 1, 15000, cases[0].img};
   rc = vx->score(plugin, &call, "a circle", 1, &huge, s, NULL);
   expect(rc == ASSAY_ERR_INVALID_ARGUMENT && strstr(ctx.error, "4096") != NULL, "5000x1 image: rc %d", rc);
   ctx.error[0] = '\0';
   rc = vx->score(plugin, &call, "a red hexagon", 1, batch, s, NULL);
   expect(rc == ASSAY_ERR_INVALID_ARGUMENT && strstr(ctx.error, "hexagon") != NULL,
          "unknown word: rc %d \"%s\"", rc, ctx.error);
   rc = vx->score(plugin, &call, "a circle", 0, NULL, NULL, NULL);
   expect(rc == ASSAY_OK, "n = 0: rc %d", rc);
   ctx.cancel = 1;
   rc = vx->score(plugin, &call, "a circle", 2, batch, s, NULL);
   expect(rc == ASSAY_ERR_CANCELLED, "cancelled call: rc %d", rc);
   ctx.cancel = 0;
   rc = vx->score(plugin, &call, cases[0].caption, (uint32_t)nb, batch, s, NULL);
   expect(rc == ASSAY_OK && memcmp(s, ref, (size_t)nb * sizeof s[0]) == 0,
          "scores are not bit-identical across calls");

   if (nb == NB) {
      pthread_t th[4];
      thread_arg args[4];
      for (int t = 0; t < 4; t++) {
         args[t] = (thread_arg){t, 0};
         pthread_create(&th[t], NULL, worker, &args[t]);
      }
      int nbad = 0;
      for (int t = 0; t < 4; t++) {
         pthread_join(th[t], NULL);
         nbad += args[t].bad;
      }
      expect(nbad == 0, "concurrency: %d of 8 calls from 4 threads differ", nbad);
   }
   free(big);
   free(padded);
   free(r);
   jg_model_free(m);
   plugin->destroy(plugin);
   entry->deinit();
   dlclose(lib);
}

int main(int argc, char **argv) {
   if (argc != 6) {
      fprintf(stderr, "usage: %s PLUGIN.so WEIGHTS.safetensors VECTORS.safetensors CASES.bin TMPDIR\n",
              argv[0]);
      return 2;
   }
   const char *so = argv[1], *weights = argv[2], *vectors = argv[3], *cases_path = argv[4];
   snprintf(tmpdir, sizeof tmpdir, "%s", argv[5]);
   mkdir(tmpdir, 0755);
   char sub[4096];
   snprintf(sub, sizeof sub, "%s/empty", tmpdir);
   mkdir(sub, 0755);
   wbytes = read_all(weights, &wsize);
   if (wbytes == NULL || wsize < 8) {
      printf("cannot read %s\n0 passed, 1 failed\n", weights);
      return 1;
   }
   hlen = 0;
   for (int i = 0; i < 8; i++)
      hlen |= (uint64_t)wbytes[i] << (8 * i);
   if (hlen > wsize - 8) {
      printf("%s: bad header length\n0 passed, 1 failed\n", weights);
      return 1;
   }
   char err[1024];
   jg_model *m = jg_model_load(weights, err, sizeof err);
   expect(m != NULL, "load %s: %s", weights, err);
   expect(load_cases(cases_path) == 0, "cannot read the cases %s", cases_path);
   if (m != NULL) {
      test_vectors(m, vectors);
      test_cases(m);
   }
   test_rules();
   test_corrupt();
   if (ncases > 0)
      test_plugin(so, weights);
   jg_model_free(m);
   free(cases);
   free(wbytes);
   printf("%d passed, %d failed\n", passed, failed);
   return failed ? 1 : 0;
}
