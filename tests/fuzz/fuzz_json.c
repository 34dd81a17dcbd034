/*
 * fuzz_json.c — the JSON lexer of runtime/json.c (the safetensors header's
 * lexer) driven over any JSON value, nested up to 64 levels.
 *
 * Checked on what it accepts: a decoded string is valid UTF-8 without NUL
 * bytes and no longer than its source text; an unsigned integer equals the
 * digits it came from; the cursor only moves forward and stays in bounds.
 * Input that is not UTF-8 is refused first, as safetensors.c does.
 */
#include "fuzz.h"
#include "json.h"

#include <errno.h>

#define MAX_DEPTH 64

static int value(ddpm_json_lexer *lx, int depth);

static int literal(ddpm_json_lexer *lx, const char *word)
{
   size_t n = strlen(word);
   if ((size_t)(lx->end - lx->p) < n || memcmp(lx->p, word, n) != 0)
      return ddpm_json_syntax(lx, word);
   lx->p += n;
   return DDPM_OK;
}

static int string(ddpm_json_lexer *lx)
{
   const unsigned char *start = lx->p;
   char *s = NULL;
   int rc = ddpm_json_string(lx, &s);
   if (rc != DDPM_OK) { FUZZ_ASSERT(!s); return rc; }
   FUZZ_ASSERT(s);
   size_t n = strlen(s);
   FUZZ_ASSERT(lx->p > start && lx->p <= lx->end);
   FUZZ_ASSERT(n + 2 <= (size_t)(lx->p - start));          /* quotes included */
   FUZZ_ASSERT(ddpm_utf8_check((const unsigned char *)s, n) == n);
   free(s);
   return DDPM_OK;
}

static int number(ddpm_json_lexer *lx)
{
   uint64_t v = 0;
   int kind = -1;
   const unsigned char *tok = NULL, *start = lx->p;
   int rc = ddpm_json_number(lx, &v, &kind, &tok);
   if (rc != DDPM_OK) return rc;
   FUZZ_ASSERT(tok == start && lx->p > start && lx->p <= lx->end);
   FUZZ_ASSERT(kind == DDPM_JSON_UINT || kind == DDPM_JSON_NEG || kind == DDPM_JSON_FRAC ||
               kind == DDPM_JSON_BIG);
   size_t len = (size_t)(lx->p - tok);
   char buf[64];
   if (kind == DDPM_JSON_UINT && len < sizeof buf) {
      memcpy(buf, tok, len);
      buf[len] = 0;
      if (buf[0] != '-' && strspn(buf, "0123456789") == len) {
         errno = 0;
         unsigned long long want = strtoull(buf, NULL, 10);
         FUZZ_ASSERT(errno == 0 && want == v);
      }
   }
   return DDPM_OK;
}

static int value(ddpm_json_lexer *lx, int depth)
{
   int rc, c = ddpm_json_peek(lx);
   if (depth > MAX_DEPTH) return ddpm_json_syntax(lx, "less nesting");
   switch (c) {
   case '{':
   case '[': {
      int close = c == '{' ? '}' : ']';
      lx->p++;
      if (ddpm_json_peek(lx) == close) { lx->p++; return DDPM_OK; }
      for (;;) {
         if (close == '}') {
            if ((rc = string(lx)) != DDPM_OK) return rc;
            if ((rc = ddpm_json_expect(lx, ':', "':'")) != DDPM_OK) return rc;
         }
         if ((rc = value(lx, depth + 1)) != DDPM_OK) return rc;
         if (ddpm_json_peek(lx) == close) { lx->p++; return DDPM_OK; }
         if ((rc = ddpm_json_expect(lx, ',', "',' or a closing bracket")) != DDPM_OK) return rc;
      }
   }
   case '"': return string(lx);
   case 't': return literal(lx, "true");
   case 'f': return literal(lx, "false");
   case 'n': return literal(lx, "null");
   default:
      if (c == '-' || (c >= '0' && c <= '9')) return number(lx);
      return ddpm_json_syntax(lx, "a value");
   }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
   ddpm_clearerr();
   size_t bad = ddpm_utf8_check(data, size);
   FUZZ_ASSERT(bad <= size);
   if (bad != size) return 0;
   ddpm_json_lexer lx = {data, data, data + size, "fuzz.json"};
   int rc = value(&lx, 0);
   FUZZ_ASSERT(lx.p >= data && lx.p <= data + size);
   if (rc != DDPM_OK) {
      FUZZ_ASSERT(rc == DDPM_EFORMAT || rc == DDPM_ENOMEM);
      FUZZ_REFUSED();
      return 0;
   }
   ddpm_json_peek(&lx);   /* trailing whitespace is fine; anything else is left */
   FUZZ_ASSERT(lx.p <= data + size);
   return 0;
}
