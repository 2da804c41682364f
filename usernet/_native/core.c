#include <string.h>
#include "core.h"

/* RFC 1071 ones' complement sum of `data` added to `initial`, folded to 16 bits
 * until no carry is left.  An odd trailing byte is padded with zero. */
uint32_t un_sum16(const uint8_t *data, size_t len, uint32_t initial)
{
    uint64_t acc = initial;
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, data, 8);
        /* Sum in network byte order: swap each 32-bit half into host order. */
        acc += __builtin_bswap32((uint32_t)w);
        acc += __builtin_bswap32((uint32_t)(w >> 32));
        data += 8;
        len -= 8;
    }
    while (len >= 2) {
        acc += ((uint32_t)data[0] << 8) | data[1];
        data += 2;
        len -= 2;
    }
    if (len)
        acc += (uint32_t)data[0] << 8;
    while (acc >> 16)
        acc = (acc & 0xffff) + (acc >> 16);
    return (uint32_t)acc;
}
