/* edgehar frame-mode encoder (see edgehar_frame.h and firmware_bridge/PROTOCOL.md). */
#include "edgehar_frame.h"

#include <string.h>

#define EDGEHAR_MAX_PAYLOAD 1024u /* largest un-stuffed payload this encoder builds */

uint16_t edgehar_crc16(const uint8_t *data, size_t len, uint16_t crc) {
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)((uint16_t)data[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000u) ? (uint16_t)((crc << 1) ^ 0x1021u) : (uint16_t)(crc << 1);
    }
    return crc;
}

size_t edgehar_cobs_encode(const uint8_t *in, size_t len, uint8_t *out) {
    size_t code_at = 0, o = 1;
    uint8_t code = 1;
    for (size_t i = 0; i < len; i++) {
        if (in[i] != 0) {
            out[o++] = in[i];
            code++;
        }
        if (in[i] == 0 || code == 0xFF) {
            out[code_at] = code;
            code = 1;
            code_at = o;
            /* a full block that ends the input gets no empty block after it */
            if (in[i] == 0 || i + 1 < len) o++;
        }
    }
    if (code_at < o) out[code_at] = code;
    return o;
}

static void put_u16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static size_t finish(uint8_t *payload, size_t n, uint8_t *out, size_t out_cap) {
    put_u16(payload + n, edgehar_crc16(payload, n, 0xFFFF));
    n += 2;
    if (out_cap < n + n / 254 + 2) return 0;
    size_t m = edgehar_cobs_encode(payload, n, out);
    out[m++] = 0x00;
    return m;
}

size_t edgehar_frame_encode(uint16_t seq, uint32_t t_us, uint32_t period_us, float scale,
                            uint8_t channels, uint8_t samples, const int16_t *data,
                            uint8_t *out, size_t out_cap) {
    uint8_t payload[EDGEHAR_MAX_PAYLOAD];
    size_t count = (size_t)channels * samples;
    if (channels == 0 || samples == 0 || EDGEHAR_HEADER_BYTES + 2 * count + 2 > sizeof payload)
        return 0;
    uint32_t scale_bits;
    memcpy(&scale_bits, &scale, sizeof scale_bits); /* IEEE-754 single, as on every Arduino core */
    payload[0] = EDGEHAR_FRAME_VERSION;
    payload[1] = EDGEHAR_TYPE_SAMPLES;
    put_u16(payload + 2, seq);
    put_u32(payload + 4, t_us);
    put_u32(payload + 8, period_us);
    put_u32(payload + 12, scale_bits);
    payload[16] = channels;
    payload[17] = samples;
    for (size_t i = 0; i < count; i++) put_u16(payload + EDGEHAR_HEADER_BYTES + 2 * i, (uint16_t)data[i]);
    return finish(payload, EDGEHAR_HEADER_BYTES + 2 * count, out, out_cap);
}

size_t edgehar_message_encode(uint16_t seq, const char *text, uint8_t *out, size_t out_cap) {
    uint8_t payload[EDGEHAR_MAX_PAYLOAD];
    size_t len = strlen(text);
    if (len > 1000) len = 1000;
    payload[0] = EDGEHAR_FRAME_VERSION;
    payload[1] = EDGEHAR_TYPE_TEXT;
    put_u16(payload + 2, seq);
    memcpy(payload + 4, text, len);
    return finish(payload, 4 + len, out, out_cap);
}
