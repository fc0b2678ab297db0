"""steelkit: the winning recipe of Kaggle's Severstal steel defect detection, as a small toolkit.

The package, in pipeline order (one module per concept; the README's table says more):

- the competition: ``rle``, ``competition``, ``paths``, ``synthetic``, ``realism``, ``folds``;
- training: ``recipe`` (with ``fields``), ``augment``, ``masks``, ``datasets``, ``imagecache``, ``model_input``,
  ``models``, ``losses``, ``checkpoint``, ``distributed``, ``timelimit``, ``train``, ``validation``,
  ``oof``, ``launch``, ``figures``;
- inference: ``tta``, ``ensemble``, ``external``, ``postprocess``, ``predict``, ``submission``, ``metric``,
  ``overlay``;
- tuning and pseudo labels: ``thresholds``, ``tuning``, ``pseudo``;
- Kaggle and plumbing: ``budget``, ``offline``, ``atomic``, ``units``, ``errors``, ``cli``.
"""

__version__ = "0.1.0"
