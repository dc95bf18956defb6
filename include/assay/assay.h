/* Assay plugin ABI, version 1: include this one header.
 *
 * A plugin library exports one data symbol, `assay_entry` (entry.h). The host checks its
 * ABI version, gets the factory ASSAY_PLUGIN_FACTORY_ID, reads the descriptors, creates
 * instances with a host struct (host.h) and fetches each instance's interface by
 * extension id (ext/). Start from the examples in Plugins/examples/. */
#pragma once

#include "version.h"
#include "common.h"
#include "host.h"
#include "plugin.h"
#include "factory.h"
#include "entry.h"
#include "ext/model.h"
#include "ext/sampler.h"
#include "ext/verifier.h"
#include "ext/reflector.h"
#include "ext/prompt-check.h"
#include "ext/blocks.h"
