/* output.c - what the commands write: image grids or folders in the format
 * the path asks for, a refusal to overwrite an input, and the one JSON
 * result object of every command (see engine.h). */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/engine.h"

int gen_output_is_folder(const char *out) {
    const size_t len = strlen(out);
    return len && out[len - 1] == '/';
}

enum gen_status gen_write_images(const char *path, const float *images, int64_t n, int c, int h,
                                 int w, int cols) {
    if (n < 1 || n > INT32_MAX)
        return gen_error(GEN_ERR_USAGE, "%s: cannot write %lld images", path, (long long)n);
    if (gen_output_is_folder(path))
        return gen_png_write_each(path, "", images, (int)n, c, h, w, 0.0f, 1.0f);
    return gen_png_write_grid_cols(path, images, (int)n, c, h, w, cols, 0.0f, 1.0f);
}

enum gen_status gen_check_output(const char *out, const char *const *inputs, int n_inputs) {
    struct stat so;
    if (!out || stat(out, &so) != 0) return GEN_OK; /* a new file is never an input */
    for (int i = 0; i < n_inputs; i++) {
        struct stat si;
        if (inputs[i] && stat(inputs[i], &si) == 0 && si.st_dev == so.st_dev &&
            si.st_ino == so.st_ino)
            return gen_error(GEN_ERR_USAGE, "%s: is an input of this command (%s); choose another -o",
                             out, inputs[i]);
    }
    return GEN_OK;
}

void gen_print_result(const char *command, const char *family, const char *const *outputs,
                      int n_outputs, const struct gen_field *metrics, int n_metrics, cJSON *extra) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "command", command);
    cJSON_AddStringToObject(o, "family", family);
    cJSON *outs = cJSON_AddArrayToObject(o, "outputs");
    for (int i = 0; i < n_outputs; i++)
        if (outputs[i]) cJSON_AddItemToArray(outs, cJSON_CreateString(outputs[i]));
    cJSON *m = cJSON_AddObjectToObject(o, "metrics");
    for (int i = 0; i < n_metrics; i++) cJSON_AddNumberToObject(m, metrics[i].name, metrics[i].value);
    if (extra) {
        cJSON *item = extra->child;
        while (item) {
            cJSON *next = item->next;
            cJSON_AddItemToObject(o, item->string, cJSON_DetachItemViaPointer(extra, item));
            item = next;
        }
        cJSON_Delete(extra);
    }
    char *text = cJSON_PrintUnformatted(o);
    if (text) {
        if (printf("%s\n", text) < 0 || fflush(stdout) != 0) gen_stdout_failed(errno, NULL);
        cJSON_free(text);
    }
    cJSON_Delete(o);
}
