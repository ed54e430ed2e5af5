/* The interface between one compiled model and the harness (firmware/README.md).
 * A generated model directory defines `tvmq_<name>_model` and `tvmq_model`, its
 * weak alias (so several models link into one firmware); the harness only uses
 * `tvmq_model` through this header, so any model that implements it runs on
 * every board. Copied into every generated model directory. */
#ifndef TVMQ_MODEL_H
#define TVMQ_MODEL_H

#include <stddef.h>
#include <stdint.h>
typedef struct {
  const char *name;   /* tensor name in the source model */
  const char *dtype;  /* "int8", "uint8", "int16", "int32", "float32" */
  uint32_t bytes;     /* size of data */
  void *data;         /* static buffer owned by the model, aligned to 16 */
} tvmq_tensor_t;
typedef struct {
  const char *name;        /* model name */
  const char *build_id;    /* hex digest identifying this compiled model */
  uint32_t num_inputs, num_outputs;
  const tvmq_tensor_t *inputs, *outputs;
  uint32_t arena_bytes;    /* size of the static activation arena */
  int32_t (*run)(void);    /* reads inputs[i].data, writes outputs[i].data; 0 on success */
} tvmq_model_t;
extern const tvmq_model_t tvmq_model;

#endif /* TVMQ_MODEL_H */
