/* Assay plugin ABI: the optional prompt-check extension ("assay.prompt-check/1"). */
#pragma once

#include "../plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Added in ABI 1.1. Any plugin kind may offer it; a verifier or reflector with a prompt
 * grammar should. The host calls it when a job is submitted, so a prompt the plugin
 * cannot work with becomes an immediate D-Bus error for the client instead of a failed
 * job minutes later. Plugins without it are simply not asked. */
#define ASSAY_EXT_PROMPT_CHECK "assay.prompt-check/1"

typedef struct assay_prompt_check_ext {
   /* [any-thread] ASSAY_OK if the plugin can work with `prompt` (borrowed UTF-8), else
    * ASSAY_ERR_INVALID_ARGUMENT with a reason given through report_error(host, call, ...)
    * that names what to change. Must be cheap (no model evaluation) and must not touch
    * instance state. */
   assay_result_t (*check_prompt)(const assay_plugin_t *plugin, const assay_call_t *call,
                                  const char *prompt);
} assay_prompt_check_ext_t;

#ifdef __cplusplus
}
#endif
