# Plugins/shapes/clipscore.mk: the learned shapes-clipscore verifier (included by
# Plugins/Makefile, which defines PLUGIN_CFLAGS, PLUGIN_LDFLAGS, OUT_ABS, DEPS, HERE, ROOT).
#
#   make -C Plugins                        also builds shapes-clipscore.so and copies its weights
#                                          (clipscore.safetensors) beside it into $(OUT)
#   make -C Plugins shapes-clipscore-check builds the plugin and the C test, runs the test
#                                          (C vs PyTorch vectors, tokenizer, corrupt files,
#                                          concurrency; last line "N passed, M failed") and checks
#                                          that the plugin exports only assay_entry
# Sources: Plugins/shapes/shapes-clipscore.c + Plugins/shapes/clipscore/clipscore.c, plus the
# engine's safetensors/JSON readers (Plugins/shapes/engine/{safetensors,json}.c), compiled in.
# Weights and test vectors: tools/clipscore/train.py (see tools/clipscore/README.md).

# This fragment is read before Plugins/Makefile names its default goal: keep it `all`.
.DEFAULT_GOAL := all

CSP_DIR := $(HERE)/shapes
CSP_SRCS := $(CSP_DIR)/clipscore/clipscore.c $(CSP_DIR)/engine/safetensors.c \
            $(CSP_DIR)/engine/json.c
CSP_HDRS := $(CSP_DIR)/clipscore/clipscore.h $(CSP_DIR)/engine/safetensors.h \
            $(CSP_DIR)/engine/json.h
CSP_WEIGHTS := $(CSP_DIR)/weights/clipscore.safetensors
CSP_VECTORS := $(CSP_DIR)/weights/clipscore-vectors.safetensors
CSP_PLUGIN := $(OUT_ABS)/shapes-clipscore.so
CSP_BUILD := $(ROOT)/build/shapes-clipscore
CSP_TEST_BIN := $(CSP_BUILD)/test_clipscore

EXTRA_PLUGINS += $(CSP_PLUGIN)
# The weights travel with the plugin (it looks for them beside its library).
ifneq ($(wildcard $(CSP_WEIGHTS)),)
EXTRA_PLUGINS += $(OUT_ABS)/clipscore.safetensors
endif

$(CSP_PLUGIN): $(CSP_DIR)/shapes-clipscore.c $(CSP_SRCS) $(CSP_HDRS) $(DEPS) \
               $(CSP_DIR)/clipscore.mk | $(OUT_ABS)
	$(CC) $(PLUGIN_CFLAGS) -O3 -o $@ $< $(CSP_SRCS) $(PLUGIN_LDFLAGS)

# Copy to a temporary name, then rename: a watcher never sees a half-written file.
$(OUT_ABS)/clipscore.safetensors: $(CSP_WEIGHTS) | $(OUT_ABS)
	cp $< $@.tmp && mv -f $@.tmp $@

$(CSP_TEST_BIN): $(CSP_DIR)/clipscore/test_clipscore.c $(CSP_SRCS) $(CSP_HDRS) $(DEPS) \
                 $(CSP_DIR)/clipscore.mk
	mkdir -p $(CSP_BUILD)
	$(CC) $(filter-out -fvisibility=hidden -fPIC,$(PLUGIN_CFLAGS)) -O3 -o $@ $< $(CSP_SRCS) \
	    -lm -ldl -pthread

.PHONY: shapes-clipscore-check
shapes-clipscore-check: $(CSP_PLUGIN) $(OUT_ABS)/clipscore.safetensors $(CSP_TEST_BIN)
	@exported="$$(nm -D --defined-only $(CSP_PLUGIN) | awk '{print $$NF}' | tr '\n' ' ')"; \
	if [ "$$exported" != "assay_entry " ]; then \
	    echo "FAIL shapes-clipscore.so exports: $$exported (only assay_entry allowed)"; exit 1; \
	fi; echo "ok   shapes-clipscore.so exports only assay_entry"
	$(CSP_TEST_BIN) $(CSP_PLUGIN) $(CSP_WEIGHTS) $(CSP_VECTORS) $(CSP_BUILD)/tmp
