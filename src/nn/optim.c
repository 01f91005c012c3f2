/* optim.c - SGD, Adam, AdamW, global-norm clipping and EMA over the flat
 * blocks of a gen_params. A group's tensors need not be contiguous, nor
 * share one decay, so the update runs span by span: the longest runs of
 * neighbouring tensors alike in both, each a flat kernel call. */
#include <math.h>

#include "gen/kernels.h"
#include "gen/nn.h"

static int in_group(const struct gen_param *p, int group) {
    return p->kind != GEN_PARAM_BUFFER && (group < 0 || p->group == group);
}

void gen_params_grad_ready(struct gen_params *ps, int group) {
    for (int i = 0; i < ps->count; i++) {
        struct gen_param *p = &ps->p[i];
        if (in_group(p, group) && p->t.grad_stale) {
            gen_kernels()->fill(gen_numel(&p->t), 0.0f, p->t.grad);
            p->t.grad_stale = 0;
        }
    }
}

/* Elements [o, o + n) of the flat blocks, with decay wd. */
struct span {
    int64_t o, n;
    float wd;
};

static void update_span(const struct gen_optim *opt, struct gen_params *ps, struct span s,
                        const struct gen_adam_step *adam) {
    const struct gen_kernels *k = gen_kernels();
    float *p = ps->data + s.o, *g = ps->grad + s.o, *m = ps->m + s.o;
    if (opt->kind == GEN_OPTIM_SGD) {
        k->sgd(s.n, p, g, m, adam->lr, opt->momentum, s.wd);
        return;
    }
    struct gen_adam_step h = *adam;
    /* Adam's decay is L2, folded into the gradient (PyTorch's Adam);
     * AdamW's is decoupled. */
    if (opt->kind == GEN_OPTIM_ADAM) h.l2 = s.wd;
    else h.wd = s.wd;
    k->adam_step(s.n, p, g, m, ps->v + s.o, &h);
}

void gen_optim_step(const struct gen_optim *opt, struct gen_params *ps, int group, float lr) {
    gen_params_grad_ready(ps, group);
    int gi = group < 0 ? 0 : group;
    int64_t t = ++ps->step[gi];
    const struct gen_adam_step adam = {.lr = lr,
                                       .beta1 = opt->beta1,
                                       .beta2 = opt->beta2,
                                       .eps = opt->eps,
                                       .bc1 = 1.0f - powf(opt->beta1, (float)t),
                                       .bc2 = 1.0f - powf(opt->beta2, (float)t)};
    struct span s = {0, 0, 0.0f};
    for (int i = 0; i < ps->count; i++) {
        const struct gen_param *p = &ps->p[i];
        if (!in_group(p, group)) continue;
        const int64_t n = gen_numel(&p->t);
        const float wd = p->kind == GEN_PARAM_WEIGHT ? opt->weight_decay : 0.0f;
        if (s.n && p->offset == s.o + s.n && wd == s.wd) {
            s.n += n;
            continue;
        }
        if (s.n) update_span(opt, ps, s, &adam);
        s = (struct span){p->offset, n, wd};
    }
    if (s.n) update_span(opt, ps, s, &adam);
}

double gen_clip_grad_norm(struct gen_params *ps, int group, double max_norm) {
    const struct gen_kernels *k = gen_kernels();
    gen_params_grad_ready(ps, group);
    double ss = 0;
    for (int i = 0; i < ps->count; i++) {
        const struct gen_param *p = &ps->p[i];
        if (in_group(p, group)) ss += k->sumsq(gen_numel(&p->t), ps->grad + p->offset);
    }
    double norm = sqrt(ss);
    if (norm > max_norm) {
        /* PyTorch's clip_grad_norm_: scale by max / (norm + 1e-6). */
        float s = (float)(max_norm / (norm + 1e-6));
        for (int i = 0; i < ps->count; i++) {
            const struct gen_param *p = &ps->p[i];
            if (in_group(p, group))
                k->scale(gen_numel(&p->t), s, ps->grad + p->offset, ps->grad + p->offset);
        }
    }
    return norm;
}

void gen_ema_update(struct gen_params *ps, float decay) {
    GEN_ASSERT(ps->ema);
    gen_kernels()->ema(ps->n_train, ps->ema, ps->data, decay);
}

void gen_ema_update_group(struct gen_params *ps, int group, float decay) {
    if (group < 0) {
        gen_ema_update(ps, decay);
        return;
    }
    GEN_ASSERT(ps->ema);
    const struct gen_kernels *k = gen_kernels();
    for (int i = 0; i < ps->count; i++) {
        const struct gen_param *p = &ps->p[i];
        if (in_group(p, group))
            k->ema(gen_numel(&p->t), ps->ema + p->offset, ps->data + p->offset, decay);
    }
}

float gen_ema_warmup_decay(int64_t t, float max_decay) {
    const float d = (1.0f + (float)t) / (10.0f + (float)t);
    return d < max_decay ? d : max_decay;
}

void gen_ema_copy_in(struct gen_params *ps) {
    GEN_ASSERT(ps->ema);
    for (int64_t i = 0; i < ps->n_train; i++) ps->ema[i] = ps->data[i];
}

void gen_ema_swap(struct gen_params *ps) {
    GEN_ASSERT(ps->ema);
    float *t = ps->data;
    ps->data = ps->ema;
    ps->ema = t;
    for (int i = 0; i < ps->count; i++) {
        struct gen_param *p = &ps->p[i];
        if (p->kind != GEN_PARAM_BUFFER) p->t.data = ps->data + p->offset;
    }
}

/* ---- schedules ---- */

float gen_schedule_lr(const struct gen_schedule *s, int64_t step) {
    if (s->kind == GEN_SCHED_CONSTANT) return s->base_lr;
    if (step < s->warmup) return s->base_lr * (float)(step + 1) / (float)s->warmup;
    if (s->kind == GEN_SCHED_WARMUP) return s->base_lr;
    int64_t span = s->total - 1 - s->warmup;
    if (span <= 0) return s->base_lr;
    double progress = (double)(step - s->warmup) / (double)span;
    if (progress > 1.0) progress = 1.0;
    double c = 0.5 * (1.0 + cos(M_PI * progress));
    return (float)(s->min_lr + (s->base_lr - s->min_lr) * c);
}
