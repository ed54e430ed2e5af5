/* QEMU mps2-an500 (Cortex-M7): CMSDK UART0 at 0x40004000, 25 MHz system clock. */
#define TVMQ_BOARD_NAME "mps2-an500"
#define TVMQ_UART_BASE 0x40004000u
#define TVMQ_CLOCK_HZ 25000000u
#include "tvmq_qemu_mps.h"
