"""The typed model of a stack file's `fedeploy:site` object and its loader."""
