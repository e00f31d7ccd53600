"""Container format (``format``, standard library only) and the image ↔ bytes API (``api``)."""
