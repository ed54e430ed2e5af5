"""Int8 quantization: realize quantize/dequantize graphs as integer arithmetic."""
