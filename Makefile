# The thin front door: `make run` and `make test` are the README's two
# commands. The real build is CMake (CMakeLists.txt).
#
#   make            build (plain, RelWithDebInfo) into build/plain
#   make run        install what is missing, build, and run the main job on
#                   the demo: the test server on loopback, a few thousand URLs
#   make test       install what is missing, build plain + ASan/UBSan + TSan,
#                   run every test in each, valgrind the example
#   make install    install into PREFIX (default /usr/local)
#   make bench      run the benchmarks (bench/README.md)

PREFIX ?= /usr/local
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE ?= cmake
CC ?= cc
BUILD := build

# Debian packages the build and the tests need.
DEPS := build-essential cmake pkg-config valgrind python3 clang libclang-rt-14-dev \
        libcurl4-openssl-dev libmicrohttpd-dev prometheus

.PHONY: all build deps run test test-plain test-asan test-tsan valgrind install bench clean format

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

bench: deps build
	@sh bench/run.sh

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD)
