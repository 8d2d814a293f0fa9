"""Surgery on networks: pure functions that take modules and tensors and return new ones.

- :mod:`tinyzoo.surgery.head`: a ``classes``-way head (ImageNet rows for wnids, or Kaiming
  normal), auxiliary heads adapted or dropped;
- :mod:`tinyzoo.surgery.stem`: ``--stem small`` per family, and ``stage_sizes`` for geometry;
- :mod:`tinyzoo.surgery.kernels`: resampling a kernel (bicubic with rescaling, or pseudo-inverse);
- :mod:`tinyzoo.surgery.convolutionize`: Linear layers of a classifier into convolutions;
- :mod:`tinyzoo.surgery.resize`: an input-upsampling layer for ``--stem resize``.

The adapters that ``tinyzoo.create`` runs (``plugins/adapters.py``) call these; layer names
always come from the architecture's spec.
"""
