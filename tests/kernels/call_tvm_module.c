/* Calls a model's TVM module (`make module`) the way TVM's runtime does: dlopen,
 * dlsym("__tvm_ffi_tvmq_run"), one call with DLTensor arguments. For a board's
 * architecture whose TVM runtime cannot run here (aarch64 under qemu-user).
 *
 *   call_tvm_module MODULE INPUT OUTPUT OUTPUT_BYTES
 *
 * INPUT is the model's single input (its bytes), OUTPUT receives its single
 * output. Also checks that a call with a missing argument fails cleanly (no TVM
 * in this process: the module's error hook is a weak symbol left unresolved).
 * Exit status 0 on success, 1 with a line on stderr otherwise. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#include "tvm/ffi/c_api.h"

typedef int32_t (*packed_t)(void *, const TVMFFIAny *, int32_t, TVMFFIAny *);

static int fail(const char *what) {
  fprintf(stderr, "call_tvm_module: %s\n", what);
  return 1;
}

static TVMFFIAny tensor_arg(DLTensor *tensor, void *data, int64_t *bytes) {
  DLTensor value = {data, {kDLCPU, 0}, 1, {kDLInt, 8, 1}, bytes, NULL, 0};
  *tensor = value;
  TVMFFIAny arg = {0};
  arg.type_index = kTVMFFIDLTensorPtr;
  arg.v_ptr = tensor;
  return arg;
}

int main(int argc, char **argv) {
  if (argc != 5) return fail("usage: call_tvm_module MODULE INPUT OUTPUT OUTPUT_BYTES");
  void *library = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (library == NULL) return fail(dlerror());
  packed_t run = (packed_t)dlsym(library, "__tvm_ffi_tvmq_run");
  if (run == NULL) return fail("no __tvm_ffi_tvmq_run");

  static uint8_t input[1 << 20], output[1 << 20];
  FILE *file = fopen(argv[2], "rb");
  if (file == NULL) return fail(argv[2]);
  int64_t input_bytes = (int64_t)fread(input, 1, sizeof input, file);
  fclose(file);
  int64_t output_bytes = atoll(argv[4]);
  if (output_bytes <= 0 || output_bytes > (int64_t)sizeof output) return fail("OUTPUT_BYTES");

  DLTensor tensors[2];
  TVMFFIAny args[2] = {tensor_arg(&tensors[0], input, &input_bytes),
                       tensor_arg(&tensors[1], output, &output_bytes)};
  TVMFFIAny result = {0};
  if (run(NULL, args, 1, &result) != -1) return fail("a missing output was accepted");
  if (run(NULL, args, 2, &result) != 0) return fail("tvmq_run failed");
  if (result.type_index != kTVMFFINone) return fail("tvmq_run returned a value");

  file = fopen(argv[3], "wb");
  if (file == NULL || fwrite(output, 1, (size_t)output_bytes, file) != (size_t)output_bytes)
    return fail(argv[3]);
  fclose(file);
  return 0;
}
