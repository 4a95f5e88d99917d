/* Minimal Cortex-M start-up: vector table, copy .data, zero .bss, FPU on, C++ constructors,
 * main(), exit(). Faults end the program through exit() so an emulator run never hangs. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

extern uint32_t __data_start__, __data_end__, __data_load__, __bss_start__, __bss_end__;
extern uint32_t __stack_top__;
extern void (*__init_array_start[])(void);
extern void (*__init_array_end[])(void);
int main(void);
void board_irq(void) __attribute__((weak));

void Reset_Handler(void)
{
    memcpy(&__data_start__, &__data_load__,
           (size_t)((char *)&__data_end__ - (char *)&__data_start__));
    memset(&__bss_start__, 0, (size_t)((char *)&__bss_end__ - (char *)&__bss_start__));
#if defined(__ARM_FP)
    /* CPACR: full access to CP10/CP11 (the FPU; on M55 also MVE). */
    *(volatile uint32_t *)0xE000ED88 |= 0xFu << 20;
    __asm__ volatile("dsb\n isb");
#endif
    for (void (**f)(void) = __init_array_start; f < __init_array_end; f++) {
        (*f)();
    }
    exit(main());
}

static void Fault_Handler(void)
{
    exit(99);
}

static void Default_Handler(void)
{
    if (board_irq) {
        board_irq();
    }
}

__attribute__((section(".vectors"), used)) static void (*const vectors[48])(void) = {
    (void (*)(void))(&__stack_top__), Reset_Handler,
    Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler,  /* NMI..Usage */
    Fault_Handler, 0, 0, 0,                                                      /* SecureFault */
    Default_Handler, Default_Handler, 0, Default_Handler, Default_Handler,       /* SVC..SysTick */
    [16 ... 47] = Default_Handler,
};
