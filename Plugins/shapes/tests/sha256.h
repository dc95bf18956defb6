/* sha256.h: SHA-256 of a file, as lower-case hex (for the test-vector freshness check). */
#pragma once
/* Writes 64 hex digits + NUL into hex[65]; returns 0, or -1 if the file cannot be read. */
int sha256_file_hex(const char *path, char hex[65]);
