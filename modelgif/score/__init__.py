"""Scoring a distance against a zoo's ground truth (docs/METHOD.md, step 7; docs/methods.md).

- :mod:`.ground_truth`: a zoo's ground-truth tables as the correlate stage reads them;
- :mod:`.correlation`: the per-target Spearman ρ;
- :mod:`.bootstrap`: image resamples of distances and the agreement of a table with a replicate;
- :mod:`.ceiling`: the noise ceiling from a table's readout replicates;
- :mod:`.agreement`: Kendall's W of the method rankings across builds of a zoo;
- :mod:`.inference`: intervals over targets and images, permutation nulls, baselines, the
  primary endpoint;
- :mod:`.plots`: figures and the long tables ``dvc plots`` draws.
"""
