/* Runs a tvmq model library on Linux, through the model descriptor of tvmq_model.h.
 *
 *   tvmq_runner INPUT OUTPUT [RUNS]
 *
 * INPUT holds one or more samples, each the model's inputs' bytes back to back
 * (in tvmq_model.inputs order, little-endian, as numpy's tobytes()); OUTPUT
 * receives each sample's outputs the same way. Each sample runs RUNS times
 * (default 1; 0 runs nothing, writes nothing: the baseline of an instruction
 * count). Errors are one line on stderr and exit status 2. Model independent: it
 * links against any model's static library. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tvmq_model.h"

static int fail(const char *what, const char *detail) {
  fprintf(stderr, "tvmq_runner: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
  return 2;
}

static size_t total_bytes(const tvmq_tensor_t *tensors, uint32_t count) {
  size_t total = 0;
  for (uint32_t i = 0; i < count; ++i) total += tensors[i].bytes;
  return total;
}

static int read_file(const char *path, uint8_t **data, size_t *size) {
  FILE *file = fopen(path, "rb");
  if (file == NULL) return -1;
  size_t capacity = 1 << 16, used = 0, got;
  uint8_t *buffer = malloc(capacity);
  while (buffer != NULL && (got = fread(buffer + used, 1, capacity - used, file)) > 0) {
    used += got;
    if (used == capacity) buffer = realloc(buffer, capacity *= 2);
  }
  int error = buffer == NULL || ferror(file);
  fclose(file);
  if (error) {
    free(buffer);
    return -1;
  }
  *data = buffer;
  *size = used;
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 3 || argc > 4) return fail("usage: tvmq_runner INPUT OUTPUT [RUNS]", NULL);
  char *end = NULL;
  long runs = argc == 4 ? strtol(argv[3], &end, 10) : 1;
  if (argc == 4 && (*end != 0 || runs < 0)) return fail("RUNS is not a count", argv[3]);
  const tvmq_model_t *model = &tvmq_model;
  size_t sample_in = total_bytes(model->inputs, model->num_inputs);
  uint8_t *input;
  size_t size;
  if (read_file(argv[1], &input, &size) != 0) return fail(argv[1], strerror(errno));
  if (size == 0 || size % sample_in != 0) {
    fprintf(stderr,
            "tvmq_runner: %s: %zu bytes is not a whole number of samples of %zu bytes "
            "(the inputs of model %s)\n",
            argv[1], size, sample_in, model->name);
    return 2;
  }
  FILE *output = fopen(argv[2], "wb");
  if (output == NULL) return fail(argv[2], strerror(errno));
  for (size_t at = 0; at < size; at += sample_in) {
    const uint8_t *sample = input + at;
    for (uint32_t i = 0; i < model->num_inputs; ++i) {
      memcpy(model->inputs[i].data, sample, model->inputs[i].bytes);
      sample += model->inputs[i].bytes;
    }
    for (long run = 0; run < runs; ++run) {
      int32_t status = model->run();
      if (status != 0) {
        fprintf(stderr, "tvmq_runner: model %s returned status %d\n", model->name, (int)status);
        return 2;
      }
    }
    for (uint32_t i = 0; runs > 0 && i < model->num_outputs; ++i)
      fwrite(model->outputs[i].data, 1, model->outputs[i].bytes, output);
  }
  if (fclose(output) != 0) return fail(argv[2], strerror(errno));
  free(input);
  return 0;
}
