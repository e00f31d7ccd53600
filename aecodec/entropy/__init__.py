"""Entropy coding: the rANS coder's tables and bounds (:mod:`.coding`), the two entropy models the
codec uses (:mod:`.models`), and the hyperprior's coding path with its damage check
(:mod:`.hyperprior`). The models that produce the entropy parameters live in :mod:`aecodec.models`.
"""
