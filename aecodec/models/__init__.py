"""Models: the transforms and their layers (:mod:`.hyperprior`, :mod:`.layers`, :mod:`.fixed_point`,
:mod:`.aux_transform`), the architectures by id (:mod:`.registry`), checkpoints (:mod:`.checkpoint`)
and where weight files are found (:mod:`.zoo`). Entropy coding is :mod:`aecodec.entropy`'s."""
