"""The kinds of migration, each a :class:`extschema.engine.runner.Migration` run by :meth:`Migrator.run`.

``apply`` runs a plan from a base registration to a spec; ``rollback`` runs a migration's recorded
rollback SQL; ``delete`` drops (or, retained, unregisters) a plugin with the teardown plan it is
given; ``repair`` re-creates what drift found missing; ``restore`` copies a migration's backups back.
Each is given what it runs, planned above the engine, and checks under the lock that the registry
is still what it was planned from (else :class:`extschema.engine.runner.StalePlan`).
"""
