# Nordic nRF5340 DK, application core: Cortex-M33 at 128 MHz. Built and linked
# here, not run (no board attached): see board.c for what is unverified.
CC := $(CROSS)gcc
ARCH_FLAGS := -mcpu=cortex-m33 -mthumb -mfpu=fpv5-sp-d16 -mfloat-abi=hard -DTVMQ_TICKS_DWT
BOARD_LDFLAGS := -T$(BOARD_DIR)/link.ld
BOARD_BIN := 1
