# ST NUCLEO-L4R5ZI: STM32L4R5ZI, Cortex-M4F at 120 MHz. Built and linked here,
# not run (no board attached): see board.c for what is unverified.
CC := $(CROSS)gcc
ARCH_FLAGS := -mcpu=cortex-m4 -mthumb -mfpu=fpv4-sp-d16 -mfloat-abi=hard -DTVMQ_TICKS_DWT
BOARD_LDFLAGS := -T$(BOARD_DIR)/link.ld
BOARD_BIN := 1
