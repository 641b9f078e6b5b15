"""Code generated from other projects' interface definitions, kept apart from ours (see NOTICE)."""
