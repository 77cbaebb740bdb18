"""``frugalseg annotate``: a local page that writes clicks, boxes, scribbles and tags into an annotation file.

Needs the ``annotate`` extra (Starlette, uvicorn): ``pip install 'frugalseg[annotate]'``. The catalog,
the store and the lock import without it; only :mod:`frugalseg.annotate.app` and the server need it.
"""
