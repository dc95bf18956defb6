# Plugins/shapes/verifiers.mk: the shapes-world verifiers and reflector (included by
# Plugins/Makefile, which defines PLUGIN_CFLAGS, PLUGIN_LDFLAGS, OUT_ABS, DEPS, HERE, ROOT).
#
#   make -C Plugins                         also builds shapes-checker.so, shapes-quality.so,
#                                           shapes-reflector.so into $(OUT)
#   make -C Plugins shapes-verifier-check   builds them and the C tests, runs the tests
#                                           (last line "N passed, M failed")
# Sources: Plugins/shapes/shapes-*.c (one plugin each) + Plugins/shapes/world/*.c (shared,
# compiled into each plugin; only assay_entry is exported).

# This fragment is read before Plugins/Makefile names its default goal: keep it `all`.
.DEFAULT_GOAL := all

SHV_DIR := $(HERE)/shapes
SHV_WORLD_SRCS := $(sort $(wildcard $(SHV_DIR)/world/*.c))
SHV_WORLD_HDRS := $(wildcard $(SHV_DIR)/world/*.h)
SHV_DRAFT_HDRS := $(INCLUDE_DIR)/assay/ext/draft/reflector-views.h
SHV_PLUGINS := $(OUT_ABS)/shapes-checker.so $(OUT_ABS)/shapes-quality.so \
               $(OUT_ABS)/shapes-reflector.so
SHV_TEST_DIR := $(ROOT)/build/shapes-verifier-tests
SHV_TEST_BIN := $(SHV_TEST_DIR)/test_verifiers
SHV_CASES := $(SHV_DIR)/verifier-tests/cases.bin

EXTRA_PLUGINS += $(SHV_PLUGINS)

$(SHV_PLUGINS): $(OUT_ABS)/%.so: $(SHV_DIR)/%.c $(SHV_WORLD_SRCS) $(SHV_WORLD_HDRS) $(DEPS) \
                $(SHV_DIR)/verifiers.mk | $(OUT_ABS)
	$(CC) $(PLUGIN_CFLAGS) -O3 -o $@ $(SHV_DIR)/$*.c $(SHV_WORLD_SRCS) $(PLUGIN_LDFLAGS)
# the reflector also implements a DRAFT extension, whose header $(DEPS) does not list
$(OUT_ABS)/shapes-reflector.so: $(SHV_DRAFT_HDRS)

$(SHV_TEST_BIN): $(SHV_DIR)/verifier-tests/test_verifiers.c $(SHV_WORLD_SRCS) $(SHV_WORLD_HDRS) \
                 $(DEPS) $(SHV_DRAFT_HDRS) $(SHV_DIR)/verifiers.mk
	mkdir -p $(SHV_TEST_DIR)
	$(CC) -std=c11 -O3 -g -Wall -Wextra -Werror -pedantic -I$(INCLUDE_DIR) -o $@ $< \
	    $(SHV_WORLD_SRCS) -lm -ldl -pthread

.PHONY: shapes-verifier-check
shapes-verifier-check: $(SHV_PLUGINS) $(SHV_TEST_BIN)
	$(SHV_TEST_BIN) $(SHV_CASES) $(OUT_ABS)
