/* Assay plugin ABI: the plugin factory (one library, several plugins). */
#pragma once

#include "plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ASSAY_PLUGIN_FACTORY_ID "assay.plugin-factory/1"

typedef struct assay_plugin_factory {
   /* [main-thread] Number of plugins in this library. */
   uint32_t (*get_plugin_count)(const struct assay_plugin_factory *factory);

   /* [main-thread] Descriptor of plugin `index` (< count), or NULL. Owned by the library. */
   const assay_plugin_descriptor_t *(*get_plugin_descriptor)(
      const struct assay_plugin_factory *factory, uint32_t index);

   /* [main-thread] Creates an instance of the plugin with this id, or returns NULL (unknown
    * id, out of memory); before returning NULL it may give the reason with
    * host->report_error(host, NULL, ...). `host` is borrowed and outlives the instance.
    * The host then calls the instance's `init` before anything else. Keep it cheap: load
    * weights in `init`, which can report why it failed. */
   const assay_plugin_t *(*create_plugin)(const struct assay_plugin_factory *factory,
                                          const assay_host_t *host, const char *plugin_id);
} assay_plugin_factory_t;

#ifdef __cplusplus
}
#endif
