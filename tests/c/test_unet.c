/*
 * test_unet.c — the whole U-Net: parameter counts of the paper's CIFAR-10
 * model (docs/math.md §6.6), initialisation, finite-difference gradients of every
 * parameter tensor and of the input on a tiny config (dropout on and off),
 * save/load round trips under both attention naming schemes, and errors.
 */
#include "check.h"
#include "ddpm.h"

#include <stdint.h>
#include <unistd.h>

static size_t prefix_params(ddpm_unet *m, const char *prefix)
{
   size_t n = 0, pl = strlen(prefix);
   for (int i = 0; i < ddpm_unet_num_tensors(m); i++) {
      const ddpm_param *p = ddpm_unet_param(m, i);
      if (strncmp(p->name, prefix, pl) == 0) n += p->numel;
   }
   return n;
}

static void test_counts(void)
{
   ddpm_unet_config c = ddpm_unet_config_cifar10();
   ddpm_unet *m = ddpm_unet_new(&c, 1);
   CHECK(m != NULL, "CIFAR-10 model builds");
   if (!m) return;
   CHECK(ddpm_unet_num_params(m) == 35746307, "CIFAR-10: 35,746,307 parameters (got %zu)",
         ddpm_unet_num_params(m));
   CHECK(ddpm_unet_num_tensors(m) == 328, "CIFAR-10: 328 tensors (got %d)", ddpm_unet_num_tensors(m));
   CHECK(prefix_params(m, "time_embedding.") == 328704, "time embedding 328,704");
   CHECK(prefix_params(m, "down_blocks.1.resnets.0.") == 1050368, "down_blocks.1.resnets.0 1,050,368");
   CHECK(prefix_params(m, "down_blocks.1.attentions.0.") == 263680, "attention 263,680");
   CHECK(prefix_params(m, "up_blocks.2.resnets.2.") == 1706240, "up_blocks.2.resnets.2 1,706,240");
   CHECK(prefix_params(m, "up_blocks.3.resnets.0.") == 706048, "up_blocks.3.resnets.0 706,048");
   CHECK(prefix_params(m, "mid_block.") == 2888704, "middle 2,888,704");
   CHECK(prefix_params(m, "conv_out.") == 3459, "conv_out 3,459");
   int shortcuts = 0;
   for (int i = 0; i < ddpm_unet_num_tensors(m); i++)
      if (strstr(ddpm_unet_param(m, i)->name, "conv_shortcut.weight")) shortcuts++;
   CHECK(shortcuts == 13, "13 shortcut convolutions (got %d)", shortcuts);
   CHECK(ddpm_unet_find_param(m, "up_blocks.2.attentions.2.to_out.0.weight") >= 0,
         "diffusers name up_blocks.2.attentions.2.to_out.0.weight exists");
   /* official init: conv2 / proj_out / conv_out near zero, others Glorot-sized */
   const float *P = ddpm_unet_params(m);
   const ddpm_param *a = ddpm_unet_param(m, ddpm_unet_find_param(m, "conv_out.weight"));
   const ddpm_param *b = ddpm_unet_param(m, ddpm_unet_find_param(m, "conv_in.weight"));
   const ddpm_param *g = ddpm_unet_param(m, ddpm_unet_find_param(m, "conv_norm_out.weight"));
   double amax = 0, bmax = 0;
   for (size_t i = 0; i < a->numel; i++) amax = fmax(amax, fabs(P[a->offset + i]));
   for (size_t i = 0; i < b->numel; i++) bmax = fmax(bmax, fabs(P[b->offset + i]));
   double blim = sqrt(6.0 / (9 * 3 + 9 * 128));
   CHECK(amax < 1e-5 && amax > 0, "conv_out init scale 1e-10 (max %.3g)", amax);
   CHECK(bmax <= blim && bmax > 0.9 * blim, "conv_in init Glorot-uniform (max %.4f, limit %.4f)", bmax, blim);
   CHECK(P[g->offset] == 1.0f, "GroupNorm gains start at 1");
   ddpm_unet_free(m);
   c.out_ch = 6;
   m = ddpm_unet_new(&c, 1);
   CHECK(m && ddpm_unet_num_params(m) == 35749766, "learned-variance model (out_ch 6): 35,749,766");
   ddpm_unet_free(m);
}

static ddpm_unet_config tiny_config(float dropout)
{
   ddpm_unet_config c = ddpm_unet_config_cifar10();
   c.ch = 8; c.groups = 4;
   c.num_levels = 2; c.ch_mult[0] = 1; c.ch_mult[1] = 2;
   c.num_res_blocks = 1;
   c.attn_res[0] = 4; c.num_attn_res = 1;
   c.resolution = 8;
   c.in_ch = 2; c.out_ch = 3;
   c.dropout = dropout;
   return c;
}

/* L = sum(out * r) in double. */
static double loss_of(ddpm_unet *m, float *out, const float *x, const float *t, const float *r,
                      int N, int H, size_t no)
{
   ddpm_unet_forward(m, out, x, t, N, H, H);
   double L = 0;
   for (size_t i = 0; i < no; i++) L += (double)out[i] * r[i];
   return L;
}

static void test_gradients(float dropout)
{
   ddpm_unet_config c = tiny_config(dropout);
   ddpm_unet *m = ddpm_unet_new(&c, 7);
   CHECK(m != NULL, "tiny model builds");
   if (!m) return;
   /* Random non-zero weights everywhere, so no path is switched off. */
   float *P = ddpm_unet_params(m);
   size_t np = ddpm_unet_num_params(m);
   check_fill(P, np, 3);
   for (int i = 0; i < ddpm_unet_num_tensors(m); i++) {
      const ddpm_param *p = ddpm_unet_param(m, i);
      double s = p->ndim == 4 ? 1.0 / sqrt((double)(p->shape[1] * p->shape[2] * p->shape[3]))
               : p->ndim == 2 ? 1.0 / sqrt((double)p->shape[1]) : 0.3;
      for (size_t j = 0; j < p->numel; j++) P[p->offset + j] *= (float)s;
      if (p->ndim == 1 && strstr(p->name, "norm") && strstr(p->name, ".weight"))
         for (size_t j = 0; j < p->numel; j++) P[p->offset + j] += 1.0f;
   }
   int N = 2, H = 8;
   size_t nx = (size_t)N * c.in_ch * H * H, no = (size_t)N * c.out_ch * H * H;
   float *x = malloc(nx * 4), *out = malloc(no * 4), *r = malloc(no * 4), *dx = malloc(nx * 4);
   float t[2] = {3, 517};
   check_fill(x, nx, 11);
   check_fill(r, no, 12);
   ddpm_unet_set_training(m, dropout > 0);
   ddpm_unet_set_dropout_seed(m, 99, 0);
   ddpm_unet_zero_grad(m);
   loss_of(m, out, x, t, r, N, H, no);
   CHECK(ddpm_unet_backward(m, dx, r) == DDPM_OK, "backward runs");
   const float *G = ddpm_unet_grads(m);
   /* Central differences, a few coordinates per tensor, in float32 forward: the
      error budget is ~1e-2 relative to the tensor's largest gradient. */
   double worst = 0, gall = 0;
   const char *worst_name = "";
   int ntested = 0;
   for (size_t j = 0; j < np; j++) gall = fmax(gall, fabs(G[j]));
   /* The key bias gets no gradient at all: softmax ignores a constant added to
      every logit of a row, and q.(k_j + b) adds q.b to all of them. */
   double kbmax = 0;
   for (int i = 0; i < ddpm_unet_num_tensors(m); i++) {
      const ddpm_param *p = ddpm_unet_param(m, i);
      if (!strstr(p->name, "to_k.bias")) continue;
      for (size_t j = 0; j < p->numel; j++) kbmax = fmax(kbmax, fabs(G[p->offset + j]));
   }
   CHECK(kbmax < 1e-5 * gall, "every key-bias gradient vanishes (%.3g vs max %.3g)", kbmax, gall);
   for (int i = 0; i < ddpm_unet_num_tensors(m); i++) {
      const ddpm_param *p = ddpm_unet_param(m, i);
      double gmax = 1e-3 * gall;
      for (size_t j = 0; j < p->numel; j++) gmax = fmax(gmax, fabs(G[p->offset + j]));
      for (int k = 0; k < 3; k++) {
         size_t j = p->offset + (size_t)((k * 7919u + i * 104729u) % p->numel);
         float keep = P[j];
         /* 3e-2 rather than 1e-2: the float32 forward's rounding, over 2h,
            was most of the error at 1e-2 (the worst coordinate went from
            0.02 to 0.006 of its tensor's scale going to 3e-2, so truncation
            is not what remains) */
         double h = 3e-2 * fmax(1.0, fabs(keep));
         P[j] = (float)(keep + h);
         double lp = loss_of(m, out, x, t, r, N, H, no);
         P[j] = (float)(keep - h);
         double lm = loss_of(m, out, x, t, r, N, H, no);
         P[j] = keep;
         double fd = (lp - lm) / (2 * h);
         double e = fabs(fd - G[j]) / gmax;
         /* the key bias's true gradient is 0 (checked above): its central
            difference is the forward's rounding noise over 2h, nothing else */
         if (strstr(p->name, "to_k.bias")) continue;
         if (e > worst) { worst = e; worst_name = p->name; }
         ntested++;
      }
   }
   printf("# %d coordinates checked; worst %.3g in %s\n", ntested, worst, worst_name);
   CHECK(worst < 2e-2, "finite differences match every parameter tensor's gradient (dropout %.1f)",
         dropout);
   /* input gradient */
   double dxmax = 1e-12, werr = 0;
   for (size_t j = 0; j < nx; j++) dxmax = fmax(dxmax, fabs(dx[j]));
   for (size_t j = 0; j < nx; j += 37) {
      float keep = x[j];
      x[j] = keep + 1e-2f;
      double lp = loss_of(m, out, x, t, r, N, H, no);
      x[j] = keep - 1e-2f;
      double lm = loss_of(m, out, x, t, r, N, H, no);
      x[j] = keep;
      werr = fmax(werr, fabs((lp - lm) / 2e-2 - dx[j]) / dxmax);
   }
   CHECK(werr < 2e-2, "finite differences match the input gradient (worst %.3g)", werr);
   /* accumulate semantics */
   float g0 = G[0];
   loss_of(m, out, x, t, r, N, H, no);
   ddpm_unet_backward(m, NULL, r);
   CHECK(fabsf(G[0] - 2 * g0) <= 1e-5f * fabsf(g0) + 1e-12f, "backward accumulates into grads");
   free(x); free(out); free(r); free(dx);
   ddpm_unet_free(m);
}

static void test_save_load(void)
{
   ddpm_unet_config c = tiny_config(0);
   ddpm_unet *a = ddpm_unet_new(&c, 1), *b = ddpm_unet_new(&c, 2);
   char path[] = "/tmp/ddpm_test_unet_XXXXXX";
   int fd = mkstemp(path);
   close(fd);
   CHECK(ddpm_unet_save(a, path) == DDPM_OK, "save: %s", ddpm_errmsg());
   ddpm_st_file *f = ddpm_st_open(path);
   CHECK(f != NULL, "saved file parses");
   CHECK(f && ddpm_st_metadata(f, "ddpmlua.unet_config") != NULL, "config stored in metadata");
   CHECK(f && ddpm_unet_load_st(b, f, NULL, DDPM_LOAD_STRICT) == DDPM_OK, "load into a fresh model");
   CHECK(memcmp(ddpm_unet_params(a), ddpm_unet_params(b), ddpm_unet_num_params(a) * 4) == 0,
         "loaded parameters equal the saved ones bit for bit");
   ddpm_st_close(f);

   /* the older diffusers attention names, and attention weights stored 4-D */
   int n = ddpm_unet_num_tensors(a);
   const char **names = calloc(n, sizeof *names);
   int *nd = calloc(n, sizeof *nd);
   const int64_t **sh = calloc(n, sizeof *sh);
   const float **data = calloc(n, sizeof *data);
   char (*buf)[256] = calloc(n, 256);
   int64_t (*sh4)[4] = calloc(n, sizeof *sh4);
   for (int i = 0; i < n; i++) {
      const ddpm_param *p = ddpm_unet_param(a, i);
      const char *map[4][2] = {{".to_q.", ".query."}, {".to_k.", ".key."}, {".to_v.", ".value."},
                               {".to_out.0.", ".proj_attn."}};
      snprintf(buf[i], 256, "%s", p->name);
      for (int k = 0; k < 4; k++) {
         char *hit = strstr(buf[i], map[k][0]);
         if (hit) {
            char tail[256];
            snprintf(tail, sizeof tail, "%s", hit + strlen(map[k][0]));
            snprintf(hit, 256 - (hit - buf[i]), "%s%s", map[k][1], tail);
         }
      }
      names[i] = buf[i];
      nd[i] = p->ndim;
      sh[i] = p->shape;
      if (p->ndim == 2 && strstr(p->name, "attentions")) {
         sh4[i][0] = p->shape[0]; sh4[i][1] = p->shape[1]; sh4[i][2] = 1; sh4[i][3] = 1;
         nd[i] = 4;
         sh[i] = sh4[i];
      }
      data[i] = ddpm_unet_params(a) + p->offset;
   }
   CHECK(ddpm_st_write(path, n, names, nd, sh, data, 0, NULL, NULL) == DDPM_OK, "write old names");
   ddpm_unet *d = ddpm_unet_new(&c, 3);
   f = ddpm_st_open(path);
   CHECK(f && ddpm_unet_load_st(d, f, NULL, DDPM_LOAD_STRICT) == DDPM_OK, "load query/key/value/proj_attn names: %s",
         ddpm_errmsg());
   CHECK(memcmp(ddpm_unet_params(a), ddpm_unet_params(d), ddpm_unet_num_params(a) * 4) == 0,
         "old-name weights equal");
   ddpm_st_close(f);

   /* a missing tensor and a mis-shaped tensor are errors that change nothing */
   float before = ddpm_unet_params(d)[0];
   CHECK(ddpm_st_write(path, n - 1, names + 1, nd + 1, sh + 1, data + 1, 0, NULL, NULL) == DDPM_OK,
         "write a file missing one tensor");
   f = ddpm_st_open(path);
   int rc = ddpm_unet_load_st(d, f, NULL, DDPM_LOAD_STRICT);
   CHECK(rc != DDPM_OK && strstr(ddpm_errmsg(), "missing") && strstr(ddpm_errmsg(), names[0]),
         "missing tensor named in the error: %s", ddpm_errmsg());
   ddpm_st_close(f);
   int64_t wrong[4] = {1, 2, 3, 4};
   sh[0] = wrong; nd[0] = 4;
   ddpm_st_write(path, 0, NULL, NULL, NULL, NULL, 0, NULL, NULL);
   float *junk = calloc(24, 4);
   data[0] = junk;
   CHECK(ddpm_st_write(path, n, names, nd, sh, data, 0, NULL, NULL) == DDPM_OK, "write mis-shaped");
   f = ddpm_st_open(path);
   rc = ddpm_unet_load_st(d, f, NULL, DDPM_LOAD_STRICT);
   CHECK(rc == DDPM_ESHAPE && strstr(ddpm_errmsg(), "[1,2,3,4]"), "mis-shaped tensor: %s", ddpm_errmsg());
   CHECK(ddpm_unet_params(d)[0] == before, "a failed load leaves the parameters untouched");
   ddpm_st_close(f);
   free(junk); free(names); free(nd); free(sh); free(data); free(buf); free(sh4);
   unlink(path);
   ddpm_unet_free(a); ddpm_unet_free(b); ddpm_unet_free(d);
}

static void test_errors(void)
{
   ddpm_unet_config c = ddpm_unet_config_cifar10();
   c.ch = 100;
   CHECK(ddpm_unet_new(&c, 0) == NULL && strstr(ddpm_errmsg(), "divisible by the 32"),
         "ch 100 rejected: %s", ddpm_errmsg());
   c = ddpm_unet_config_cifar10();
   c.resolution = 30;
   CHECK(ddpm_unet_new(&c, 0) == NULL && strstr(ddpm_errmsg(), "resolution"), "resolution 30: %s",
         ddpm_errmsg());
   c = tiny_config(0);
   ddpm_unet *m = ddpm_unet_new(&c, 0);
   float x[2 * 2 * 7 * 7] = {0}, out[2 * 3 * 7 * 7], t[2] = {0, 0};
   CHECK(ddpm_unet_forward(m, out, x, t, 2, 7, 7) == DDPM_ESHAPE, "7x7 input rejected: %s",
         ddpm_errmsg());
   CHECK(ddpm_unet_backward(m, NULL, out) == DDPM_EINVAL, "backward before forward: %s",
         ddpm_errmsg());
   ddpm_unet_free(m);
}

/* An image's output does not depend on the batch it runs in: sampling
   shards a batch over MPI ranks and promises every sample the bits of one
   process (tests/test_mpi.sh). At 8x8 a batch of 5 has 20 Winograd tiles
   and one of 3 has 12, either side of where Winograd stopped paying when
   that depended on the batch. */
static void test_batch_invariance(void)
{
   ddpm_unet_config c = tiny_config(0);
   c.in_ch = 1; c.out_ch = 1;
   ddpm_unet *m = ddpm_unet_new(&c, 5);
   const int H = 8, D = H * H;
   float x[5 * 64], t[5], y5[5 * 64], y3[3 * 64], y1[64];
   check_fill(x, 5 * D, 12);
   for (int i = 0; i < 5; i++) t[i] = (float)(100 * i + 7);
   ddpm_unet_set_grad_enabled(m, 0);
   int ok = ddpm_unet_forward(m, y5, x, t, 5, H, H) == DDPM_OK &&
            ddpm_unet_forward(m, y3, x, t, 3, H, H) == DDPM_OK &&
            ddpm_unet_forward(m, y1, x + 4 * D, t + 4, 1, H, H) == DDPM_OK;
   CHECK(ok && !memcmp(y5, y3, sizeof y3) && !memcmp(y5 + 4 * D, y1, sizeof y1),
         "inference: images 0-2 and image 4 alone give the bits they get in a batch of 5");
   ddpm_unet_set_grad_enabled(m, 1);
   ok = ddpm_unet_forward(m, y5, x, t, 5, H, H) == DDPM_OK &&
        ddpm_unet_forward(m, y3, x, t, 3, H, H) == DDPM_OK;
   CHECK(ok && !memcmp(y5, y3, sizeof y3),
         "training plan: images 0-2 alone give the bits they get in a batch of 5");
   ddpm_unet_free(m);
}

int main(void)
{
   ddpm_set_num_threads(2);
   test_batch_invariance();
   test_counts();
   test_gradients(0.0f);
   test_gradients(0.3f);
   test_save_load();
   test_errors();
   return check_done();
}
