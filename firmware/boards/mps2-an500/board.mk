# QEMU mps2-an500: Cortex-M7 (FPv5). Memory limits of the NUCLEO-H7A3ZI (link.ld).
CC := $(CROSS)gcc
ARCH_FLAGS := -mcpu=cortex-m7 -mthumb -mfpu=fpv5-d16 -mfloat-abi=hard
BOARD_LDFLAGS := -T$(BOARD_DIR)/link.ld
BOARD_BIN := 1
