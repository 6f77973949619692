"""extschema: let plugins extend an application's relational database safely.

The package is layered (checked by import-linter): the shells (``cli``, ``handlers``) call
``reconcile``, which calls ``engine``, which renders through ``dialects``; everything below is a
pure core (``model``, ``validation``, ``conflicts``, ``planning``, ``naming``, ``conditions``,
``problems``) with no I/O.
"""

__version__ = "0.1.0"
