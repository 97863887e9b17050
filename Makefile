# Makefile: builds build/libegress.so and build/egress-broker; `make check`
# builds and runs every test; `make check SANITIZE=address,undefined` runs
# the same tests with sanitizers (objects go to build/san).

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

.PHONY: all check unit integration clean fuzz
all: $(LIB) $(BROKER)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(XCFLAGS) $(CFLAGS) $(if $(filter tests/%,$<),$(CHECK_CFLAGS)) -MMD -MP -c $< -o $@

# The shim links only the codec, never inih or uthash.
$(LIB): $(call obj,$(SHIM_SRC) policy/proto.c policy/dns.c)
	$(CC) -shared $(SANFLAGS) $(LDFLAGS) -o $@ $^ -ldl -lpthread

$(BROKER): $(call obj,broker/main.c $(BROKER_SRC) $(POLICY_SRC))
	$(CC) $(SANFLAGS) $(LDFLAGS) -o $@ $^ $(INIH_LIBS) -lpthread

$(BUILD)/obj/tests/check_main_shim.o: tests/check_main.c
	@mkdir -p $(dir $@)
	$(CC) $(XCFLAGS) $(CFLAGS) $(CHECK_CFLAGS) -DCHECK_SHIM -MMD -MP -c $< -o $@

$(BUILD)/check_egress: $(call obj,tests/check_main.c tests/testlib.c $(TEST_SRC) $(BROKER_SRC) $(POLICY_SRC))
	$(CC) $(SANFLAGS) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(INIH_LIBS) -lpthread

$(BUILD)/check_shim: $(BUILD)/obj/tests/check_main_shim.o $(call obj,tests/check_shim.c $(SHIM_SRC) policy/proto.c policy/dns.c)
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
FUZZ_TARGETS := proto policy upstream dns
FUZZ_SRC_proto := policy/proto.c
FUZZ_SRC_dns := policy/dns.c policy/proto.c
FUZZ_SRC_policy := $(POLICY_SRC)
FUZZ_SRC_upstream := broker/upstream.c $(POLICY_SRC)

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(POLICY_SRC) broker/upstream.c policy/policy.h broker/broker.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $< $(FUZZ_SRC_$*) $(INIH_LIBS)

fuzz: $(FUZZ_TARGETS:%=build/fuzz/fuzz_%)
	sh tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
