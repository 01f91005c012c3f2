/* op_table.c - the op table: name and backward of every enum gen_op. */
#include "core/ops.h"

#define OP(e, n) [GEN_OP_##e] = {#n, gen_bwd_##n}

const struct gen_op_def gen_op_table[] = {
    OP(ADD, add), OP(SUB, sub), OP(MUL, mul), OP(SCALE, scale), OP(ADD_SCALAR, add_scalar),
    OP(SUM, sum), OP(MEAN, mean), OP(MATMUL, matmul), OP(LINEAR, linear),
    OP(RESHAPE, reshape), OP(PERMUTE, permute), OP(CONCAT, concat), OP(SLICE, slice),
    OP(RELU, relu), OP(LEAKY_RELU, leaky_relu), OP(GELU, gelu), OP(SILU, silu),
    OP(SIGMOID, sigmoid), OP(TANH, tanh), OP(EXP, exp),
    OP(SOFTMAX, softmax), OP(LOG_SOFTMAX, log_softmax),
    OP(CROSS_ENTROPY, cross_entropy), OP(BCE_LOGITS, bce_logits), OP(MSE, mse),
    OP(GAUSSIAN_KL, gaussian_kl), OP(EMBEDDING, embedding), OP(LAYERNORM, layernorm),
    OP(GROUPNORM, groupnorm), OP(GROUPNORM_SILU, groupnorm_silu), OP(BATCHNORM, batchnorm),
    OP(CONV2D, conv2d),
    OP(CONV_TRANSPOSE2D, conv_transpose2d), OP(UPSAMPLE2X, upsample2x),
    OP(ATTENTION, attention), OP(DROPOUT, dropout), OP(CONV2D_ADD, conv2d_add),
    OP(MLP, mlp), OP(CONV2D_CONCAT, conv2d_concat),
};

/* The table takes its length from its entries (the header declares it
 * without one), so it is as long as the enum only if the last op has an
 * entry. An op added to the enum changes its count, which stops the build
 * here until the table has the new entry and the count below is raised;
 * tests/test_ops_table.c checks that no entry in the middle was left out
 * (a NULL name or backward). */
_Static_assert(sizeof gen_op_table / sizeof gen_op_table[0] == GEN_OP_COUNT,
               "gen_op_table must end with the last gen_op");
_Static_assert(GEN_OP_COUNT == 39, "a new gen_op: give it an entry above, then raise this count");
