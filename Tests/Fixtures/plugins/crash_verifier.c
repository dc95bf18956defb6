/* Test fixture "fixture-crash": a verifier that crashes on demand, for the worker-process
 * isolation tests. score() dereferences a bad pointer when the prompt contains "segfault",
 * calls abort() for "abort", allocates until malloc fails for "hog" (run it under
 * --plugin-memory-limit-mib only), and otherwise scores 0.25. Run in process, it takes the
 * daemon down; in a worker, only its call fails.
 *
 * Built with CRASH_ON_LOAD (hostile/crash_on_load.c) it is "fixture-crash-on-load", whose
 * constructor segfaults: merely dlopen-ing it kills the process that does. */
#include <assay/assay.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef CRASH_ON_LOAD
#define FIXTURE_ID "fixture-crash-on-load"
__attribute__((constructor)) static void crash_on_load(void) {
   volatile int *volatile bad = NULL;
   *bad = 1;
}
#else
#define FIXTURE_ID "fixture-crash"
#endif

typedef struct {
   assay_plugin_t plugin;
   const assay_host_t *host;
} scribbler_t;

static assay_result_t scribbler_init(const assay_plugin_t *plugin, const assay_options_t *options) {
   (void)plugin;
   (void)options;
   return ASSAY_OK;
}

static void scribbler_destroy(const assay_plugin_t *plugin) {
   free(plugin->plugin_data);
}

static assay_result_t scribbler_score(const assay_plugin_t *plugin, const assay_call_t *call,
                                      const char *prompt, uint32_t n, const assay_image_t *images,
                                      double *scores, const assay_text_out_t *details) {
   (void)plugin;
   (void)call;
   (void)images;
   (void)details;
   if (prompt != NULL && strstr(prompt, "segfault") != NULL) {
      volatile int *volatile bad = NULL;
      *bad = 1;
   }
   if (prompt != NULL && strstr(prompt, "abort") != NULL)
      abort();
   if (prompt != NULL && strstr(prompt, "hog") != NULL) {
      /* Eats memory 64 MiB at a time, touching every page, until malloc fails; then
       * crashes the way an unchecked malloc does. Only ever run under a memory limit. */
      for (;;) {
         char *volatile p = malloc((size_t)64 << 20);
         if (p == NULL) {
            volatile int *volatile bad = NULL;
            *bad = 1;
         }
         memset(p, 1, (size_t)64 << 20);
      }
   }
   for (uint32_t i = 0; i < n; i++)
      scores[i] = 0.25;
   return ASSAY_OK;
}

static const assay_verifier_ext_t scribbler_ext = {.score = scribbler_score};

static const void *scribbler_get_extension(const assay_plugin_t *plugin, const char *id) {
   (void)plugin;
   return id != NULL && strcmp(id, ASSAY_EXT_VERIFIER) == 0 ? &scribbler_ext : NULL;
}

static const assay_plugin_descriptor_t scribbler_descriptor = {
   .abi_version = ASSAY_VERSION_INIT,
   .id = FIXTURE_ID,
   .name = "Fixture crashing verifier",
   .version = "1.0.0",
   .description = "Crashes on prompts with segfault or abort; else scores 0.25.",
   .kind = ASSAY_KIND_VERIFIER,
};

static uint32_t scribbler_count(const assay_plugin_factory_t *factory) {
   (void)factory;
   return 1;
}

static const assay_plugin_descriptor_t *scribbler_descriptor_at(const assay_plugin_factory_t *factory,
                                                                uint32_t index) {
   (void)factory;
   return index == 0 ? &scribbler_descriptor : NULL;
}

static const assay_plugin_t *scribbler_create(const assay_plugin_factory_t *factory,
                                              const assay_host_t *host, const char *plugin_id) {
   (void)factory;
   if (plugin_id == NULL || strcmp(plugin_id, scribbler_descriptor.id) != 0)
      return NULL;
   scribbler_t *self = calloc(1, sizeof *self);
   if (self == NULL)
      return NULL;
   self->host = host;
   self->plugin = (assay_plugin_t){&scribbler_descriptor, self, scribbler_init, scribbler_destroy,
                                   scribbler_get_extension};
   return &self->plugin;
}

static const assay_plugin_factory_t scribbler_factory = {scribbler_count, scribbler_descriptor_at,
                                                         scribbler_create};

static bool scribbler_entry_init(const char *path) {
   (void)path;
   return true;
}
static void scribbler_entry_deinit(void) {}
static const void *scribbler_get_factory(const char *id) {
   return id != NULL && strcmp(id, ASSAY_PLUGIN_FACTORY_ID) == 0 ? &scribbler_factory : NULL;
}

ASSAY_EXPORT const assay_plugin_entry_t assay_entry = {ASSAY_VERSION_INIT, scribbler_entry_init,
                                                       scribbler_entry_deinit, scribbler_get_factory};
