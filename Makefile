# The two commands of the README:
#   make run    install what is missing, build, run the relay (Ctrl-C stops it)
#   make test   install what is missing, build, run every test
# Other targets: build (release, in build/), debug (build-debug/),
# asan (AddressSanitizer + UBSan unit tests, build-asan/, and 10 s of fuzzing),
# fuzz (20 s of the MJPEG parser's libFuzzer target), bench, format, clean.

BUILD ?= build
MESON_OPTS ?=

.PHONY: all run test build debug asan asan-build fuzz bench format clean deps deps-test

all: build

deps:
	@scripts/deps.sh run

deps-test:
	@scripts/deps.sh test

# The web UI's npm packages (uPlot, embedded into the binary; playwright-core
# for the browser test), installed exactly as web/package-lock.json pins
# them, again whenever the lock file changes.
WEB_DEPS = web/node_modules/.package-lock.json

$(WEB_DEPS): web/package-lock.json | deps
	@npm ci --prefix web --no-audit --no-fund

# Release: optimised, with debug info so the ledger can name file:line.
build: deps $(WEB_DEPS)
	@[ -f $(BUILD)/build.ninja ] || meson setup $(BUILD) --buildtype=release -Ddebug=true $(MESON_OPTS)
	@ninja -C $(BUILD)

run: build
	@$(BUILD)/src/steward --version
	@$(BUILD)/src/steward relay

test: deps-test build
	@tests/run.sh $(BUILD)

debug:
	@$(MAKE) --no-print-directory build BUILD=build-debug MESON_OPTS=--buildtype=debug

asan-build: deps-test $(WEB_DEPS)
	@scripts/deps.sh asan
	@[ -f build-asan/build.ninja ] || CC=clang meson setup build-asan --buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false
	@ninja -C build-asan

asan: asan-build
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 tests/run.sh build-asan --unit-only
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=10

# The MJPEG parser's libFuzzer target; new inputs it finds go to
# build-asan/fuzz-corpus, the seeds stay in tests/fuzz/seeds_mjpeg.
FUZZ_SECONDS ?= 20
fuzz: asan-build
	@mkdir -p build-asan/fuzz-corpus
	@UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 build-asan/tests/fuzz_mjpeg \
		-max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 -artifact_prefix=build-asan/ \
		build-asan/fuzz-corpus tests/fuzz/seeds_mjpeg >build-asan/fuzz.log 2>&1 \
		|| { tail -60 build-asan/fuzz.log; echo "fuzz: FAILED (build-asan/fuzz.log)"; exit 1; }
	@grep -E '^Done|^stat::(number_of_executed_units|new_units_added|peak_rss_mb)' build-asan/fuzz.log
	@echo "fuzz: ok ($(FUZZ_SECONDS) s, corpus build-asan/fuzz-corpus)"

bench: build
	@scripts/deps.sh bench
	@bench/run.sh $(BUILD)
	@bench/check_bench.sh $(BUILD)
	@bench/relay_bench.sh $(BUILD)

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-debug build-asan
