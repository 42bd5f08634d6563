"""The run's config: the typed schema, the presets it starts from, the form's overrides, and each KD method's values
and search ranges."""
