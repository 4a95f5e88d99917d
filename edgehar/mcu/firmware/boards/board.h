/* The little a firmware needs from a board: a polled UART. */
#ifndef EDGEHAR_BOARD_H
#define EDGEHAR_BOARD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

void board_init(void);
void board_uart_write(const uint8_t *data, size_t len);
int board_uart_read(void); /* next received byte, blocking */

#ifdef __cplusplus
}
#endif

#endif
