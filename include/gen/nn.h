/* nn.h - the parameter arena, initialisers, optimisers, schedules, EMA.
 *
 * A model declares its tensors into a gen_params (name, shape, kind), then
 * calls gen_params_finalize, which lays out every trainable tensor in one
 * flat block each for data, grad, Adam moments and (optionally) EMA, so
 * the optimiser, clipping, EMA and checkpoint code are single loops.
 * Buffers (batchnorm running statistics) are saved but never trained. */
#ifndef GEN_NN_H
#define GEN_NN_H

#include "gen/tensor.h"

enum gen_param_kind {
    GEN_PARAM_WEIGHT, /* trainable, weight decay applies (2-D+ weights) */
    GEN_PARAM_NODECAY, /* trainable, no weight decay (biases, norms, embeddings if wanted) */
    GEN_PARAM_BUFFER, /* saved, not trained (running statistics)        */
};

struct gen_param {
    char name[96];             /* PyTorch module path: "enc.fc1.weight" */
    enum gen_param_kind kind;
    int group;                 /* optimiser group (GAN: 0 = G, 1 = D)  */
    struct gen_tensor t;       /* data/grad point into the flat blocks */
    int64_t offset;            /* element offset into the flat block   */
};

struct gen_params {
    struct gen_param *p;
    int count, cap;
    int64_t n_train;   /* elements of trainable tensors (flat blocks) */
    int64_t n_buffer;  /* elements of buffers                          */
    float *data;       /* (n_train) parameters                        */
    float *grad;       /* (n_train)                                   */
    float *m, *v;      /* (n_train) optimiser moments, zero at start  */
    float *ema;        /* (n_train) or NULL                           */
    float *buffers;    /* (n_buffer)                                  */
    int64_t step[4];   /* optimiser step count per group              */
};

void gen_params_init(struct gen_params *ps);
void gen_params_free(struct gen_params *ps);
/* Declares a tensor; the returned pointer is stable only after finalize
 * (use gen_params_get or keep the index). */
int gen_params_add(struct gen_params *ps, const char *name, enum gen_param_kind kind, int group,
                   int ndim, const int64_t *shape);
/* Allocates the flat blocks (with_ema: also the EMA block). Returns a status. */
enum gen_status gen_params_finalize(struct gen_params *ps, int with_ema);
/* While on (this thread), gen_params_finalize allocates the parameters,
 * buffers and EMA only: grad, m and v stay NULL and no tensor requires a
 * gradient. For a model that is only run forward (sampling, evaluation,
 * export: gen_model_load), which then holds its weights once instead of
 * four times. Returns the previous setting. */
int gen_params_forward_only(int on);
struct gen_tensor *gen_params_tensor(struct gen_params *ps, int index);
struct gen_param *gen_params_find(struct gen_params *ps, const char *name);
/* Every trainable gradient reads as zero from now on (marked stale, not
 * filled: see gen_grad_dst), until a backward writes it. */
void gen_params_zero_grad(struct gen_params *ps);
/* Zero-fills the gradients of `group` (-1: all) that no backward wrote
 * since gen_params_zero_grad, so the block can be read directly (an
 * allreduce over it). Backward does it for the tensors on its tape,
 * clipping and the optimiser for their group. */
void gen_params_grad_ready(struct gen_params *ps, int group);
int64_t gen_params_count(const struct gen_params *ps); /* trainable elements */
/* Index of the first tensor (parameters and buffers) holding a NaN or an
 * infinity, or -1 when all are finite. */
int gen_params_first_nonfinite(const struct gen_params *ps);

/* ---- initialisers (all through the given rng) ---- */
/* U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's default for Linear/Conv
 * weights and biases. fan_in = shape[1] * prod(shape[2:]) of the weight. */
void gen_init_uniform_fan_in(struct gen_tensor *t, int64_t fan_in, struct gen_rng *r);
void gen_init_normal(struct gen_tensor *t, float mean, float std, struct gen_rng *r);
void gen_init_const(struct gen_tensor *t, float v);
/* While on (this thread), the three initialisers above leave their tensor
 * as it is (the zeros gen_params_finalize allocates) and draw nothing: for
 * a model built only to have every tensor loaded over it
 * (gen_model_create_checked).
 * Returns the previous setting. */
int gen_init_skip(int on);

/* ---- optimisers ---- */
enum gen_optim_kind { GEN_OPTIM_SGD, GEN_OPTIM_ADAM, GEN_OPTIM_ADAMW };
struct gen_optim {
    enum gen_optim_kind kind;
    float lr, beta1, beta2, eps, weight_decay, momentum;
};
/* One update of every trainable tensor of `group` (-1: all groups) with
 * learning rate `lr` (the schedule's value; opt->lr is the base).
 * Weight decay touches GEN_PARAM_WEIGHT tensors only. Increments the step.
 * Neighbouring tensors of the group with the same decay are updated by one
 * kernel call over their span of the flat blocks (Adam with its L2 decay
 * folded in, one pass). */
void gen_optim_step(const struct gen_optim *opt, struct gen_params *ps, int group, float lr);
/* Scales the gradients of `group` (-1: all) so their global L2 norm is at
 * most max_norm; returns the norm before clipping. */
double gen_clip_grad_norm(struct gen_params *ps, int group, double max_norm);
/* ema = decay ema + (1 - decay) data; gen_ema_copy_in fills ema = data. */
void gen_ema_update(struct gen_params *ps, float decay);
void gen_ema_copy_in(struct gen_params *ps);
/* The EMA update of one group's trainable tensors (-1: all). */
void gen_ema_update_group(struct gen_params *ps, int group, float decay);
/* The decay of update t (from 0) with warm-up: min(max_decay, (1 + t) /
 * (10 + t)), so early averages are not dominated by the initial weights. */
float gen_ema_warmup_decay(int64_t t, float max_decay);
/* Swaps data and ema blocks (sample from EMA weights, then swap back). */
void gen_ema_swap(struct gen_params *ps);

/* ---- learning-rate schedules ---- */
enum gen_sched_kind { GEN_SCHED_CONSTANT, GEN_SCHED_WARMUP, GEN_SCHED_WARMUP_COSINE };
struct gen_schedule {
    enum gen_sched_kind kind;
    float base_lr, min_lr;
    int64_t warmup, total;
};
/* lr at (0-based) step: warm-up is linear from base/warmup to base over
 * `warmup` steps; cosine then decays to min_lr at step total-1. */
float gen_schedule_lr(const struct gen_schedule *s, int64_t step);



/* ---- layers: parameter declarations + forward, named like PyTorch ---- */

/* Linear(in, out): "PREFIX.weight" (out, in), "PREFIX.bias" (out). */
struct gen_linear_layer {
    int w, b; /* parameter indices; b = -1 without bias */
    int64_t in, out;
};
void gen_linear_layer_add(struct gen_params *ps, struct gen_linear_layer *l, const char *prefix,
                          int64_t in, int64_t out, int bias, int group);
struct gen_tensor *gen_linear_layer_fwd(struct gen_ctx *g, struct gen_params *ps,
                                        const struct gen_linear_layer *l, struct gen_tensor *x);

/* Conv2d(cin, cout, k, stride, pad) with weight (cout, cin, k, k), or
 * ConvTranspose2d with weight (cin, cout, k, k) when `transposed`. */
struct gen_conv_layer {
    int w, b;
    int64_t cin, cout, k;
    int stride, pad, transposed;
};
void gen_conv_layer_add(struct gen_params *ps, struct gen_conv_layer *l, const char *prefix,
                        int64_t cin, int64_t cout, int64_t k, int stride, int pad, int bias,
                        int transposed, int group);
struct gen_tensor *gen_conv_layer_fwd(struct gen_ctx *g, struct gen_params *ps,
                                      const struct gen_conv_layer *l, struct gen_tensor *x);
/* concat(l(x), s) along the channels (gen_conv2d_concat); l not
 * transposed. */
struct gen_tensor *gen_conv_layer_fwd_concat(struct gen_ctx *g, struct gen_params *ps,
                                             const struct gen_conv_layer *l, struct gen_tensor *x,
                                             struct gen_tensor *s);
/* l(x) + l2(x2) where l2 is given, else l(x) + r (gen_conv2d_sum,
 * gen_conv2d_add); neither layer transposed. */
struct gen_tensor *gen_conv_layer_fwd_sum(struct gen_ctx *g, struct gen_params *ps,
                                          const struct gen_conv_layer *l, struct gen_tensor *x,
                                          const struct gen_conv_layer *l2, struct gen_tensor *x2,
                                          struct gen_tensor *r);

/* PyTorch's default initialisation of a Linear/Conv layer: weight and bias
 * from U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = weight.shape[1] * k * k. */
void gen_linear_layer_init(struct gen_params *ps, const struct gen_linear_layer *l,
                           struct gen_rng *r);
void gen_conv_layer_init(struct gen_params *ps, const struct gen_conv_layer *l, struct gen_rng *r);

/* BatchNorm over the channels C of (N, C) or (N, C, H, W), as PyTorch's
 * BatchNorm1d/2d (momentum 0.1, eps 1e-5): "PREFIX.weight", "PREFIX.bias"
 * (C, trained, no decay), "PREFIX.running_mean", "PREFIX.running_var" (C,
 * buffers). Batch statistics when g->training (the running ones updated in
 * place), else the running ones; see gen_batchnorm. */
struct gen_batchnorm_layer {
    int w, b, mean, var; /* parameter indices */
    int64_t c;
};
void gen_batchnorm_layer_add(struct gen_params *ps, struct gen_batchnorm_layer *l,
                             const char *prefix, int64_t c, int group);
struct gen_tensor *gen_batchnorm_layer_fwd(struct gen_ctx *g, struct gen_params *ps,
                                           const struct gen_batchnorm_layer *l,
                                           struct gen_tensor *x);
/* PyTorch's initialisation: weight 1, bias 0, running mean 0, variance 1. */
void gen_batchnorm_layer_init(struct gen_params *ps, const struct gen_batchnorm_layer *l);
#endif
