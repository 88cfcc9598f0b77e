# SPDX-License-Identifier: MIT
# The host unit tests built two more ways (tests/unit/README.md):
#  - with AddressSanitizer and UndefinedBehaviorSanitizer, run by make check
#    (part "sanitize"), so that a buffer overrun or signed overflow that
#    happens to give the right numbers still fails;
#  - with gcov instrumentation, run by make coverage, which prints the line
#    coverage of lib/ (and of the engine it shares with the device).
# Each variant has its own objects, archive and test binaries under
# $(BUILD), built from the same sources as the library.

SAN_CFLAGS = -fsanitize=address,undefined -fno-sanitize-recover=all \
	-fno-omit-frame-pointer
COV_CFLAGS = --coverage -O1

LIB_SAN_A = $(BUILD)/lib-san/libpolar-accel.a
LIB_COV_A = $(BUILD)/lib-cov/libpolar-accel.a
UNIT_NAMES = $(patsubst tests/unit/%.c,%,$(wildcard tests/unit/test_*.c))
UNIT_SAN_TESTS = $(addprefix $(BUILD)/tests/unit-san/,$(UNIT_NAMES))
UNIT_COV_TESTS = $(addprefix $(BUILD)/tests/unit-cov/,$(UNIT_NAMES))

$(BUILD)/obj/san/%.o: %.c $(LIB_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(USER_CFLAGS) $(SAN_CFLAGS) -c $< -o $@

$(BUILD)/obj/cov/%.o: %.c $(LIB_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(USER_CFLAGS) $(COV_CFLAGS) -c $< -o $@

# The ONNX reader's generated code (Makefile: ONNX_PB_C) is built the same
# way; lib/src/onnx.c needs its header first.
$(BUILD)/obj/san/gen/onnx.pb-c.o: $(ONNX_PB_C)
	@mkdir -p $(dir $@)
	$(CC) $(USER_CFLAGS) $(SAN_CFLAGS) -c $< -o $@

$(BUILD)/obj/cov/gen/onnx.pb-c.o: $(ONNX_PB_C)
	@mkdir -p $(dir $@)
	$(CC) $(USER_CFLAGS) $(COV_CFLAGS) -c $< -o $@

$(BUILD)/obj/san/lib/src/onnx.o $(BUILD)/obj/cov/lib/src/onnx.o: $(ONNX_PB_H)

$(LIB_SAN_A): $(patsubst %.c,$(BUILD)/obj/san/%.o,$(LIB_SRCS)) \
		$(BUILD)/obj/san/gen/onnx.pb-c.o
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(LIB_COV_A): $(patsubst %.c,$(BUILD)/obj/cov/%.o,$(LIB_SRCS)) \
		$(BUILD)/obj/cov/gen/onnx.pb-c.o
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/tests/unit-san/%: tests/unit/%.c tests/unit/*.h $(LIB_SAN_A) \
		$(BUILD)/obj/san/firmware/fwasm.o
	@mkdir -p $(dir $@)
	$(CC) $(USER_CFLAGS) $(SAN_CFLAGS) -Itests/unit -Ifirmware $< -o $@ \
		$(BUILD)/obj/san/firmware/fwasm.o $(LIB_SAN_A) $(LIB_LIBS)

$(BUILD)/tests/unit-cov/%: tests/unit/%.c tests/unit/*.h $(LIB_COV_A) \
		$(BUILD)/obj/cov/firmware/fwasm.o
	@mkdir -p $(dir $@)
	$(CC) $(USER_CFLAGS) $(COV_CFLAGS) -Itests/unit -Ifirmware $< -o $@ \
		$(BUILD)/obj/cov/firmware/fwasm.o $(LIB_COV_A) $(LIB_LIBS)

unit-san: $(UNIT_SAN_TESTS)

# Counters from an earlier run would add up with this one's.
coverage: setup
	@$(MAKE) --no-print-directory firmware $(UNIT_COV_TESTS)
	@find $(BUILD)/obj/cov -name '*.gcda' -delete
	@tests/unit/coverage.sh $(BUILD) $(UNIT_COV_TESTS)

# Named, so make keeps them: pattern-built prerequisites are intermediate.
.SECONDARY: $(BUILD)/obj/san/firmware/fwasm.o $(BUILD)/obj/cov/firmware/fwasm.o

.PHONY: unit-san coverage
