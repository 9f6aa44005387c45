# meshgate build. `make` builds the BPF object and the TypeScript; `make test` runs every test.
CLANG ?= clang
BPFTOOL ?= bpftool
ARCH_INCLUDE := /usr/include/$(shell uname -m)-linux-gnu
BPF_CFLAGS := -g -O2 -target bpf -Wall -Werror -I$(ARCH_INCLUDE) -Ibpf
BPF_SOURCES := bpf/maps.bpf.c bpf/connect.bpf.c bpf/origdst.bpf.c bpf/dns.bpf.c bpf/backstop.bpf.c
BPF_UNITS := $(patsubst bpf/%.bpf.c,build/%.bpf.o,$(BPF_SOURCES))
# The compat variant: the same sources with Linux 5.15's helpers only (bpf/variant.bpf.h).
BPF_COMPAT_UNITS := $(patsubst bpf/%.bpf.c,build/compat/%.bpf.o,$(BPF_SOURCES))
BPF_HEADERS := $(wildcard bpf/*.h bpf/include/*.h)
HELPERS := build/sockprobe build/streamer build/sidedoor build/foreign.bpf.o build/retired.bpf.o build/connectloop build/dnsprobe build/dnstest.bpf.o build/streamrate

.PHONY: all bpf ts abi test test-unit test-kernel bench clean

all: bpf abi ts $(HELPERS)

bpf: build/meshgate.bpf.o build/meshgate-compat.bpf.o build/kernctx_probe.bpf.o build/abi.bpf.o build/laststate.bpf.o

build/%.bpf.o: bpf/%.bpf.c $(BPF_HEADERS)
	@mkdir -p build
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

build/compat/%.bpf.o: bpf/%.bpf.c $(BPF_HEADERS)
	@mkdir -p build/compat
	$(CLANG) $(BPF_CFLAGS) -DMG_NO_KERN_CTX -c $< -o $@

# One object from the per-hook units; the maps are defined once in maps.bpf.c.
build/meshgate.bpf.o: $(BPF_UNITS)
	$(BPFTOOL) gen object $@ $^

build/meshgate-compat.bpf.o: $(BPF_COMPAT_UNITS)
	$(BPFTOOL) gen object $@ $^

# TypeScript layouts come from the object's BTF, never typed by hand.
abi: src/datapath/abi.generated.ts
src/datapath/abi.generated.ts: build/meshgate.bpf.o build/abi.bpf.o scripts/gen-abi.mjs
	node scripts/gen-abi.mjs build/meshgate.bpf.o build/abi.bpf.o > $@.tmp && mv $@.tmp $@

ts: abi
	npx tsc -p tsconfig.json

build/sockprobe: test/helpers/sockprobe.c test/helpers/probeplace.h
	@mkdir -p build
	cc -O2 -Wall -Werror -o $@ $<

test: all
	bash scripts/run-tests.sh

test-unit: all
	find dist/test/unit -name '*.test.js' -exec node --test {} +

test-kernel: all
	find dist/test/kernel -name '*.test.js' -exec node --test --test-concurrency=1 {} +

bench: all
	node dist/bench/run.js

clean:
	rm -rf build dist

build/dnsprobe: test/helpers/dnsprobe.c test/helpers/probeplace.h
	@mkdir -p build
	cc -O2 -Wall -Werror -o $@ $<

build/streamrate: bench/streamrate.c
	@mkdir -p build
	cc -O2 -Wall -Werror -o $@ $<

build/connectloop: bench/connectloop.c
	@mkdir -p build
	cc -O2 -Wall -Werror -o $@ $<

build/dnstest.bpf.o: test/helpers/dnstest.bpf.c $(BPF_HEADERS)
	@mkdir -p build
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

build/streamer: bench/streamer.c
	@mkdir -p build
	cc -O2 -Wall -Werror -o $@ $<

build/sidedoor: test/helpers/sidedoor.c test/helpers/probeplace.h
	@mkdir -p build
	cc -O2 -Wall -Werror -o $@ $<

build/foreign.bpf.o build/retired.bpf.o: build/%.bpf.o: test/helpers/%.bpf.c
	@mkdir -p build
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@
