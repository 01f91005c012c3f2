/* optim.c - SGD, Adam, AdamW, global-norm clipping and EMA over the flat
 * blocks of a gen_params. A group's tensors need not be contiguous, so the
 * update runs tensor by tensor (each a flat kernel call). */
#include <math.h>

#include "gen/kernels.h"
#include "gen/nn.h"

static int in_group(const struct gen_param *p, int group) {
    return p->kind != GEN_PARAM_BUFFER && (group < 0 || p->group == group);
}

void gen_optim_step(const struct gen_optim *opt, struct gen_params *ps, int group, float lr) {
    const struct gen_kernels *k = gen_kernels();
    int gi = group < 0 ? 0 : group;
    int64_t t = ++ps->step[gi];
    float bc1 = 1.0f - powf(opt->beta1, (float)t);
    float bc2 = 1.0f - powf(opt->beta2, (float)t);
    for (int i = 0; i < ps->count; i++) {
        const struct gen_param *p = &ps->p[i];
        if (!in_group(p, group)) continue;
        int64_t n = gen_numel(&p->t), o = p->offset;
        float wd = p->kind == GEN_PARAM_WEIGHT ? opt->weight_decay : 0.0f;
        switch (opt->kind) {
        case GEN_OPTIM_SGD:
            k->sgd(n, ps->data + o, ps->grad + o, ps->m + o, lr, opt->momentum, wd);
            break;
        case GEN_OPTIM_ADAM:
            /* Adam's L2 decay folds into the gradient (PyTorch's Adam). */
            if (wd != 0.0f) k->axpy(n, wd, ps->data + o, ps->grad + o);
            k->adam(n, ps->data + o, ps->grad + o, ps->m + o, ps->v + o, lr, opt->beta1,
                    opt->beta2, opt->eps, 0.0f, bc1, bc2);
            break;
        case GEN_OPTIM_ADAMW:
            k->adam(n, ps->data + o, ps->grad + o, ps->m + o, ps->v + o, lr, opt->beta1,
                    opt->beta2, opt->eps, wd, bc1, bc2);
            break;
        }
    }
}

double gen_clip_grad_norm(struct gen_params *ps, int group, double max_norm) {
    const struct gen_kernels *k = gen_kernels();
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
