# The thin front door: `make run` and `make test` are the README's two
# commands. The real build is CMake (CMakeLists.txt).
#
#   make            build (plain, RelWithDebInfo) into build/plain
#   make run        install what is missing, build, and run the main job on
#                   the demo: the test server on loopback, a few thousand URLs
#   make test       install what is missing, build plain + ASan/UBSan + TSan,
#                   run every test in each, valgrind the example
#   make install    install into PREFIX (default /usr/local)
#   make bench      install nginx, wrk, Go, gnuplot (Debian), run the whole
#                   benchmark suite, write docs/benchmarks.md and its plots
#                   (bench/README.md); `make bench QUICK=1`: under 3 minutes
#   make fuzz       run every libFuzzer target FUZZ_SECONDS each (default 60;
#                   make test runs them 30 s each)
#   make lint       cppcheck and clang-tidy (also part of make test)

PREFIX ?= /usr/local
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE ?= cmake
CC ?= cc
BUILD := build

# Debian packages the build and the tests need; BENCH_DEPS: what `make bench`
# needs on top (peers, server, plots; PostgreSQL for the durable section).
DEPS := build-essential cmake pkg-config valgrind python3 clang libclang-rt-14-dev \
        libcurl4-openssl-dev libmicrohttpd-dev libmimalloc-dev prometheus \
        libjansson-dev libcsv-dev cppcheck clang-tidy \
        libsqlite3-dev sqlite3 libpq-dev postgresql
BENCH_DEPS := nginx-light wrk golang-go gnuplot-nox curl time postgresql

.PHONY: all build deps run test test-plain test-asan test-tsan valgrind install bench fuzz lint clean format

all: build

deps:
	@sh scripts/deps.sh $(DEPS)

build:
	@$(CMAKE) -S . -B $(BUILD)/plain -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@$(CMAKE) --build $(BUILD)/plain -j $(JOBS)

run: deps build
	@sh scripts/demo.sh

test: deps
	@sh scripts/test.sh

install: build
	$(CMAKE) --install $(BUILD)/plain --prefix $(PREFIX)

bench:
	@sh scripts/deps.sh $(DEPS) $(BENCH_DEPS)
	@QUICK=$(QUICK) BENCH_CMD="make bench$(if $(QUICK), QUICK=$(QUICK))" sh bench/run.sh

FUZZ_SECONDS ?= 60
fuzz: deps
	@FUZZ_SECONDS=$(FUZZ_SECONDS) sh scripts/fuzz.sh

lint: deps
	@sh scripts/lint.sh

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD)
