/* testutil.h: tiny test helpers shared by the shapes engine tests (header-only). Each test
 * program prints one line per failure and ends with "N passed, M failed". */
#pragma once

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tu_passed, tu_failed;

#define CHECK(cond, ...)                                                                     \
   do {                                                                                      \
      if (cond) {                                                                            \
         tu_passed++;                                                                        \
      } else {                                                                               \
         tu_failed++;                                                                        \
         printf("FAIL %s:%d: ", __FILE__, __LINE__);                                          \
         printf(__VA_ARGS__);                                                                \
         printf("\n");                                                                       \
      }                                                                                      \
   } while (0)

/* Prints the summary line and returns the exit status. */
static inline int tu_finish(void) {
   printf("%d passed, %d failed\n", tu_passed, tu_failed);
   return tu_failed == 0 ? 0 : 1;
}

/* Max |got - ref| over count values and the output scale max |ref|. */
static inline double tu_max_err(const float *got, const float *ref, size_t count, double *scale) {
   double e = 0.0, s = 0.0;
   for (size_t i = 0; i < count; i++) {
      double d = fabs((double)got[i] - (double)ref[i]);
      if (!(d <= e)) e = d; /* NaN propagates */
      if (fabs((double)ref[i]) > s) s = fabs((double)ref[i]);
   }
   if (scale != NULL) *scale = s;
   return e;
}

/* Checks max|err| / max(1, max|ref|) < tol and prints the numbers. */
#define CHECK_CLOSE(name, got, ref, count, tol)                                              \
   do {                                                                                      \
      double tu_scale, tu_e = tu_max_err((got), (ref), (count), &tu_scale);                  \
      double tu_rel = tu_e / (tu_scale > 1.0 ? tu_scale : 1.0);                              \
      printf("  %-22s max|err| %.3g  scale %.3g  rel %.3g\n", (name), tu_e, tu_scale, tu_rel); \
      CHECK(tu_rel < (tol), "%s: relative error %.3g >= %.3g", (name), tu_rel, (double)(tol)); \
   } while (0)

static inline unsigned char *tu_read_file(const char *path, size_t *size) {
   FILE *f = fopen(path, "rb");
   if (f == NULL) return NULL;
   fseek(f, 0, SEEK_END);
   long n = ftell(f);
   fseek(f, 0, SEEK_SET);
   unsigned char *buf = malloc(n > 0 ? (size_t)n : 1);
   if (buf == NULL || (n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n)) {
      free(buf);
      fclose(f);
      return NULL;
   }
   fclose(f);
   *size = (size_t)n;
   return buf;
}
