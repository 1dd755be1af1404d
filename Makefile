# Thin wrapper over CMake/CTest. `make demo` runs the product, `make test` the
# whole suite; both install what is missing first (scripts/deps.sh).
BUILD ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
JOBS ?= $(shell nproc)
TEST_JOBS ?= 2
PORT ?= 8080
CMAKE_FLAGS ?=

.PHONY: all build package test test-unit test-integration test-asan test-tsan test-asan-server fuzz-build test-fuzz fuzz soak demo demo-cluster bench clean deps

all: build

deps:
	@scripts/deps.sh build

build: deps
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j$(JOBS)

# The Debian packages libclaps-dev and clapsd (cmake/packaging.cmake) from a
# Release build in $(PACKAGE_BUILD): the .deb files land there.
PACKAGE_BUILD ?= build-package
package:
	@scripts/deps.sh package
	JOBS=$(JOBS) scripts/package.sh $(PACKAGE_BUILD)

# The whole suite through ctest, TEST_JOBS tests at a time (most of them wait
# on real processes, Redis failovers and timers rather than compute; tests
# that share a resource hold a ctest RESOURCE_LOCK), then the unit tests once more under
# AddressSanitizer + UBSan so every run proves the core clean, the store and
# engine tests under ThreadSanitizer (the LMDB writer thread), then a few
# seconds of each fuzz target.
test:
	@scripts/deps.sh test
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j$(JOBS)
	ctest --test-dir $(BUILD) --output-on-failure --timeout 600 -j$(TEST_JOBS)
	$(MAKE) test-asan
	$(MAKE) test-tsan
	$(MAKE) test-fuzz

test-asan:
	cmake -S . -B $(ASAN_BUILD) -DCLAPS_SANITIZE=ON -DCLAPS_SERVER=OFF -DCLAPS_REDIS=ON \
	  -DCLAPS_BENCHMARKS=OFF -DCLAPS_EXAMPLES=OFF -DCMAKE_BUILD_TYPE=Debug
	cmake --build $(ASAN_BUILD) -j$(JOBS)
	ctest --test-dir $(ASAN_BUILD) -L unit --output-on-failure

# The LMDB store's tests on its writer thread (the inline run has no second
# thread to check), the uv pump, the engine and the C API (its completion fd)
# under ThreadSanitizer, in their own build: about 40 s of tests on an idle
# 2-core machine.
test-tsan:
	cmake -S . -B $(TSAN_BUILD) -DCLAPS_TSAN=ON -DCLAPS_SERVER=OFF -DCLAPS_REDIS=OFF \
	  -DCLAPS_BENCHMARKS=OFF -DCLAPS_EXAMPLES=OFF -DCLAPS_INSTALL=OFF -DCMAKE_BUILD_TYPE=Debug
	cmake --build $(TSAN_BUILD) -j$(JOBS) --target lmdb_store_test engine_test engine_lifecycle_test memory_store_test uv_driver_test \
	  c_api_test
	ctest --test-dir $(TSAN_BUILD) -L unit --output-on-failure \
	  -R '^unit\.(lmdb_store\.writer|engine|engine_lifecycle|memory_store|uv_driver|c_api)$$'

# The libFuzzer targets (fuzz/) in their own Clang build with ASan + UBSan:
# each replays its seeds and fuzzes FUZZ_TEST_SECONDS (ctest label fuzz).
FUZZ_BUILD ?= build-fuzz
FUZZ_TEST_SECONDS ?= 5
FUZZ_SECONDS ?= 300
fuzz-build:
	@scripts/deps.sh fuzz
	CC=clang-14 CXX=clang++-14 cmake -S . -B $(FUZZ_BUILD) -DCLAPS_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug \
	  -DCMAKE_CXX_FLAGS=-O1 -DCLAPS_SERVER=OFF -DCLAPS_REDIS=ON -DCLAPS_LMDB=ON -DCLAPS_UV=OFF \
	  -DCLAPS_TESTS=OFF -DCLAPS_EXAMPLES=OFF -DCLAPS_BENCHMARKS=OFF -DCLAPS_INSTALL=OFF \
	  -DCLAPS_FUZZ_TEST_SECONDS=$(FUZZ_TEST_SECONDS)
	cmake --build $(FUZZ_BUILD) -j$(JOBS)

test-fuzz: fuzz-build
	ctest --test-dir $(FUZZ_BUILD) -L fuzz --output-on-failure -j$(JOBS)

# The long campaign: FUZZ_SECONDS per target, one target at a time. New
# inputs collect in $(FUZZ_BUILD)/corpus/<target>/, crashes in
# $(FUZZ_BUILD)/artifacts/ (see fuzz/README.md). FUZZ_TARGETS picks some.
FUZZ_TARGETS ?= ws_inbound jwt_verify http_route redis_url redis_reply lmdb_record
fuzz: fuzz-build
	@failed=""; for t in $(FUZZ_TARGETS); do \
	  fuzz/run.sh $(FUZZ_BUILD)/fuzz/fuzz_$$t $(FUZZ_SECONDS) $(FUZZ_BUILD) || failed="$$failed $$t"; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: failed:$$failed (inputs in $(FUZZ_BUILD)/artifacts/)"; exit 1; fi

test-integration: build
	ctest --test-dir $(BUILD) -L integration --output-on-failure

test-asan-server:
	cmake -S . -B build-asan-server -DCLAPS_SANITIZE=ON -DCLAPS_REDIS=OFF -DCLAPS_BENCHMARKS=OFF \
	  -DCLAPS_EXAMPLES=OFF -DCMAKE_BUILD_TYPE=Debug
	cmake --build build-asan-server -j$(JOBS) --target clapsd
	ctest --test-dir build-asan-server -L integration --output-on-failure

test-unit: build
	ctest --test-dir $(BUILD) -L unit --output-on-failure

# The soak (not in CI): two clapsd nodes on a redis-server through connection
# churn, slow and stalled readers, and Redis restarts and pauses under clap
# load, SOAK_SECONDS of load (10 minutes) plus about 20 s of setup and checks;
# fails on RSS growth over 10 MB, a lost or double-counted clap, or a hang.
# `make test` runs a 45 s smoke of it (ctest soak.smoke). Results:
# docs/reliability.md.
SOAK_SECONDS ?= 600
soak:
	@scripts/deps.sh test
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j$(JOBS) --target clapsd
	CLAPSD=$(BUILD)/server/clapsd SOAK_SECONDS=$(SOAK_SECONDS) node tests/soak/soak.mjs

# Runs clapsd with the demo web app on http://127.0.0.1:$(PORT); Ctrl-C stops it.
demo: build
	@if [ -x $(BUILD)/server/clapsd ]; then \
	  exec $(BUILD)/server/clapsd --listen 127.0.0.1:$(PORT) --data-dir data; \
	else \
	  exec $(BUILD)/examples/lmdb_claps data-example; \
	fi

# Two clapsd nodes (:8081, :8082) sharing Redis, behind HAProxy on
# http://127.0.0.1:$(PORT) (deploy/haproxy/haproxy.cfg): readers use the
# balancer, each node's own URL shows claps crossing between nodes. Redis is a
# master, a replica and three sentinels; REDIS=cluster runs Redis Cluster
# (3 masters + 3 replicas) instead. Ctrl-C stops everything.
REDIS ?= sentinel
demo-cluster: build
	@scripts/deps.sh test
	REDIS=$(REDIS) LB_PORT=$(PORT) scripts/demo-cluster.sh $(BUILD)

# The benchmark suite in its own Release build; rewrites docs/benchmarks.md.
# About 18 minutes on otherwise idle cores: 11 of them scenario 1 (three
# clapsd/sendfloor pairs per step at --tick-ms 25 and 10, the Socket.IO peers,
# the hot-article throttle pair), 4 the two-node scenarios 6 and 7. On a
# shared machine: make bench BENCH_ARGS="--nice -10".
BENCH_BUILD ?= build-bench
BENCH_ARGS ?=
bench:
	@scripts/deps.sh bench
	cmake -S . -B $(BENCH_BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)
	cmake --build $(BENCH_BUILD) -j$(JOBS) --target clapsd claps-loadgen sendfloor engine_bench
	benchmarks/run.sh $(BENCH_ARGS) $(BENCH_BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) build-asan-server $(BENCH_BUILD) $(FUZZ_BUILD) $(PACKAGE_BUILD)
