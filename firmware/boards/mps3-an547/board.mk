# QEMU mps3-an547: Cortex-M55 (Helium/MVE, FPv5). Code in ITCM, data in DTCM.
CC := $(CROSS)gcc
ARCH_FLAGS := -mcpu=cortex-m55 -mthumb -mfloat-abi=hard
BOARD_LDFLAGS := -T$(BOARD_DIR)/link.ld
BOARD_BIN := 1
