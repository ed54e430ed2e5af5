# ST NUCLEO-H7A3ZI-Q: STM32H7A3ZIT6Q, Cortex-M7 at 280 MHz. Built and linked
# here, not run (no board attached): see board.c for what is unverified.
CC := $(CROSS)gcc
ARCH_FLAGS := -mcpu=cortex-m7 -mthumb -mfpu=fpv5-d16 -mfloat-abi=hard -DTVMQ_TICKS_DWT
BOARD_LDFLAGS := -T$(BOARD_DIR)/link.ld
BOARD_BIN := 1
