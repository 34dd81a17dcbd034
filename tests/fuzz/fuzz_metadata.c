/*
 * fuzz_metadata.c — the readers that interpret a safetensors file's tensor
 * names and __metadata__ strings, over arbitrary bytes written to a file:
 * ddpm_st_open (the pread path), the Gaussian statistics of FD-LeNet
 * (ddpm_gauss_load: "mean", "cov", the count in "ddpmlua.gauss_n"), the
 * LeNet loader and the U-Net loader (diffusers names, the older attention
 * names, a prefix such as "ema.", strict and not).
 *
 * Loaders must either take the file whole or refuse it and leave the model
 * as it was; statistics loaded must be finite with a count >= 0.
 */
#include "fuzz.h"
#include "ddpm.h"
#include "ddpm/frechet.h"
#include "ddpm/lenet.h"

#include <math.h>

static ddpm_unet *unet;
static ddpm_lenet *lenet;
static float *unet_before, *lenet_before;

static void setup(void)
{
   ddpm_unet_config c = ddpm_unet_config_cifar10();
   c.ch = 4; c.groups = 2;
   c.num_levels = 2; c.ch_mult[0] = 1; c.ch_mult[1] = 2;
   c.num_res_blocks = 1;
   c.attn_res[0] = 2; c.num_attn_res = 1;
   c.resolution = 4;
   c.in_ch = 1; c.out_ch = 1;
   unet = ddpm_unet_new(&c, 1);
   lenet = ddpm_lenet_new(1);
   FUZZ_ASSERT(unet && lenet);
   unet_before = malloc(ddpm_unet_num_params(unet) * sizeof(float));
   lenet_before = malloc(ddpm_lenet_num_params(lenet) * sizeof(float));
   FUZZ_ASSERT(unet_before && lenet_before);
}

/* Whether a failed load left the parameters as they were; resets them. */
static int unchanged(float *now, float *before, size_t n)
{
   int same = memcmp(now, before, n * sizeof(float)) == 0;
   memcpy(now, before, n * sizeof(float));
   return same;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
   ddpm_clearerr();
   if (!unet) setup();
   const char *path = fuzz_write(0, "weights.safetensors", data, size);
   ddpm_st_file *f = ddpm_st_open(path);
   if (!f) { FUZZ_REFUSED(); return 0; }

   ddpm_gauss *g = ddpm_gauss_load(path);
   if (g) {
      FUZZ_ASSERT(g->D >= 1 && g->n >= 0);
      FUZZ_ASSERT((uint64_t)g->D * (uint64_t)g->D * 8 <= size);
      for (int i = 0; i < g->D; i++) FUZZ_ASSERT(isfinite(g->mean[i]));
      ddpm_gauss_free(g);
   } else {
      FUZZ_REFUSED();
   }

   size_t nl = ddpm_lenet_num_params(lenet);
   memcpy(lenet_before, ddpm_lenet_params(lenet), nl * sizeof(float));
   if (ddpm_lenet_load_st(lenet, f) != DDPM_OK) {
      FUZZ_REFUSED();
      FUZZ_ASSERT(unchanged(ddpm_lenet_params(lenet), lenet_before, nl));
   } else {
      unchanged(ddpm_lenet_params(lenet), lenet_before, nl);
   }

   size_t nu = ddpm_unet_num_params(unet);
   static const char *prefixes[] = {NULL, "ema."};
   for (int k = 0; k < 4; k++) {
      memcpy(unet_before, ddpm_unet_params(unet), nu * sizeof(float));
      if (ddpm_unet_load_st(unet, f, prefixes[k / 2],
                             k % 2 ? DDPM_LOAD_STRICT : DDPM_LOAD_LENIENT) != DDPM_OK) {
         FUZZ_REFUSED();
         FUZZ_ASSERT(unchanged(ddpm_unet_params(unet), unet_before, nu));
      } else {
         unchanged(ddpm_unet_params(unet), unet_before, nu);
      }
   }
   for (int i = 0; i < ddpm_st_metadata_count(f); i++)
      FUZZ_ASSERT(ddpm_st_metadata(f, ddpm_st_metadata_key(f, i)));
   ddpm_st_close(f);
   return 0;
}
