/* QEMU mps2-an386: CMSDK APB UART0 at 0x40004000 (what `-serial` connects). */
#include "board.h"

#define UART0 ((volatile uint32_t *)0x40004000)
enum { DATA = 0, STATE = 1, CTRL = 2, BAUDDIV = 4 };
enum { TX_FULL = 1, RX_FULL = 2, TX_EN = 1, RX_EN = 2 };

void board_init(void)
{
    UART0[BAUDDIV] = 16;
    UART0[CTRL] = TX_EN | RX_EN;
}

void board_uart_write(const uint8_t *data, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        while (UART0[STATE] & TX_FULL) {
        }
        UART0[DATA] = data[i];
    }
}

int board_uart_read(void)
{
    while (!(UART0[STATE] & RX_FULL)) {
    }
    return (int)(UART0[DATA] & 0xFF);
}
