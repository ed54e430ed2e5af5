/* Shared by the QEMU MPS2/MPS3 board ports (header-only, see tvmq_cortexm.h):
 * CMSDK APB UART (polled), SysTick ticks at the board's system clock, semihosting exit. The including board.c defines
 * TVMQ_UART_BASE, TVMQ_CLOCK_HZ and TVMQ_BOARD_NAME first. */
#ifndef TVMQ_QEMU_MPS_H
#define TVMQ_QEMU_MPS_H

#include "tvmq_board.h"
#include "tvmq_cortexm.h"

#define UART_DATA TVMQ_REG(TVMQ_UART_BASE + 0x00u)
#define UART_STATE TVMQ_REG(TVMQ_UART_BASE + 0x04u)
#define UART_CTRL TVMQ_REG(TVMQ_UART_BASE + 0x08u)
#define UART_BAUDDIV TVMQ_REG(TVMQ_UART_BASE + 0x10u)
#define STATE_TX_FULL 1u
#define STATE_RX_FULL 2u

const char tvmq_board_name[] = TVMQ_BOARD_NAME;

__attribute__((section(".isr_vector"), used)) static void (*const vectors[16])(void) = {
    TVMQ_SYSTEM_VECTORS};

void Reset_Handler(void) { tvmq_cortexm_start(); }

void tvmq_board_init(void) {
  tvmq_cortexm_faults_init();
  UART_BAUDDIV = 16; /* the smallest divider; QEMU's UART has no baud limit */
  UART_CTRL = 3;     /* TX and RX enabled, no interrupts */
  tvmq_cortexm_ticks_init();
}

void tvmq_board_write(const uint8_t *data, size_t n) {
  for (size_t i = 0; i < n; i++) {
    while (UART_STATE & STATE_TX_FULL) {
    }
    UART_DATA = data[i];
  }
}

int tvmq_board_read_byte(void) {
  while (!(UART_STATE & STATE_RX_FULL)) {
  }
  return (int)(UART_DATA & 0xFFu);
}

uint64_t tvmq_board_ticks(void) { return tvmq_cortexm_ticks(); }

uint32_t tvmq_board_tick_hz(void) { return TVMQ_CLOCK_HZ; }

/* With -icount shift=0,sleep=off, QEMU jumps virtual time straight to the next
 * SysTick wrap while the core sleeps, so execution resumes at exactly the same
 * phase of the tick counter every time: runs then repeat to the tick. */
void tvmq_board_tick_align(void) { __asm volatile("dsb\n\twfi" ::: "memory"); }

void tvmq_board_timestamp(void) {}

void tvmq_board_reset(void) { tvmq_cortexm_reset(); }

void tvmq_board_exit(int status) { tvmq_semihosting_exit(status); }

#endif /* TVMQ_QEMU_MPS_H */
