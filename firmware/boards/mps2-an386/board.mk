# QEMU mps2-an386: Cortex-M4F. Memory limits of the NUCLEO-L4R5ZI (link.ld).
CC := $(CROSS)gcc
ARCH_FLAGS := -mcpu=cortex-m4 -mthumb -mfpu=fpv4-sp-d16 -mfloat-abi=hard
BOARD_LDFLAGS := -T$(BOARD_DIR)/link.ld
BOARD_BIN := 1
