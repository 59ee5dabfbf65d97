"""Training methods: SFT (TRL's SFTTrainer), KD and DPO, sharing one progress display."""
