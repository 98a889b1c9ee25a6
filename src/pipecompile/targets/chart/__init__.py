"""The generated chart's contract, shared by the targets that deploy it (helm, local):
the values it reads (:mod:`.values`) and the analysis that judges a release
(:mod:`.analysis`).  Shared code, like :mod:`..common`: no target of its own."""
