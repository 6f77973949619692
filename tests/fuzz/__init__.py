"""Fuzzing the front doors: generated ExtensionSchema documents, valid and broken, through the CLI, the REST
API and ``kubectl apply`` (webhook and operator), with properties every answer must hold (docs/fuzz.md).

``documents`` generates the documents (hypothesis strategies), ``checks`` holds the properties and the
database snapshot, ``tally`` counts the cases per channel for the summary ``make fuzz`` prints.
"""
