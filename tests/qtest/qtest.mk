# SPDX-License-Identifier: MIT
# Included by the top-level Makefile: the device model's own tests over
# qtest (tests/qtest/README.md) and the device fuzzer (tests/fuzz/).

QTEST_LIB_SRCS = tests/qtest/qtest_client.c tests/qtest/cim_qtest.c
QTEST_HDRS = tests/qtest/qtest_client.h tests/qtest/cim_qtest.h hw/polar_cim_hw.h
QTEST_DEVICE = $(BUILD)/tests/qtest/test_device
DEVICE_FUZZ = $(BUILD)/fuzz/device_fuzz
QEMU_ASAN = $(BUILD)/qemu-build-asan/qemu-system-x86_64

$(QTEST_DEVICE): tests/qtest/test_device.c tests/unit/unit.h $(QTEST_LIB_SRCS) \
		$(QTEST_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(USER_CFLAGS) -Itests/qtest $< $(QTEST_LIB_SRCS) -o $@

$(DEVICE_FUZZ): tests/fuzz/device_fuzz.c $(QTEST_LIB_SRCS) $(QTEST_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(USER_CFLAGS) -Itests/qtest $< $(QTEST_LIB_SRCS) -o $@

.PHONY: qtest fuzz-device fuzz-device-short qemu-asan
qtest: setup
	@$(MAKE) --no-print-directory qemu firmware $(QTEST_DEVICE)
	@$(QTEST_DEVICE)

qemu-asan:
	@scripts/build-qemu.sh --sanitize >/dev/null

# Sanitizer reports stop QEMU (halt_on_error) and are also looked for on
# its stderr; leak checking is off, QEMU does not free everything at exit.
DEVICE_FUZZ_ENV = ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1
DEVICE_FUZZ_SEED ?= 1
DEVICE_FUZZ_OPS ?= 1000000
DEVICE_FUZZ_SHORT_OPS ?= 30000

# The long run, against QEMU built with ASan and UBSan (RELIABILITY.md).
fuzz-device: setup
	@$(MAKE) --no-print-directory qemu-asan firmware $(DEVICE_FUZZ)
	@$(DEVICE_FUZZ_ENV) $(DEVICE_FUZZ) --qemu $(QEMU_ASAN) \
		--fw $(FIRMWARE) --seed $(DEVICE_FUZZ_SEED) \
		--ops $(DEVICE_FUZZ_OPS)

# make check's short run, against the normal build.
fuzz-device-short: $(DEVICE_FUZZ) $(FIRMWARE)
	@$(DEVICE_FUZZ) --qemu $(QEMU) --fw $(FIRMWARE) \
		--seed $(DEVICE_FUZZ_SEED) --ops $(DEVICE_FUZZ_SHORT_OPS) \
		--restart 10000
