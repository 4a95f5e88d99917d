/* edgehar frame-mode encoder: portable C99, no allocation, no dependencies.
 *
 * A frame is COBS(payload + CRC-16) followed by one 0x00 delimiter. Payload, little-endian:
 *   u8 version (1) | u8 type (1 samples, 2 text) | u16 seq | u32 t_us | u32 period_us |
 *   f32 scale | u8 channels | u8 samples | i16 data[samples][channels]
 * CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) over the payload, appended little-endian.
 * Full description and test vectors: firmware_bridge/PROTOCOL.md.
 */
#ifndef EDGEHAR_FRAME_H
#define EDGEHAR_FRAME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EDGEHAR_FRAME_VERSION 1
#define EDGEHAR_TYPE_SAMPLES 1
#define EDGEHAR_TYPE_TEXT 2
#define EDGEHAR_HEADER_BYTES 18

/* Bytes needed for a samples frame on the wire (worst-case COBS overhead + delimiter). */
#define EDGEHAR_FRAME_MAX_BYTES(samples, channels) \
    (EDGEHAR_HEADER_BYTES + 2u * (samples) * (channels) + 2u + \
     (EDGEHAR_HEADER_BYTES + 2u * (samples) * (channels) + 2u) / 254u + 2u)

/* CRC-16/CCITT-FALSE; pass 0xFFFF as `crc` to start. crc16("123456789") == 0x29B1. */
uint16_t edgehar_crc16(const uint8_t *data, size_t len, uint16_t crc);

/* COBS-encode `len` bytes into `out` (no delimiter added); returns the encoded length.
 * `out` needs len + len/254 + 1 bytes. */
size_t edgehar_cobs_encode(const uint8_t *in, size_t len, uint8_t *out);

/* Encode one samples frame (`data` is samples x channels int16, sample-major) into `out`,
 * delimiter included. Returns the bytes written, or 0 if `out_cap` is too small or a size
 * is out of range (1..255 channels and samples). */
size_t edgehar_frame_encode(uint16_t seq, uint32_t t_us, uint32_t period_us, float scale,
                            uint8_t channels, uint8_t samples, const int16_t *data,
                            uint8_t *out, size_t out_cap);

/* Encode a text message frame (e.g. "ERR sensor timeout"); same return convention. */
size_t edgehar_message_encode(uint16_t seq, const char *text, uint8_t *out, size_t out_cap);

#ifdef __cplusplus
}
#endif

#endif
