/* Assay plugin ABI: descriptors and plugin instances. */
#pragma once

#include "host.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Static description of one plugin, readable without creating an instance.
 * Owned by the plugin library; valid until the library is unloaded. */
typedef struct assay_plugin_descriptor {
   assay_version_t abi_version; /* ASSAY_VERSION_INIT at the plugin's build time; the host
                                 * checks it like the entry's, so a library can carry
                                 * plugins built against different minors */
   const char *id;              /* unique, stable, 1-64 chars of [a-z0-9._-], never NULL */
   const char *name;            /* human-readable, e.g. "Shapes exact checker"; not NULL */
   const char *version;         /* the plugin's own version, e.g. "1.2.0"; not NULL */
   const char *description;     /* one sentence; may be "" but not NULL */
   assay_plugin_kind_t kind;    /* ASSAY_KIND_MODEL, ... */
} assay_plugin_descriptor_t;

typedef struct assay_plugin assay_plugin_t;

/* One plugin instance, created by the factory. Owned by the plugin; the host releases it
 * with `destroy` and never uses it afterwards. */
struct assay_plugin {
   const assay_plugin_descriptor_t *desc; /* owned by the library, never NULL */
   void *plugin_data;                     /* the plugin's; the host must not touch it */

   /* [main-thread] Prepares the instance (load weights, allocate). `options` (borrowed)
    * are the instance options from the daemon's configuration, possibly empty. Called once,
    * before any other function. On failure, report the reason and return an error: the
    * host then calls `destroy` and lists the plugin as refused with that reason. */
   assay_result_t (*init)(const assay_plugin_t *plugin, const assay_options_t *options);

   /* [main-thread] Frees everything. No other call on this instance is in flight. */
   void (*destroy)(const assay_plugin_t *plugin);

   /* [any-thread] Returns the interface with this id, or NULL. The kind's interface is an
    * extension too: "assay.model/1" for ASSAY_KIND_MODEL, etc. (see ext/). The returned
    * struct is owned by the plugin and lives as long as the instance. */
   const void *(*get_extension)(const assay_plugin_t *plugin, const char *id);
};

#ifdef __cplusplus
}
#endif
