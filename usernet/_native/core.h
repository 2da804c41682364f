/* The C core of usernet: functions with a pure-Python twin in pure.py. */
#include <stdint.h>
#include <stddef.h>

uint32_t un_sum16(const uint8_t *data, size_t len, uint32_t initial);
