# libicl build. Targets:
#   make            library (static + shared), the icl tool and the examples
#   make check      set up missing packages, build, run every test suite: the C suites, the
#                   shell tests (install, crash consistency, fuzz corpus replay) and the C
#                   suites under ASan + UBSan
#   make sanitize   only the C suites under ASan + UBSan (tree build-san/, CUDA=0)
#   make fuzz SECONDS=N   build the libFuzzer targets (clang, build-fuzz/), fuzz each N s
#   make fuzz-replay      run each fuzz target over its seed corpus fuzz/corpus/<name>
#   make demo       set up, build, train the default model, probe it, write out/demo/report.md
#   make bench      training throughput (see docs/benchmarks.md)
#   make install PREFIX=/usr/local   (also the Python package, into PYDIR = PREFIX/lib/pythonX.Y/dist-packages)
# Options: CUDA=0 builds without the CUDA backend plugin, build/libicl-cuda.so (default: on when nvcc is found);
#          CUDA_ARCH=... overrides the GPU code generation flags;
#          MPI=0 builds without MPI (default: on when mpicc is found; docs/scaling.md).
#          Switching CUDA or MPI needs `make clean` first.

PREFIX   ?= /usr/local
BUILD    ?= build
CC       ?= gcc
NVCC     ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
CUDA     ?= $(if $(NVCC),1,0)
MPICC    ?= $(shell command -v mpicc 2>/dev/null)
MPI      ?= $(if $(MPICC),1,0)
SONAME_MAJOR := 0
NPROC    := $(shell nproc 2>/dev/null || echo 2)
VERSION  := 0.1.0
# The Python package (python/) is tested with and installed for this interpreter.
PYTHON   ?= /usr/bin/python3
PYVER    := $(shell $(PYTHON) -c 'import sys; print("python%d.%d" % sys.version_info[:2])' 2>/dev/null || echo python3)
PYDIR    ?= $(PREFIX)/lib/$(PYVER)/dist-packages

# OpenBLAS's OpenMP build: it shares our OpenMP thread pool and runs single-threaded
# inside our parallel regions. The pthread build spins its own threads against
# ours and is ~3x slower on the small products of tiny models.
MULTIARCH  := $(shell $(CC) -dumpmachine)
BLAS_DIR   := /usr/lib/$(MULTIARCH)/openblas-openmp
BLAS_PC    := PKG_CONFIG_PATH=$(BLAS_DIR)/pkgconfig pkg-config
PKG_CFLAGS := $(shell $(BLAS_PC) --cflags openblas 2>/dev/null) $(shell pkg-config --cflags libcjson 2>/dev/null)
PKG_LIBS   := $(shell $(BLAS_PC) --libs openblas 2>/dev/null) -Wl,-rpath,$(BLAS_DIR) \
              $(shell pkg-config --libs libcjson 2>/dev/null || echo -lcjson)
CHECK_CFLAGS := $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS   := $(shell pkg-config --libs check 2>/dev/null || echo -lcheck -lsubunit -lrt -lpthread)

CFLAGS   ?= -O2 -g
# Sanitizer flags of the fuzz and sanitize trees (kept apart from CFLAGS so a
# caller's CFLAGS does not drop them); they go to every compile and link.
SAN_CFLAGS ?=
override CFLAGS += $(SAN_CFLAGS) -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -fPIC -fopenmp -fvisibility=hidden \
            -Iinclude $(PKG_CFLAGS)
LDLIBS   := $(PKG_LIBS) -fopenmp -lm -ldl

# The library's layers, lowest first (docs/architecture.md). Each layer's
# private headers live in its folder; a file sees the public headers
# (include/icl/), lib/core and its own folder, nothing else, so a private
# include across layers fails to compile instead of hiding.
LAYERS   := core engine tasks io analysis probes
LIB_SRC  := $(foreach l,$(LAYERS),$(wildcard lib/$(l)/*.c)) $(wildcard kernels/cpu/*.c)
LIB_OBJ  := $(patsubst %.c,$(BUILD)/obj/%.o,$(LIB_SRC))

# The CUDA backend is a plugin (lib/engine/backend.h): kernels/cuda builds into
# its own shared object, the only thing linked against cudart and cuBLAS;
# libicl dlopen()s it when CUDA is asked for, so CPU runs never load CUDA.
CUDA_PLUGIN := $(BUILD)/libicl-cuda.so
ifeq ($(CUDA),1)
CUDA_HOME  ?= $(patsubst %/bin/nvcc,%,$(NVCC))
CUDA_ARCH  ?= -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90
NVCCFLAGS  ?= -O2 -lineinfo
# Flags the build needs whatever NVCCFLAGS the caller sets.
NVCC_REQUIRED := -std=c++17 $(CUDA_ARCH) -Xcompiler -fPIC,-fvisibility=hidden -Iinclude -Ilib/core -Ilib/engine \
                 -Ikernels/cuda
# Tests: the plugin was built, so test_cuda* expect it to load.
override CFLAGS += -DICL_WITH_CUDA
CU_SRC     := $(wildcard kernels/cuda/*.cu)
CU_OBJ     := $(patsubst %.cu,$(BUILD)/obj/%.o,$(CU_SRC))
CUDA_LIBS  := -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublas -lcudart -lstdc++ -lm
PLUGINS    := $(CUDA_PLUGIN)
endif

# MPI through the compiler we already use: mpicc only tells us its flags.
ifeq ($(MPI),1)
MPI_CFLAGS := $(shell $(MPICC) --showme:compile)
MPI_LIBS   := $(shell $(MPICC) --showme:link)
override CFLAGS += -DICL_WITH_MPI $(MPI_CFLAGS)
LDLIBS     += $(MPI_LIBS)
endif

HEADERS  := $(wildcard include/icl/*.h lib/*/*.h examples/*.h kernels/cpu/*.h kernels/cuda/*.h kernels/cuda/*.cuh)
TOOL_SRC := $(wildcard examples/icl_*.c)
TOOL_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(TOOL_SRC))
EX_SRC   := $(filter-out examples/icl_%.c,$(wildcard examples/*.c))
EX_BIN   := $(patsubst examples/%.c,$(BUILD)/bin/%,$(EX_SRC))
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))
TEST_UTIL := $(BUILD)/obj/tests/testutil.o $(BUILD)/obj/tests/kernel_table.o

STATIC   := $(BUILD)/libicl.a
SHARED   := $(BUILD)/libicl.so.$(VERSION)

.PHONY: all setup check demo bench install clean
all: $(STATIC) $(SHARED) $(PLUGINS) $(BUILD)/bin/icl $(EX_BIN)

setup:
	@sh scripts/setup.sh

$(BUILD)/obj/lib/core/%.o:     PRIVATE_INC := -Ilib/core
$(BUILD)/obj/lib/engine/%.o:   PRIVATE_INC := -Ilib/core -Ilib/engine
$(BUILD)/obj/kernels/cpu/%.o:  PRIVATE_INC := -Ilib/core -Ilib/engine -Ikernels/cpu
$(BUILD)/obj/lib/tasks/%.o:    PRIVATE_INC := -Ilib/core -Ilib/tasks
$(BUILD)/obj/lib/io/%.o:       PRIVATE_INC := -Ilib/core
$(BUILD)/obj/lib/analysis/%.o: PRIVATE_INC := -Ilib/core -Ilib/analysis
$(BUILD)/obj/lib/probes/%.o:   PRIVATE_INC := -Ilib/core -Ilib/probes
# The last place the plugin loader looks (backend.h).
$(BUILD)/obj/lib/engine/backend.o: override CFLAGS += -DICL_PLUGIN_LIBDIR='"$(PREFIX)/lib"'
# Tests are white-box: they see the private headers of the engine, the kernels,
# the analysis and the probes.
$(BUILD)/obj/tests/%.o:        PRIVATE_INC := -Ilib/core -Ilib/engine -Ikernels/cpu -Ilib/analysis -Ilib/probes -Itests

$(BUILD)/obj/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PRIVATE_INC) -c $< -o $@

$(BUILD)/obj/%.o: %.cu $(HEADERS)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCC_REQUIRED) $(NVCCFLAGS) -c $< -o $@

$(STATIC): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(SHARED): $(LIB_OBJ)
	$(CC) $(SAN_CFLAGS) -shared -Wl,-soname,libicl.so.$(SONAME_MAJOR) -o $@ $^ $(LDLIBS)
	ln -sf libicl.so.$(VERSION) $(BUILD)/libicl.so.$(SONAME_MAJOR)
	ln -sf libicl.so.$(SONAME_MAJOR) $(BUILD)/libicl.so

# -z defs: the plugin must not lean on symbols of whatever loads it.
$(CUDA_PLUGIN): $(CU_OBJ)
	$(CC) -shared -Wl,-z,defs -o $@ $^ $(CUDA_LIBS)

# The tool links the shared library, so every run of it also checks that
# libicl.so exports the public API. Its runpath finds the library both in the
# build tree ($(BUILD)/bin/../) and where `make install` puts it (bin/../lib).
$(BUILD)/bin/icl: $(TOOL_OBJ) $(SHARED) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $(TOOL_OBJ) -L$(BUILD) -licl -Wl,-rpath,'$$ORIGIN/..:$$ORIGIN/../lib' $(LDLIBS)

$(BUILD)/bin/%: examples/%.c $(STATIC) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(STATIC) $(LDLIBS)

$(BUILD)/obj/tests/%.o: tests/%.c $(HEADERS) $(wildcard tests/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PRIVATE_INC) $(CHECK_CFLAGS) -c $< -o $@

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(TEST_UTIL) $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(CHECK_LIBS) $(LDLIBS)

# They load the plugin (found from build/tests through ..), not link it.
$(BUILD)/tests/test_cuda $(BUILD)/tests/test_cuda_model: | $(PLUGINS)

# Shell tests (tests/test_*.sh, run from the repository root) print a
# Check-style summary line, so run_tests.sh counts them with the C suites.
SHELL_TESTS := $(wildcard tests/test_*.sh)

# The sanitizer tree: library, tool and tests with AddressSanitizer and a
# fatal UndefinedBehaviorSanitizer, without CUDA and without MPI (Open MPI's
# own allocations still live at exit read as leaks). Tests that ask for an
# impossible allocation on purpose get NULL back instead of an abort.
SAN_BUILD    ?= build-san
SAN_FLAGS    := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
SAN_TEST_BIN := $(patsubst tests/%.c,$(SAN_BUILD)/tests/%,$(filter-out tests/test_cuda%.c,$(TEST_SRC)))
# The sanitizers make the suites several times slower: Check's timeouts stretch.
SAN_ENV      := ASAN_OPTIONS=allocator_may_return_null=1:detect_leaks=1:abort_on_error=1 \
                UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 CK_TIMEOUT_MULTIPLIER=10 ICL_EXPECT_MPI=0

# Everything `make check` runs, in one summary: the C suites, the shell tests
# (install, crash consistency, fuzz corpus replay), the C suites again in
# the sanitizer tree, and the Python package's pytest suite. The last line is "tests: N passed, M failed".
check: setup
	@$(MAKE) --no-print-directory -j$(NPROC) all $(TEST_BIN)
	@$(MAKE) --no-print-directory sanitize-build fuzz-build
	@OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} FUZZ_BUILD=$(FUZZ_BUILD) PYTEST_DIR=python/tests PYTHON=$(PYTHON) \
	    ICL_EXPECT_MPI=$(MPI) \
	    bash scripts/run_tests.sh $(TEST_BIN) $(SHELL_TESTS) $(SAN_ENV) $(SAN_TEST_BIN)

.PHONY: sanitize sanitize-build
sanitize-build:
	@$(MAKE) --no-print-directory -j$(NPROC) BUILD=$(SAN_BUILD) CUDA=0 MPI=0 CFLAGS="-O1 -g" SAN_CFLAGS="$(SAN_FLAGS)" \
	    $(SAN_BUILD)/bin/icl $(patsubst examples/%.c,$(SAN_BUILD)/bin/%,$(EX_SRC)) $(SAN_TEST_BIN)

sanitize: setup sanitize-build
	@OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} bash scripts/run_tests.sh $(SAN_ENV) $(SAN_TEST_BIN)

demo: setup
	@$(MAKE) --no-print-directory -j$(NPROC) all
	bash scripts/demo.sh

bench: all
	$(BUILD)/bin/icl bench

install: all
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include/icl $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 include/icl/*.h $(DESTDIR)$(PREFIX)/include/icl/
	install -m 644 $(STATIC) $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(SHARED) $(PLUGINS) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libicl.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libicl.so.$(SONAME_MAJOR)
	ln -sf libicl.so.$(SONAME_MAJOR) $(DESTDIR)$(PREFIX)/lib/libicl.so
	install -m 755 $(BUILD)/bin/icl $(DESTDIR)$(PREFIX)/bin/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' -e 's|@LIBS@|$(LDLIBS)|' icl.pc.in \
	    > $(DESTDIR)$(PREFIX)/lib/pkgconfig/icl.pc
	install -d $(DESTDIR)$(PYDIR)/libicl
	install -m 644 python/libicl/*.py $(DESTDIR)$(PYDIR)/libicl/

# ---- fuzzing (docs/reliability.md) ----
# libFuzzer targets fuzz/fuzz_<name>.c for every parser of outside input, built
# with clang in their own tree against a library compiled with the same
# sanitizers. `make fuzz SECONDS=N` fuzzes each for N seconds (new inputs go
# to $(FUZZ_BUILD)/corpus, the seeds in fuzz/corpus stay as they are);
# `make fuzz-replay` runs each target once over its seed corpus.
FUZZ_BUILD   ?= build-fuzz
FUZZ_CC      ?= clang
FUZZ_NAMES   := $(patsubst fuzz/fuzz_%.c,%,$(wildcard fuzz/fuzz_*.c))
FUZZ_BIN     := $(patsubst %,$(FUZZ_BUILD)/fuzz/fuzz_%,$(FUZZ_NAMES))
SECONDS      ?= 60
# stdout and stderr closed: the targets print help and error lines by design.
FUZZ_RUN_FLAGS := -close_fd_mask=3 -rss_limit_mb=2048 -timeout=10

.PHONY: fuzz fuzz-build fuzz-replay
fuzz-build:
	@$(MAKE) --no-print-directory -j$(NPROC) BUILD=$(FUZZ_BUILD) CC=$(FUZZ_CC) CUDA=0 MPI=0 MULTIARCH=$(MULTIARCH) \
	    CFLAGS="-O1 -g" SAN_CFLAGS="$(SAN_FLAGS) -fsanitize=fuzzer-no-link" $(FUZZ_BIN)

$(BUILD)/fuzz/fuzz_%: fuzz/fuzz_%.c fuzz/fuzz_input.h $(STATIC) $(BUILD)/obj/examples/icl_cli.o
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fsanitize=fuzzer -Iexamples -o $@ $< $(BUILD)/obj/examples/icl_cli.o $(STATIC) $(LDLIBS)

fuzz: fuzz-build
	@for t in $(FUZZ_NAMES); do \
	    mkdir -p $(FUZZ_BUILD)/corpus/$$t $(FUZZ_BUILD)/crashes/$$t; \
	    echo "== fuzz_$$t ($(SECONDS) s)"; \
	    OMP_NUM_THREADS=1 $(FUZZ_BUILD)/fuzz/fuzz_$$t $(FUZZ_RUN_FLAGS) -max_total_time=$(SECONDS) \
	        -artifact_prefix=$(FUZZ_BUILD)/crashes/$$t/ -print_final_stats=1 \
	        $(FUZZ_BUILD)/corpus/$$t fuzz/corpus/$$t || exit 1; \
	done

fuzz-replay: fuzz-build
	@FUZZ_BUILD=$(FUZZ_BUILD) bash tests/test_fuzz_corpus.sh

clean:
	rm -rf $(BUILD) $(FUZZ_BUILD) $(SAN_BUILD)
