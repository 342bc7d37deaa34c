"""The imperative shell: Faust app, topics, tables, codecs, agents, notifiers, web API and CLI."""
