/* nRF52840: the legacy UART0 peripheral at 0x40002000, 115200 baud, polled.
 * Pins follow the Arduino Nano 33 BLE's D1/TX = P1.03, D0/RX = P1.10. */
#include "board.h"

#define REG(off) (*(volatile uint32_t *)(0x40002000u + (off)))
#define TASKS_STARTRX 0x000
#define TASKS_STARTTX 0x008
#define EVENTS_RXDRDY 0x108
#define EVENTS_TXDRDY 0x11C
#define ENABLE 0x500
#define PSEL_TXD 0x50C
#define PSEL_RXD 0x514
#define RXD 0x518
#define TXD 0x51C
#define BAUDRATE 0x524
#define PIN(port, n) (((port) << 5) | (n))

void board_init(void)
{
    REG(PSEL_TXD) = PIN(1, 3);
    REG(PSEL_RXD) = PIN(1, 10);
    REG(BAUDRATE) = 0x01D7E000; /* 115200 */
    REG(ENABLE) = 4;
    REG(TASKS_STARTTX) = 1;
    REG(TASKS_STARTRX) = 1;
}

void board_uart_write(const uint8_t *data, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        REG(EVENTS_TXDRDY) = 0;
        REG(TXD) = data[i];
        while (!REG(EVENTS_TXDRDY)) {
        }
    }
}

int board_uart_read(void)
{
    while (!REG(EVENTS_RXDRDY)) {
    }
    REG(EVENTS_RXDRDY) = 0;
    return (int)(REG(RXD) & 0xFF);
}
