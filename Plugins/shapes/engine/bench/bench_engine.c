/* bench_engine.c: speed of shapes_velocity by batch size, for one or more builds of the
 * engine side by side in one process (to compare a change against its baseline on a noisy
 * machine: the builds take turns call by call, so load changes hit both alike).
 *
 *   bench_engine WEIGHTS LIB [LIB2 ...] [--reps N] [--batches 1,4,16,32] [--guided 16]
 *   make -C Plugins shapes-bench [SHE_BENCH_BASELINE=/path/to/other/libshapes-engine.so]
 *
 * Each LIB is a libshapes-engine.so (make -C Plugins shapes-engine-lib), loaded with
 * dlopen(RTLD_LOCAL) so that two builds of the same symbols coexist (they share one
 * OpenBLAS, set to 1 thread). Inputs: random x, t in [0.05, 1], four different prompts
 * encoded by the first LIB (so every build gets the same bits in); "guided m" is one call of
 * 2m rows [m prompts; the same x under ""] as the host makes for guidance. Prints the
 * median wall and process-CPU ms per call of each build and, from the second on, the ratio
 * to the first (> 1: slower). Not part of the plugin (only the .c files directly in
 * engine/ are). */
#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../engine.h"

#define MAX_LIBS 4
#define MAX_CASES 16

typedef struct lib {
   const char *path;
   shapes_engine_t *(*load)(const char *, char *, size_t);
   void (*free_engine)(shapes_engine_t *);
   const shapes_config_t *(*config)(const shapes_engine_t *);
   void (*set_threads)(int);
   int (*tokenize)(const shapes_engine_t *, const char *, int32_t *, char *, size_t);
   int (*encode_text)(const shapes_engine_t *, uint32_t, const int32_t *, float *, char *, size_t);
   int (*velocity)(const shapes_engine_t *, uint32_t, const float *, const float *, const float *, float *, char *,
                   size_t);
   shapes_engine_t *e;
} lib_t;

static void *sym(void *h, const char *path, const char *name) {
   void *p = dlsym(h, name);
   if (p == NULL) {
      fprintf(stderr, "%s: no symbol %s\n", path, name);
      exit(2);
   }
   return p;
}

static double now(clockid_t clock) {
   struct timespec ts;
   clock_gettime(clock, &ts);
   return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
   const double x = *(const double *)a, y = *(const double *)b;
   return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
   qsort(v, (size_t)n, sizeof *v, cmp_double);
   return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int main(int argc, char **argv) {
   const char *weights = NULL, *batches = "1,4,16,32";
   int reps = 15, guided = 16, nlibs = 0;
   lib_t libs[MAX_LIBS];
   for (int i = 1; i < argc; i++) {
      if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
         reps = atoi(argv[++i]);
      else if (strcmp(argv[i], "--batches") == 0 && i + 1 < argc)
         batches = argv[++i];
      else if (strcmp(argv[i], "--guided") == 0 && i + 1 < argc)
         guided = atoi(argv[++i]);
      else if (weights == NULL)
         weights = argv[i];
      else if (nlibs < MAX_LIBS)
         libs[nlibs++].path = argv[i];
   }
   if (weights == NULL || nlibs == 0 || reps < 1) {
      fprintf(stderr, "usage: %s WEIGHTS LIB [LIB2 ...] [--reps N] [--batches 1,4,16,32] [--guided 16]\n", argv[0]);
      return 2;
   }
   char err[1024];
   for (int k = 0; k < nlibs; k++) {
      lib_t *l = &libs[k];
      void *h = dlopen(l->path, RTLD_NOW | RTLD_LOCAL);
      if (h == NULL) {
         fprintf(stderr, "dlopen %s: %s\n", l->path, dlerror());
         return 2;
      }
      *(void **)&l->load = sym(h, l->path, "shapes_engine_load");
      *(void **)&l->free_engine = sym(h, l->path, "shapes_engine_free");
      *(void **)&l->config = sym(h, l->path, "shapes_engine_config");
      *(void **)&l->set_threads = sym(h, l->path, "shapes_engine_set_threads");
      *(void **)&l->tokenize = sym(h, l->path, "shapes_tokenize");
      *(void **)&l->encode_text = sym(h, l->path, "shapes_encode_text");
      *(void **)&l->velocity = sym(h, l->path, "shapes_velocity");
      l->e = l->load(weights, err, sizeof err);
      if (l->e == NULL) {
         fprintf(stderr, "%s: %s\n", l->path, err);
         return 2;
      }
      l->set_threads(1);
   }
   const shapes_config_t *c = libs[0].config(libs[0].e);
   const size_t ls = (size_t)c->latent_size, cs = (size_t)c->condition_size, L = (size_t)c->max_tokens;

   /* Cases: plain batches, then the guided one. */
   int ncase = 0, rows[MAX_CASES], is_guided[MAX_CASES];
   for (const char *p = batches; *p && ncase < MAX_CASES - 1;) {
      const int b = atoi(p);
      if (b > 0) {
         rows[ncase] = b;
         is_guided[ncase++] = 0;
      }
      p = strchr(p, ',');
      if (p == NULL) break;
      p++;
   }
   if (guided > 0) {
      rows[ncase] = 2 * guided;
      is_guided[ncase++] = 1;
   }
   int maxrows = 1;
   for (int i = 0; i < ncase; i++) maxrows = rows[i] > maxrows ? rows[i] : maxrows;

   const char *prompts[4] = {"a red circle left of a blue square", "three green triangles", "a yellow square",
                             "two blue circles"};
   float *pc = malloc(5 * cs * sizeof *pc); /* four prompts, then "" */
   int32_t *ids = calloc(5 * L, sizeof *ids);
   for (int i = 0; i < 4; i++)
      if (libs[0].tokenize(libs[0].e, prompts[i], ids + (size_t)i * L, err, sizeof err) != 0) {
         fprintf(stderr, "tokenize: %s\n", err);
         return 2;
      }
   libs[0].encode_text(libs[0].e, 5, ids, pc, NULL, 0);
   float *x = malloc((size_t)maxrows * ls * sizeof *x), *t = malloc((size_t)maxrows * sizeof *t);
   float *cond = malloc((size_t)maxrows * cs * sizeof *cond), *v = malloc((size_t)maxrows * ls * sizeof *v);
   unsigned s = 1u;
   for (size_t i = 0; i < (size_t)maxrows * ls; i++) {
      s = s * 1664525u + 1013904223u;
      x[i] = (float)(s >> 8) / 16777216.0f * 4.0f - 2.0f;
   }
   for (int i = 0; i < maxrows; i++) {
      s = s * 1664525u + 1013904223u;
      t[i] = 0.05f + 0.95f * (float)(s >> 8) / 16777216.0f;
   }

   double *wall = malloc((size_t)nlibs * ncase * reps * sizeof *wall);
   double *cpu = malloc((size_t)nlibs * ncase * reps * sizeof *cpu);
   printf("bench_engine: %s, %d reps, 1 OpenBLAS thread; builds take turns call by call\n", weights, reps);
   for (int k = 0; k < nlibs; k++) printf("  build %d: %s\n", k, libs[k].path);
   for (int ci = 0; ci < ncase; ci++) {
      const int n = rows[ci], m = is_guided[ci] ? n / 2 : n;
      for (int i = 0; i < n; i++) {
         const int prompt = is_guided[ci] && i >= m ? 4 : (i % m) % 4;
         memcpy(cond + (size_t)i * cs, pc + (size_t)prompt * cs, cs * sizeof *cond);
      }
      if (is_guided[ci]) { /* [m rows; the same x and t under ""] */
         memcpy(x + (size_t)m * ls, x, (size_t)m * ls * sizeof *x);
         memcpy(t + m, t, (size_t)m * sizeof *t);
      }
      for (int k = 0; k < nlibs; k++) /* warm-up (workspaces, caches) */
         for (int w = 0; w < 2; w++) libs[k].velocity(libs[k].e, (uint32_t)n, x, t, cond, v, NULL, 0);
      for (int r = 0; r < reps; r++)
         for (int k0 = 0; k0 < nlibs; k0++) {
            const int k = (k0 + r) % nlibs; /* alternate which build goes first */
            const double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
            if (libs[k].velocity(libs[k].e, (uint32_t)n, x, t, cond, v, err, sizeof err) != 0) {
               fprintf(stderr, "velocity: %s\n", err);
               return 1;
            }
            const size_t at = ((size_t)k * ncase + ci) * reps + r;
            cpu[at] = now(CLOCK_PROCESS_CPUTIME_ID) - c0;
            wall[at] = now(CLOCK_MONOTONIC) - w0;
         }
   }
   printf("\n| batch |");
   for (int k = 0; k < nlibs; k++) printf(" build %d ms/call | ms/sample | CPU ms/call |", k);
   for (int k = 1; k < nlibs; k++) printf(" %d / 0 wall | %d / 0 CPU |", k, k);
   printf("\n|---|");
   for (int k = 0; k < nlibs; k++) printf("---:|---:|---:|");
   for (int k = 1; k < nlibs; k++) printf("---:|---:|");
   printf("\n");
   for (int ci = 0; ci < ncase; ci++) {
      double mw[MAX_LIBS], mc[MAX_LIBS];
      for (int k = 0; k < nlibs; k++) {
         mw[k] = median(wall + ((size_t)k * ncase + ci) * reps, reps);
         mc[k] = median(cpu + ((size_t)k * ncase + ci) * reps, reps);
      }
      if (is_guided[ci])
         printf("| %d guided (2 x %d) |", rows[ci], rows[ci] / 2);
      else
         printf("| %d |", rows[ci]);
      for (int k = 0; k < nlibs; k++) printf(" %.2f | %.2f | %.2f |", mw[k], mw[k] / rows[ci], mc[k]);
      for (int k = 1; k < nlibs; k++) printf(" %.3f | %.3f |", mw[k] / mw[0], mc[k] / mc[0]);
      printf("\n");
   }
   printf("\nmedians of %d calls per build and batch; CPU = process CPU time (fairer on a loaded machine)\n", reps);
   for (int k = 0; k < nlibs; k++) libs[k].free_engine(libs[k].e);
   free(pc); free(ids); free(x); free(t); free(cond); free(v); free(wall); free(cpu);
   return 0;
}
