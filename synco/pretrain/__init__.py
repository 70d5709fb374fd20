"""Pretraining: MoCo v2, MoCHI and SynCo as one momentum-contrast model.

- :mod:`~synco.pretrain.negatives`   the six synthetic-negative formulas, as pure tensor functions
- :mod:`~synco.pretrain.synthesis`   their logits without materialising the vectors (the fast path)
- :mod:`~synco.pretrain.contrastive` InfoNCE with the queue and the synthetic negatives
- :mod:`~synco.pretrain.splitbn`     per-slice batch norm on one device
- :mod:`~synco.pretrain.model`       the encoders, the queue, shuffle-BN
- :mod:`~synco.pretrain.config`      settings: presets + ``key=value`` overrides, and each method's synthesis counts
- :mod:`~synco.pretrain.data`        MoCo v2's two-view augmentation, resumable sampling, unreadable files
- :mod:`~synco.pretrain.gpu_data`    ``data_pipeline=gpu``: workers read files, the device decodes them
- :mod:`~synco.pretrain.gpu_augment` aug+ on batches on any device
- :mod:`~synco.pretrain.checkpoint`  MoCo-layout checkpoints, written atomically
- :mod:`~synco.pretrain.metrics_log` metrics.jsonl and TensorBoard
- :mod:`~synco.pretrain.train`       the training loop (one device to multi-node DDP)
- :mod:`~synco.pretrain.process`     torchrun's distributed setup, preemption signals
"""
