"""Backups of a catalog database and the drill that proves they restore.

`barman` builds the barman-cloud command lines the chart and the drill run; `catalog_state`
reads what a pgstac catalog holds and compares two of them; `command` is `fedeploy restore-drill`.
"""
