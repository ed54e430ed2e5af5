/* A model library as a TVM module: one packed function, on DLTensors,
 *
 *   tvmq_run(input_0, ..., output_0, ...)
 *
 * in tvmq_model.inputs then tvmq_model.outputs order, each a contiguous CPU
 * tensor of exactly the model's bytes. A board running TVM's stock RPC server
 * loads it (`load_module`) and times it (`time_evaluator`): how `tvmq tune
 * --runner rpc` measures candidates on a real Cortex-A board. The model's code is
 * the same as in the static and shared libraries; only tvm_ffi's C header is
 * needed to compile this file, nothing of TVM to link it. */
#include <stdio.h>
#include <string.h>

#include "tvm/ffi/c_api.h"
#include "tvmq_model.h"

/* Defined by the TVM process that loads the module; weak, so the library also
 * loads (and reports nothing) without one. */
extern void TVMFFIErrorSetRaisedFromCStr(const char *kind, const char *message)
    __attribute__((weak));

static int32_t fail(const char *message) {
  if (TVMFFIErrorSetRaisedFromCStr) TVMFFIErrorSetRaisedFromCStr("ValueError", message);
  return -1;
}

static const DLTensor *tensor_of(const TVMFFIAny *arg) {
  if (arg->type_index == kTVMFFIDLTensorPtr) return (const DLTensor *)arg->v_ptr;
  if (arg->type_index == kTVMFFITensor)  /* a tensor object: its DLTensor follows the header */
    return (const DLTensor *)((const char *)arg->v_obj + sizeof(TVMFFIObject));
  return NULL;
}

/* The tensor's data if it is `bytes` contiguous bytes in CPU memory, else NULL. */
static uint8_t *contiguous_data(const DLTensor *tensor, uint32_t bytes) {
  if (tensor == NULL || tensor->device.device_type != kDLCPU) return NULL;
  uint64_t elements = 1;
  for (int32_t axis = tensor->ndim - 1; axis >= 0; --axis) {
    if (tensor->strides != NULL && tensor->strides[axis] != (int64_t)elements) return NULL;
    elements *= (uint64_t)tensor->shape[axis];
  }
  uint64_t size = elements * tensor->dtype.lanes * ((tensor->dtype.bits + 7u) / 8u);
  if (size != bytes) return NULL;
  return (uint8_t *)tensor->data + tensor->byte_offset;
}

static int32_t argument_error(const char *role, uint32_t index, const tvmq_tensor_t *expected) {
  static char message[256];
  snprintf(message, sizeof message,
           "tvmq_run: %s %u ('%s') must be a contiguous CPU tensor of %u bytes (%s)", role,
           (unsigned)index, expected->name, (unsigned)expected->bytes, expected->dtype);
  return fail(message);
}

__attribute__((visibility("default"))) int32_t __tvm_ffi_tvmq_run(void *self,
                                                                   const TVMFFIAny *args,
                                                                   int32_t num_args,
                                                                   TVMFFIAny *result) {
  const tvmq_model_t *model = &tvmq_model;
  (void)self;
  if (num_args != (int32_t)(model->num_inputs + model->num_outputs)) {
    static char message[128];
    snprintf(message, sizeof message, "tvmq_run: model %s takes %u inputs and %u outputs",
             model->name, (unsigned)model->num_inputs, (unsigned)model->num_outputs);
    return fail(message);
  }
  for (uint32_t i = 0; i < model->num_inputs; ++i) {
    const uint8_t *data = contiguous_data(tensor_of(&args[i]), model->inputs[i].bytes);
    if (data == NULL) return argument_error("input", i, &model->inputs[i]);
    memcpy(model->inputs[i].data, data, model->inputs[i].bytes);
  }
  const TVMFFIAny *output_args = args + model->num_inputs;
  for (uint32_t i = 0; i < model->num_outputs; ++i)
    if (contiguous_data(tensor_of(&output_args[i]), model->outputs[i].bytes) == NULL)
      return argument_error("output", i, &model->outputs[i]);
  if (model->run() != 0) return fail("tvmq_run: the model returned an error status");
  for (uint32_t i = 0; i < model->num_outputs; ++i)
    memcpy(contiguous_data(tensor_of(&output_args[i]), model->outputs[i].bytes),
           model->outputs[i].data, model->outputs[i].bytes);
  result->type_index = kTVMFFINone;
  result->zero_padding = 0;
  result->v_int64 = 0;
  return 0;
}
