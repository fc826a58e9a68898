"""`fedeploy affected`: which stacks a change affects, in waves (`find`; its parts, shared with
`diff`, are in `fedeploy.gitops`), and the command line (`command`)."""
