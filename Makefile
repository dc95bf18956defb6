# Assay: one entry point for building, testing, running the demo and installing.
#   make deps      install the Debian packages the build and tests need (as root or with sudo)
#   make demo      build everything and run best-of-N end to end on a private bus
#   make test      build everything and run the test suite (what CI runs)
#   make bench     run the benchmark tool and print its table
#   make geneval   the GenEval-style search benchmark through the daemon (GENEVAL_ARGS=...)
#   make search-bench  every search strategy at matched NFE budgets, judged by shapes-judge (SEARCH_ARGS=...)
#   make sf2-bench     SF2: best-of-n against cofusion (turbo / DBCache sketches, visual reflection), judged by shapes-judge (SF2_ARGS=...)
#   make reflect-bench ReflectionFlow: the reflect strategy's noise, prompt and reflection levels, judged by shapes-judge (REFLECT_ARGS=...)
#   make yardstick the checker's and the judge's validation on degraded renders, via assayctl score
#   make install   install daemon, CLI, plugins, D-Bus/systemd files under $(PREFIX)

PREFIX ?= /usr/local
DESTDIR ?=
SWIFT ?= swift
SWIFTFLAGS ?=
CONFIG ?= release
DEB_PACKAGES = gcc make pkg-config libdbus-1-dev libopenblas-dev libpng-dev dbus systemd libglib2.0-bin python3 python3-dbus python3-gi chromium
# The Python benchmark tools also need these (Debian's /usr/bin/python3, where python3-dbus is).
TOOL_PACKAGES = python3-numpy python3-matplotlib
BIN = $$($(SWIFT) build -c $(CONFIG) $(SWIFTFLAGS) --show-bin-path)

# Installs the Debian packages named in $(1) that are missing.
define apt_install
	@missing=$$(for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	fi
endef

.PHONY: all deps tool-deps plugins build test demo bench geneval search-bench sf2-bench reflect-bench yardstick install clean

all: build

deps:
	$(call apt_install,$(DEB_PACKAGES))
	@command -v $(SWIFT) >/dev/null || { echo "Swift 6 is required (https://www.swift.org/install/linux/)"; exit 1; }

tool-deps: deps
	$(call apt_install,$(TOOL_PACKAGES))

plugins: deps
	$(MAKE) -s -C Plugins examples fixtures

build: plugins
	$(SWIFT) build -c $(CONFIG) $(SWIFTFLAGS)

test: plugins
	$(SWIFT) test

demo: build
	scripts/demo.sh "$(BIN)"

bench: build
	"$(BIN)/assay-bench"

geneval: build tool-deps
	/usr/bin/python3 tools/geneval_bench.py --assayd "$(BIN)/assayd" $(GENEVAL_ARGS)

# Resumable (finished jobs are cached in docs/search-bench.json); SEARCH_ARGS=--plot-only re-renders the
# last run's report and plot from that cache. The exact commands of the committed run: docs/search-bench.txt.
search-bench: build tool-deps
	/usr/bin/python3 tools/search_bench.py --assayd "$(BIN)/assayd" $(SEARCH_ARGS)

# Both resumable like search-bench (docs/sf2-bench.json, docs/reflect-bench.json); --plot-only re-renders.
sf2-bench: build tool-deps
	/usr/bin/python3 tools/sf2_bench.py --assayd "$(BIN)/assayd" $(SF2_ARGS)

reflect-bench: build tool-deps
	/usr/bin/python3 tools/reflect_bench.py --assayd "$(BIN)/assayd" $(REFLECT_ARGS)

yardstick: build tool-deps
	/usr/bin/python3 tools/shapes/yardstick.py --daemon --assayd "$(BIN)/assayd" --assayctl "$(BIN)/assayctl"

install: build
	bin="$(BIN)"; \
	install -D -m 755 "$$bin/assayd" "$(DESTDIR)$(PREFIX)/bin/assayd"; \
	install -D -m 755 "$$bin/assayctl" "$(DESTDIR)$(PREFIX)/bin/assayctl"
	install -d "$(DESTDIR)$(PREFIX)/lib/assay/plugins" "$(DESTDIR)$(PREFIX)/include/assay/ext"
	install -m 644 build/plugins/*.so "$(DESTDIR)$(PREFIX)/lib/assay/plugins/"
	for f in build/plugins/*.safetensors; do [ ! -e "$$f" ] || install -m 644 "$$f" "$(DESTDIR)$(PREFIX)/lib/assay/plugins/"; done
	install -m 644 include/assay/*.h "$(DESTDIR)$(PREFIX)/include/assay/"
	install -m 644 include/assay/ext/*.h "$(DESTDIR)$(PREFIX)/include/assay/ext/"
	mkdir -p build/dist
	for f in io.assay.Assay1.service assayd.service assayd-user.service; do \
		sed 's|@BINDIR@|$(PREFIX)/bin|' dist/$$f.in > build/dist/$$f; done
	install -D -m 644 build/dist/io.assay.Assay1.service "$(DESTDIR)/usr/share/dbus-1/services/io.assay.Assay1.service"
	install -D -m 644 dist/io.assay.Assay1.system.service "$(DESTDIR)/usr/share/dbus-1/system-services/io.assay.Assay1.service"
	install -D -m 644 dist/io.assay.Assay1.conf "$(DESTDIR)/usr/share/dbus-1/system.d/io.assay.Assay1.conf"
	install -D -m 644 dist/io.assay.Assay1.xml "$(DESTDIR)/usr/share/dbus-1/interfaces/io.assay.Assay1.xml"
	install -D -m 644 build/dist/assayd.service "$(DESTDIR)/lib/systemd/system/assayd.service"
	install -D -m 644 build/dist/assayd-user.service "$(DESTDIR)/usr/lib/systemd/user/assayd.service"

clean:
	$(MAKE) -s -C Plugins clean
	rm -rf build .build
