/* test_corrupt.c: damaged weights files are refused with a clear reason, never a crash.
 *
 *   test_corrupt WEIGHTS SCRATCH_DIR [CORRECTOR_WEIGHTS]
 *
 * With a corrector export (tools/corrector/) also: its own refusals (no or malformed
 * base_sha256, wrong shapes of the widened stem and the reflection embeddings, a missing
 * reflection tensor, corrector keys under the base format, config / metadata mismatches,
 * truncation) and random damage.
 *
 * Builds variants of a good weights file in SCRATCH_DIR (header length huge / past EOF,
 * bad JSON, wrong dtype, wrong shape, inconsistent or overlapping data offsets, data past
 * EOF, missing tensor, config/weights mismatch, NaN weights, duplicate names, bad metadata,
 * deep nesting, invalid UTF-8, ...) and checks each load fails with the expected message.
 * Then flips random header bytes and truncates at random points (no crash allowed: run
 * under valgrind or ASan to check memory safety too). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdint.h>
#include <sys/stat.h>

#include "engine.h"
#include "json.h"
#include "testutil.h"

static unsigned char *orig;
static size_t orig_size, hdr_len;
static char dir[4096];

static void write_file(const char *path, const unsigned char *a, size_t an, const unsigned char *b, size_t bn) {
   FILE *f = fopen(path, "wb");
   if (f == NULL) {
      printf("cannot write %s: %s\n", path, strerror(errno));
      exit(2);
   }
   if (an) fwrite(a, 1, an, f);
   if (bn) fwrite(b, 1, bn, f);
   fclose(f);
}

/* Writes a variant whose header is the original with the first `find` replaced by `repl`
 * (header length recomputed), data block unchanged, then cut to `keep` bytes (0 = all). */
static int variant(const char *path, const char *find, const char *repl, size_t keep) {
   const char *h = (const char *)orig + 8;
   const char *p = NULL;
   for (size_t i = 0; find != NULL && i + strlen(find) <= hdr_len; i++)
      if (memcmp(h + i, find, strlen(find)) == 0) {
         p = h + i;
         break;
      }
   if (find != NULL && p == NULL) {
      printf("  (variant %s: \"%s\" not found in the header)\n", path, find);
      return 0;
   }
   size_t nl = find ? hdr_len - strlen(find) + strlen(repl) : hdr_len;
   size_t total = 8 + nl + (orig_size - 8 - hdr_len);
   unsigned char *buf = malloc(total);
   for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)nl >> (8 * i));
   size_t o = 8;
   if (find != NULL) {
      size_t pre = (size_t)(p - h);
      memcpy(buf + o, h, pre); o += pre;
      memcpy(buf + o, repl, strlen(repl)); o += strlen(repl);
      memcpy(buf + o, p + strlen(find), hdr_len - pre - strlen(find)); o += hdr_len - pre - strlen(find);
   } else {
      memcpy(buf + o, h, hdr_len); o += hdr_len;
   }
   memcpy(buf + o, orig + 8 + hdr_len, orig_size - 8 - hdr_len);
   write_file(path, buf, keep ? keep : total, NULL, 0);
   free(buf);
   return 1;
}

/* Loads `path`, expects failure with `expect` in the message. */
static void expect_fail(const char *label, const char *path, const char *expect) {
   char err[1024] = "";
   shapes_engine_t *e = shapes_engine_load(path, err, sizeof err);
   const char *msg = err;
   const char *colon = strstr(err, ": "); /* drop the long path prefix for the listing */
   if (colon != NULL && strncmp(err, dir, strlen(dir)) == 0) msg = colon + 2;
   printf("  %-26s -> %s\n", label, e ? "(loaded!)" : msg);
   CHECK(e == NULL && strstr(err, expect) != NULL, "%s: expected a failure mentioning \"%s\", got %s", label,
         expect, e ? "a successful load" : err);
   shapes_engine_free(e);
}

static void path_of(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", dir, name); }

/* The JSON parser on its own: valid documents decode exactly, invalid ones are refused. */
static void test_json(void) {
   char err[256];
   static const char *const bad[] = {
      "", "{", "{\"a\":1,}", "[1,]", "01", "-", "1.", "1e", "tru", "nul", "NaN", "\"abc", "\"\\x\"",
      "\"\\ud800\"", "\"\\udc00x\"", "\"\\u12g4\"", "\"a\nb\"", "\"\\u0000\"", "{1:2}", "[1 2]", "{\"a\" 1}",
      "1 2", "\"\xc3\"", "\"\xed\xa0\x80\"", "\"\xc0\xaf\"", "{\"a\":}",
   };
   int refused = 0;
   for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
      sj_value *v = sj_parse(bad[i], strlen(bad[i]), err, sizeof err);
      if (v == NULL && err[0] != 0) refused++;
      else printf("  JSON %s was accepted\n", bad[i]);
      sj_free(v);
   }
   CHECK(refused == (int)(sizeof bad / sizeof bad[0]), "%d of %zu invalid JSON texts refused", refused,
         sizeof bad / sizeof bad[0]);
   const char *good = " {\"s\":\"\\u00e9\\ud83d\\ude00\\n\\/\",\"n\":[0,-0,12,1.5e2,-2.5E-1,18446744073709551615,"
                      "18446744073709551616],\"b\":[true,false,null],\"e\":{},\"a\":[]} ";
   sj_value *v = sj_parse(good, strlen(good), err, sizeof err);
   CHECK(v != NULL, "valid JSON refused: %s", err);
   if (v != NULL) {
      const sj_value *s = sj_get(v, "s"), *n = sj_get(v, "n"), *b = sj_get(v, "b");
      CHECK(s && strcmp(s->string, "\xc3\xa9\xf0\x9f\x98\x80\n/") == 0, "string escapes decoded wrongly");
      CHECK(n && n->length == 7 && n->items[2].is_uint && n->items[2].uint_value == 12 && !n->items[1].is_uint &&
               n->items[3].number == 150.0 && n->items[4].number == -0.25 && n->items[5].is_uint &&
               n->items[5].uint_value == UINT64_MAX && !n->items[6].is_uint,
            "numbers decoded wrongly");
      CHECK(b && b->items[0].type == SJ_BOOL && b->items[0].boolean && b->items[2].type == SJ_NULL, "literals");
      CHECK(sj_get(v, "e") && sj_get(v, "e")->type == SJ_OBJECT && sj_get(v, "missing") == NULL, "objects");
   }
   sj_free(v);
   printf("  JSON parser: %zu invalid texts refused, escapes/numbers/literals decoded\n", sizeof bad / sizeof bad[0]);
}

/* Loads a good file into orig / orig_size / hdr_len. */
static int load_orig(const char *path) {
   free(orig);
   orig = tu_read_file(path, &orig_size);
   if (orig == NULL || orig_size < 8) {
      printf("FAIL cannot read %s\n", path);
      tu_failed++;
      return 0;
   }
   hdr_len = 0;
   for (int i = 7; i >= 0; i--) hdr_len = hdr_len << 8 | orig[i];
   return 1;
}

/* Random damage to the header (and truncation): never a crash, every refusal with a message. */
static void fuzz(const char *name, int iterations, unsigned seed) {
   char p[4200], err[1024];
   int loaded = 0, refused = 0, silent = 0;
   unsigned char *b = malloc(orig_size);
   path_of(p, sizeof p, name);
   for (int it = 0; it < iterations; it++) {
      memcpy(b, orig, orig_size);
      size_t keep = orig_size;
      for (int k = 0; k < 1 + it % 4; k++) {
         seed = seed * 1103515245u + 12345u;
         size_t pos = (seed >> 8) % (8 + hdr_len);
         seed = seed * 1103515245u + 12345u;
         b[pos] = (unsigned char)(seed >> 16);
      }
      if (it % 5 == 0) {
         seed = seed * 1103515245u + 12345u;
         keep = (seed >> 4) % orig_size;
      }
      write_file(p, b, keep, NULL, 0);
      shapes_engine_t *e = shapes_engine_load(p, err, sizeof err);
      if (e != NULL) loaded++; else refused++;
      if (e == NULL && err[0] == 0) silent++;
      shapes_engine_free(e);
   }
   free(b);
   CHECK(silent == 0, "%d refusals came without a message", silent);
   printf("  random damage: %d variants, %d refused with a message, %d loaded, no crash\n", iterations, refused, loaded);
}

static void test_corrector(const char *path) {
   if (!load_orig(path)) return;
   printf("test_corrupt (corrector): %s (%zu bytes, header %zu)\n", path, orig_size, hdr_len);
   char p[4200], err[1024];
   path_of(p, sizeof p, "corrector-good.safetensors");
   variant(p, NULL, NULL, 0);
   shapes_engine_t *e = shapes_engine_load(p, err, sizeof err);
   CHECK(e != NULL && shapes_engine_config(e)->is_corrector, "the untouched corrector must load as a corrector: %s",
         e ? "loaded as a base model" : err);
   shapes_engine_free(e);
   static const struct { const char *label, *file, *find, *repl, *expect; } cases[] = {
      {"no base_sha256", "c-no-base.safetensors", "\"base_sha256\":", "\"base_sha257\":", "base_sha256"},
      {"malformed base_sha256", "c-bad-base.safetensors", "\"base_sha256\":\"", "\"base_sha256\":\"Z", "malformed"},
      {"stem shape", "c-stem.safetensors", "\"stem.weight\":{\"dtype\":\"F16\",\"shape\":[64,24,3,3]",
       "\"stem.weight\":{\"dtype\":\"F16\",\"shape\":[24,64,3,3]",
       "tensor \"stem.weight\" has shape [24, 64, 3, 3]; the config requires [64, 24, 3, 3]"},
      {"ref.tok_emb shape", "c-tok.safetensors", "\"ref.tok_emb.weight\":{\"dtype\":\"F16\",\"shape\":[44,160]",
       "\"ref.tok_emb.weight\":{\"dtype\":\"F16\",\"shape\":[160,44]",
       "tensor \"ref.tok_emb.weight\" has shape [160, 44]; the config requires [44, 160]"},
      {"ref.pos_emb shape", "c-pos.safetensors", "\"ref.pos_emb\":{\"dtype\":\"F16\",\"shape\":[1,24,160]",
       "\"ref.pos_emb\":{\"dtype\":\"F16\",\"shape\":[24,1,160]",
       "tensor \"ref.pos_emb\" has shape [24, 1, 160]; the config requires [1, 24, 160]"},
      {"missing ref.pos_emb", "c-missing.safetensors", "\"ref.pos_emb\"", "\"ref.pos_emX\"", "lacks tensor \"ref.pos_emb\""},
      {"config ref_tokens 25", "c-rt.safetensors", "ref_tokens\\\": 24", "ref_tokens\\\": 25",
       "\"ref.pos_emb\" has shape [1, 24, 160]; the config requires [1, 25, 160]"},
      {"config ref_vocab_size 45", "c-rv.safetensors", "ref_vocab_size\\\": 44", "ref_vocab_size\\\": 45",
       "\"ref_vocab\" must be a JSON array of 45 strings"},
      {"config cond_channels 4", "c-cc.safetensors", "cond_channels\\\": 3", "cond_channels\\\": 4", "cond_channels"},
      {"no ref_tokens key", "c-nokey.safetensors", "ref_tokens\\\": 24", "ref_tokenz\\\": 24", "\"ref_tokens\""},
      {"no ref_vocab", "c-novocab.safetensors", "\"ref_vocab\":", "\"ref_vocaX\":", "\"ref_vocab\""},
      {"ref_vocab without <unk>", "c-nounk.safetensors", "\\\"<unk>\\\"", "\\\"<unq>\\\"", "<unk>"},
      {"corrector as base format", "c-format.safetensors", "assay-shapes-corrector-v1", "assay-shapes-flow-v1",
       "corrector key"},
   };
   for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
      path_of(p, sizeof p, cases[i].file);
      CHECK(variant(p, cases[i].find, cases[i].repl, 0), "%s: pattern not found in the corrector's header", cases[i].label);
      expect_fail(cases[i].label, p, cases[i].expect);
   }
   path_of(p, sizeof p, "c-truncated.safetensors");
   variant(p, NULL, NULL, orig_size - 1000);
   expect_fail("corrector truncated", p, "past the end of the file");
   path_of(p, sizeof p, "c-truncated-header.safetensors");
   variant(p, NULL, NULL, 8 + hdr_len / 3);
   expect_fail("corrector header cut", p, "header length");
   fuzz("c-fuzz.safetensors", 100, 777);
}

int main(int argc, char **argv) {
   if (argc != 3 && argc != 4) {
      fprintf(stderr, "usage: %s WEIGHTS SCRATCH_DIR [CORRECTOR_WEIGHTS]\n", argv[0]);
      return 2;
   }
   test_json();
   snprintf(dir, sizeof dir, "%s", argv[2]);
   mkdir(dir, 0755);
   if (!load_orig(argv[1]))
      return tu_finish();
   printf("test_corrupt: %s (%zu bytes, header %zu)\n", argv[1], orig_size, hdr_len);
   char p[4200], err[1024];

   /* The unmodified file (rewritten through the same path) loads. */
   path_of(p, sizeof p, "good.safetensors");
   variant(p, NULL, NULL, 0);
   shapes_engine_t *e = shapes_engine_load(p, err, sizeof err);
   CHECK(e != NULL, "the untouched copy must load: %s", err);
   int mid = e ? shapes_engine_config(e)->mid_layers : 5;
   shapes_engine_free(e);

   path_of(p, sizeof p, "does-not-exist.safetensors");
   expect_fail("missing file", p, "cannot open");

   path_of(p, sizeof p, "empty.safetensors");
   write_file(p, NULL, 0, NULL, 0);
   expect_fail("empty file", p, "too short");

   path_of(p, sizeof p, "huge-header.safetensors");
   {
      unsigned char *b = malloc(orig_size);
      memcpy(b, orig, orig_size);
      uint64_t n = (uint64_t)1 << 40;
      for (int i = 0; i < 8; i++) b[i] = (unsigned char)(n >> (8 * i));
      write_file(p, b, orig_size, NULL, 0);
      expect_fail("header length huge", p, "header length");
      n = orig_size - 7; /* one byte more than the file holds */
      for (int i = 0; i < 8; i++) b[i] = (unsigned char)(n >> (8 * i));
      path_of(p, sizeof p, "header-past-eof.safetensors");
      write_file(p, b, orig_size, NULL, 0);
      expect_fail("header length past EOF", p, "header length");
      free(b);
   }
   path_of(p, sizeof p, "truncated-header.safetensors");
   variant(p, NULL, NULL, 8 + hdr_len / 2);
   expect_fail("truncated in the header", p, "header length");

   path_of(p, sizeof p, "bad-json.safetensors");
   if (variant(p, "{\"dtype\":\"F16\"", "{\"dtype\":F16\"", 0))
      expect_fail("bad JSON", p, "bad JSON header");

   path_of(p, sizeof p, "not-object.safetensors");
   {
      const char hdr[] = "[1, 2, 3]";
      unsigned char len[8] = {sizeof hdr - 1, 0, 0, 0, 0, 0, 0, 0};
      write_file(p, len, 8, (const unsigned char *)hdr, sizeof hdr - 1);
      expect_fail("header not an object", p, "does not start with '{'");
   }

   path_of(p, sizeof p, "bf16.safetensors");
   if (variant(p, "\"dtype\":\"F16\"", "\"dtype\":\"BF16\"", 0))
      expect_fail("wrong dtype (BF16)", p, "dtype BF16");
   path_of(p, sizeof p, "i64.safetensors");
   if (variant(p, "\"dtype\":\"F16\"", "\"dtype\":\"I64\"", 0))
      expect_fail("wrong dtype (I64)", p, "dtype I64");

   path_of(p, sizeof p, "wrong-shape.safetensors");
   if (variant(p, "\"dec0.conv1.weight\":{\"dtype\":\"F16\",\"shape\":[64,128,3,3]",
               "\"dec0.conv1.weight\":{\"dtype\":\"F16\",\"shape\":[128,64,3,3]", 0))
      expect_fail("wrong shape", p, "has shape [128, 64, 3, 3]; the config requires [64, 128, 3, 3]");

   path_of(p, sizeof p, "bad-offsets.safetensors");
   if (variant(p, "\"data_offsets\":[0,128]", "\"data_offsets\":[0,130]", 0))
      expect_fail("offsets != shape", p, "do not hold");

   path_of(p, sizeof p, "overlap.safetensors");
   if (variant(p, "\"data_offsets\":[0,128]", "\"data_offsets\":[128,256]", 0))
      expect_fail("overlapping tensors", p, "overlap");

   path_of(p, sizeof p, "negative-offset.safetensors");
   if (variant(p, "\"data_offsets\":[0,128]", "\"data_offsets\":[-2,126]", 0))
      expect_fail("negative offset", p, "non-negative integers");

   path_of(p, sizeof p, "truncated-data.safetensors");
   variant(p, NULL, NULL, orig_size - 1000);
   expect_fail("data past EOF (truncated)", p, "past the end of the file");

   path_of(p, sizeof p, "missing-tensor.safetensors");
   if (variant(p, "\"out_norm.bias\"", "\"out_norm.bias_renamed\"", 0))
      expect_fail("missing tensor", p, "lacks tensor \"out_norm.bias\"");

   path_of(p, sizeof p, "duplicate.safetensors");
   if (variant(p, "\"dec0.conv1.bias\"", "\"dec0.conv1.weight\"", 0))
      expect_fail("duplicate tensor name", p, "appears twice");

   {
      char find[64], repl[64];
      snprintf(find, sizeof find, "mid_layers\\\": %d", mid);
      snprintf(repl, sizeof repl, "mid_layers\\\": %d", mid - 1);
      path_of(p, sizeof p, "config-mismatch.safetensors");
      if (variant(p, find, repl, 0))
         expect_fail("config mid_layers - 1", p, "not part of the model");
      snprintf(repl, sizeof repl, "mid_layers\\\": %d", mid + 1);
      path_of(p, sizeof p, "config-mismatch2.safetensors");
      if (variant(p, find, repl, 0))
         expect_fail("config mid_layers + 1", p, "lacks tensor");
      snprintf(repl, sizeof repl, "mid_layers\\\": -%d", mid);
      path_of(p, sizeof p, "config-negative.safetensors");
      if (variant(p, find, repl, 0))
         expect_fail("config negative", p, "mid_layers");
   }

   path_of(p, sizeof p, "no-format.safetensors");
   if (variant(p, "assay-shapes-flow-v1", "assay-shapes-flow-v9", 0))
      expect_fail("other format", p, "\"format\"");
   path_of(p, sizeof p, "no-config.safetensors");
   if (variant(p, "\"config\":", "\"konfig\":", 0))
      expect_fail("no config", p, "\"config\"");
   path_of(p, sizeof p, "bad-vocab.safetensors");
   if (variant(p, "\"vocab\":\"[", "\"vocab\":\"{", 0))
      expect_fail("bad vocab JSON", p, "vocab");
   path_of(p, sizeof p, "metadata-number.safetensors");
   if (variant(p, "\"__metadata__\":{", "\"__metadata__\":{\"x\":1,", 0))
      expect_fail("metadata not string", p, "not a string");
   path_of(p, sizeof p, "deep.safetensors");
   {
      char deep[400] = "\"__metadata__\":{";
      char pre[300] = "\"deep\":";
      for (int i = 0; i < 100; i++) strcat(pre, "[");
      for (int i = 0; i < 100; i++) strcat(pre, "]");
      strcat(pre, ",\"__metadata__\":{");
      (void)deep;
      if (variant(p, "\"__metadata__\":{", pre, 0))
         expect_fail("nesting 100 deep", p, "nesting deeper");
   }
   path_of(p, sizeof p, "utf8.safetensors");
   if (variant(p, "\"seed\":\"", "\"seed\":\"\xff", 0))
      expect_fail("invalid UTF-8", p, "UTF-8");

   /* NaN in a weight. */
   path_of(p, sizeof p, "nan.safetensors");
   {
      unsigned char *b = malloc(orig_size);
      memcpy(b, orig, orig_size);
      b[8 + hdr_len + 0] = 0x00; /* first half-float of the data block -> NaN (0x7E00) */
      b[8 + hdr_len + 1] = 0x7E;
      write_file(p, b, orig_size, NULL, 0);
      free(b);
      expect_fail("NaN weight", p, "non-finite");
   }

   /* Random damage: must never crash; count how many still load (header-only damage can be
    * harmless, e.g. inside a metadata string). */
   fuzz("fuzz.safetensors", 200, 12345);
   if (argc == 4)
      test_corrector(argv[3]);
   free(orig);
   return tu_finish();
}
