"""Two-phase training (docs/theory.md §1, §3.6): train with convolutional token mixers,
convert every mixer exactly into attention, and keep training as a Vision Transformer.

Stages, each a module: ``data`` (built-in MNIST subset, CIFAR and ``.npz`` loaders),
``models`` (phase-1 network, phase-2 network, baseline ViT, ``convert``), ``checkpoint``
(atomic, validated), ``loop`` (one training run: resumable, deterministic, DDP-ready),
``stats`` (paired differences with confidence intervals), ``experiment`` (the grid of
``vitconv reproduce``).
"""
