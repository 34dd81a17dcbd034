# ddpmlua — one plain Makefile.
#   make            build ./ddpmlua (installs missing Debian packages first)
#   make test       every test (C unit tests, then Lua tests); ends "N passed, N failed"
#   make demo       the main job
#   make bench      ddpmlua vs the PyTorch reference, side by side
#   make asan       the tests under AddressSanitizer + UBSan
#   make install PREFIX=/usr/local

PREFIX  ?= /usr/local
BUILD   ?= build
CC      ?= cc
PKGS    := luajit libpng sqlite3 zlib libedit plplot ompi-c
# OpenBLAS's OpenMP build, so our OpenMP loops and its GEMMs share one thread
# pool instead of spinning against each other on 2 cores.
MULTIARCH := $(shell gcc -print-multiarch 2>/dev/null)
BLAS_DIR  := /usr/lib/$(MULTIARCH)/openblas-openmp
comma     := ,
BLAS_LIB  := $(if $(wildcard $(BLAS_DIR)/libopenblas.so.0),$(BLAS_DIR)/libopenblas.so.0 -Wl$(comma)-rpath$(comma)$(BLAS_DIR),$(shell pkg-config --libs openblas 2>/dev/null))
BLAS_INC  := $(shell pkg-config --cflags openblas 2>/dev/null)
OPT     ?= -O3 -march=native
CFLAGS  ?= $(OPT) -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -Wno-psabi -fopenmp -Iruntime/include \
           $(shell pkg-config --cflags $(PKGS) 2>/dev/null) $(BLAS_INC)
LDLIBS  += $(shell pkg-config --libs $(PKGS) 2>/dev/null) $(BLAS_LIB) -lm -fopenmp
LDFLAGS += -Wl,-E

# Public headers: runtime/include (ddpm.h and ddpm/*.h), all that bindings/
# may include; runtime/*.h are private to the runtime, its C tests and the
# benchmarks, which alone get -Iruntime (docs/design.md, Headers).
HEADERS := $(wildcard runtime/*.h runtime/include/*.h runtime/include/ddpm/*.h)

# make V=1 shows the full compiler lines.
Q := $(if $(V),,@)

RUNTIME_SRC := $(wildcard runtime/*.c)
BIND_SRC    := $(wildcard bindings/*.c)
RUNTIME_OBJ := $(RUNTIME_SRC:%.c=$(BUILD)/%.o)
BIND_OBJ    := $(BIND_SRC:%.c=$(BUILD)/%.o)
CTEST_SRC   := $(wildcard tests/c/test_*.c)
CTEST_BIN   := $(CTEST_SRC:tests/c/%.c=$(BUILD)/tests/%)

.PHONY: all deps test-deps test fixtures demo bench bench-mpi asan fuzz install module install-module clean

# Reference outputs and gradients of the PyTorch U-Net (test-only; Debian's python3-torch).
PY       := /usr/bin/python3
FIXDEPS  := scripts/make_fixtures.py scripts/torch_unet.py scripts/safetensors_io.py
FIXTURES := tests/fixtures/unet_small.safetensors tests/fixtures/unet_small_oldattn.safetensors \
            tests/fixtures/unet_cifar.safetensors

# Package checks run first, then a fresh make reads pkg-config's flags (on a
# new machine the libraries only exist after scripts/setup.sh).
all: deps
	@$(MAKE) --no-print-directory ddpmlua

deps:
	@bash scripts/setup.sh

test-deps:
	@bash scripts/setup.sh test

# The executable: ./ddpmlua, or $(BUILD)/ddpmlua for a sanitizer build (make
# asan), so that a sanitizer build never replaces the ./ddpmlua users run.
EXE     ?= ddpmlua
$(EXE): $(RUNTIME_OBJ) $(BIND_OBJ)
	@echo "  LD    $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/runtime/%.o $(BUILD)/tests/% $(BUILD)/bench/%: CFLAGS += -Iruntime
$(BUILD)/%.o: %.c $(HEADERS) $(wildcard bindings/*.h)
	@mkdir -p $(dir $@)
	@echo "  CC    $<"
	$(Q)$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/tests/%: tests/c/%.c tests/c/check.h $(RUNTIME_OBJ)
	@mkdir -p $(dir $@)
	@echo "  LD    $@"
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(RUNTIME_OBJ) $(LDLIBS)

fixtures: $(FIXTURES)

tests/fixtures/unet_small.safetensors: $(FIXDEPS)
	@mkdir -p $(dir $@)
	$(PY) scripts/make_fixtures.py --config small --batch 2 --seed 1 --out $@
tests/fixtures/unet_small_oldattn.safetensors: $(FIXDEPS)
	@mkdir -p $(dir $@)
	$(PY) scripts/make_fixtures.py --config small --batch 2 --seed 1 --attn-names old --no-grad --out $@
tests/fixtures/unet_cifar.safetensors: $(FIXDEPS)
	@mkdir -p $(dir $@)
	$(PY) scripts/make_fixtures.py --config cifar --batch 1 --seed 1 --out $@

# The FID Inception-v3 reference (python3-torchvision): random weights and every
# stage's output; without torchvision, tests/c/test_inception.c skips and says why.
INCEPTION_FIX := tests/fixtures/inception_ref.safetensors
$(INCEPTION_FIX): scripts/torch_inception.py scripts/safetensors_io.py
	@mkdir -p $(dir $@)
	@if $(PY) -c 'import torchvision' 2>/dev/null; then \
	   $(PY) scripts/torch_inception.py --seed 1 --batch 2 --size 32 \
	      --weights tests/fixtures/inception_weights.safetensors --out $@; \
	 else echo "python3-torchvision is not installed: the Inception parity test will skip"; fi

test: test-deps
	@$(MAKE) --no-print-directory $(EXE) $(CTEST_BIN) $(FUZZ_REPLAY) $(FIXTURES) $(INCEPTION_FIX)
	@DDPMLUA=./$(EXE) bash tests/run.sh

demo: deps
	@bash scripts/setup.sh data
	@$(MAKE) --no-print-directory ddpmlua
	./ddpmlua scripts/demo.lua

bench: test-deps
	@$(MAKE) --no-print-directory ddpmlua $(BENCH_BIN)
	@bash scripts/bench.sh

# Data parallelism on this machine: 1 rank x 2 threads, 1 x 1, 2 ranks x 1
# (mpirun), and the sum of the CIFAR-10 gradient buffer over 2 ranks.
bench-mpi: deps
	@$(MAKE) --no-print-directory ddpmlua
	@bash scripts/bench_mpi.sh

include bench/Makefile.inc

# Fuzzing: one libFuzzer harness per parser of outside bytes (tests/fuzz/),
# built with clang into build-fuzz/ and run FUZZ_SECONDS each, no single
# allocation over 256 MiB. New inputs land in build-fuzz/corpus/<target>,
# failures in build-fuzz/crashers/<target>; copy those worth keeping into
# tests/fuzz/corpus/ or tests/fuzz/crashers/, which `make test` replays.
FUZZ_TARGETS := safetensors json idx cifar png metadata config npz
FUZZ_SECONDS ?= 60
FUZZ_CC      ?= clang-14
FUZZ_BUILD   := build-fuzz
FUZZ_OPTS    ?= -malloc_limit_mb=256 -rss_limit_mb=2048 -timeout=20
FUZZ_CFLAGS  := -O1 -g -march=native -fno-omit-frame-pointer -fsanitize=address,undefined \
                -fno-sanitize-recover=undefined -Wno-psabi -Wno-pass-failed -std=c11 -D_GNU_SOURCE -fopenmp -Iruntime -Iruntime/include \
                $(shell pkg-config --cflags $(PKGS) 2>/dev/null) $(BLAS_INC) \
                -DDDPM_LUA_DIR='"$(CURDIR)/lib"'
FUZZ_RT_OBJ  := $(RUNTIME_SRC:%.c=$(FUZZ_BUILD)/%.o)
FUZZ_BIN     := $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)
FUZZ_REPLAY  := $(FUZZ_TARGETS:%=$(BUILD)/tests/test_fuzz_%)
.SECONDARY: $(FUZZ_RT_OBJ)

$(FUZZ_BUILD)/runtime/%.o: runtime/%.c $(HEADERS)
	@mkdir -p $(dir $@)
	@echo "  FUZZCC $<"
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(FUZZ_RT_OBJ)
	@echo "  LD    $@"
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_RT_OBJ) $(LDLIBS)

# The same harnesses with a replay main() and the normal compiler (make test).
$(BUILD)/tests/test_fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h tests/fuzz/replay.c tests/c/check.h $(RUNTIME_OBJ)
	@mkdir -p $(dir $@)
	@echo "  LD    $@"
	$(Q)$(CC) $(CFLAGS) -DFUZZ_TARGET='"$*"' -DDDPM_LUA_DIR='"$(CURDIR)/lib"' $(LDFLAGS) -o $@ \
	   $< tests/fuzz/replay.c $(RUNTIME_OBJ) $(LDLIBS)

fuzz: test-deps
	@$(MAKE) --no-print-directory $(FUZZ_BIN)
	@bash tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# The tests under AddressSanitizer + UBSan, with the normal build's SIMD
# kernels (-march=native). LuaJIT, libpng, zlib, SQLite and OpenBLAS are not
# instrumented; tests/lsan.supp is where a leak inside one of them would be
# named (none is today). TEST_PARTS / TEST_SKIP (see
# tests/run.sh) pick a subset, as .ci/run does. build-asan/ddpmlua finds the
# Lua library beside itself, as ./ddpmlua does: through links to lib/,
# experiments/ and data/.
asan:
	@mkdir -p build-asan && ln -sfn ../lib build-asan/lib && ln -sfn ../experiments build-asan/experiments && \
	  ln -sfn ../data build-asan/data
	ASAN_OPTIONS=$${ASAN_OPTIONS:-detect_leaks=1} LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	$(MAKE) BUILD=build-asan EXE=build-asan/ddpmlua \
	        OPT="-O1 -march=native -fsanitize=address,undefined -fno-omit-frame-pointer" \
	        LDFLAGS="-Wl,-E -fsanitize=address,undefined" test

# The binary, the Lua library, the experiment scripts, the data files they
# read (the FD-LeNet classifier), the SQL queries and the man page; the
# installed ddpmlua finds them all under $(PREFIX)/share/ddpmlua, and runs
# `ddpmlua ablation_sigma.lua` from there when no such file is in the
# current folder.
SHARE := $(DESTDIR)$(PREFIX)/share/ddpmlua
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(SHARE)/lua/ddpm/cmd $(SHARE)/experiments $(SHARE)/data \
	           $(SHARE)/scripts $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 755 ddpmlua $(DESTDIR)$(PREFIX)/bin/ddpmlua
	install -m 644 lib/ddpm/*.lua $(SHARE)/lua/ddpm/
	install -m 644 lib/ddpm/cmd/*.lua $(SHARE)/lua/ddpm/cmd/
	install -m 644 experiments/*.lua $(SHARE)/experiments/
	install -m 644 data/*.safetensors $(SHARE)/data/
	install -m 644 scripts/queries.sql $(SHARE)/scripts/
	install -m 644 docs/ddpmlua.1 $(DESTDIR)$(PREFIX)/share/man/man1/ddpmlua.1

# ddpm.core as a Lua C module, so that plain LuaJIT can `require 'ddpm'`
# (ddpmlua-*.rockspec runs these through `luarocks make`). Position-
# independent objects in their own folder, one per build folder (so `make
# asan` never leaves sanitizer objects for a normal module); libluajit is
# left to the host.
PIC     := $(BUILD)-pic
MOD_SRC := $(RUNTIME_SRC) $(filter-out bindings/main.c,$(BIND_SRC))
MOD_OBJ := $(MOD_SRC:%.c=$(PIC)/%.o)
LUADIR  ?= $(PREFIX)/share/lua/5.1
LIBDIR  ?= $(PREFIX)/lib/lua/5.1
module: $(PIC)/ddpm/core.so
$(PIC)/runtime/%.o: CFLAGS += -Iruntime
$(PIC)/%.o: %.c $(HEADERS) $(wildcard bindings/*.h)
	@mkdir -p $(dir $@)
	@echo "  CC    $< (module)"
	$(Q)$(CC) $(CFLAGS) -fPIC -c -o $@ $<
$(PIC)/ddpm/core.so: $(MOD_OBJ)
	@mkdir -p $(dir $@)
	@echo "  LD    $@"
	$(Q)$(CC) -shared -o $@ $^ $(filter-out -lluajit-5.1,$(LDLIBS))
install-module: module
	install -d $(DESTDIR)$(LIBDIR)/ddpm $(DESTDIR)$(LUADIR)/ddpm/cmd
	install -m 755 $(PIC)/ddpm/core.so $(DESTDIR)$(LIBDIR)/ddpm/core.so
	install -m 644 lib/ddpm/*.lua $(DESTDIR)$(LUADIR)/ddpm/
	install -m 644 lib/ddpm/cmd/*.lua $(DESTDIR)$(LUADIR)/ddpm/cmd/

clean:
	rm -rf build build-asan build-pic build-asan-pic build-fuzz ddpmlua
