"""Trained weights shipped with the package (<config>.safetensors)."""
