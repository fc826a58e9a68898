"""`fedeploy diff`: what a change does to every site, from offline plans of both revisions
(`compare`), printed as text, Markdown or JSON (`formats`), and the command line (`command`)."""
