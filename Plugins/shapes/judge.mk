# Plugins/shapes/judge.mk: the shapes-judge verifier, a learned evaluation judge independent
# of shapes-checker (included by Plugins/Makefile, which defines PLUGIN_CFLAGS,
# PLUGIN_LDFLAGS, OUT_ABS, DEPS, HERE, ROOT).
#
#   make -C Plugins                     also builds shapes-judge.so and copies its weights
#                                       (shapes-judge.safetensors) beside it into $(OUT)
#   make -C Plugins shapes-judge-check  builds the plugin and the C test, runs the test
#                                       (C vs PyTorch vectors, verdicts vs the numpy twin and
#                                       accuracy floors on committed degraded renders, corrupt
#                                       weights, the plugin through dlopen, threads; last line
#                                       "N passed, M failed") and checks that the plugin
#                                       exports only assay_entry
# Sources: Plugins/shapes/shapes-judge.c + Plugins/shapes/judge/judge.c, the caption grammar
# (Plugins/shapes/world/parse.c and relations.c only: the rules, none of the checker's detection) and the engine's
# safetensors/JSON readers, compiled in. Weights, vectors and cases: tools/judge/ (README.md).

# This fragment is read before Plugins/Makefile names its default goal: keep it `all`.
.DEFAULT_GOAL := all

SJ_DIR := $(HERE)/shapes
SJ_SRCS := $(SJ_DIR)/judge/judge.c $(SJ_DIR)/world/parse.c $(SJ_DIR)/world/relations.c $(SJ_DIR)/engine/safetensors.c \
           $(SJ_DIR)/engine/json.c
SJ_HDRS := $(SJ_DIR)/judge/judge.h $(SJ_DIR)/world/world.h $(SJ_DIR)/engine/safetensors.h \
           $(SJ_DIR)/engine/json.h
SJ_WEIGHTS := $(SJ_DIR)/weights/shapes-judge.safetensors
SJ_VECTORS := $(SJ_DIR)/weights/shapes-judge-vectors.safetensors
SJ_CASES := $(SJ_DIR)/judge/cases.bin
SJ_PLUGIN := $(OUT_ABS)/shapes-judge.so
SJ_BUILD := $(ROOT)/build/shapes-judge
SJ_TEST_BIN := $(SJ_BUILD)/test_judge

EXTRA_PLUGINS += $(SJ_PLUGIN)
# The weights travel with the plugin (it looks for them beside its library).
ifneq ($(wildcard $(SJ_WEIGHTS)),)
EXTRA_PLUGINS += $(OUT_ABS)/shapes-judge.safetensors
endif

$(SJ_PLUGIN): $(SJ_DIR)/shapes-judge.c $(SJ_SRCS) $(SJ_HDRS) $(DEPS) $(SJ_DIR)/judge.mk | $(OUT_ABS)
	$(CC) $(PLUGIN_CFLAGS) -O3 -o $@ $< $(SJ_SRCS) $(PLUGIN_LDFLAGS)

# Copy to a temporary name, then rename: a watcher never sees a half-written file.
$(OUT_ABS)/shapes-judge.safetensors: $(SJ_WEIGHTS) | $(OUT_ABS)
	cp $< $@.tmp && mv -f $@.tmp $@

$(SJ_TEST_BIN): $(SJ_DIR)/judge/test_judge.c $(SJ_SRCS) $(SJ_HDRS) $(DEPS) $(SJ_DIR)/judge.mk
	mkdir -p $(SJ_BUILD)
	$(CC) $(filter-out -fvisibility=hidden -fPIC,$(PLUGIN_CFLAGS)) -O3 -o $@ $< $(SJ_SRCS) \
	    -lm -ldl -pthread

.PHONY: shapes-judge-check
shapes-judge-check: $(SJ_PLUGIN) $(OUT_ABS)/shapes-judge.safetensors $(SJ_TEST_BIN)
	@exported="$$(nm -D --defined-only $(SJ_PLUGIN) | awk '{print $$NF}' | tr '\n' ' ')"; \
	if [ "$$exported" != "assay_entry " ]; then \
	    echo "FAIL shapes-judge.so exports: $$exported (only assay_entry allowed)"; exit 1; \
	fi; echo "ok   shapes-judge.so exports only assay_entry"
	$(SJ_TEST_BIN) $(SJ_PLUGIN) $(SJ_WEIGHTS) $(SJ_VECTORS) $(SJ_CASES) $(SJ_BUILD)/tmp
