/*
 * json.h — a strict JSON lexer (RFC 8259) for the file headers the runtime
 * parses (safetensors). Private to runtime/: not part of the public API.
 *
 * It is a lexer, not a tree builder: the caller drives it with the schema it
 * expects and so rejects anything else with a message that says what was
 * wanted. It refuses comments, trailing commas, leading zeros, raw control
 * characters in strings, unpaired surrogates and \u0000 (names end up as C
 * strings). Input is assumed to be valid UTF-8: check it first with
 * ddpm_utf8_check. It never converts non-integer numbers (nothing needs
 * them); it only classifies them.
 */
#ifndef DDPM_JSON_H
#define DDPM_JSON_H

#include <stddef.h>
#include <stdint.h>

typedef struct ddpm_json_lexer {
   const unsigned char *s, *p, *end;   /* text, cursor, end */
   const char *what;                   /* file name for messages */
} ddpm_json_lexer;

/* Index of the first byte of s that is not valid UTF-8 (overlongs,
   surrogates and code points past U+10FFFF included), or n if none. */
size_t ddpm_utf8_check(const unsigned char *s, size_t n);

/* Skips whitespace; the next byte, or -1 at the end. */
int ddpm_json_peek(ddpm_json_lexer *lx);
/* Sets "<what>: invalid JSON header at byte K: expected <expected>, found X"
   and returns DDPM_EFORMAT. */
int ddpm_json_syntax(ddpm_json_lexer *lx, const char *expected);
/* Consumes the character c (after whitespace) or fails with ddpm_json_syntax. */
int ddpm_json_expect(ddpm_json_lexer *lx, int c, const char *expected);
/* A string into a new malloc'd, NUL-terminated *out (the caller frees it). */
int ddpm_json_string(ddpm_json_lexer *lx, char **out);

/* What a number was. */
enum { DDPM_JSON_UINT, DDPM_JSON_NEG, DDPM_JSON_FRAC, DDPM_JSON_BIG };
/* A number; *kind says whether *out holds it as an unsigned integer
   (DDPM_JSON_UINT; "-0" counts) or why not. The token's text is left in
   [*tok, lx->p) for messages. */
int ddpm_json_number(ddpm_json_lexer *lx, uint64_t *out, int *kind, const unsigned char **tok);

#endif
