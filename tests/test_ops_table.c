/* test_ops_table.c - every enum gen_op has a name and a backward in
 * gen_op_table, and names are unique. */
#include <string.h>

#include "testutil.h"

static void test_table_complete(void **state) {
    (void)state;
    for (int op = 0; op < GEN_OP_COUNT; op++) {
        if (!gen_op_table[op].name || !gen_op_table[op].backward)
            fprintf(stderr, "  gen_op_table[%d] is incomplete\n", op);
        assert_non_null(gen_op_table[op].name);
        assert_non_null(gen_op_table[op].backward);
        assert_true(strlen(gen_op_table[op].name) > 0);
        for (int other = 0; other < op; other++)
            assert_string_not_equal(gen_op_table[op].name, gen_op_table[other].name);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_table_complete)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
