"""Spec bodies several test files apply (the YAML under ``spec:``; see ``helpers.write_schema``)."""

from __future__ import annotations

#: A plugin with an enum, a required field and an enum field with a default.
SHOP = """
pluginId: shop
version: 1.0.0
enums:
  - {name: state, values: [new, done]}
tables:
  - name: order
    fields:
      - {name: title, type: String, required: true}
      - {name: state, type: Enum, enum: state, required: true, default: new}
"""

#: The smallest plugin: one table, one field.
NOTES = """
pluginId: notes
version: 1.0.0
tables:
  - name: note
    fields: [{name: title, type: String}]
"""
