/* QEMU mps3-an547 (Cortex-M55, Corstone-300): CMSDK UART0 at 0x49303000,
 * 32 MHz system clock. The core starts in the Secure state; the harness needs
 * nothing from TrustZone and stays there. */
#define TVMQ_BOARD_NAME "mps3-an547"
#define TVMQ_UART_BASE 0x49303000u
#define TVMQ_CLOCK_HZ 32000000u
#include "tvmq_qemu_mps.h"
