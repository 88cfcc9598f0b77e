# SPDX-License-Identifier: MIT
# Included by the top-level Makefile: the libFuzzer targets of the host
# parsers (tests/fuzz/README.md), the VM ABI fuzzer and `make stress`.

FUZZ_CC ?= clang-14
FUZZ_CFLAGS = -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=undefined -Wall -Wextra $(WERROR) \
	-Ihw -Iuapi -Ilib/include -Ilib/src -Iqemu-device -I$(GEN)
FUZZ_DIR = $(BUILD)/fuzz
FUZZERS = $(FUZZ_DIR)/fuzz_safetensors $(FUZZ_DIR)/fuzz_idx \
	$(FUZZ_DIR)/fuzz_firmware $(FUZZ_DIR)/fuzz_onnx
FUZZ_SEEDS = $(FUZZ_DIR)/seeds/.done
# Each fuzzer gets the library sources it exercises compiled in, with the
# sanitizers, rather than the -fPIC archive.
FUZZ_SRCS_fuzz_safetensors = lib/src/safetensors.c lib/src/error.c \
	lib/src/file.c
FUZZ_LIBS_fuzz_safetensors = -ljansson
FUZZ_SRCS_fuzz_idx = lib/src/idx.c lib/src/error.c
FUZZ_LIBS_fuzz_idx = -lz
FUZZ_SRCS_fuzz_firmware = qemu-device/cim_firmware.c
FUZZ_LIBS_fuzz_firmware = -lz
FUZZ_SRCS_fuzz_onnx = lib/src/onnx.c lib/src/nn.c lib/src/safetensors.c \
	lib/src/error.c lib/src/file.c qemu-device/cim_engine.c $(ONNX_PB_C)
FUZZ_LIBS_fuzz_onnx = -lprotobuf-c -ljansson -lpthread -lm
# nn.c draws from the engine's RNG and asks it for the CPU's features; the
# engine's hand-scheduled kernels are GCC's, and a parser fuzzer has no
# use for them: clang builds its portable code only.
FUZZ_DEFS_fuzz_onnx = -DCIM_NO_SIMD

.PHONY: fuzz fuzz-short fuzz-long stress
.SECONDEXPANSION:

$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c $$(FUZZ_SRCS_fuzz_%) $(LIB_HDRS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_DEFS_fuzz_$*) $< $(FUZZ_SRCS_fuzz_$*) -o $@ \
		$(FUZZ_LIBS_fuzz_$*)

$(FUZZ_DIR)/mkseeds: tests/fuzz/mkseeds.c tests/unit/onnx_build.h $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(USER_CFLAGS) -Itests/unit $< -o $@ $(LIB_A) $(LIB_LIBS)

$(FUZZ_SEEDS): $(FUZZ_DIR)/mkseeds $(FIRMWARE)
	@rm -rf $(FUZZ_DIR)/seeds
	@$(FUZZ_DIR)/mkseeds $(FUZZ_DIR)/seeds
	@cp $(FIRMWARE) $(FUZZ_DIR)/seeds/firmware/polar_cim.fw
	@touch $@

fuzz: $(FUZZERS) $(FUZZ_SEEDS)

# Bounded: FUZZ_TIME seconds per target (make check); fuzz-long: see README.
FUZZ_TIME ?= 10
FUZZ_SEED ?= 1
fuzz-short: fuzz
	@tests/fuzz/run-fuzz.sh $(FUZZ_TIME) $(FUZZ_SEED)

fuzz-long: fuzz
	@tests/fuzz/run-fuzz.sh $${FUZZ_LONG_TIME:-600} $(FUZZ_SEED)

# The ABI fuzzer: a kselftest in make check (it includes abi_fuzz.c) and a
# standalone static binary for make stress.
$(BUILD)/tests/selftests/polar_accel_fuzz_test: tests/fuzz/abi_fuzz.c
ABI_FUZZ = $(BUILD)/bin/abi_fuzz
$(ABI_FUZZ): tests/fuzz/abi_fuzz.c $(LIB_A) $(LIB_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(USER_CFLAGS) -static $< -o $@ $(LIB_A) $(LIB_LIBS)

# make stress (tests/stress/run-stress.sh): long fuzz, soak, stress and the
# fault matrix repeated, in the VM; ends with the jobs/warnings/faults line.
SOAK = $(BUILD)/tests/stress/polar_accel_soak
$(SOAK): tests/stress/polar_accel_soak.c tests/selftests/polar_selftest.h \
		$(LIB_A) $(LIB_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(USER_CFLAGS) -static $< -o $@ $(LIB_A) $(LIB_LIBS)

STRESS_TESTS = $(ABI_FUZZ) $(SOAK) tests/stress/recovery_repeat \
	$(BUILD)/tests/selftests/polar_accel_recovery_test \
	$(BUILD)/tests/selftests/polar_accel_stress_test
# It runs on the debug kernel (Makefile: debug-kernel, driver-debug).
$(BUILD)/initramfs-stress.cpio.gz: driver-debug $(STRESS_TESTS) $(POLAR_TOOL) \
		$(GUEST_EXIT) $(FIRMWARE) tests/vm/init tests/vm/mkinitramfs.sh
	@POLAR_KENV=$(DEBUG_KENV) tests/vm/mkinitramfs.sh $@ check $(DEBUG_KO) \
		$(STRESS_TESTS)

stress: setup
	@$(MAKE) --no-print-directory qemu $(BUILD)/initramfs-stress.cpio.gz
	@tests/stress/run-stress.sh
