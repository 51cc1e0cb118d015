"""Base models: the registry (params/models.yaml), offline provisioning, loading, LoRA,
4-bit quantization, and loading a finished run (notebooks 02-04)."""
