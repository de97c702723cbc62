"""Stackyard: a low-code builder for Haystack LLM workflows.

The rooms live in top-level packages (``workflows``, ``nodes``, ``worker``, ``api``, ``ui``);
this package holds what they share: settings and the command line.
"""
