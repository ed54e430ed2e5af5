/* The least a Cortex-M needs to run a semihosted test program under QEMU: a vector
 * table at address 0 (initial stack in SRAM, reset) and the FPU/Helium switched on
 * before newlib's _start. */
#include <stdint.h>

extern void _start(void);

static void reset(void) {
  *(volatile uint32_t *)0xE000ED88 |= 0xFu << 20; /* CPACR: CP10, CP11 full access */
  __asm__ volatile("dsb\n\tisb");
  _start();
}

__attribute__((section(".vectors"), used)) const void *const vectors[2] = {
    (void *)0x20020000, (void *)reset};
