/* Plugins/shapes/clipscore/test_clipscore.c: tests of the shapes-clipscore model and plugin.
 *
 *   test_clipscore PLUGIN.so WEIGHTS.safetensors VECTORS.safetensors TMPDIR
 *
 * 1. C vs PyTorch: the reference vectors of tools/clipscore/train.py (images, token ids, image
 *    and text embeddings, cosine matrix, computed in float32 with the float16 weights): the C
 *    tokenizer gives the same ids, the embeddings and cosines differ by < 1e-4. Determinism,
 *    strided images.
 * 2. Tokenizer rules (world.py `encode`): case, whitespace, empty caption, unknown words, too
 *    many words, "<pad>".
 * 3. Corrupt weights: empty, truncated (many lengths), impossible header length, bad JSON,
 *    wrong dtype, wrong shape, data past the end, overlapping ranges, missing tensor, bad
 *    metadata, non-finite values are refused with a reason; 600 random byte mutations and
 *    truncations never crash (each either loads a usable model or is refused with a reason).
 * 4. The plugin through the ABI (dlopen): descriptor, weights found beside the library (entry
 *    init), option `weights`, refusals in init reported with call == NULL, scores equal
 *    (cosine + 1) / 2, details JSON, unknown word and wrong image size refused, cancellation,
 *    bit-identical results from 8 threads at once.
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

#include "../engine/json.h"
#include "../engine/safetensors.h"
#include "clipscore.h"

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
   if (b != NULL && n > 0 && fread(b, 1, (size_t)n, f) != (size_t)n) {
      free(b);
      b = NULL;
   }
   fclose(f);
   *size = n > 0 ? (size_t)n : 0;
   return b;
}

static int write_all(const char *path, const uint8_t *b, size_t n) {
   FILE *f = fopen(path, "wb");
   if (f == NULL)
      return -1;
   int ok = n == 0 || fwrite(b, 1, n, f) == n;
   return fclose(f) == 0 && ok ? 0 : -1;
}

/* ---- reference vectors ------------------------------------------------------------------ */

#define NV_MAX 32
static int nv;                       /* number of vectors (images = captions) */
static int embed;                    /* embedding size */
static uint8_t vimg[NV_MAX][32 * 32 * 3];
static int32_t vtok[NV_MAX][CS_MAX_TOKENS];
static float *vie, *vte, *vcos;      /* (nv, embed), (nv, embed), (nv, nv) */
static char vcap[NV_MAX][128];

static float *load_f32(st_file *f, const char *name, uint64_t numel) {
   const st_tensor *t = st_find(f, name);
   if (t == NULL || t->numel != numel)
      return NULL;
   float *out = malloc(numel * sizeof *out);
   st_to_f32(f, t, out);
   return out;
}

static int load_vectors(const char *path) {
   char err[512];
   st_file *f = st_open(path, ST_F32 | ST_I32, err, sizeof err);
   if (f == NULL) {
      printf("cannot read the vectors: %s\n", err);
      return -1;
   }
   const char *caps = st_meta(f, "captions");
   sj_value *c = caps ? sj_parse(caps, strlen(caps), err, sizeof err) : NULL;
   const st_tensor *ti = st_find(f, "image_embeds");
   if (c == NULL || c->type != SJ_ARRAY || c->length == 0 || c->length > NV_MAX || ti == NULL ||
       ti->ndim != 2) {
      printf("vectors: bad captions metadata or image_embeds\n");
      return -1;
   }
   nv = (int)c->length;
   embed = (int)ti->shape[1];
   for (int i = 0; i < nv; i++)
      snprintf(vcap[i], sizeof vcap[i], "%s", c->items[i].type == SJ_STRING ? c->items[i].string : "?");
   sj_free(c);
   float *img = load_f32(f, "images", (uint64_t)nv * 32 * 32 * 3);
   float *tok = load_f32(f, "tokens", (uint64_t)nv * CS_MAX_TOKENS);
   vie = load_f32(f, "image_embeds", (uint64_t)nv * embed);
   vte = load_f32(f, "text_embeds", (uint64_t)nv * embed);
   vcos = load_f32(f, "cosine", (uint64_t)nv * nv);
   st_close(f);
   if (img == NULL || tok == NULL || vie == NULL || vte == NULL || vcos == NULL) {
      printf("vectors: a tensor is missing or has the wrong size\n");
      return -1;
   }
   for (int i = 0; i < nv; i++) {
      for (int k = 0; k < 32 * 32 * 3; k++)
         vimg[i][k] = (uint8_t)img[(size_t)i * 3072 + k];
      for (int k = 0; k < CS_MAX_TOKENS; k++)
         vtok[i][k] = (int32_t)tok[i * CS_MAX_TOKENS + k];
   }
   free(img);
   free(tok);
   return 0;
}

static void test_reference(const cs_model *m) {
   expect(cs_embed_dim(m) == embed, "embedding size %d, vectors have %d", cs_embed_dim(m), embed);
   if (cs_embed_dim(m) != embed)
      return;
   float *ie = malloc((size_t)nv * embed * sizeof *ie), *te = malloc((size_t)nv * embed * sizeof *te);
   double dimg = 0, dtxt = 0, dcos = 0;
   for (int i = 0; i < nv; i++) {
      int32_t tok[CS_MAX_TOKENS];
      char err[1024];
      int rc = cs_tokenize(m, vcap[i], tok, err, sizeof err);
      expect(rc == 0 && memcmp(tok, vtok[i], sizeof tok) == 0, "tokens of \"%s\" differ from world.encode",
             vcap[i]);
      expect(cs_embed_image(m, vimg[i], 96, ie + (size_t)i * embed) == 0, "embed image %d", i);
      expect(cs_embed_text(m, vtok[i], te + (size_t)i * embed) == 0, "embed text %d", i);
      for (int k = 0; k < embed; k++) {
         dimg = fmax(dimg, fabs(ie[(size_t)i * embed + k] - vie[(size_t)i * embed + k]));
         dtxt = fmax(dtxt, fabs(te[(size_t)i * embed + k] - vte[(size_t)i * embed + k]));
      }
   }
   for (int i = 0; i < nv; i++)
      for (int j = 0; j < nv; j++)
         dcos = fmax(dcos, fabs(cs_cosine(m, ie + (size_t)i * embed, te + (size_t)j * embed) -
                                vcos[i * nv + j]));
   printf("     C vs PyTorch (%d images, %d captions): max |diff| image embeddings %.2e, text "
          "embeddings %.2e, cosines %.2e\n", nv, nv, dimg, dtxt, dcos);
   expect(dimg < 1e-4, "image embeddings differ by %.3g (>= 1e-4)", dimg);
   expect(dtxt < 1e-4, "text embeddings differ by %.3g (>= 1e-4)", dtxt);
   expect(dcos < 1e-4, "cosines differ by %.3g (>= 1e-4)", dcos);

   /* determinism and strides */
   float *a = malloc((size_t)embed * sizeof *a), *b = malloc((size_t)embed * sizeof *b);
   uint8_t *wide = calloc(32 * 200, 1);
   for (int y = 0; y < 32; y++)
      memcpy(wide + y * 200, vimg[0] + y * 96, 96);
   cs_embed_image(m, vimg[0], 96, a);
   cs_embed_image(m, wide, 200, b);
   expect(memcmp(a, b, (size_t)embed * sizeof *a) == 0, "a strided image embeds differently");
   cs_embed_image(m, vimg[0], 96, b);
   expect(memcmp(a, ie, (size_t)embed * sizeof *a) == 0 && memcmp(a, b, (size_t)embed * sizeof *a) == 0,
          "image embedding not bit-identical across calls");
   double norm = 0;
   for (int k = 0; k < embed; k++)
      norm += (double)a[k] * a[k];
   expect(fabs(norm - 1.0) < 1e-5, "image embedding norm^2 %.6f", norm);
   free(wide);
   free(a);
   free(b);
   free(ie);
   free(te);
}

static void test_tokenizer(const cs_model *m) {
   int32_t a[CS_MAX_TOKENS], b[CS_MAX_TOKENS];
   char err[1024];
   expect(cs_tokenize(m, "a red circle", a, err, sizeof err) == 0, "tokenize a red circle");
   expect(cs_tokenize(m, "  A \tRed\n CIRCLE  ", b, err, sizeof err) == 0 && memcmp(a, b, sizeof a) == 0,
          "case and whitespace are not normalised like world.encode");
   expect(a[0] == 1 && a[1] == 6 && a[2] == 10 && a[3] == 0 && a[7] == 0,
          "ids of \"a red circle\": %d %d %d %d", a[0], a[1], a[2], a[3]);
   expect(cs_tokenize(m, "", a, err, sizeof err) == 0 && a[0] == 0 && a[7] == 0, "empty caption");
   expect(cs_tokenize(m, " \t ", a, err, sizeof err) == 0 && a[0] == 0, "blank caption");
   err[0] = '\0';
   expect(cs_tokenize(m, "a red hexagon", a, err, sizeof err) != 0 && strstr(err, "hexagon") != NULL &&
          strstr(err, "vocabulary") != NULL, "unknown word not refused with its name: %s", err);
   err[0] = '\0';
   expect(cs_tokenize(m, "a red circle left of a blue square and", a, err, sizeof err) != 0 &&
          strstr(err, "9 words") != NULL, "9 words not refused: %s", err);
   expect(cs_tokenize(m, "a <pad> circle", a, err, sizeof err) != 0, "<pad> accepted as a word");
   expect(cs_tokenize(m, "a red circle left of a blue square", a, err, sizeof err) == 0 && a[7] == 11,
          "8 words refused");
   expect(cs_tokenize(m, "a r\xc3\xa9""d circle", a, err, sizeof err) != 0, "non-ASCII word accepted");
   char longw[200];
   memset(longw, 'x', sizeof longw - 1);
   longw[sizeof longw - 1] = '\0';
   expect(cs_tokenize(m, longw, a, err, sizeof err) != 0 && strstr(err, "...") != NULL,
          "a 199-byte word not refused (or not shortened in the message)");
}

/* ---- corrupt files ---------------------------------------------------------------------- */

#define FUZZ_N 600
static uint8_t *wbytes;
static size_t wsize;
static uint64_t hlen;

/* A copy of the weights whose header has `from` replaced by `to` (first occurrence), with the
 * length prefix fixed. NULL when `from` is not in the header. */
static uint8_t *with_header_edit(const char *from, const char *to, size_t *out_size) {
   const char *h = (const char *)wbytes + 8;
   const char *at = NULL;
   size_t fl = strlen(from), tl = strlen(to);
   for (size_t i = 0; i + fl <= hlen; i++)
      if (memcmp(h + i, from, fl) == 0) {
         at = h + i;
         break;
      }
   if (at == NULL)
      return NULL;
   size_t pre = (size_t)(at - h);
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

static void expect_refused(const uint8_t *b, size_t n, const char *what, const char *needle) {
   char err[1024] = "";
   cs_model *m = cs_model_load_memory(b, n, "corrupt.safetensors", err, sizeof err);
   expect(m == NULL && err[0] != '\0', "%s: not refused", what);
   if (m == NULL && needle != NULL)
      expect(strstr(err, needle) != NULL, "%s: reason \"%s\" lacks \"%s\"", what, err, needle);
   if (m == NULL && getenv("CS_SHOW") != NULL)
      printf("     %s -> %s\n", what, err);
   cs_model_free(m);
}

static void test_corrupt(void) {
   uint8_t zero = 0;
   expect_refused(&zero, 0, "empty file", "too short");
   size_t cuts[] = {4, 8, 9, 8 + (size_t)hlen / 2, 8 + (size_t)hlen, 8 + (size_t)hlen + 100,
                    wsize / 2, wsize - 1};
   for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
      char what[64];
      snprintf(what, sizeof what, "truncated to %zu bytes", cuts[i]);
      expect_refused(wbytes, cuts[i], what, NULL);
   }
   uint8_t *b = malloc(wsize);
   memcpy(b, wbytes, wsize);
   for (int i = 0; i < 8; i++)
      b[i] = (uint8_t)((uint64_t)1 << 40 >> (8 * i));
   expect_refused(b, wsize, "header length 2^40", "impossible");
   uint64_t big = wsize;
   for (int i = 0; i < 8; i++)
      b[i] = (uint8_t)(big >> (8 * i));
   expect_refused(b, wsize, "header length = file size", "impossible");
   memcpy(b, wbytes, wsize);
   b[8] = 'x';
   expect_refused(b, wsize, "header not JSON", NULL);
   memcpy(b, wbytes, wsize);
   b[8 + hlen - 1] = ',';
   expect_refused(b, wsize, "header JSON cut", "JSON");
   free(b);

   struct {
      const char *from, *to, *what, *needle;
   } edits[] = {
      {"\"dtype\":\"F16\"", "\"dtype\":\"I32\"", "dtype I32", "dtype"},
      {"\"dtype\":\"F16\"", "\"dtype\":\"F32\"", "dtype F32 with F16-sized data", "data_offsets"},
      {"\"dtype\":\"F16\"", "\"dtype\":\"BF16\"", "dtype BF16", "dtype"},
      {"\"img.fc1.weight\":{\"dtype\":\"F16\",\"shape\":[128,128]",
       "\"img.fc1.weight\":{\"dtype\":\"F16\",\"shape\":[64,256]", "img.fc1 reshaped", "shape"},
      {"\"img.conv1.weight\":{\"dtype\":\"F16\",\"shape\":[32,5,3,3]",
       "\"img.conv1.weight\":{\"dtype\":\"F16\",\"shape\":[32,5,9]", "conv1 3-d", "shape"},
      {"\"txt.emb.3.weight\":{\"dtype\":\"F16\",\"shape\":[22,16]",
       "\"txt.emb.3.weight\":{\"dtype\":\"F16\",\"shape\":[16,22]", "emb.3 transposed", "shape"},
      {"\"txt.fc2.bias\"", "\"txt.fc2.biaz\"", "missing txt.fc2.bias", "missing"},
      {"\"vocab\":", "\"vocaX\":", "no vocab", "vocab"},
      {"\\\"<pad>\\\"", "\\\"<pad\\\"", "vocab without <pad>", "vocab"},
      {"\\\"circle\\\"", "\\\"red\\\"", "vocab with a duplicate", "vocab"},
      {"\"vocab\":\"[", "\"vocab\":\"{", "vocab not JSON", "vocab"},
      {"shapes-clipscore/1", "shapes-clipscore/9", "wrong format", "format"},
      {"\\\"stride\\\": 2", "\\\"stride\\\": 1", "architecture with stride 1", "stride"},
      {"\"architecture\":", "\"architecturX\":", "no architecture", "architecture"},
      {"\"__metadata__\":{", "\"__metadata__\":{\"x\":1,", "non-string metadata", "metadata"},
   };
   for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
      size_t n = 0;
      uint8_t *e = with_header_edit(edits[i].from, edits[i].to, &n);
      expect(e != NULL, "%s: the header has no %s (test out of date?)", edits[i].what, edits[i].from);
      if (e != NULL)
         expect_refused(e, n, edits[i].what, edits[i].needle);
      free(e);
   }

   /* overlapping ranges: txt.emb.1 pointed at txt.emb.0's bytes; data past the end */
   char err[512];
   sj_value *h = sj_parse((const char *)wbytes + 8, (size_t)hlen, err, sizeof err);
   const sj_value *e0 = h ? sj_get(h, "txt.emb.0.weight") : NULL;
   const sj_value *e1 = h ? sj_get(h, "txt.emb.1.weight") : NULL;
   const sj_value *o0 = e0 ? sj_get(e0, "data_offsets") : NULL;
   const sj_value *o1 = e1 ? sj_get(e1, "data_offsets") : NULL;
   expect(o0 != NULL && o1 != NULL, "header lacks txt.emb.0/1 offsets");
   if (o0 != NULL && o1 != NULL) {
      char from[96], to[96];
      snprintf(from, sizeof from, "\"data_offsets\":[%llu,%llu]",
               (unsigned long long)o1->items[0].uint_value, (unsigned long long)o1->items[1].uint_value);
      snprintf(to, sizeof to, "\"data_offsets\":[%llu,%llu]",
               (unsigned long long)o0->items[0].uint_value, (unsigned long long)o0->items[1].uint_value);
      size_t n = 0;
      uint8_t *e = with_header_edit(from, to, &n);
      expect(e != NULL, "offsets of txt.emb.1 not found");
      if (e != NULL)
         expect_refused(e, n, "overlapping tensors", "overlap");
      free(e);
      uint64_t len = o1->items[1].uint_value - o1->items[0].uint_value;
      uint64_t past = (uint64_t)(wsize - 8 - hlen);
      snprintf(to, sizeof to, "\"data_offsets\":[%llu,%llu]", (unsigned long long)past,
               (unsigned long long)(past + len));
      e = with_header_edit(from, to, &n);
      if (e != NULL)
         expect_refused(e, n, "data past the end", "past the end");
      free(e);
      /* a non-finite weight */
      uint8_t *inf = malloc(wsize);
      memcpy(inf, wbytes, wsize);
      size_t at = 8 + (size_t)hlen + (size_t)o0->items[0].uint_value + 2;
      inf[at] = 0x00;
      inf[at + 1] = 0x7c; /* +inf in float16 */
      expect_refused(inf, wsize, "an infinite weight", "non-finite");
      free(inf);
   }
   sj_free(h);

   /* fuzz: random byte mutations (mostly in the header) and truncations */
   uint64_t s = 12345;
   int loaded = 0, refused = 0, usable = 1;
   uint8_t *f = malloc(wsize);
   for (int it = 0; it < FUZZ_N; it++) {
      memcpy(f, wbytes, wsize);
      size_t n = wsize;
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      int flips = 1 + (int)((s >> 33) % 4);
      for (int k = 0; k < flips; k++) {
         s = s * 6364136223846793005ull + 1442695040888963407ull;
         size_t pos = (it % 4 == 3) ? (size_t)((s >> 20) % wsize) : (size_t)((s >> 20) % (hlen + 8));
         s = s * 6364136223846793005ull + 1442695040888963407ull;
         f[pos] = (uint8_t)(s >> 40);
      }
      if (it % 5 == 4) {
         s = s * 6364136223846793005ull + 1442695040888963407ull;
         n = (size_t)((s >> 20) % wsize);
      }
      char e[1024] = "";
      cs_model *m = cs_model_load_memory(f, n, "fuzz", e, sizeof e);
      if (m != NULL) {
         loaded++;
         float out[4096];
         int32_t tok[CS_MAX_TOKENS] = {1, 6, 10, 0, 0, 0, 0, 0};
         if (cs_embed_dim(m) > 4096 || cs_embed_image(m, vimg[0], 96, out) != 0 ||
             cs_embed_text(m, tok, out) != 0)
            usable = 0;
         cs_model_free(m);
      } else {
         refused++;
         if (e[0] == '\0')
            usable = 0;
      }
   }
   free(f);
   printf("     fuzz: %d mutated files, %d refused with a reason, %d loaded and ran\n", FUZZ_N, refused,
          loaded);
   expect(usable, "fuzz: a loaded model failed to run or a refusal had no reason");
   expect(refused > FUZZ_N / 2, "fuzz: only %d of %d mutations refused", refused, FUZZ_N);
}

/* ---- plugin ----------------------------------------------------------------------------- */

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
   if (getenv("CS_SHOW") != NULL)
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
   const assay_plugin_t *p = factory->create_plugin(factory, &host, "shapes-clipscore");
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

typedef struct set_ctx {
   assay_text_out_t out;
   char text[NV_MAX][128];
} set_ctx;
static void t_set(const assay_text_out_t *out, uint32_t index, const char *utf8) {
   set_ctx *c = (set_ctx *)out;
   if (index < NV_MAX)
      snprintf(c->text[index], sizeof c->text[index], "%s", utf8);
}

static assay_image_t images[NV_MAX];
static const assay_verifier_ext_t *vx;
static const assay_plugin_t *plugin;
static double ref_scores[NV_MAX][NV_MAX]; /* [caption][image] */

typedef struct thread_arg {
   int id, bad;
} thread_arg;

static void *worker(void *p) {
   thread_arg *a = p;
   call_ctx ctx = {{0}, 0};
   assay_call_t call = {&host, (uint64_t)a->id + 1, &ctx};
   for (int it = 0; it < 12; it++) {
      int c = (a->id * 7 + it) % nv;
      double s[NV_MAX];
      if (vx->score(plugin, &call, vcap[c], (uint32_t)nv, images, s, NULL) != ASSAY_OK ||
          memcmp(s, ref_scores[c], (size_t)nv * sizeof s[0]) != 0)
         a->bad++;
   }
   return NULL;
}

static void test_plugin(const char *so, const char *weights, const char *tmp) {
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
   const assay_plugin_descriptor_t *d = factory->get_plugin_descriptor(factory, 0);
   expect(d != NULL && strcmp(d->id, "shapes-clipscore") == 0 && d->kind == ASSAY_KIND_VERIFIER,
          "descriptor");
   assay_result_t rc;

   /* weights beside the library: a temporary folder without them, then the real one */
   char path[4096];
   snprintf(path, sizeof path, "%s/empty/shapes-clipscore.so", tmp);
   expect(entry->init(path), "entry init");
   const assay_plugin_t *p = make(NULL, &rc);
   expect(p == NULL && rc == ASSAY_ERR_IO && strstr(init_error, "cannot open") != NULL,
          "missing weights: rc %d, reason \"%s\"", rc, init_error);
   expect(entry->init(so), "entry init");
   p = make(NULL, &rc);
   expect(p != NULL, "weights beside the library: rc %d: %s", rc, init_error);
   if (p != NULL)
      p->destroy(p);

   /* option weights: wrong type, corrupt file, good file */
   assay_option_t opt = {"weights", ASSAY_OPTION_NUMBER, NULL, 3};
   assay_options_t opts = {1, &opt};
   p = make(&opts, &rc);
   expect(p == NULL && rc == ASSAY_ERR_INVALID_ARGUMENT && strstr(init_error, "weights") != NULL,
          "numeric weights option: rc %d \"%s\"", rc, init_error);
   snprintf(path, sizeof path, "%s/truncated.safetensors", tmp);
   write_all(path, wbytes, wsize - 10);
   opt = (assay_option_t){"weights", ASSAY_OPTION_STRING, path, 0};
   p = make(&opts, &rc);
   expect(p == NULL && rc == ASSAY_ERR_IO && strstr(init_error, "truncated") != NULL,
          "truncated weights: rc %d \"%s\"", rc, init_error);
   if (getenv("CS_SHOW") != NULL)
      printf("     init refusal: %s\n", init_error);
   assay_option_t opt2[2] = {{"unrelated", ASSAY_OPTION_NUMBER, NULL, 1},
                             {"weights", ASSAY_OPTION_STRING, weights, 0}};
   opts = (assay_options_t){2, opt2};
   plugin = make(&opts, &rc);
   expect(plugin != NULL, "option weights: rc %d: %s", rc, init_error);
   if (plugin == NULL)
      return;
   vx = plugin->get_extension(plugin, ASSAY_EXT_VERIFIER);
   expect(vx != NULL && vx->score != NULL, "verifier extension");
   if (vx == NULL)
      return;

   for (int i = 0; i < nv; i++)
      images[i] = (assay_image_t){32, 32, 96, vimg[i]};
   call_ctx ctx = {{0}, 0};
   assay_call_t call = {&host, 1, &ctx};
   double maxd = 0;
   int json_ok = 1;
   for (int c = 0; c < nv; c++) {
      set_ctx sc;
      memset(&sc, 0, sizeof sc);
      sc.out.set = t_set;
      rc = vx->score(plugin, &call, vcap[c], (uint32_t)nv, images, ref_scores[c], &sc.out);
      expect(rc == ASSAY_OK, "score \"%s\": rc %d %s", vcap[c], rc, ctx.error);
      for (int i = 0; i < nv; i++) {
         maxd = fmax(maxd, fabs(ref_scores[c][i] - (vcos[i * nv + c] + 1.0) / 2.0));
         double cosv = 0;
         char tail = 0;
         if (sscanf(sc.text[i], "{\"cosine\":%lf%c", &cosv, &tail) != 2 || tail != '}' ||
             fabs((cosv + 1) / 2 - ref_scores[c][i]) > 1e-6)
            json_ok = 0;
      }
   }
   printf("     plugin scores vs (PyTorch cosine + 1) / 2: max |diff| %.2e\n", maxd);
   expect(maxd < 1e-4, "plugin scores differ from the reference by %.3g", maxd);
   expect(json_ok, "details are not {\"cosine\":x} matching the score");
   /* the matching caption should usually score highest among the 10 captions (not required) */
   int best_matches = 0;
   for (int i = 0; i < nv; i++) {
      int arg = 0;
      for (int c = 1; c < nv; c++)
         if (ref_scores[c][i] > ref_scores[arg][i])
            arg = c;
      best_matches += arg == i;
   }
   printf("     (info) %d of %d vector images score highest with their own caption\n", best_matches, nv);

   double s[NV_MAX];
   ctx.error[0] = '\0';
   rc = vx->score(plugin, &call, "a red hexagon", 1, images, s, NULL);
   expect(rc == ASSAY_ERR_INVALID_ARGUMENT && strstr(ctx.error, "hexagon") != NULL,
          "unknown word: rc %d \"%s\"", rc, ctx.error);
   ctx.error[0] = '\0';
   assay_image_t small = {16, 16, 48, vimg[0]};
   rc = vx->score(plugin, &call, "a circle", 1, &small, s, NULL);
   expect(rc == ASSAY_ERR_INVALID_ARGUMENT && strstr(ctx.error, "16x16") != NULL,
          "16x16 image: rc %d \"%s\"", rc, ctx.error);
   rc = vx->score(plugin, &call, "a circle", 0, NULL, NULL, NULL);
   expect(rc == ASSAY_OK, "n = 0: rc %d", rc);
   ctx.cancel = 1;
   rc = vx->score(plugin, &call, "a circle", 2, images, s, NULL);
   expect(rc == ASSAY_ERR_CANCELLED, "cancelled call: rc %d", rc);
   ctx.cancel = 0;
   rc = vx->score(plugin, &call, vcap[0], (uint32_t)nv, images, s, NULL);
   expect(rc == ASSAY_OK && memcmp(s, ref_scores[0], (size_t)nv * sizeof s[0]) == 0,
          "scores are not bit-identical across calls");
   /* the image order inside a batch does not change a score */
   assay_image_t rev[NV_MAX];
   for (int i = 0; i < nv; i++)
      rev[i] = images[nv - 1 - i];
   rc = vx->score(plugin, &call, vcap[0], (uint32_t)nv, rev, s, NULL);
   int same = rc == ASSAY_OK;
   for (int i = 0; i < nv; i++)
      same = same && s[i] == ref_scores[0][nv - 1 - i];
   expect(same, "scores depend on the batch order");

   pthread_t th[8];
   thread_arg args[8];
   for (int t = 0; t < 8; t++) {
      args[t] = (thread_arg){t, 0};
      pthread_create(&th[t], NULL, worker, &args[t]);
   }
   int bad = 0;
   for (int t = 0; t < 8; t++) {
      pthread_join(th[t], NULL);
      bad += args[t].bad;
   }
   expect(bad == 0, "concurrency: %d of 96 calls from 8 threads differ from the reference", bad);
   plugin->destroy(plugin);
   entry->deinit();
   dlclose(lib);
}

int main(int argc, char **argv) {
   if (argc != 5) {
      fprintf(stderr, "usage: %s PLUGIN.so WEIGHTS.safetensors VECTORS.safetensors TMPDIR\n", argv[0]);
      return 2;
   }
   const char *so = argv[1], *weights = argv[2], *vectors = argv[3], *tmp = argv[4];
   mkdir(tmp, 0755);
   char sub[4096];
   snprintf(sub, sizeof sub, "%s/empty", tmp);
   mkdir(sub, 0755);
   wbytes = read_all(weights, &wsize);
   if (wbytes == NULL || wsize < 8) {
      printf("cannot read %s\n0 passed, 1 failed\n", weights);
      return 1;
   }
   for (int i = 7; i >= 0; i--)
      hlen = hlen << 8 | wbytes[i];
   if (load_vectors(vectors) != 0) {
      printf("0 passed, 1 failed\n");
      return 1;
   }
   char err[1024];
   cs_model *m = cs_model_load(weights, err, sizeof err);
   expect(m != NULL, "load %s: %s", weights, err);
   if (m != NULL) {
      printf("ok   loaded %s (%zu bytes, embedding %d, vocabulary %d)\n", weights, wsize,
             cs_embed_dim(m), cs_vocab_size(m));
      test_reference(m);
      printf("%s C vs PyTorch vectors\n", failed ? "FAIL" : "ok  ");
      int f0 = failed;
      test_tokenizer(m);
      printf("%s tokenizer\n", failed > f0 ? "FAIL" : "ok  ");
      cs_model_free(m);
   }
   int f1 = failed;
   test_corrupt();
   printf("%s corrupt files refused\n", failed > f1 ? "FAIL" : "ok  ");
   int f2 = failed;
   test_plugin(so, weights, tmp);
   printf("%s plugin through the ABI (init, scores, details, errors, 8 threads)\n",
          failed > f2 ? "FAIL" : "ok  ");
   printf("%d passed, %d failed\n", passed, failed);
   free(wbytes);
   free(vie);
   free(vte);
   free(vcos);
   return failed ? 1 : 0;
}
