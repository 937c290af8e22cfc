"""Local model inference: architectures, synthetic training data, preprocessing, runtime and QC.

Modules here import torch at their top; nothing imports this package when the application starts.
"""
