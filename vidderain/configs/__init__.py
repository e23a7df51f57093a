"""Model configs (YAML), shipped inside the package as ``vidderain.configs``."""
