/*
 * json.c — the strict JSON lexer declared in json.h: UTF-8 validation,
 * strings with every escape, and numbers classified without conversion.
 *
 * Not a JSON library: no tree, no doubles, no writer; the safetensors reader
 * drives it with the schema it expects.
 */
#include "json.h"
#include "ddpm.h"

#include <stdio.h>
#include <stdlib.h>

size_t ddpm_utf8_check(const unsigned char *s, size_t n)
{
   size_t i = 0;
   while (i < n) {
      unsigned c = s[i];
      size_t len;
      uint32_t cp, min;
      if (c < 0x80) { i++; continue; }
      if (c >= 0xC2 && c <= 0xDF)      { len = 2; cp = c & 0x1F; min = 0x80; }
      else if ((c & 0xF0) == 0xE0)     { len = 3; cp = c & 0x0F; min = 0x800; }
      else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; min = 0x10000; }
      else return i;
      if (n - i < len) return i;
      for (size_t k = 1; k < len; k++) {
         if ((s[i + k] & 0xC0) != 0x80) return i;
         cp = cp << 6 | (s[i + k] & 0x3F);
      }
      if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
      i += len;
   }
   return n;
}

static void skip_ws(ddpm_json_lexer *lx)
{
   while (lx->p < lx->end &&
          (*lx->p == ' ' || *lx->p == '\t' || *lx->p == '\n' || *lx->p == '\r'))
      lx->p++;
}

int ddpm_json_peek(ddpm_json_lexer *lx)
{
   skip_ws(lx);
   return lx->p < lx->end ? *lx->p : -1;
}

int ddpm_json_syntax(ddpm_json_lexer *lx, const char *expected)
{
   char found[32];
   if (lx->p >= lx->end) snprintf(found, sizeof found, "the end of the header");
   else if (*lx->p >= 0x20 && *lx->p < 0x7F) snprintf(found, sizeof found, "'%c'", *lx->p);
   else snprintf(found, sizeof found, "byte 0x%02X", *lx->p);
   return ddpm_seterr(DDPM_EFORMAT, "%s: invalid JSON header at byte %zu: expected %s, found %s",
                      lx->what, (size_t)(lx->p - lx->s), expected, found);
}

int ddpm_json_expect(ddpm_json_lexer *lx, int c, const char *expected)
{
   if (ddpm_json_peek(lx) != c) return ddpm_json_syntax(lx, expected);
   lx->p++;
   return DDPM_OK;
}

static int hex4(const unsigned char *q, uint32_t *out)
{
   uint32_t v = 0;
   for (int k = 0; k < 4; k++) {
      int c = q[k], d;
      if (c >= '0' && c <= '9') d = c - '0';
      else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
      else return 0;
      v = v << 4 | (uint32_t)d;
   }
   *out = v;
   return 1;
}

static size_t put_utf8(unsigned char *o, uint32_t cp)
{
   if (cp < 0x80) { o[0] = (unsigned char)cp; return 1; }
   if (cp < 0x800) {
      o[0] = (unsigned char)(0xC0 | cp >> 6);
      o[1] = (unsigned char)(0x80 | (cp & 0x3F));
      return 2;
   }
   if (cp < 0x10000) {
      o[0] = (unsigned char)(0xE0 | cp >> 12);
      o[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
      o[2] = (unsigned char)(0x80 | (cp & 0x3F));
      return 3;
   }
   o[0] = (unsigned char)(0xF0 | cp >> 18);
   o[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
   o[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
   o[3] = (unsigned char)(0x80 | (cp & 0x3F));
   return 4;
}

/* Names end up as C strings, so \u0000 is rejected rather than silently
   cutting a name short. */
int ddpm_json_string(ddpm_json_lexer *lx, char **out)
{
   *out = NULL;
   if (ddpm_json_peek(lx) != '"') return ddpm_json_syntax(lx, "a string");
   const unsigned char *start = ++lx->p, *q = start;
   while (q < lx->end && *q != '"') q += (*q == '\\' && q + 1 < lx->end) ? 2 : 1;
   if (q >= lx->end) {
      lx->p = lx->end;
      return ddpm_json_syntax(lx, "the closing '\"' of a string");
   }
   /* escapes never make a string longer: the raw length is enough */
   unsigned char *buf = malloc((size_t)(q - start) + 1), *o = buf;
   if (!buf) return ddpm_seterr(DDPM_ENOMEM, "%s: out of memory parsing the header", lx->what);
   while (lx->p < q) {
      unsigned c = *lx->p;
      if (c < 0x20) {
         free(buf);
         return ddpm_json_syntax(lx, "no raw control character in a string");
      }
      if (c != '\\') { *o++ = (unsigned char)c; lx->p++; continue; }
      c = lx->p[1];
      lx->p += 2;
      switch (c) {
      case '"': *o++ = '"'; break;
      case '\\': *o++ = '\\'; break;
      case '/': *o++ = '/'; break;
      case 'b': *o++ = '\b'; break;
      case 'f': *o++ = '\f'; break;
      case 'n': *o++ = '\n'; break;
      case 'r': *o++ = '\r'; break;
      case 't': *o++ = '\t'; break;
      case 'u': {
         uint32_t cp, lo;
         if (q - lx->p < 4 || !hex4(lx->p, &cp)) {
            free(buf);
            return ddpm_json_syntax(lx, "four hex digits after \\u");
         }
         lx->p += 4;
         if (cp >= 0xDC00 && cp <= 0xDFFF) {
            free(buf);
            return ddpm_json_syntax(lx, "no lone low surrogate in a \\u escape");
         }
         if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (q - lx->p < 6 || lx->p[0] != '\\' || lx->p[1] != 'u' || !hex4(lx->p + 2, &lo) ||
                lo < 0xDC00 || lo > 0xDFFF) {
               free(buf);
               return ddpm_json_syntax(lx, "a low surrogate \\uDC00-\\uDFFF after \\uD800-\\uDBFF");
            }
            lx->p += 6;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
         }
         if (cp == 0) { free(buf); return ddpm_json_syntax(lx, "no \\u0000 (NUL) in a string"); }
         o += put_utf8(o, cp);
         break;
      }
      default:
         lx->p--;
         free(buf);
         return ddpm_json_syntax(lx, "a valid escape (\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u)");
      }
   }
   lx->p = q + 1;
   *o = '\0';
   *out = (char *)buf;
   return DDPM_OK;
}

static int isdigit_at(const ddpm_json_lexer *lx)
{
   return lx->p < lx->end && *lx->p >= '0' && *lx->p <= '9';
}

int ddpm_json_number(ddpm_json_lexer *lx, uint64_t *out, int *kind, const unsigned char **tok)
{
   int neg = 0, big = 0, frac = 0;
   uint64_t v = 0;
   ddpm_json_peek(lx);
   *tok = lx->p;
   if (lx->p < lx->end && *lx->p == '-') { neg = 1; lx->p++; }
   if (!isdigit_at(lx)) {
      lx->p = *tok;
      return ddpm_json_syntax(lx, "a number");
   }
   if (*lx->p == '0') {
      lx->p++;
      if (isdigit_at(lx)) return ddpm_json_syntax(lx, "no leading zero in a number");
   }
   for (; isdigit_at(lx); lx->p++) {
      uint64_t d = (uint64_t)(*lx->p - '0');
      if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, d, &v)) big = 1;
   }
   if (lx->p < lx->end && *lx->p == '.') {
      frac = 1;
      lx->p++;
      if (!isdigit_at(lx)) return ddpm_json_syntax(lx, "a digit after '.'");
      while (isdigit_at(lx)) lx->p++;
   }
   if (lx->p < lx->end && (*lx->p == 'e' || *lx->p == 'E')) {
      frac = 1;
      lx->p++;
      if (lx->p < lx->end && (*lx->p == '+' || *lx->p == '-')) lx->p++;
      if (!isdigit_at(lx)) return ddpm_json_syntax(lx, "a digit in the exponent");
      while (isdigit_at(lx)) lx->p++;
   }
   if (frac) *kind = DDPM_JSON_FRAC;
   else if (neg && (v || big)) *kind = DDPM_JSON_NEG;
   else *kind = big ? DDPM_JSON_BIG : DDPM_JSON_UINT;
   *out = v;
   return DDPM_OK;
}
