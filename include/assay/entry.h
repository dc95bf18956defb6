/* Assay plugin ABI: the one symbol a plugin library exports. */
#pragma once

#include "factory.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The entry point. The host resolves the DATA symbol `assay_entry` after dlopen and reads
 * `abi_version` first: a different major is refused without calling anything else.
 * Owned by the library; lives until it is unloaded. */
typedef struct assay_plugin_entry {
   assay_version_t abi_version; /* ASSAY_VERSION_INIT at the plugin's build time */

   /* [main-thread] Called once after dlopen, before anything else. `library_path`
    * (borrowed) is the path the user installed, not the private copy the host loaded, so
    * a plugin can find data files beside it (weights, vocabularies). Return false to refuse
    * loading; the host then lists the library as refused ("entry init failed"). */
   bool (*init)(const char *library_path);

   /* [main-thread] Called once before dlclose; no instance is alive any more. */
   void (*deinit)(void);

   /* [any-thread] Returns the factory with this id or NULL. Assay 1 defines one factory,
    * ASSAY_PLUGIN_FACTORY_ID. Owned by the library. */
   const void *(*get_factory)(const char *factory_id);
} assay_plugin_entry_t;

#define ASSAY_ENTRY_SYMBOL "assay_entry"

/* Declare the entry in exactly one translation unit of a plugin:
 *   ASSAY_EXPORT const assay_plugin_entry_t assay_entry = { ASSAY_VERSION_INIT, ... }; */
extern ASSAY_EXPORT const assay_plugin_entry_t assay_entry;

#ifdef __cplusplus
}
#endif
