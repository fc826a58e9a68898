"""`fedeploy plan`: the federation planned offline (`run`), each stack's charts rendered and
checked (`checks`, `monitoring`), one report in text, JSON or Markdown (`formats`), the command
line (`command`)."""
