# Linux host build of the same harness, for tests and fuzzing (no emulator).
# SANITIZE=1 builds with AddressSanitizer and UBSan.
CC := $(HOST_CC)
ARCH_FLAGS :=
BOARD_LDFLAGS :=
ifeq ($(SANITIZE),1)
ARCH_FLAGS += -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
BOARD_LDFLAGS += -fsanitize=address,undefined
endif
BOARD_BIN :=
