"""The training stage (notebooks/02_train.ipynb): full fine-tuning, LoRA and QLoRA on the HF Trainer."""
