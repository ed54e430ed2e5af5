"""Fine-tuning quantized models on tvmq's own Relax graphs (quantization-aware training)."""
