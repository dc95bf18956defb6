# Plugins/shapes/engine.mk: the shapes model plugins (ids shapes, shapes-turbo and shapes-corrector,
# one library)
# and their C inference engine (included by Plugins/Makefile, which defines PLUGIN_CFLAGS,
# PLUGIN_LDFLAGS, OUT_ABS, DEPS, HERE, ROOT).
#
#   make -C Plugins                     also builds shapes.so and copies the weights
#                                       (shapes-base.safetensors, shapes-turbo.safetensors,
#                                       shapes-corrector.safetensors) beside it into $(OUT)
#   make -C Plugins shapes-check        builds the C tests and runs them against the weights and
#                                       Plugins/shapes/weights/testvectors.safetensors (the
#                                       corrector's: corrector-testvectors.safetensors), and against
#                                       a tiny non-default-config model (tests/fixtures/, from
#                                       tests/make_tiny.py), and the corrector's held-out repair
#                                       rate (tests/test_repair.c, ~30 s) (last line of each:
#                                       "N passed, M failed")
#   make -C Plugins shapes-engine-lib   build/shapes/libshapes-engine.so: the engine alone, with
#                                       its C API exported (for tools/bench_engine.py / ctypes)
#   make -C Plugins shapes-bench        velocity ms per call at batch 1, 4, 16, 32 and guided 2x16
#                                       (engine/bench/bench_engine.c); with
#                                       SHE_BENCH_BASELINE=/other/libshapes-engine.so it times that
#                                       build first and this one second, call by call, and prints
#                                       the ratios (SHE_BENCH_ARGS: e.g. --reps 30)
# Needs libopenblas-dev (pkg-config openblas).

# This fragment is read before Plugins/Makefile names its default goal: keep it `all`.
.DEFAULT_GOAL := all

SHE_DIR := $(HERE)/shapes
SHE_BUILD := $(ROOT)/build/shapes
SHE_SRCS := $(sort $(wildcard $(SHE_DIR)/engine/*.c))
SHE_HDRS := $(wildcard $(SHE_DIR)/engine/*.h)
SHE_WEIGHTS := $(SHE_DIR)/weights/shapes-base.safetensors
SHE_TURBO := $(SHE_DIR)/weights/shapes-turbo.safetensors
SHE_CORRECTOR := $(SHE_DIR)/weights/shapes-corrector.safetensors
SHE_VECTORS := $(SHE_DIR)/weights/testvectors.safetensors
SHE_CORRECTOR_VECTORS := $(SHE_DIR)/weights/corrector-testvectors.safetensors
SHE_BLAS_CFLAGS := $(shell pkg-config --cflags openblas 2>/dev/null)
SHE_BLAS_LIBS := $(or $(shell pkg-config --libs openblas 2>/dev/null),-lopenblas)
# -O3 -fno-trapping-math lets the compiler vectorise the elementwise kernels (see op_expf in
# engine/ops.c); the matmuls are OpenBLAS's.
SHE_CFLAGS := $(PLUGIN_CFLAGS) -O3 -fno-trapping-math $(SHE_BLAS_CFLAGS)
SHE_LIBS := $(SHE_BLAS_LIBS) -pthread
SHE_PLUGIN := $(OUT_ABS)/shapes.so
SHE_LIB := $(SHE_BUILD)/libshapes-engine.so
SHE_TESTS := $(SHE_BUILD)/test_engine $(SHE_BUILD)/test_corrupt $(SHE_BUILD)/test_plugin $(SHE_BUILD)/test_repair
SHE_WORLD_SRCS := $(sort $(wildcard $(SHE_DIR)/world/*.c))
SHE_REPAIR_FIXTURE := $(SHE_DIR)/tests/fixtures/repair-heldout.safetensors

EXTRA_PLUGINS += $(SHE_PLUGIN)
# The weights travel with the plugin (it looks for them beside its library). shapes.so also
# depends on the copy, so new weights relink it and a running daemon hot-reloads them (it
# watches .so files only).
# Same for the turbo student's weights (plugin id shapes-turbo in the same library) and the
# ReflectionFlow corrector's (plugin id shapes-corrector, tools/corrector/).
SHE_WEIGHTS_OUT :=
ifneq ($(wildcard $(SHE_WEIGHTS)),)
SHE_WEIGHTS_OUT += $(OUT_ABS)/shapes-base.safetensors
endif
ifneq ($(wildcard $(SHE_TURBO)),)
SHE_WEIGHTS_OUT += $(OUT_ABS)/shapes-turbo.safetensors
endif
ifneq ($(wildcard $(SHE_CORRECTOR)),)
SHE_WEIGHTS_OUT += $(OUT_ABS)/shapes-corrector.safetensors
endif
EXTRA_PLUGINS += $(SHE_WEIGHTS_OUT)

# The draft headers (ext/draft/, not in DEPS) that shapes-model.c includes.
SHE_DRAFT_HDRS := $(wildcard $(INCLUDE_DIR)/assay/ext/draft/*.h)

$(SHE_PLUGIN): $(SHE_DIR)/shapes-model.c $(SHE_SRCS) $(SHE_HDRS) $(DEPS) $(SHE_DRAFT_HDRS) $(SHE_DIR)/engine.mk \
               $(SHE_WEIGHTS_OUT) | $(OUT_ABS)
	$(CC) $(SHE_CFLAGS) -o $@ $< $(SHE_SRCS) $(PLUGIN_LDFLAGS) $(SHE_LIBS)

# Copy to a temporary name, then rename: a watcher never sees a half-written file.
$(OUT_ABS)/shapes-%.safetensors: $(SHE_DIR)/weights/shapes-%.safetensors | $(OUT_ABS)
	cp $< $@.tmp && mv -f $@.tmp $@

$(SHE_LIB): $(SHE_SRCS) $(SHE_HDRS) $(SHE_DIR)/engine.mk
	mkdir -p $(SHE_BUILD)
	$(CC) $(filter-out -fvisibility=hidden,$(SHE_CFLAGS)) -shared -o $@ $(SHE_SRCS) -Wl,-z,defs $(SHE_LIBS) -lm

SHE_TEST_CFLAGS := $(filter-out -fvisibility=hidden -fPIC,$(SHE_CFLAGS)) -I$(SHE_DIR)/engine -I$(SHE_DIR)/tests

$(SHE_BUILD)/test_engine: $(SHE_DIR)/tests/test_engine.c $(SHE_DIR)/tests/testutil.h $(SHE_DIR)/tests/sha256.c \
                          $(SHE_SRCS) $(SHE_HDRS) $(SHE_DIR)/engine.mk
	mkdir -p $(SHE_BUILD)
	$(CC) $(SHE_TEST_CFLAGS) -o $@ $< $(SHE_DIR)/tests/sha256.c $(SHE_SRCS) $(SHE_LIBS) -lm

$(SHE_BUILD)/test_corrupt: $(SHE_DIR)/tests/test_corrupt.c $(SHE_DIR)/tests/testutil.h $(SHE_SRCS) $(SHE_HDRS) \
                           $(SHE_DIR)/engine.mk
	mkdir -p $(SHE_BUILD)
	$(CC) $(SHE_TEST_CFLAGS) -o $@ $< $(SHE_SRCS) $(SHE_LIBS) -lm

# (links the engine too: shapes-corrector's encode_reference is compared with the engine's)
$(SHE_BUILD)/test_plugin: $(SHE_DIR)/tests/test_plugin.c $(SHE_DIR)/tests/testutil.h $(DEPS) $(SHE_DRAFT_HDRS) \
                          $(SHE_SRCS) $(SHE_HDRS) $(SHE_DIR)/engine.mk
	mkdir -p $(SHE_BUILD)
	$(CC) $(SHE_TEST_CFLAGS) -o $@ $< $(SHE_SRCS) -ldl $(SHE_LIBS) -lm

# The corrector's held-out repair rate judged by the shapes checker (world/, as the checker
# and reflector plugins judge).
$(SHE_BUILD)/test_repair: $(SHE_DIR)/tests/test_repair.c $(SHE_DIR)/tests/testutil.h $(SHE_SRCS) $(SHE_HDRS) \
                          $(SHE_WORLD_SRCS) $(SHE_DIR)/world/world.h $(SHE_DIR)/engine.mk
	mkdir -p $(SHE_BUILD)
	$(CC) $(SHE_TEST_CFLAGS) -I$(SHE_DIR)/world -o $@ $< $(SHE_SRCS) $(SHE_WORLD_SRCS) $(SHE_LIBS) -lm

$(SHE_BUILD)/bench_engine: $(SHE_DIR)/engine/bench/bench_engine.c $(SHE_DIR)/engine/engine.h $(SHE_DIR)/engine.mk
	mkdir -p $(SHE_BUILD)
	$(CC) $(SHE_TEST_CFLAGS) -o $@ $< -ldl

.PHONY: shapes-check shapes-engine-lib shapes-bench
shapes-engine-lib: $(SHE_LIB)
SHE_BENCH_BASELINE ?=
SHE_BENCH_ARGS ?=
shapes-bench: $(SHE_LIB) $(SHE_BUILD)/bench_engine
	$(SHE_BUILD)/bench_engine $(SHE_WEIGHTS) $(SHE_BENCH_BASELINE) $(SHE_LIB) $(SHE_BENCH_ARGS)
# Runs every test program even when one fails; fails if any did.
shapes-check: $(SHE_PLUGIN) $(SHE_TESTS)
	@st=0; \
	$(SHE_BUILD)/test_engine $(SHE_WEIGHTS) $(SHE_VECTORS) || st=1; \
	$(SHE_BUILD)/test_engine $(SHE_CORRECTOR) $(SHE_CORRECTOR_VECTORS) || st=1; \
	$(SHE_BUILD)/test_engine $(SHE_DIR)/tests/fixtures/tiny.safetensors \
	    $(SHE_DIR)/tests/fixtures/tiny-vectors.safetensors || st=1; \
	$(SHE_BUILD)/test_corrupt $(SHE_WEIGHTS) $(SHE_BUILD)/corrupt $(SHE_CORRECTOR) || st=1; \
	$(SHE_BUILD)/test_plugin $(SHE_PLUGIN) $(SHE_WEIGHTS) $(SHE_TURBO) $(SHE_DIR)/tests/fixtures/tiny.safetensors \
	    $(SHE_CORRECTOR) || st=1; \
	$(SHE_BUILD)/test_repair $(SHE_CORRECTOR) $(SHE_WEIGHTS) $(SHE_REPAIR_FIXTURE) 18 || st=1; \
	exit $$st
