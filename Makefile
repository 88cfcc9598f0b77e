# SPDX-License-Identifier: MIT
# polar-accel: the two commands a newcomer needs are `make run` and
# `make check`; each installs what it needs (Debian packages, the guest
# kernel, QEMU with our device) into $(BUILD) on first use and reuses it.

BUILD ?= $(CURDIR)/build
export BUILD

CC ?= gcc
WERROR ?= -Werror
DRM_CFLAGS = $(shell pkg-config --cflags libdrm 2>/dev/null)
# Code generated at build time (the ONNX protobuf reader) lives here.
GEN = $(BUILD)/gen
USER_CFLAGS = -std=c11 -O2 -g -Wall -Wextra $(WERROR) \
	-Ihw -Iuapi -Ilib/include -Ilib/src -Iqemu-device -I$(GEN) $(DRM_CFLAGS)

KENV = $(BUILD)/kernel/env
HARNESS = $(BUILD)/kernel-tools/.done
KSELFTEST_DIR = $(BUILD)/kernel-tools/tools/testing/selftests
CHECKPATCH = $(BUILD)/kernel-tools/scripts/checkpatch.pl

# libpolar-accel
LIB_VERSION = 1.0.0
# The major number changes with every incompatible ABI change (lib/abi/).
LIB_SONAME = libpolar-accel.so.1
# The device's arithmetic (cim_*) is compiled into the library too: the
# software backend and the device model share one implementation.
CIM_SRCS = qemu-device/cim_engine.c qemu-device/cim_firmware.c \
	qemu-device/cim_command.c
LIB_SRCS = $(wildcard lib/src/*.c) $(CIM_SRCS)
# ONNX import reads models with protobuf-c code generated from the
# onnx.proto that Debian's libonnx-dev ships (never copied here).
ONNX_PROTO = /usr/include/onnx/onnx.proto
ONNX_PB_H = $(GEN)/onnx/onnx.pb-c.h
ONNX_PB_C = $(GEN)/onnx/onnx.pb-c.c
ONNX_PB_OBJ = $(BUILD)/obj/pic/gen/onnx.pb-c.o
LIB_PIC_OBJS = $(patsubst %.c,$(BUILD)/obj/pic/%.o,$(LIB_SRCS)) $(ONNX_PB_OBJ)
LIB_SO = $(BUILD)/lib/libpolar-accel.so.$(LIB_VERSION)
# What the library itself links; static users add these after the archive
# (and, when they use the calibration, LAPACK's own: polar-accel.pc).
LIB_LIBS = -ldrm -luring -ljansson -lprotobuf-c -lz -llapacke -llapack \
	-lpthread -lm
# A static program that calls the calibration also needs LAPACK's
# Fortran runtime (the static liblapack.a is OpenBLAS's, Fortran inside).
LIB_STATIC_LIBS = $(LIB_LIBS) -lgfortran -lquadmath -lm
LIB_A = $(BUILD)/lib/libpolar-accel.a
LIB_HDRS = $(wildcard lib/include/polar/*.h) $(wildcard lib/src/*.h) \
	$(wildcard hw/*.h) $(wildcard uapi/drm/*.h) $(wildcard qemu-device/*.h) \
	$(wildcard firmware/*.h)

UNIT_TESTS = $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,\
	$(wildcard tests/unit/test_*.c))
SELFTESTS = $(patsubst tests/selftests/%.c,$(BUILD)/tests/selftests/%,\
	$(wildcard tests/selftests/*_test.c))
POLAR_TOOL = $(BUILD)/bin/polar
FWASM = $(BUILD)/bin/polar-fwasm
FWASM_OBJ = $(BUILD)/obj/pic/firmware/fwasm.o
FIRMWARE = $(BUILD)/firmware/polar_cim.fw
BENCH_ENGINE = $(BUILD)/bench/bench_engine
BENCH_SUBMIT = $(BUILD)/bench/bench_submit
BENCH_OVERLAP = $(BUILD)/bench/bench_overlap
BENCH_LOWRANK = $(BUILD)/bench/bench_lowrank
GUEST_EXIT = $(BUILD)/bin/guest-exit
KO = polar_accel.ko
QEMU = $(BUILD)/qemu-build/qemu-system-x86_64

PREFIX ?= /usr/local
DESTDIR ?=
UDEVDIR ?= /lib/udev
FWDIR ?= /lib/firmware
VERSION = $(LIB_VERSION)
DKMS_SRC = $(DESTDIR)/usr/src/polar-accel-$(VERSION)

.PHONY: all run check check-onnx mutate setup install kernel harness qemu driver lib tools unit \
	debug-kernel driver-debug check-debug check-swiotlb \
	selftests initramfs lint checkpatch sparse clean distclean help \
	firmware bench-engine bench-submit bench-overlap bench-lowrank coverage abi-baseline

all: lib tools driver firmware

help:
	@echo "make run    build everything, boot the VM with the device, print its identity"
	@echo "make check  build everything and run the host and VM tests, plus lint"
	@echo "make coverage       line coverage of lib/ by the unit tests (gcov)"
	@echo "make mutate plant known bugs one at a time; each must fail the tests that should catch it"
	@echo "make lint   checkpatch --strict and sparse over the driver"
	@echo "make firmware       assemble build/firmware/polar_cim.fw"
	@echo "make bench-engine   cim_engine MAC/s against single-thread sgemm and a popcount roofline"
	@echo "make qtest          the device model's own tests over qtest (tests/qtest/README.md)"
	@echo "make fuzz-device    the device fuzzer, 1,000,000 operations on QEMU built with ASan+UBSan"

setup:
	@scripts/install-packages.sh

$(KENV):
	@scripts/fetch-kernel.sh
kernel: $(KENV)

$(HARNESS):
	@scripts/fetch-harness.sh
harness: $(HARNESS)

qemu:
	@scripts/build-qemu.sh >/dev/null

driver: $(KENV)
	@. $(KENV) && $(MAKE) --no-print-directory -C $$KDIR M=$(CURDIR) modules

# The debug guest kernel (KASAN, lockdep, atomic-sleep checks, kmemleak,
# debug objects; scripts/build-debug-kernel.sh), built once and cached, and
# polar_accel.ko for it. The module is built in a copy of its sources so
# that its objects never mix with the stock kernel's in the tree.
DEBUG_KENV = $(BUILD)/debug-kernel/env
DEBUG_MODDIR = $(BUILD)/debug-kernel/module
DEBUG_KO = $(DEBUG_MODDIR)/polar_accel.ko

debug-kernel: $(KENV)
	@scripts/build-debug-kernel.sh

driver-debug: debug-kernel
	@mkdir -p $(DEBUG_MODDIR)/driver $(DEBUG_MODDIR)/hw $(DEBUG_MODDIR)/uapi/drm
	@cp -p Kbuild $(DEBUG_MODDIR)/
	@cp -p driver/*.[ch] $(DEBUG_MODDIR)/driver/
	@cp -p hw/*.h $(DEBUG_MODDIR)/hw/
	@cp -p uapi/drm/*.h $(DEBUG_MODDIR)/uapi/drm/
	@. $(DEBUG_KENV) && $(MAKE) --no-print-directory -C $$KDIR \
		M=$(DEBUG_MODDIR) modules

# --- userspace ---------------------------------------------------------

$(BUILD)/obj/pic/%.o: %.c $(LIB_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(USER_CFLAGS) -fPIC -c $< -o $@

$(ONNX_PB_C): $(ONNX_PB_H)
$(ONNX_PB_H): $(ONNX_PROTO)
	@mkdir -p $(GEN)
	protoc-c --c_out=$(GEN) --proto_path=$(dir $(ONNX_PROTO)).. \
		onnx/$(notdir $(ONNX_PROTO))

$(ONNX_PB_OBJ): $(ONNX_PB_C)
	@mkdir -p $(dir $@)
	$(CC) $(USER_CFLAGS) -fPIC -c $< -o $@

$(BUILD)/obj/pic/lib/src/onnx.o: $(ONNX_PB_H)

$(LIB_A): $(LIB_PIC_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(LIB_SO): $(LIB_PIC_OBJS) lib/src/libpolar-accel.map
	@mkdir -p $(dir $@)
	$(CC) -shared -Wl,-soname,$(LIB_SONAME) \
		-Wl,--version-script=lib/src/libpolar-accel.map \
		-o $@ $(LIB_PIC_OBJS) $(LIB_LIBS)
	ln -sf $(notdir $@) $(BUILD)/lib/$(LIB_SONAME)
	ln -sf $(LIB_SONAME) $(BUILD)/lib/libpolar-accel.so

lib: $(LIB_SO) $(LIB_A)

TOOL_SRCS = $(wildcard tools/*.c)

$(POLAR_TOOL): $(TOOL_SRCS) tools/*.h $(LIB_SO) $(LIB_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(USER_CFLAGS) $(TOOL_SRCS) -o $@ -L$(BUILD)/lib -lpolar-accel \
		$(LIB_LIBS)

$(GUEST_EXIT): tests/vm/guest_exit.c
	@mkdir -p $(dir $@)
	$(CC) $(USER_CFLAGS) -static $< -o $@

tools: $(POLAR_TOOL)

$(FWASM): firmware/polar-fwasm.c $(FWASM_OBJ) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(USER_CFLAGS) -Ifirmware $< $(FWASM_OBJ) -o $@ $(LIB_A) $(LIB_LIBS)

$(FIRMWARE): firmware/polar_cim.fws $(FWASM)
	@mkdir -p $(dir $@)
	$(FWASM) $< -o $@

firmware: $(FIRMWARE)

$(BUILD)/tests/unit/%: tests/unit/%.c tests/unit/*.h $(LIB_A) $(FWASM_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(USER_CFLAGS) -Itests/unit -Ifirmware $< -o $@ $(FWASM_OBJ) \
		$(LIB_A) $(LIB_LIBS)

$(BENCH_ENGINE): bench/bench_engine.c bench/openblas_core.h tests/unit/*.h $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(USER_CFLAGS) -Itests/unit $< -o $@ $(LIB_A) $(LIB_LIBS) \
		$$(pkg-config --cflags --libs openblas)

bench-engine: setup
	@$(MAKE) --no-print-directory $(BENCH_ENGINE)
	@$(BENCH_ENGINE)

$(BENCH_SUBMIT): bench/bench_submit.c $(LIB_A) $(LIB_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(USER_CFLAGS) -static $< -o $@ $(LIB_A) $(LIB_LIBS)

unit: $(UNIT_TESTS)

# The library side of the PyTorch client test (tests/onnx/).
ONNX_FORWARD = $(BUILD)/tests/onnx/onnx_forward
$(ONNX_FORWARD): tests/onnx/onnx_forward.c $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(USER_CFLAGS) $< -o $@ $(LIB_A) $(LIB_LIBS)

# Every kselftest includes the shared helpers: a change there (e.g. which
# node accel_open() opens) must rebuild them all.
$(BUILD)/tests/selftests/%: tests/selftests/%.c tests/selftests/polar_selftest.h \
		tests/selftests/polar_selftest_uring.h tests/unit/abi_cases.h \
		$(LIB_A) $(HARNESS)
	@mkdir -p $(dir $@)
	$(CC) $(USER_CFLAGS) -Wno-unused-parameter -Wno-clobbered -Wno-sign-compare \
		-I$(KSELFTEST_DIR) -static $(SELFTEST_LDFLAGS) \
		$< -o $@ $(LIB_A) $(LIB_STATIC_LIBS) -lpthread

# polar_lib_test stands between the library and liburing to make the
# kernel take only part of the queued jobs (a short submit).
$(BUILD)/tests/selftests/polar_lib_test: SELFTEST_LDFLAGS = \
	-Wl,--wrap=io_uring_submit,--wrap=io_uring_submit_and_wait \
	-Wl,--wrap=io_uring_submit_and_get_events

selftests: $(SELFTESTS)

initramfs: $(BUILD)/initramfs-check.cpio.gz

$(BUILD)/initramfs-%.cpio.gz: driver $(SELFTESTS) $(POLAR_TOOL) $(GUEST_EXIT) \
		$(FIRMWARE) tests/vm/init tests/vm/mkinitramfs.sh
	@tests/vm/mkinitramfs.sh $@ $* $(KO) $(if $(filter check,$*),$(SELFTESTS))

$(BENCH_OVERLAP): bench/bench_overlap.c $(LIB_A) $(LIB_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(USER_CFLAGS) -static $< -o $@ $(LIB_A) $(LIB_LIBS)

$(BENCH_LOWRANK): bench/bench_lowrank.c bench/openblas_core.h $(LIB_A) $(LIB_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(USER_CFLAGS) $< -o $@ $(LIB_A) $(LIB_LIBS) \
		$$(pkg-config --cflags --libs openblas)

# The VM benches: mode bench runs every /usr/bin/bench_* it is given.
$(BUILD)/initramfs-bench-%.cpio.gz: $(BUILD)/bench/bench_% driver \
		$(POLAR_TOOL) $(GUEST_EXIT) $(FIRMWARE) tests/vm/init \
		tests/vm/mkinitramfs.sh
	@tests/vm/mkinitramfs.sh $@ bench $(KO) $<

# --- the two README commands ---------------------------------------------

run: setup
	@$(MAKE) --no-print-directory qemu driver $(POLAR_TOOL) $(GUEST_EXIT) \
		$(FIRMWARE)
	@scripts/run-main.sh

# The device computes on one host thread and models 1 us per array cycle,
# so that most of its time, like real silicon's, needs no host core: the
# overlap of the host path is then the library's doing, not a question of
# whether this shared machine had a core free (bench/README.md).
bench-overlap: export POLAR_CIM_PROPS ?= threads=1,cycle-ps=1000000
bench-submit bench-overlap: bench-%: setup
	@$(MAKE) --no-print-directory qemu $(BUILD)/initramfs-bench-$*.cpio.gz
	@echo "host: $$(nproc) CPUs, load average $$(cut -d' ' -f1-3 /proc/loadavg)"
	@tests/vm/run-vm.sh bench $(BUILD)/initramfs-bench-$*.cpio.gz
	@echo "host: load average $$(cut -d' ' -f1-3 /proc/loadavg) after the run"

bench-lowrank: setup
	@$(MAKE) --no-print-directory $(BENCH_LOWRANK)
	@$(BENCH_LOWRANK)

# The build phase compiles on every core: its objects and programs (the
# library with and without sanitizers, the unit tests twice) are independent.
check: setup
	@$(MAKE) --no-print-directory -j$$(nproc) qemu firmware unit unit-san lib \
		$(QTEST_DEVICE) $(DEVICE_FUZZ) $(ONNX_FORWARD) \
		$(BUILD)/initramfs-check.cpio.gz
	@tests/run-checks.sh

# After a deliberate, compatible change of the library's ABI (lib/abi/).
abi-baseline: lib
	@lib/abi/check-abi.sh --update $(LIB_SO)

# PyTorch models trained for a few minutes, exported to ONNX, against the
# library's forward pass and polarized on the sim (tests/onnx/README.md);
# make check runs its short form.
check-onnx: setup
	@$(MAKE) --no-print-directory $(ONNX_FORWARD) $(POLAR_TOOL) $(FIRMWARE)
	@tests/onnx/onnx-client.sh

# Not part of check (over an hour on this loaded machine): plants each bug of
# tests/mutants/mutants.tsv in a copy of the tree under $(BUILD)/mutate and
# expects the part of check that should catch it to fail (tests/README.md).
# The main build comes first: the copy shares its kernel, harness and QEMU.
mutate: setup
	@$(MAKE) --no-print-directory qemu firmware unit $(BUILD)/initramfs-check.cpio.gz
	@tests/mutate.sh

# The kselftests on the debug kernel with 4 vCPUs, and on the stock one
# with every DMA bounced through swiotlb (tests/README.md).
$(BUILD)/initramfs-check-debug.cpio.gz: driver-debug $(SELFTESTS) $(POLAR_TOOL) \
		$(GUEST_EXIT) $(FIRMWARE) tests/vm/init tests/vm/mkinitramfs.sh
	@POLAR_KENV=$(DEBUG_KENV) tests/vm/mkinitramfs.sh $@ check $(DEBUG_KO) \
		$(SELFTESTS)

check-debug: setup
	@$(MAKE) --no-print-directory qemu $(BUILD)/initramfs-check-debug.cpio.gz
	@POLAR_KENV=$(DEBUG_KENV) POLAR_VM_SMP=4 POLAR_VM_MEM=2048 \
		POLAR_VM_TIMEOUT=$${POLAR_VM_TIMEOUT:-3600} \
		tests/run-vm-suite.sh check-debug $(BUILD)/initramfs-check-debug.cpio.gz

check-swiotlb: setup
	@$(MAKE) --no-print-directory qemu $(BUILD)/initramfs-check.cpio.gz
	@POLAR_VM_SMP=4 POLAR_VM_APPEND=swiotlb=65536,force \
		tests/run-vm-suite.sh check-swiotlb $(BUILD)/initramfs-check.cpio.gz

# --- lint -----------------------------------------------------------------

lint: checkpatch sparse

checkpatch: $(HARNESS)
	@perl $(CHECKPATCH) --strict --no-tree --terse --show-types -f \
		driver/*.[ch]
	@echo "checkpatch --strict: clean"

sparse: $(KENV)
	@. $(KENV) && $(MAKE) --no-print-directory -C $$KDIR M=$(CURDIR) \
		C=2 modules 2>&1 | tee $(BUILD)/sparse.log
	@if grep -E -q '(warning|error):' $(BUILD)/sparse.log; then \
		echo "sparse: warnings above"; exit 1; fi
	@echo "sparse: clean"

# Headers, libraries, pkg-config file, the polar tool, firmware, the udev
# rule, and the driver's sources with a dkms.conf for DKMS.
install: lib tools firmware
	install -d $(DESTDIR)$(PREFIX)/include/polar $(DESTDIR)$(PREFIX)/include/drm \
		$(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/bin \
		$(DESTDIR)$(FWDIR) $(DESTDIR)$(UDEVDIR)/rules.d
	install -d $(DESTDIR)$(PREFIX)/share/man/man3
	install -m 644 lib/man/*.3 $(DESTDIR)$(PREFIX)/share/man/man3/
	install -m 644 lib/include/polar/*.h $(DESTDIR)$(PREFIX)/include/polar/
	install -m 644 uapi/drm/polar_accel.h $(DESTDIR)$(PREFIX)/include/drm/
	install -m 644 hw/polar_cim_hw.h $(DESTDIR)$(PREFIX)/include/polar/
	install -m 755 $(LIB_SO) $(DESTDIR)$(PREFIX)/lib/
	ln -sf $(notdir $(LIB_SO)) $(DESTDIR)$(PREFIX)/lib/$(LIB_SONAME)
	ln -sf $(LIB_SONAME) $(DESTDIR)$(PREFIX)/lib/libpolar-accel.so
	install -m 644 $(LIB_A) $(DESTDIR)$(PREFIX)/lib/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' \
		packaging/polar-accel.pc.in \
		>$(DESTDIR)$(PREFIX)/lib/pkgconfig/polar-accel.pc
	install -m 755 $(POLAR_TOOL) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(FIRMWARE) $(DESTDIR)$(FWDIR)/
	install -m 644 packaging/70-polar-accel.rules $(DESTDIR)$(UDEVDIR)/rules.d/
	install -d $(DKMS_SRC)/driver $(DKMS_SRC)/hw $(DKMS_SRC)/uapi/drm
	install -m 644 Kbuild $(DKMS_SRC)/
	install -m 644 driver/*.[ch] $(DKMS_SRC)/driver/
	install -m 644 hw/*.h $(DKMS_SRC)/hw/
	install -m 644 uapi/drm/polar_accel.h $(DKMS_SRC)/uapi/drm/
	sed 's|@VERSION@|$(VERSION)|' packaging/dkms.conf.in >$(DKMS_SRC)/dkms.conf

clean:
	-@[ -f $(KENV) ] && . $(KENV) && $(MAKE) -s -C $$KDIR M=$(CURDIR) clean
	rm -rf $(BUILD)/obj $(BUILD)/lib $(BUILD)/bin $(BUILD)/tests \
		$(BUILD)/bench $(BUILD)/firmware $(BUILD)/initramfs-*.cpio.gz

distclean: clean
	rm -rf $(BUILD)

# Fuzzers, the VM ABI fuzzer and make stress (tests/fuzz/README.md).
include tests/fuzz/fuzz.mk
include tests/qtest/qtest.mk
include tests/unit/variants.mk
