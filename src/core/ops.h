/* ops.h - private: the backward function of every op, defined next to its
 * forward in src/core/ops_*.c and gathered in op_table.c. */
#ifndef GEN_CORE_OPS_H
#define GEN_CORE_OPS_H

#include "gen/kernels.h"
#include "gen/tensor.h"

#define GEN_BACKWARD(name) void gen_bwd_##name(struct gen_ctx *g, struct gen_node *node)

/* ops_basic.c */
GEN_BACKWARD(add); GEN_BACKWARD(sub); GEN_BACKWARD(mul); GEN_BACKWARD(scale);
GEN_BACKWARD(add_scalar); GEN_BACKWARD(sum); GEN_BACKWARD(mean);
GEN_BACKWARD(matmul); GEN_BACKWARD(linear);
GEN_BACKWARD(reshape); GEN_BACKWARD(permute); GEN_BACKWARD(concat); GEN_BACKWARD(slice);
/* ops_act.c */
GEN_BACKWARD(relu); GEN_BACKWARD(leaky_relu); GEN_BACKWARD(gelu); GEN_BACKWARD(silu);
GEN_BACKWARD(sigmoid); GEN_BACKWARD(tanh); GEN_BACKWARD(exp);
GEN_BACKWARD(softmax); GEN_BACKWARD(log_softmax);
/* ops_loss.c */
GEN_BACKWARD(cross_entropy); GEN_BACKWARD(bce_logits); GEN_BACKWARD(mse);
GEN_BACKWARD(gaussian_kl); GEN_BACKWARD(embedding); GEN_BACKWARD(dropout);
/* ops_norm.c */
GEN_BACKWARD(layernorm); GEN_BACKWARD(groupnorm); GEN_BACKWARD(batchnorm);
/* ops_conv.c */
GEN_BACKWARD(conv2d); GEN_BACKWARD(conv_transpose2d); GEN_BACKWARD(upsample2x);
/* ops_attn.c */
GEN_BACKWARD(attention);

#endif
