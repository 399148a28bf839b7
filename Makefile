# The two commands of the README:
#   make run    install what is missing, build, run the relay (Ctrl-C stops it)
#   make test   install what is missing, build, run every test
#   make install [PREFIX=/usr/local] [DESTDIR=]   install the build (meson install)
#   make deb    the Debian package, in build-deb/
# Other targets: build (release, in build/), debug (build-debug/),
# asan (AddressSanitizer + UBSan unit tests, build-asan/, and 10 s of each
# fuzzer), fuzz and fuzz-http (20 s of the MJPEG parser's and of the HTTP
# request parsing's libFuzzer targets), bench, format, clean, stress-test (the
# timing-sensitive suites RUNS times under CPU load).

BUILD ?= build
MESON_OPTS ?=
PREFIX ?= /usr/local
DESTDIR ?=

.PHONY: all run test build install deb debug asan asan-build fuzz fuzz-http bench format clean deps \
	deps-test stress-test

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

# The binary, libsteward, the checker's preload library, man pages, the
# systemd unit, the unit's config file, the docs (docs/service.md).
install: build
	@[ "$$(meson introspect $(BUILD) --buildoptions | python3 -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]=="prefix"][0])')" = "$(PREFIX)" ] || \
		meson configure $(BUILD) -Dprefix=$(PREFIX)
	@meson install -C $(BUILD) --quiet $(if $(DESTDIR),--destdir $(DESTDIR))

# The Debian package (debian/, debhelper with meson) in build-deb/.
deb: deps $(WEB_DEPS)
	@scripts/deps.sh deb
	@scripts/build-deb.sh build-deb

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
	@scripts/fuzz.sh mjpeg 10
	@scripts/fuzz.sh http_request 10

# The libFuzzer targets (tests/fuzz/): new inputs they find go to
# build-asan/fuzz-NAME-corpus, the seeds stay in tests/fuzz/seeds_NAME.
FUZZ_SECONDS ?= 20
fuzz: asan-build
	@scripts/fuzz.sh mjpeg $(FUZZ_SECONDS)

fuzz-http: asan-build
	@scripts/fuzz.sh http_request $(FUZZ_SECONDS)

# RUNS rounds (default 50) of the unit tests, the leak corpus, the real
# programs and the relay's integration tests, with every core kept busy.
RUNS ?= 50
stress-test: deps-test build
	@scripts/stress-test.sh $(BUILD) $(RUNS) $(SUITES)

bench: build
	@scripts/deps.sh bench
	@bench/run.sh $(BUILD)
	@bench/check_bench.sh $(BUILD)
	@bench/check_startup.sh $(BUILD)
	@bench/relay_bench.sh $(BUILD)
	@python3 bench/relay_ffmpeg_bench.py --build $(BUILD) --counts 1,10,50
	@python3 bench/relay_record_bench.py --build $(BUILD) --counts 1,10,50

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-debug build-asan
