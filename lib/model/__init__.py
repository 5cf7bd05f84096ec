"""The model stage: the BERT architecture (bert), its Hugging Face weight files (hf_weights),
tokenizer files (tokenizer), finding and loading a model folder (pretrained), and the CPU
speed-ups that swap modules in (cpu_speedups, host_memory).
"""
