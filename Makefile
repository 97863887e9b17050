# Makefile: builds build/libegress.so and build/egress-broker, and on x86_64
# the shim for i386 programs too (build/lib32/libegress.so), laid out for the
# dynamic loader's $LIB token (see SHIM32 below); `make check` builds and
# runs every test; `make check SANITIZE=address,undefined` runs the same
# tests with sanitizers (objects go to build/san).

CC ?= cc
CFLAGS ?= -O2 -g
SANITIZE ?=
BUILD := build
ifneq ($(SANITIZE),)
BUILD := build/san
SANFLAGS := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif

WARN := -Wall -Wextra -Wshadow -Wmissing-prototypes -Werror
XCFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) -fPIC -fvisibility=hidden -Ipolicy $(SANFLAGS)
INIH_LIBS := $(shell pkg-config --libs inih 2>/dev/null || echo -linih)
CHECK_CFLAGS := $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null || echo -lcheck)

POLICY_SRC := $(wildcard policy/*.c)
SHIM_SRC := $(wildcard shim/*.c)
BROKER_SRC := $(filter-out broker/main.c,$(wildcard broker/*.c))
# Two test binaries: the shim's hooks would interpose the broker's own
# getaddrinfo and connect if both lived in one program.
TEST_SRC := $(filter-out tests/check_main.c tests/check_shim.c,$(wildcard tests/check_*.c))
obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

LIB := $(BUILD)/libegress.so
BROKER := $(BUILD)/egress-broker
CHECKS := $(BUILD)/check_egress $(BUILD)/check_shim

# ---- the $LIB layout. A 32-bit program cannot load a 64-bit library: the
# loader says "wrong ELF class", ignores it and runs the program unmediated.
# LD_PRELOAD='/abs/build/$LIB/libegress.so' makes each program's loader pick
# its own: Debian 12's x86_64 loader expands $LIB to lib/x86_64-linux-gnu
# (lib/ and the compiler's -print-multiarch), its i386 loader to lib32
# (libc6-i386, which gcc-multilib brings) or lib/i386-linux-gnu (libc6:i386
# from a multiarch install). Plain builds only: under SANITIZE, programs
# load the plain library (tests/integration). SHIM32=no builds the 64-bit
# layout alone (egress-run then refuses 32-bit programs); the default is
# yes on x86_64 hosts.
SHIM32 ?= $(if $(filter x86_64,$(shell uname -m)),yes,no)
MULTIARCH := $(or $(shell $(CC) -print-multiarch 2>/dev/null),$(shell uname -m)-linux-gnu)
LIB32 := build/lib32/libegress.so
LAYOUT := build/lib/$(MULTIARCH)/libegress.so
ifeq ($(SHIM32),yes)
LAYOUT += $(LIB32) build/lib/i386-linux-gnu/libegress.so
endif
obj32 = $(patsubst %.c,build/obj32/%.o,$(1))

.PHONY: all check unit integration clean fuzz bench bench-build
ifeq ($(SANITIZE),)
all: $(LIB) $(BROKER) $(LAYOUT)
else
all: $(LIB) $(BROKER)
endif

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(XCFLAGS) $(CFLAGS) $(if $(filter tests/%,$<),$(CHECK_CFLAGS)) -MMD -MP -c $< -o $@

# The shim links only the codecs (the wire protocol, its note ring, DNS), never inih or uthash.
# Bound at load (-z now) with its GOT read-only after (relro): a fork child
# that never ran a libc call of the shim does not bind it on its first
# connect (35 us of about 200 in bench/connect first), and the program
# cannot redirect the shim's calls to libc by writing its GOT.
SHIM_LDFLAGS := -Wl,-z,now -Wl,-z,relro
$(LIB): $(call obj,$(SHIM_SRC) policy/proto.c policy/ring.c policy/dns.c policy/hostsfile.c)
	$(CC) -shared $(SHIM_LDFLAGS) $(SANFLAGS) $(LDFLAGS) -o $@ $^ -ldl -lpthread

build/lib/$(MULTIARCH)/libegress.so: build/libegress.so
	@mkdir -p $(dir $@)
	ln -sf ../../libegress.so $@

build/lib/i386-linux-gnu/libegress.so: $(LIB32)
	@mkdir -p $(dir $@)
	ln -sf ../../lib32/libegress.so $@

# The i386 shim: the same sources and codecs, -m32, never sanitized.
$(LIB32): $(call obj32,$(SHIM_SRC) policy/proto.c policy/ring.c policy/dns.c policy/hostsfile.c)
	@mkdir -p $(dir $@)
	$(CC) -m32 -shared $(SHIM_LDFLAGS) $(LDFLAGS) -o $@ $^ -ldl -lpthread

build/obj32/%.o: %.c | build/obj32/multilib.ok
	@mkdir -p $(dir $@)
	$(CC) -m32 $(filter-out $(SANFLAGS),$(XCFLAGS)) $(CFLAGS) -MMD -MP -c $< -o $@

# Can $(CC) build and link for i386? Without libc6-dev-i386 it cannot find
# gnu/stubs-32.h; without gcc-multilib, libgcc for -m32.
build/obj32/multilib.ok:
	@mkdir -p $(dir $@)
	@printf '#include <sys/socket.h>\n#include <dlfcn.h>\nint main(void) { return socket(AF_INET, SOCK_STREAM, 0) < 0 && !dlerror(); }\n' \
		>build/obj32/multilib.c
	@if ! $(CC) -m32 -o build/obj32/multilib build/obj32/multilib.c -ldl 2>build/obj32/multilib.err; then \
		sed 's/^/  /' build/obj32/multilib.err >&2; \
		echo "make: $(CC) -m32 cannot build the i386 shim (for 32-bit programs): Debian's multilib" >&2; \
		echo "make: packages are missing. Install them with: apt-get install gcc-multilib libc6-dev-i386" >&2; \
		echo "make: (sh tools/install-deps.sh installs them), or build without it: make SHIM32=no" >&2; \
		exit 1; \
	fi
	@touch $@

$(BROKER): $(call obj,broker/main.c $(BROKER_SRC) $(POLICY_SRC))
	$(CC) $(SANFLAGS) $(LDFLAGS) -o $@ $^ $(INIH_LIBS) -lpthread

$(BUILD)/obj/tests/check_main_shim.o: tests/check_main.c
	@mkdir -p $(dir $@)
	$(CC) $(XCFLAGS) $(CFLAGS) $(CHECK_CFLAGS) -DCHECK_SHIM -MMD -MP -c $< -o $@

$(BUILD)/check_egress: $(call obj,tests/check_main.c tests/testlib.c $(TEST_SRC) $(BROKER_SRC) $(POLICY_SRC))
	$(CC) $(SANFLAGS) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(INIH_LIBS) -lpthread

$(BUILD)/check_shim: $(BUILD)/obj/tests/check_main_shim.o $(call obj,tests/check_shim.c $(SHIM_SRC) policy/proto.c policy/ring.c policy/dns.c policy/hostsfile.c)
	$(CC) $(SANFLAGS) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) -ldl -lpthread

# A client that attacks the broker socket on purpose (tests/integration).
$(BUILD)/advclient: $(call obj,tests/adversarial/advclient.c policy/proto.c)
	$(CC) $(SANFLAGS) $(LDFLAGS) -o $@ $^ -lpthread

unit: $(CHECKS)
	$(BUILD)/check_egress
	$(BUILD)/check_shim

# Under SANITIZE, curl runs with the plain library (see tests/integration/run.sh).
integration: all $(BUILD)/advclient
	$(if $(SANITIZE),$(MAKE) SANITIZE= all)
	BUILD=$(BUILD) SANITIZE=$(SANITIZE) sh tests/integration/run.sh

check: unit integration

# ---- fuzzing: `make fuzz FUZZ_SECONDS=N` runs each libFuzzer target for N
# seconds from a copy of its committed corpus (tests/fuzz/run.sh); any
# crash, leak, timeout or out-of-memory fails. A target is fuzz_NAME.c in
# tests/fuzz plus the sources listed in FUZZ_SRC_NAME.
FUZZ_SECONDS ?= 30
FUZZ_CC ?= clang
FUZZ_FLAGS := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -g -O1 -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=all -Ipolicy
FUZZ_TARGETS := proto policy upstream dns nflog
FUZZ_SRC_proto := policy/proto.c policy/ring.c
FUZZ_SRC_dns := policy/dns.c policy/proto.c
FUZZ_SRC_policy := $(POLICY_SRC)
FUZZ_SRC_upstream := broker/upstream.c $(POLICY_SRC)
FUZZ_SRC_nflog := broker/nflog.c broker/log.c broker/loop.c policy/proto.c

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(POLICY_SRC) broker/upstream.c broker/nflog.c policy/policy.h \
		broker/broker.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $< $(FUZZ_SRC_$*) $(INIH_LIBS)

fuzz: $(FUZZ_TARGETS:%=build/fuzz/fuzz_%)
	sh tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# ---- benchmarks: `make bench` builds the programs of bench/ into
# build/bench and runs bench/run.sh, which prints one table and writes it
# to bench/results.txt (BENCH_OUT=FILE elsewhere), the raw figures beside
# it as CSV; see docs/BENCHMARKS.md. BENCH_QUICK=1: a short smoke pass;
# BENCH_RUNS=K runs per case (5); BENCH_STREAM_MB=M the stream's size
# (2048); BENCH_CPUS=LIST the CPUs it runs on (the last one; all: not
# pinned). A bench reports, it never fails on a figure; `make check` does
# not run it.
BENCH_QUICK ?=
BENCH_RUNS ?=
BENCH_STREAM_MB ?=
BENCH_OUT ?=
BENCH_CPUS ?=
BENCH_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) -Ipolicy -Ibench
BENCH_PLAIN := server connect gai udp seqpacket noop spawn stream
BENCH_BINS := $(BENCH_PLAIN:%=build/bench/%) build/bench/connect-static build/bench/clients \
	build/bench/decide build/bench/rss

$(BENCH_PLAIN:%=build/bench/%): build/bench/%: bench/%.c bench/bench.h
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) $(CFLAGS) -o $@ $<

# The captured connect of --isolate: a static program, nothing preloaded.
build/bench/connect-static: bench/connect.c bench/bench.h
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) $(CFLAGS) -DBENCH_STATIC -static -o $@ $<

build/bench/clients build/bench/rss: build/bench/%: bench/%.c bench/bench.h $(call obj,policy/proto.c)
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) $(CFLAGS) -o $@ $< $(call obj,policy/proto.c)

build/bench/decide: bench/decide.c bench/bench.h $(call obj,$(POLICY_SRC))
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) $(CFLAGS) -o $@ $< $(call obj,$(POLICY_SRC)) $(INIH_LIBS)

bench-build: all $(BENCH_BINS)

bench: bench-build
	BENCH_QUICK=$(BENCH_QUICK) BENCH_RUNS=$(BENCH_RUNS) BENCH_STREAM_MB=$(BENCH_STREAM_MB) \
		BENCH_OUT=$(BENCH_OUT) BENCH_CPUS=$(BENCH_CPUS) sh bench/run.sh

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
