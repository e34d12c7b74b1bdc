# SPDX-License-Identifier: MIT
# Entry points for newcomers and CI. Each target installs the Debian packages it needs first.
#   make demo      build and run the session-store demo with live /metrics
#   make test      build (release preset) and run every test with ctest
#   make sanitize  ASan+UBSan, TSan, Valgrind matrix (sanitizers/run-matrix.sh all)
#   make bench     the benchmark suite against glibc, jemalloc, mimalloc, tcmalloc
#   make bench-smoke  the same suite once with small counts: builds and checks the harness (CI)
#   make lint      clang-format (no difference allowed) and cppcheck (no finding) over our sources
#   make docs      the API reference from the public headers (Doxygen): build/docs/html/index.html
JOBS ?= 2
DEMO_LISTEN ?= 127.0.0.1:9464
DEMO_ARGS ?=

.PHONY: all build demo test sanitize fuzz bench bench-smoke docs lint install clean format

all: build

build:
	scripts/deps.sh build
	cmake --preset release >/dev/null
	cmake --build --preset release -j $(JOBS)

demo:
	scripts/deps.sh demo
	cmake --preset release >/dev/null
	cmake --build --preset release -j $(JOBS) --target tslab-demo
	@echo "Starting tslab-demo: metrics at http://$(DEMO_LISTEN)/metrics, live page at http://$(DEMO_LISTEN)/ (Ctrl-C stops)"
	build/release/examples/tslab-demo --listen $(DEMO_LISTEN) $(DEMO_ARGS)

test:
	scripts/deps.sh test
	cmake --preset release >/dev/null
	cmake --build --preset release -j $(JOBS)
	ctest --preset release -j $(JOBS)

sanitize:
	scripts/deps.sh sanitize
	sanitizers/run-matrix.sh all

fuzz:
	scripts/deps.sh sanitize
	sanitizers/run-fuzz.sh

bench:
	scripts/deps.sh bench
	bench/run.sh

bench-smoke:
	scripts/deps.sh bench
	bench/run.sh --quick

# Fails on any Doxygen warning (docs/Doxyfile: WARN_AS_ERROR); ctest's docs.doxygen runs the same.
docs:
	scripts/deps.sh docs
	doxygen docs/Doxyfile
	@echo "API reference: build/docs/html/index.html"

install: build
	cmake --install build/release

lint:
	scripts/deps.sh lint
	scripts/lint.sh

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build
