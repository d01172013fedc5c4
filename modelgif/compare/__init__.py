"""Comparing models (docs/METHOD.md, step 6; docs/methods.md): the functional-distance methods.

- :mod:`.registry`: every method by name (what it reads, its options, how it is computed);
- :mod:`.methods`: a method's distances with their image resamples, as the pipeline runs them;
- :mod:`.distance`: distances between gradient fields (``distance_matrix``);
- :mod:`.similarity`: set-level representation similarity (CKA, RSA, DDS).
"""
