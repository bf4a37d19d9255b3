"""``sagebridge console``: web pages for the people on call and the accountants behind them.

A process of its own (never the data plane): it reads Kafka and Redis through the modules the
operators' commands use (the sources gathered in :mod:`service.console.sources` are the one
place it calls them), and every action it takes is a signed-in, CSRF-checked POST written to
the audit topic.
"""
