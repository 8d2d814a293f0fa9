"""Surgery on networks: pure functions that take modules and tensors and return new ones.

- :mod:`tinyzoo.surgery.head`: a ``classes``-way head (ImageNet rows for wnids, or Kaiming
  normal), auxiliary heads adapted or dropped;
- :mod:`tinyzoo.surgery.stem`: ``--stem small`` for the reports' networks, and ``stage_sizes`` for geometry;
- :mod:`tinyzoo.surgery.timm_geometry`: one ``--stem small`` rule for timm's networks, read from their
  ``feature_info``, and ``--stem small-up2``;
- :mod:`tinyzoo.surgery.patch_stem`: ``--stem small`` for patch-embedding transformers (ViT, DeiT,
  BEiT, EVA, CaiT, Swin) through timm's ``set_input_size``;
- :mod:`tinyzoo.surgery.kernels`: resampling a kernel (bicubic with rescaling, or pseudo-inverse);
- :mod:`tinyzoo.surgery.convolutionize`: Linear layers of a classifier into convolutions;
- :mod:`tinyzoo.surgery.resize`: input layers for ``--stem resize`` and ``small-up2``, run by a pre-hook.

The adapters that ``tinyzoo.create`` runs (``plugins/adapters.py``) call these; layer names
always come from the architecture's spec.
"""
