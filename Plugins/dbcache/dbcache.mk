# Plugins/dbcache/dbcache.mk: the DBCache caching sampler plugin (id "dbcache") and its C test
# harness (included by Plugins/Makefile, which defines PLUGIN_CFLAGS, PLUGIN_LDFLAGS, OUT_ABS,
# DEPS, HERE, ROOT).
#
#   make -C Plugins                  also builds $(OUT)/dbcache.so
#   make -C Plugins dbcache-check    builds shapes.so, dbcache.so and tests/test_dbcache.c and
#                                    runs the harness: it dlopens both plugins and plays the host
#                                    (model access, blocks access, block_rows, guidance 1.75,
#                                    budget, FLOP counting); last line "N passed, M failed"
#   make -C Plugins dbcache-sweep    builds tests/sweep.c and prints, per setting, the FLOP
#                                    ratios, the pixel difference to Euler and the shapes-checker
#                                    pass rate over benchmark prompts (DBC_SWEEP_ARGS: e.g.
#                                    --prompts 48 --seeds 4; see sweep.c)

# This fragment is read before Plugins/Makefile names its default goal: keep it `all`.
.DEFAULT_GOAL := all

DBC_DIR := $(HERE)/dbcache
DBC_BUILD := $(ROOT)/build/dbcache
DBC_PLUGIN := $(OUT_ABS)/dbcache.so
# The draft header it includes (ext/draft/ is not in DEPS).
DBC_DRAFT_HDRS := $(ROOT)/include/assay/ext/draft/blocks-rows.h

EXTRA_PLUGINS += $(DBC_PLUGIN)

$(DBC_PLUGIN): $(DBC_DIR)/dbcache.c $(DEPS) $(DBC_DRAFT_HDRS) $(DBC_DIR)/dbcache.mk | $(OUT_ABS)
	$(CC) $(PLUGIN_CFLAGS) -o $@ $< $(PLUGIN_LDFLAGS)

DBC_TEST_CFLAGS := $(filter-out -fvisibility=hidden -fPIC,$(PLUGIN_CFLAGS))

$(DBC_BUILD)/test_dbcache: $(DBC_DIR)/tests/test_dbcache.c $(DBC_DIR)/tests/harness.h $(DEPS) \
                           $(DBC_DRAFT_HDRS) $(DBC_DIR)/dbcache.mk
	mkdir -p $(DBC_BUILD)
	$(CC) $(DBC_TEST_CFLAGS) -o $@ $< -ldl -lm

$(DBC_BUILD)/sweep: $(DBC_DIR)/tests/sweep.c $(DBC_DIR)/tests/harness.h $(DEPS) $(DBC_DRAFT_HDRS) \
                    $(DBC_DIR)/dbcache.mk
	mkdir -p $(DBC_BUILD)
	$(CC) $(DBC_TEST_CFLAGS) -o $@ $< -ldl -lm

DBC_SWEEP_ARGS ?=
.PHONY: dbcache-check dbcache-sweep
dbcache-check: $(DBC_PLUGIN) $(OUT_ABS)/shapes.so $(DBC_BUILD)/test_dbcache
	$(DBC_BUILD)/test_dbcache $(OUT_ABS)/shapes.so $(DBC_PLUGIN)
dbcache-sweep: $(DBC_PLUGIN) $(OUT_ABS)/shapes.so $(OUT_ABS)/shapes-checker.so $(DBC_BUILD)/sweep
	$(DBC_BUILD)/sweep $(OUT_ABS)/shapes.so $(DBC_PLUGIN) $(OUT_ABS)/shapes-checker.so \
	    $(ROOT)/tools/shapes/benchmark_prompts.txt $(DBC_SWEEP_ARGS)
