"""The codec: images ↔ .aec bytes (:mod:`.api`). Below it, one way down: the container
(:mod:`.format`, standard library only), where pixels go (:mod:`.geometry`), the coding stages
(:mod:`.pipeline`) over any model with :mod:`.protocol`'s methods, rate control
(:mod:`.ratesearch`), the encoder search (:mod:`.refine`), pixels in and out (:mod:`.images`),
files (:mod:`.files`) and the Pillow plugin (:mod:`.pil_plugin`)."""
