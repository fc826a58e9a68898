"""The stack file's own commands: `validate` (every problem of every file, without planning),
`schema` (its JSON Schema, `schema`) and `config-reference` (the generated key reference); the
model itself is `fedeploy.config`."""
