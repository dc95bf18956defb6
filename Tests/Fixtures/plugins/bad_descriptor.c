/* Test fixture: a library whose only descriptor has a NULL id (and a NULL name). The host
 * must refuse the descriptor with a reason, not crash; create_plugin is never reachable
 * (it returns NULL for anything). */
#include <assay/assay.h>

#include <string.h>

static const assay_plugin_descriptor_t bd_descriptor = {
   .abi_version = ASSAY_VERSION_INIT,
   .id = NULL,
   .name = NULL,
   .version = "1.0.0",
   .description = "A descriptor without an id.",
   .kind = ASSAY_KIND_VERIFIER,
};

static uint32_t bd_count(const assay_plugin_factory_t *factory) {
   (void)factory;
   return 1;
}

static const assay_plugin_descriptor_t *bd_descriptor_at(const assay_plugin_factory_t *factory,
                                                         uint32_t index) {
   (void)factory;
   return index == 0 ? &bd_descriptor : NULL;
}

static const assay_plugin_t *bd_create(const assay_plugin_factory_t *factory,
                                       const assay_host_t *host, const char *plugin_id) {
   (void)factory, (void)host, (void)plugin_id;
   return NULL;
}

static const assay_plugin_factory_t bd_factory = {bd_count, bd_descriptor_at, bd_create};

static bool bd_entry_init(const char *path) {
   (void)path;
   return true;
}
static void bd_entry_deinit(void) {}
static const void *bd_get_factory(const char *id) {
   return id != NULL && strcmp(id, ASSAY_PLUGIN_FACTORY_ID) == 0 ? &bd_factory : NULL;
}

ASSAY_EXPORT const assay_plugin_entry_t assay_entry = {ASSAY_VERSION_INIT, bd_entry_init,
                                                       bd_entry_deinit, bd_get_factory};
